"""Issue 13, configuration and inputs: what a model repo and the command line hand modelfunc, read safely.

Every YAML file goes through one loader with limits (size, nesting, aliases, duplicate keys); requirements name
packages only (no pip options, URLs or paths); the options that bound a wait or name an output are checked when
they are parsed. Each bad input below is one case: the real CLI (in-process, through click) must refuse it with
the message shown, exit 2, and no traceback. ``ROWS`` turns the same case lists into rows of docs/bad-inputs.md.

The fuzz layer (hypothesis) throws random and mutated modelfunc.yaml documents, requirement lines and conda files
at the parsers: each must give a valid project (or requirements) or a ModelfuncError, never another exception and
never a hang, within a time budget; the examples tried and the time taken are printed in the test output.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelfunc.cli import main
from modelfunc.config import SUPPORTED_PYTHON, load_project
from modelfunc.environment import read_requirements
from modelfunc.errors import ModelfuncError
from support.cases.hardening_config import (
    CASES,
    ROWS,
    UNREADABLE,
    Bad,
)
from support.core import EXAMPLES
from support.repo_steps import BLOB, HTTP, SB

# ------------------------------------------------------------------ the cases


# ------------------------------------------------------------------ running a case


def _repo(bad: Bad, tmp_path: Path) -> Path:
    repo = tmp_path / (bad.folder or bad.example)
    shutil.copytree(EXAMPLES / bad.example, repo, ignore=shutil.ignore_patterns("build", "__pycache__"))
    return repo


def _fill(text: str, repo: Path, tmp_path: Path) -> str:
    for key, value in {"{repo}": repo, "<repo>": repo, "{tmp}": tmp_path, "<tmp>": tmp_path}.items():
        text = text.replace(key, str(value))
    return text


@pytest.mark.parametrize("bad", CASES)
def test_bad_config_input(bad: Bad, tmp_path: Path) -> None:
    repo = _repo(bad, tmp_path)
    bad.breaks(repo)
    args = [_fill(a, repo, tmp_path) for a in bad.args]
    started = time.monotonic()
    result = CliRunner().invoke(main, args, env={"MODELFUNC_CONNECTION_STRING": "", "TriggerConnectionString": ""})
    took = time.monotonic() - started
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("".join(traceback.format_exception(*result.exc_info)))
    assert result.exit_code == bad.code, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    for text in bad.expect:
        assert _fill(text, repo, tmp_path) in result.stderr, f"{text!r} not in stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert took < 10, f"refusing it took {took:.1f} s"
    assert not (tmp_path / "out").exists(), "a refused run wrote its output"


def test_cases_are_distinct_and_cover_the_issue_items() -> None:
    ids = [p.id for p in CASES + UNREADABLE]
    assert len(set(ids)) == len(ids)
    assert {p.values[0].issue for p in CASES + UNREADABLE} == {3, 5, 16, 17}
    assert [row[1] for row in ROWS] == ids


# ------------------------------------------------------------------ unreadable files


CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def _drop_file_capabilities() -> None:
    """In the child, before exec: root keeps its uid but loses the capabilities that ignore file modes."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run_restricted(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, preexec_fn=_drop_file_capabilities)


@pytest.fixture
def restricted(tmp_path: Path):  # noqa: ANN201
    """A runner for which chmod 000 stops reading; skipped (with the reason) where that cannot be had."""
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        result = _run_restricted("-c", f"open({str(probe)!r}).read()")
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"running as root, and the capabilities that read any file cannot be dropped here ({e}): "
                    "chmod 000 would not stop modelfunc from reading")
    finally:
        probe.unlink()
    if result.returncode == 0:
        pytest.skip("chmod 000 does not stop reading here (root with CAP_DAC_OVERRIDE that cannot be dropped)")
    assert "PermissionError" in result.stderr, result.stderr
    return _run_restricted


@pytest.mark.parametrize("bad", UNREADABLE)
def test_unreadable_file_is_named(bad: Bad, tmp_path: Path, restricted) -> None:  # noqa: ANN001
    repo = _repo(bad, tmp_path)
    bad.breaks(repo)
    result = restricted("-m", "modelfunc", *[_fill(a, repo, tmp_path) for a in bad.args])
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == bad.code, result.stdout + result.stderr
    for text in bad.expect:
        assert _fill(text, repo, tmp_path) in result.stderr, f"{text!r} not in stderr:\n{result.stderr}"
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ good inputs still pass


