"""A pytest plugin: every secret the suite creates must never reach a log, an output or a summary.

Secrets are collected two ways:

* ``secret(value)`` registers one a test invents (a Redis password, a registry password);
* every child process the suite starts (``subprocess.Popen``/``run``) has its environment read: the value
  of a variable named like a password, key, token or secret, and the key/password parts of a connection
  string, are secrets — except the Azurite development key, which Microsoft publishes. A SAS token's
  signature (``sig=``, in a connection string's SharedAccessSignature or a URL) is a secret of its own, as
  given and decoded: the storage SDK prints a SAS re-ordered, so the whole token is never found again.

Then they are looked for in every output a test captures, in every form a secret is printed in — as written,
URL-encoded (once or twice, or form-encoded) and JSON-escaped (``\\/``, ``\\u002B``): the text is searched as it
is and as it reads once decoded each of those ways — the stdout/stderr of each ``subprocess.run``,
the captured output and failure text of each test, every file under the test's ``tmp_path`` (host logs,
reports, step summaries), and at the end every file under the session's base temp directory. A find fails
the test (or the session) and names the file or stream — never the secret.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, unquote_plus

import pytest
from modelfunc.azurite import DEV_KEY

MIN_LENGTH = 8  # shorter values match too much by chance to be told apart from ordinary text
_SECRETS: set[str] = set()
_LEAKS: list[str] = []  # where a secret was seen, for the test that is running
_SESSION_LEAKS: list[str] = []
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|(^|_)KEY$|KEY(_|$)|CONNECTION|CONN$)", re.I)
_PARTS = [re.compile(p, re.I) for p in (
    r"AccountKey=([^;]+)", r"SharedAccessKey=([^;]+)", r"SharedAccessSignature=([^;]+)",
    r"(?:^|[,;])\s*password=([^,;]+)", r"://[^/:@\s]*:([^@/\s]+)@",
    r"(?:^|[?&;=])sig=([^&;\s\"']+)")]  # a SAS token's signature, wherever the token is
_SKIP_SUFFIXES = {".tar", ".gz", ".pkl", ".whl", ".so", ".pyc"}
# Third-party packages a test installed (a venv's site-packages, npm's node_modules): what pip and npm unpacked from
# their indexes, never an output of modelfunc. The wheel of modelfunc itself is read where it was built.
_SKIP_DIRS = {"site-packages", "node_modules", "__pycache__"}


def secret(value: str) -> str:
    """Register a secret the test invented; returns it, so ``PASSWORD = secret("...")`` reads naturally."""
    if len(value) < MIN_LENGTH:
        raise ValueError(f"a test secret needs at least {MIN_LENGTH} characters to be searched for reliably")
    _SECRETS.add(value)
    return value


def secrets_in(name: str, value: str) -> set[str]:
    """The secret parts of one environment variable (empty for ordinary settings and the Azurite dev key)."""
    found = {m.group(1).strip() for pattern in _PARTS for m in pattern.finditer(value or "")}
    found |= {unquote(part) for part in found}  # a SAS signature is given URL-encoded, and printed either way
    if _SECRET_NAME.search(name) and not found and "=" not in value and "://" not in value:
        found.add(value.strip())
    return {s for s in found if len(s) >= MIN_LENGTH and s != DEV_KEY}


def _harvest(env: object) -> None:
    if isinstance(env, dict):
        for name, value in env.items():
            if isinstance(name, str) and isinstance(value, str):
                _SECRETS.update(secrets_in(name, value))


_JSON_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[\\/\"bfnrt])")
_JSON_CHARS = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _json_unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        return chr(int(code[1:], 16)) if code.startswith("u") else _JSON_CHARS.get(code, code)

    return _JSON_ESCAPE.sub(one, text)


def readings(text: str) -> list[str]:
    """``text`` as written and as it reads decoded: URL-decoded once and twice, form-decoded, JSON-unescaped (and
    then URL-decoded) — a secret printed in any of those forms is found in one of them as it was given."""
    out = [text]
    if "%" in text or "+" in text:
        once = unquote(text)
        out += [once, unquote(once), unquote_plus(text)]
    if "\\" in text:
        unescaped = _json_unescape(text)
        out += [unescaped, unquote(unescaped)]
    return out


def find(text: str | bytes | None) -> list[str]:
    """The registered secrets in ``text``, in any form :func:`readings` undoes (an empty list when it is clean)."""
    if not text:
        return []
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    views = readings(text)
    return [s for s in _SECRETS if any(s in view for view in views)]


def _note(where: str, text: str | bytes | None, into: list[str]) -> None:
    hits = find(text)
    if hits:
        into.append(f"{where}: {len(hits)} secret value(s) (first characters {hits[0][:3]!r}…)")


# What a file looked like when it was last found clean, and how many secrets were known then: the session's last
# scan reads again only what changed, or every file once a secret it could hold has been registered since.
_CLEAN: dict[Path, tuple[int, int, int]] = {}


def scan_tree(root: Path, into: list[str]) -> None:
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)  # symlinked dirs are not followed
        for name in sorted(files):
            path = Path(top, name)
            try:
                if path.is_symlink() or path.suffix in _SKIP_SUFFIXES or not path.is_file():
                    continue
                stat = path.stat()
                if stat.st_size > 20 * 2**20:
                    continue
                seen = (stat.st_size, stat.st_mtime_ns, len(_SECRETS))
                if _CLEAN.get(path) == seen:
                    continue
                found = len(into)
                _note(str(path), path.read_bytes(), into)
                if len(into) == found:
                    _CLEAN[path] = seen
            except OSError:
                continue


# ------------------------------------------------------------------ watching child processes

_original_popen_init = subprocess.Popen.__init__
_original_run = subprocess.run


def _popen_init(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    _harvest(kwargs.get("env"))
    return _original_popen_init(self, *args, **kwargs)


def _run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    result = _original_run(*args, **kwargs)
    cmd = args[0] if args else kwargs.get("args")
    name = " ".join(map(str, cmd[:4])) if isinstance(cmd, (list, tuple)) else str(cmd)[:60]
    for found in find(name):  # a secret on the command line: the report names the command, never the secret
        for view in readings(name):
            if found in view:
                name = view.replace(found, "***")
    _note(f"stdout of `{name}`", result.stdout, _LEAKS)
    _note(f"stderr of `{name}`", result.stderr, _LEAKS)
    return result


def pytest_configure(config: pytest.Config) -> None:
    subprocess.Popen.__init__ = _popen_init  # type: ignore[method-assign]
    subprocess.run = _run


def pytest_unconfigure(config: pytest.Config) -> None:
    subprocess.Popen.__init__ = _original_popen_init  # type: ignore[method-assign]
    subprocess.run = _original_run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201
    outcome = yield
    report = outcome.get_result()
    for title, content in report.sections:
        _note(f"{title} of {item.nodeid}", content, _LEAKS)
    if report.failed:
        _note(f"failure report of {item.nodeid}", report.longreprtext, _LEAKS)
    if call.when != "teardown":
        return
    tmp = getattr(item, "funcargs", {}).get("tmp_path")
    if isinstance(tmp, Path) and tmp.is_dir():
        scan_tree(tmp, _LEAKS)
    if _LEAKS:
        leaks = list(dict.fromkeys(_LEAKS))
        _LEAKS.clear()
        _SESSION_LEAKS.extend(leaks)
        report.outcome = "failed"
        report.longrepr = "a secret reached an output:\n  " + "\n  ".join(leaks)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.pluginmanager.hasplugin("dsession"):
        return  # pytest-xdist's controller: each worker scans its own base temp dir, with the secrets it saw
    factory = getattr(session.config, "_tmp_path_factory", None)
    base = factory.getbasetemp() if factory is not None else None
    leaks: list[str] = []
    if base is not None and base.is_dir():
        scan_tree(base, leaks)
    leaks = [leak for leak in leaks if leak not in _SESSION_LEAKS]
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("a secret reached a file of the session:\n  " + "\n  ".join(leaks), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
