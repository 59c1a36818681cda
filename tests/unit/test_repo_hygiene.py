"""What the repository must never contain: TLS verification turned off, and package sources of one machine.

- TLS verification off: pip's trusted-host option or variable, ``verify=False``, and the other usual switches. A
  package index whose certificate a build cannot verify gets the CA bundle that verifies it (benchmarks/image_bench.py
  gives its derived base image this machine's bundle), never an exception.
- Package sources: the index hosts and local mirror paths this machine's pip configuration names (its configuration
  files and PIP_* variables, read when the test runs, so that no mirror is written here either), and any package
  index URL whose host is neither PyPI's nor a reserved example name (RFC 2606 / 6761).

The files looked at are the repository's: tracked, and new ones not ignored (``git ls-files --cached --others
--exclude-standard``), binary ones left out, and this file, whose examples of each kind are checked to be found.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pytest
from support.core import ROOT

# The name of pip's option, and a package index host that is nobody's example, are assembled rather than written
# out, so that this file passes its own check.
TRUSTED = "trusted" + "-host"
MIRROR = "mirror.corp" + ".internal"

# (what it is, pattern): each switches TLS verification off somewhere.
TLS_OFF = [
    ("pip's trusted-host option", re.compile(r"trusted[-]host", re.I)),
    ("pip's trusted-host variable (or a name for it)", re.compile(r"trusted[_]host", re.I)),
    ("verify=False", re.compile(r"\bverify\s*=\s*False\b")),
    ("ssl.CERT_NONE", re.compile(r"\bCERT[_]NONE\b")),
    ("check_hostname = False", re.compile(r"\bcheck_hostname\s*=\s*False\b")),
    ("NODE_TLS_REJECT_UNAUTHORIZED", re.compile(r"\bNODE_TLS_REJECT[_]UNAUTHORIZED\b")),
    ("wget --no-check-certificate", re.compile(r"--no-check[-]certificate\b")),
    ("curl --insecure / -k", re.compile(r"\bcurl\b[^\n]*\s(?:-[a-zA-Z]*k[a-zA-Z]*|--insecure)(?=\s|$)")),
    ("git's sslVerify off", re.compile(r"\bGIT_SSL_NO[_]VERIFY\b|\bsslVerify\s*=?\s*false\b", re.I)),
    ("npm's strict-ssl off", re.compile(r"\bstrict-ssl\s*=?\s*false\b", re.I)),
]

# Files that name pip's option only to refuse it in a model repo's requirements (modelfunc passes no pip option on),
# and the catalogue of those refusals: the option, never its variable, and never used.
REFUSERS = {
    "generator/modelfunc/environment.py": "the pip options a model repo's requirements may not carry",
    "tests/support/cases/hardening_config.py": "the bad-input cases that check the refusal",
    "tests/unit/test_hardening_config.py": "the pip options the fuzzed requirement lines must have refused",
    "docs/bad-inputs.md": "the catalogue of those cases",
}
ALLOWED = {("pip's trusted-host option", path) for path in REFUSERS}
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()

SOURCE_KEYS = ("index-url", "extra-index-url", "find-links", TRUSTED)
RESERVED_SUFFIXES = (".example", ".test", ".invalid", ".localhost", "example.com", "example.net", "example.org")
INDEX_URL = re.compile(r"(?:index[-_]url|find[-_]links)[\s=:\"']+(https?://[^\s\"'`)<>\]]+)"
                       r"|(https?://[^\s\"'`)<>\]]+/simple)\b", re.I)
HOSTNAME = re.compile(r"^[a-z0-9.-]+$")


def repo_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout
    return sorted({name for name in out.decode().split("\0") if name and (ROOT / name).is_file()})


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def pypi_hosts() -> set[str]:
    """PyPI's own hosts, as pip itself knows them."""
    from pip._internal.models.index import PyPI, TestPyPI

    return {PyPI.netloc, PyPI.file_storage_domain, TestPyPI.netloc, TestPyPI.file_storage_domain}