def test_limits_leave_ordinary_files_alone(tmp_path: Path) -> None:
    """Anchors and merge keys used sparingly, a long folder name, markers on other packages: all still fine."""
    repo = tmp_path / ("m" * 59 + "-x" + "y" * 10)  # cut at 60 characters, the name would end with a hyphen
    shutil.copytree(EXAMPLES / BLOB, repo)
    (repo / "modelfunc.yaml").write_text(
        "trigger:\n  <<: &blob {type: blob, connection: TriggerConnectionString}\n  input_path: input/{blobname}.json\n"
        "samples:\n  tolerance: 1.0e-4\n", encoding="utf-8")
    project = load_project(repo)
    assert project.trigger.type == "blob" and project.name == "m" * 59
    (repo / "environment.yml").unlink()
    (repo / "requirements.txt").write_text('numpy; python_version >= "3.10"\nazure-functions; sys_platform == "linux"'
                                           '\nscipy; python_version < "3.8"\n', encoding="utf-8")
    assert read_requirements(repo / "requirements.txt", python_version="3.11").lines == [
        'numpy; python_version >= "3.10"', 'azure-functions; sys_platform == "linux"', 'scipy; python_version < "3.8"']


# ------------------------------------------------------------------ the fuzz layer


class Hang(BaseException):
    """One example ran too long (BaseException: no ``except Exception`` in the code under test swallows it)."""


@contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    """Interrupt a parse that spins (CPU time, SIGVTALRM: pytest-timeout owns SIGALRM)."""

    def on_timer(signum, frame) -> None:  # noqa: ANN001
        raise Hang(f"no answer within {seconds} s of CPU time")

    old = signal.signal(signal.SIGVTALRM, on_timer)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, old)


PER_EXAMPLE = 2.0  # seconds of CPU for one document; the slowest real one takes milliseconds
# 400 examples each keep the layer near 10 s; MODELFUNC_FUZZ_EXAMPLES=20000 searches longer (the budget is then off).
EXAMPLES_EACH = int(os.environ.get("MODELFUNC_FUZZ_EXAMPLES", "400"))
# seconds of CPU (this thread's: what the fuzz itself costs, the same as the wall clock on a quiet machine and not
# stretched by tests running on the other cores under pytest-xdist) for each fuzz test
BUDGET = 15.0 if EXAMPLES_EACH <= 400 else float("inf")
FUZZ = settings(max_examples=EXAMPLES_EACH, deadline=5000, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@dataclass
class Tally:
    name: str
    examples: int = 0
    good: int = 0
    refused: int = 0
    started: float = field(default_factory=time.monotonic)
    started_cpu: float = field(default_factory=time.thread_time)

    def check(self, call: Callable[[], object], given: str) -> None:
        self.examples += 1
        try:
            with cpu_limit(PER_EXAMPLE):
                call()
        except Hang as e:
            raise AssertionError(f"{e}: {given!r}") from None
        except ModelfuncError as e:
            assert str(e).strip() and "Traceback" not in str(e)
            self.refused += 1
        else:
            self.good += 1

    def report(self, capsys) -> float:  # noqa: ANN001
        """Prints the tally; returns the seconds of CPU it took (see BUDGET)."""
        took, cpu = time.monotonic() - self.started, time.thread_time() - self.started_cpu
        with capsys.disabled():
            print(f"\nfuzz {self.name}: {self.examples} examples in {cpu:.1f} s of CPU ({took:.1f} s) "
                  f"({self.good} valid, {self.refused} refused with a ModelfuncError, 0 other exceptions or hangs)")
        return cpu


SEED_CONFIGS = [
    (EXAMPLES / name / "modelfunc.yaml").read_text(encoding="utf-8") for name in (HTTP, BLOB, SB)
] + [
    "trigger: http\n",
    "name: a1\npython_version: 3.10\nentry_script: score.py\ncache: redis\ntrigger:\n  type: http\n"
    "  auth_level: anonymous\n  route: models/score\n  methods: [POST]\nsamples: {tolerance: 0.5}\n",
    "base: &b {type: blob, connection: Conn}\ntrigger:\n  <<: *b\n  input_path: in-x/{blobname}.csv\n"
    "  output_path: out-x/{blobname}.csv\n  source: EventGrid\n",
    "cache:\n  redis:\n    connection: RedisConnectionString\n    ttl_seconds: 60\ntrigger: service-bus-queue\n",
]
YAML_TOKENS = ["&a ", "*a", "<<: ", "!!int ", "!!float ", "!!binary ", "!!timestamp ", "!!python/object ", "!!set ",
               "? ", "- ", ": ", "[", "]", "{", "}", "'", '"', "\n", "  ", "\t", "#", "|", ">", "%YAML 1.1\n",
               "---\n", "...\n", "\x00", "\ufeff", "\x85", "2023-02-30", "2023-02-28", ".inf", "-.inf", ".nan",
               "0x", "0o7", "1e9999", "9" * 5000, "~", "null", "yes", "on", "3.10", "trigger", "type", "blob",
               "http", "service-bus-queue", "route", "..", "/", "{blobname}", "{", "input_path", "tolerance",
               "name", "*b", "&b", "!", "%", "@", "`", ",", "\\", "\r\n", "é", "💥"]


@st.composite
def mutated(draw, seeds: list[str], tokens: list[str]) -> str:  # noqa: ANN001
    """A seed document with a few edits: tokens inserted, ranges deleted or repeated, lines re-indented."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["insert", "insert", "delete", "repeat", "indent", "text"]))
        at = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:at] + draw(st.sampled_from(tokens)) + text[at:]
        elif op == "text":
            text = text[:at] + draw(st.text(max_size=6)) + text[at:]
        elif op == "delete":
            end = draw(st.integers(at, min(len(text), at + 12)))
            text = text[:at] + text[end:]
        elif op == "repeat":
            end = draw(st.integers(at, min(len(text), at + 40)))
            text = text[:end] + text[at:end] * draw(st.integers(1, 4)) + text[end:]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = " " * draw(st.integers(0, 5)) + lines[i].lstrip()
            text = "\n".join(lines)
    return text


INTERESTING = ["http", "blob", "service-bus-queue", "timer", "score", "..", ".", "a//b", "/score", "score.py",
               "score", "../x.py", "model", "samples/input.json", "samples/expected.json", "input/{blobname}.json",
               "output/{blobname}_out.json", "input/{blobname}_out.json", "in/{x}.json", "input/{blobname}",
               "{blobname}", "input/{blob name}.json", "errors/{blobname}.json", "TriggerConnectionString",
               "1bad", "3.10", "3.11", "3.9", "redis", "function", "anonymous", "admin", "GET", "POST", "FETCH",
               "polling", "EventGrid", "x" * 70, "", " ", "\u00e9", "a-", "-a", "ok-name"]
scalars = (st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=12)
           | st.sampled_from(INTERESTING))
KEYS = ["name", "entry_script", "model_dir", "environment", "python_version", "trigger", "samples", "cache", "type",
        "auth_level", "route", "methods", "input_path", "output_path", "error_path", "connection", "source",
        "input_queue", "output_queue", "input", "expected", "tolerance", "redis", "ttl_seconds"]
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), kids, max_size=5), max_leaves=24)


@st.composite
def structured_config(draw) -> str:  # noqa: ANN001
    """A modelfunc.yaml built from the real keys (a trigger of a real type, mostly) with random values."""
    trigger_keys = {"http": ["auth_level", "route", "methods"],
                    "blob": ["input_path", "output_path", "error_path", "connection", "source"],
                    "service-bus-queue": ["input_queue", "output_queue", "connection"]}
    kind = draw(st.sampled_from([*trigger_keys, "timer"]))
    trigger = {"type": kind, **draw(st.dictionaries(st.sampled_from(trigger_keys.get(kind, KEYS)), values,
                                                    max_size=4))}
    config = draw(st.dictionaries(st.sampled_from(KEYS[:8]), values, max_size=5))
    if draw(st.booleans()):
        config["trigger"] = draw(st.sampled_from([trigger, kind]))
    return yaml.safe_dump(config, allow_unicode=draw(st.booleans()))


def _fuzz_repo(root: Path) -> Path:
    repo = root / "fuzz-repo"
    shutil.copytree(EXAMPLES / HTTP, repo)
    shutil.copy(repo / "score.py", repo / "score")
    (repo / "requirements.txt").write_text("numpy\n")
    return repo


def test_fuzz_modelfunc_yaml(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """Random and mutated modelfunc.yaml: a project or a ModelfuncError, never another exception or a hang."""
    repo = _fuzz_repo(tmp_path)
    config = repo / "modelfunc.yaml"
    tally = Tally("modelfunc.yaml (load_project)")

    @FUZZ
    @given(text=mutated(SEED_CONFIGS, YAML_TOKENS) | structured_config() | st.text(max_size=200))
    def one(text: str) -> None:
        config.write_text(text, encoding="utf-8", errors="surrogatepass")
        tally.check(lambda: load_project(repo), text)

    one()
    assert tally.report(capsys) < BUDGET
    assert tally.good and tally.refused  # both kinds were reached


SEED_ENVS = [
    (EXAMPLES / name / "environment.yml").read_text(encoding="utf-8") for name in (HTTP, BLOB, SB)
] + [
    "name: x\nchannels: [conda-forge, defaults]\ndependencies:\n  - python=3.11.4\n  - conda-forge::numpy=1.26=py*\n"
    "  - scipy 1.11.* \n  - pytorch>=2\n  - mkl\n  - pip:\n      - azure-functions==1.20\n      - requests  # c\n",
]
NAMES = st.sampled_from(["numpy", "azure-functions", "Azure_Functions", "azure.functions", "scikit-learn", "torch",
                         "redis", "x", "python", "pip", "mkl"]) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,8}",
                                                                                    fullmatch=True)
OPS = st.sampled_from(["", "==", ">=", "<=", "~=", "!=", "===", ">", "<", "=", " ", "=>"])
VERSIONS = st.sampled_from(["", "1", "1.26", "1.26.*", "2!1.0", "1.0a1", "1.0+local", "abc", "*", "1.26=py311_0"])
MARKERS = st.sampled_from(["", '; python_version < "3.10"', '; python_version >= "3.10"', "; sys_platform == 'win32'",
                           "; platform_machine ~= 'x'", "; extra == 'gpu'", "; python_full_version > '3.11.5'",
                           ";", "; os_name == 'posix' and python_version != '3.11'", "; bogus == 1"])
TAILS = st.sampled_from(["", " @ https://example.org/x.whl", " @ file:/x", " @ ../x", "@git+https://h/r",
                         "[numpy-support]", "[", " # note", " --hash=sha256:00", " \\"])
OPTIONS = st.sampled_from(["-r x.txt", "-c c.txt", "-e .", "--editable=git+https://h/r", "--index-url https://x",
                           "-i x", "-ihttps://x", "--extra-index-url=x", "-f .", "--find-links x", "--trusted-host h",
                           "--no-index", "--pre", "-", "--", "-x", "./pkg", "/abs/pkg", "C:\\pkg", "~/pkg",
                           "pkg.whl", "pkg.tar.gz", "https://h/p.whl", "git+ssh://git@h/r.git"])
LINES = st.one_of(st.builds(lambda *parts: "".join(parts), NAMES, OPS, VERSIONS, TAILS, MARKERS), OPTIONS,
                  st.text(max_size=30), st.just(""), st.just("# comment"))


@st.composite
def structured_env(draw) -> str:  # noqa: ANN001
    deps = draw(st.lists(st.one_of(st.builds(lambda *p: "".join(p), NAMES, OPS, VERSIONS), LINES,
                                   st.builds(lambda items: {"pip": items}, st.lists(LINES, max_size=5)), values),
                         max_size=6))
    env = {"dependencies": deps, **draw(st.dictionaries(st.sampled_from(["name", "channels", "prefix"]), values,
                                                        max_size=2))}
    return yaml.safe_dump(draw(st.sampled_from([env, deps, env])))


def test_fuzz_environment_files(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """Random requirement lines, random and mutated conda files: requirements or a ModelfuncError, nothing else."""
    tally = Tally("environment files (read_requirements)")

    @FUZZ
    @given(lines=st.lists(LINES, max_size=8), conda=mutated(SEED_ENVS, YAML_TOKENS) | structured_env(),
           as_yaml=st.booleans(), python_version=st.sampled_from(SUPPORTED_PYTHON))
    def one(lines: list[str], conda: str, as_yaml: bool, python_version: str) -> None:
        path = tmp_path / ("environment.yml" if as_yaml else "requirements.txt")
        text = conda if as_yaml else "\n".join(lines)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        tally.check(lambda: read_requirements(path, python_version=python_version).render(), text)

    one()
    assert tally.report(capsys) < BUDGET
    assert tally.good and tally.refused