def pip_config_files() -> list[Path]:
    """Where pip reads its configuration (global, user, site), and PIP_CONFIG_FILE."""
    home = Path.home()
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    xdg_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    files = [Path("/etc/pip.conf"), *(Path(d) / "pip" / "pip.conf" for d in xdg_dirs if d),
             xdg_home / "pip" / "pip.conf", home / ".pip" / "pip.conf", Path(sys.prefix) / "pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE") not in (None, "", os.devnull):
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    return [f for f in dict.fromkeys(files) if f.is_file()]


def machine_sources() -> tuple[dict[str, str], dict[str, str]]:
    """The package index hosts and local package paths this machine's pip configuration names: value -> where."""
    values: list[tuple[str, str, str]] = []  # (key, value, where)
    for path in pip_config_files():
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error:
            continue
        for section in parser.sections():
            for key, value in parser.items(section):
                if key.replace("_", "-") in SOURCE_KEYS:
                    values.append((key.replace("_", "-"), value, str(path)))
    for key in SOURCE_KEYS:
        name = "PIP_" + key.upper().replace("-", "_")
        if os.environ.get(name):
            values.append((key, os.environ[name], f"${name}"))
    hosts: dict[str, str] = {}
    paths: dict[str, str] = {}
    for key, value, where in values:
        for word in value.split():
            if key == TRUSTED:
                hosts.setdefault(word.split(":")[0].lower(), where)
                continue
            url = urlsplit(word)
            if url.scheme == "file":
                paths.setdefault(url2pathname(url.path).rstrip("/"), where)
            elif url.scheme and url.hostname:
                hosts.setdefault(url.hostname.lower(), where)
            elif word.startswith("/"):
                paths.setdefault(word.rstrip("/"), where)
    for host in pypi_hosts():
        hosts.pop(host, None)
    return hosts, {p: w for p, w in paths.items() if p.count("/") >= 2}


def placeholder_host(host: str) -> bool:
    """A host that stands for any (reserved example names, loopback, a bare word), or one filled in at run time."""
    return (not HOSTNAME.match(host) or "." not in host or host in ("127.0.0.1", "localhost")
            or host.endswith(RESERVED_SUFFIXES))


def offences(name: str, text: str, hosts: dict[str, str], paths: dict[str, str], pypi: set[str]) -> list[str]:
    found = []
    lines = text.splitlines()

    def line_of(pos: int) -> str:
        number = text.count("\n", 0, pos) + 1
        return f"{name}:{number}: {lines[number - 1].strip()[:160]}"

    for what, pattern in TLS_OFF:
        if (what, name) in ALLOWED:
            continue
        found += [f"{line_of(m.start())}  [{what}]" for m in pattern.finditer(text)]
    for host, where in hosts.items():
        pattern = re.compile(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", re.I)
        found += [f"{line_of(m.start())}  [a package index host of this machine, from {where}]"
                  for m in pattern.finditer(text)]
    for path, where in paths.items():
        pattern = re.compile(rf"(?<![\w.-]){re.escape(path)}(?![\w-])")
        found += [f"{line_of(m.start())}  [a local package source of this machine, from {where}]"
                  for m in pattern.finditer(text)]
    for m in INDEX_URL.finditer(text):
        host = (urlsplit(m.group(1) or m.group(2)).hostname or "").lower()
        if host and host not in pypi and not placeholder_host(host):
            found.append(f"{line_of(m.start())}  [a package index host: {host}]")
    return found


@pytest.fixture(scope="module")
def sources() -> tuple[dict[str, str], dict[str, str], set[str]]:
    hosts, paths = machine_sources()
    return hosts, paths, pypi_hosts()


def test_no_tls_switch_off_and_no_package_index_of_this_machine_in_the_repo(sources) -> None:
    hosts, paths, pypi = sources
    found = []
    for name in repo_files():
        if name == SELF:  # the examples of what it looks for, in test_the_check_finds_each_kind
            continue
        text = text_of(ROOT / name)
        if text is not None:
            found += offences(name, text, hosts, paths, pypi)
    assert not found, ("TLS verification turned off, or a package index named, in the repository (give a build the "
                       "CA bundle instead; take the index from the machine's pip configuration at run time):\n"
                       + "\n".join(found))


def test_the_refusers_name_the_option_only_to_refuse_it() -> None:
    """The allowed files still exist (a stale allowance would hide the option elsewhere) and name no variable."""
    for path in REFUSERS:
        text = (ROOT / path).read_text(encoding="utf-8")
        assert "--" + TRUSTED in text, path
        assert not re.search(r"trusted[_]host", text, re.I), path


def test_the_check_finds_each_kind(sources) -> None:
    """Each kind of offence, in a file that is no refuser, is found; the examples and PyPI itself are not."""
    hosts = {MIRROR: "a pip.conf"}
    paths = {"/srv/mirror/simple": "a pip.conf"}
    pypi = sources[2]
    cases = {
        f"RUN pip install --{TRUSTED} pypi.org x": "pip's trusted-host option",
        f"ENV PIP_{TRUSTED.upper().replace('-', '_')}=files.pythonhosted.org": "variable",
        "httpx.get(url, " + "verify=False)": "verify=False",
        "ctx.verify_mode = ssl." + "CERT_NONE": "CERT_NONE",
        "curl -sSk https://x.org/ | sh": "curl --insecure",
        "curl -fsSL https://x.org/ -o install.sh": "",
        "curl -k https://x.org/": "curl --insecure",
        f"pip download --index-url https://{MIRROR}/simple x": MIRROR,
        "pip install --find-links /srv/mirror/simple/x x": "local package source",
        f"PIP_EXTRA_INDEX_URL=https://packages.{MIRROR[7:]}/pypi/simple": f"packages.{MIRROR[7:]}",
        f"see {MIRROR} for the wheels": MIRROR,
    }
    for text, expected in cases.items():
        found = "\n".join(offences("benchmarks/x.py", text, hosts, paths, pypi))
        assert (expected in found) if expected else not found, (text, found)
    for text in [f"--{TRUSTED} h", "--index-url https://pypi.example.org/simple", "-i https://x",
                 "pip install --index-url https://pypi.org/simple x", "PIP_INDEX_URL=https://{host}/simple"]:
        allowed = offences("tests/support/cases/hardening_config.py", text, hosts, paths, pypi)
        assert not allowed, (text, allowed)
    # The old benchmark's way (trusting the index hosts when the certificate failed) is caught.
    old = 'pip_env = {**pip_env, "PIP_' + TRUSTED.upper().replace("-", "_") + '": " ".join(hosts)}'
    assert offences("benchmarks/image_bench.py", old, hosts, paths, pypi)


def test_the_image_benchmark_gives_its_derived_base_this_machines_ca_bundle(tmp_path, monkeypatch) -> None:
    """benchmarks/image_bench.py: the index from the pip configuration it is given (read at run time), the CA bundle
    copied into the derived base, and no --pip-env that would change how pip verifies certificates."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import image_bench

    config = {"index-url": f"https://{MIRROR}/simple", "extra-index-url": "file:///srv/x https://b.test/s",
              "find-links": "/srv/wheels", "cert": ""}
    assert image_bench.pip_env_for_build([], config) == {"PIP_INDEX_URL": f"https://{MIRROR}/simple",
                                                         "PIP_EXTRA_INDEX_URL": "https://b.test/s"}
    assert image_bench.pip_env_for_build([], {"extra-index-url": "file:///srv/x"}) == {}
    for pair in ["PIP_CERT=/x", "PIP_" + TRUSTED.upper().replace("-", "_") + "=h", "PIP_CLIENT_CERT=/x", "X=1"]:
        with pytest.raises(SystemExit, match="expected NAME=VALUE"):
            image_bench.pip_env_for_build([pair], {})
    bundle = tmp_path / "machine-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert image_bench.ca_bundle({"cert": str(bundle)}) == bundle
    assert image_bench.ca_bundle({}).is_file()  # whatever this machine has: the environment's, OpenSSL's, certifi's
    dockerfile = image_bench.DERIVED_BASE_DOCKERFILE.format(base="b", bundle=image_bench.CA_BUNDLE,
                                                            bundle_path=image_bench.CA_BUNDLE_IN_IMAGE, pip_env="")
    path = image_bench.CA_BUNDLE_IN_IMAGE
    assert f"COPY {image_bench.CA_BUNDLE} {path}" in dockerfile
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        assert f"{name}={path}" in dockerfile
