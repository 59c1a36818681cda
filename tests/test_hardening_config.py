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
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelfunc.cli import main
from modelfunc.config import SUPPORTED_PYTHON, load_project
from modelfunc.environment import read_requirements
from modelfunc.errors import ModelfuncError
from repo_steps import BLOB, HTTP, SB, Step, replace, steps, write, write_bytes


def requirements(text: str) -> Step:
    """The repo's environment as a requirements.txt with ``text``."""
    return steps(lambda repo: (repo / "environment.yml").unlink(), write("requirements.txt", text))


def nothing(repo: Path) -> None:
    pass


# ------------------------------------------------------------------ the cases

PACKAGE = ("package", "{repo}", "--no-build", "--out", "{tmp}/out")
NO_REPO = "{tmp}/no-such-repo"  # the command fails on the option before it looks for the repo


@dataclass(frozen=True)
class Bad:
    issue: int  # the item of issue 13
    area: str  # the area of docs/bad-inputs.md
    what: str  # what is wrong, for the row
    example: str
    breaks: Step
    args: tuple[str, ...]
    # Substrings stderr must contain; "<repo>" and "<tmp>" stand for the repo and the test's tmp dir.
    expect: tuple[str, ...]
    code: int = 2
    folder: str | None = None  # the repo's folder name (default: the example's)


def case(id_: str, issue: int, area: str, what: str, example: str, breaks: Step, *expect: str,
         args: tuple[str, ...] = PACKAGE, code: int = 2, folder: str | None = None):  # noqa: ANN201
    return pytest.param(Bad(issue, area, what, example, breaks, args, expect, code, folder), id=id_)


def _billion_laughs(last: str) -> str:
    """Nine levels of nine aliases each: 9**9 copies of "lol" from a few hundred bytes."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{c}: &{c} [{','.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    return "\n".join(lines) + "\n" + last


BOMB = _billion_laughs("trigger: http\n")
ENV_BOMB = _billion_laughs("dependencies:\n  - numpy\n")
DEEP = "[" * 3000 + "]" * 3000
MANY_ALIASES = "x: &x 1\nl: [" + ", ".join(["*x"] * 150) + "]\ntrigger: http\n"
SCORE = (EXAMPLES / HTTP / "score.py").read_text(encoding="utf-8")
BIG_COMMENTS = "# " + "x" * 1021 + "\n"  # 1 KiB a line

YAML, ENV, FILES, CLI = "modelfunc.yaml", "environment", "repo files", "CLI arguments"
INDEX_HINT = ("hint: remove the line, and pin a release from the package index (e.g. name==1.2.3), or copy the "
              "package's code beside score.py: that folder ships whole with the app")
NOT_INDEXED = "refers to a URL or local path, which the Functions build cannot reach reproducibly: the app's " \
              "requirements are resolved by name from the package index"
TIMEOUT_RULE = "is not a number of seconds greater than 0 and at most 86400 (a day)"
POLL_RULE = "is not a number of seconds from 0.01 to 60"

CASES = [
    # ---------------------------------------------------------------- (3) aliases, one loader for every YAML file
    case("yaml-alias-bomb", 3, YAML, f"modelfunc.yaml of {len(BOMB)} bytes: nine levels of nine aliases "
         "(\"billion laughs\", 9^9 values)", HTTP, write("modelfunc.yaml", BOMB),
         "error: <repo>/modelfunc.yaml:9: modelfunc.yaml has aliases that copy in 490,329,036 values, more than the "
         "10,000 allowed (each *name copies its anchor's whole content, and nested aliases multiply)",
         "hint: write the values out instead of nesting aliases"),
    case("yaml-too-many-aliases", 3, YAML, "modelfunc.yaml using an alias 150 times", HTTP,
         write("modelfunc.yaml", MANY_ALIASES),
         "error: <repo>/modelfunc.yaml:2: modelfunc.yaml uses more than 100 aliases (*name)"),
    case("yaml-alias-inside-its-anchor", 3, YAML, "modelfunc.yaml: 'trigger: &t [*t]', a structure that holds itself",
         HTTP, write("modelfunc.yaml", "trigger: &t [*t]\n"),
         "error: <repo>/modelfunc.yaml:1: modelfunc.yaml has the alias *t inside its own anchor &t, which would make "
         "an endless structure"),
    case("env-yaml-alias-bomb", 3, ENV, f"environment.yml of {len(ENV_BOMB)} bytes with the same alias bomb", BLOB,
         write("environment.yml", ENV_BOMB),
         "error: <repo>/environment.yml:9: environment.yml has aliases that copy in 490,329,036 values"),
    # ---------------------------------------------------------------- (16) nesting
    case("yaml-nested-3000-deep", 16, YAML, "modelfunc.yaml with a value nested 3,000 deep", HTTP,
         write("modelfunc.yaml", f"trigger: http\nname: {DEEP}\n"),
         "error: <repo>/modelfunc.yaml:2: modelfunc.yaml is nested more than 64 levels deep",
         "hint: a real file needs a few levels: check the indentation and the brackets"),
    case("env-yaml-nested-3000-deep", 16, ENV, "environment.yml with a dependency nested 3,000 deep", BLOB,
         write("environment.yml", f"dependencies:\n  - {DEEP}\n"),
         "error: <repo>/environment.yml:2: environment.yml is nested more than 64 levels deep"),
    case("yaml-nested-deep-through-aliases", 16, YAML, "modelfunc.yaml 40 levels deep, copied by aliases into "
         "a structure 120 deep", HTTP,
         write("modelfunc.yaml", "a: &a " + "[" * 40 + "]" * 40 + "\nb: &b " + "[" * 40 + "*a" + "]" * 40
               + "\nc: " + "[" * 40 + "*b" + "]" * 40 + "\ntrigger: http\n"),
         "error: <repo>/modelfunc.yaml:3: modelfunc.yaml is nested more than 64 levels deep once its aliases are "
         "copied in"),
    # ---------------------------------------------------------------- (17) size
    case("yaml-2mb", 17, YAML, "modelfunc.yaml of 2 MiB (it took 78 s)", HTTP,
         write("modelfunc.yaml", "trigger: http\n" + BIG_COMMENTS * 2048),
         "error: <repo>/modelfunc.yaml: is 2.0 MiB: modelfunc.yaml may be at most 256 KiB",
         "hint: modelfunc.yaml holds settings, a few KiB at most: is this the right file?"),
    case("env-yaml-300kib", 17, ENV, "environment.yml of 300 KiB", BLOB,
         write("environment.yml", "dependencies:\n  - numpy\n" + BIG_COMMENTS * 300),
         "error: <repo>/environment.yml: is 300 KiB: environment.yml may be at most 256 KiB"),
    case("requirements-2mb", 17, ENV, "requirements.txt of 2 MiB", BLOB,
         requirements("numpy\n" + BIG_COMMENTS * 2048),
         "error: <repo>/requirements.txt: is 2.0 MiB: requirements.txt may be at most 1.0 MiB"),
    # ---------------------------------------------------------------- (17) duplicate keys
    case("yaml-duplicate-key", 17, YAML, "'trigger: http' then 'trigger: blob' (YAML keeps the last: a blob app)",
         HTTP, write("modelfunc.yaml", "name: diabetes-http\ntrigger: http\ntrigger: blob\n"),
         "error: <repo>/modelfunc.yaml:3: trigger: 'trigger' is given twice, on lines 2 and 3: YAML would keep only "
         "the second and silently ignore the first",
         "hint: keep one of them"),
    case("yaml-duplicate-nested-key", 17, YAML, "trigger.route given twice", HTTP,
         write("modelfunc.yaml", "trigger:\n  type: http\n  route: score\n  route: predict\n"),
         "error: <repo>/modelfunc.yaml:4: trigger.route: 'route' is given twice, on lines 3 and 4"),
    case("env-yaml-duplicate-key", 17, ENV, "environment.yml with 'dependencies:' twice", BLOB,
         write("environment.yml", "dependencies:\n  - numpy\ndependencies:\n  - scipy\n"),
         "error: <repo>/environment.yml:3: dependencies: 'dependencies' is given twice, on lines 1 and 3"),
    case("yaml-impossible-date", 16, YAML, "'name: 2023-02-30', which YAML reads as a date that does not exist",
         HTTP, replace("modelfunc.yaml", "name: diabetes-http", "name: 2023-02-30"),
         "error: <repo>/modelfunc.yaml:1: modelfunc.yaml has the value '2023-02-30', which is no valid timestamp "
         "(ValueError: day is out of range for month)",
         "hint: quote it to keep it as text: '2023-02-30'"),
    case("yaml-bad-explicit-tag", 16, YAML, "'tolerance: !!float small' (an explicit tag on a value it does not fit)",
         HTTP, replace("modelfunc.yaml", "tolerance: 1.0e-4", "tolerance: !!float small"),
         "error: <repo>/modelfunc.yaml:8: modelfunc.yaml has the value 'small', which is no valid float"),
    # ---------------------------------------------------------------- (17) values accepted silently before
    case("entry-script-without-py", 17, YAML, "entry_script: score (a file without .py)", HTTP,
         steps(write("score", SCORE), replace("modelfunc.yaml", "name: diabetes-http\n",
                                              "name: diabetes-http\nentry_script: score\n")),
         "error: <repo>/modelfunc.yaml:2: entry_script: 'score' is not a Python file: the entry script is imported "
         "as a module, so its name ends in .py, e.g. 'score.py'"),
    case("tolerance-inf", 17, YAML, "tolerance: .inf", HTTP, replace("modelfunc.yaml", "tolerance: 1.0e-4",
                                                                     "tolerance: .inf"),
         "error: <repo>/modelfunc.yaml:8: samples.tolerance: '.inf' is not a tolerance: with it every difference "
         "would pass (or, for nan, none would); use a finite number >= 0, e.g. 1.0e-6"),
    case("tolerance-nan", 17, YAML, "tolerance: .nan", HTTP, replace("modelfunc.yaml", "tolerance: 1.0e-4",
                                                                     "tolerance: .nan"),
         "error: <repo>/modelfunc.yaml:8: samples.tolerance: '.nan' is not a tolerance"),
    case("route-dot-dot", 17, YAML, "route: '..'", HTTP, replace("modelfunc.yaml", "route: score", "route: '..'"),
         "error: <repo>/modelfunc.yaml:5: trigger.route: '..' is not a valid route: it has the segment '..', which "
         "URLs resolve away (/api/.. is not where a client's request would arrive); use names, e.g. 'score' or "
         "'models/score'"),
    case("route-dot", 17, YAML, "route: '.'", HTTP, replace("modelfunc.yaml", "route: score", "route: '.'"),
         "error: <repo>/modelfunc.yaml:5: trigger.route: '.' is not a valid route: it has the segment '.'"),
    case("route-dot-segment", 17, YAML, "route: v1/../score", HTTP,
         replace("modelfunc.yaml", "route: score", "route: v1/../score"),
         "error: <repo>/modelfunc.yaml:5: trigger.route: 'v1/../score' is not a valid route: it has the segment '..'"),
    case("route-empty-segment", 17, YAML, "route: models//score", HTTP,
         replace("modelfunc.yaml", "route: score", "route: models//score"),
         "error: <repo>/modelfunc.yaml:5: trigger.route: 'models//score' is not a valid route: it has an empty "
         "segment ('//')"),
    case("default-name-refused-by-azure", 17, YAML, "no name:, in a folder named 'x' (an app name has 2-60 "
         "characters)", HTTP, replace("modelfunc.yaml", "name: diabetes-http\n", ""),
         "error: <repo>/modelfunc.yaml: name: is not set, and the folder name 'x' gives the app name 'x', which "
         "Azure would refuse: an app name is 2-60 letters, digits and hyphens, not starting or ending with a hyphen",
         "hint: set the app's name in modelfunc.yaml, e.g. name: diabetes-scorer", folder="x"),
    # ---------------------------------------------------------------- (5) pip options, URLs and paths
    case("requirements-index-url", 5, ENV, "--index-url in requirements.txt", BLOB,
         requirements("numpy>=1.26\n--index-url https://pypi.example.org/simple\n"),
         "error: <repo>/requirements.txt:2: requirements: '--index-url https://pypi.example.org/simple' is a pip "
         "option choosing where packages come from (--index-url); modelfunc does not pass pip options on: the app's "
         "requirements name packages, resolved from the package index", INDEX_HINT),
    case("requirements-index-url-equals", 5, ENV, "--index-url=URL", BLOB,
         requirements("--index-url=https://pypi.example.org/simple\nnumpy\n"),
         "error: <repo>/requirements.txt:1: requirements: '--index-url=https://pypi.example.org/simple' is a pip "
         "option choosing where packages come from (--index-url)"),
    case("requirements-index-url-short", 5, ENV, "-i URL", BLOB, requirements("-i https://pypi.example.org/simple\n"),
         "error: <repo>/requirements.txt:1: requirements: '-i https://pypi.example.org/simple' is a pip option "
         "choosing where packages come from (--index-url)"),
    case("env-pip-extra-index-url", 5, ENV, "--extra-index-url in environment.yml's pip: list", BLOB,
         replace("environment.yml", "      - azure-functions",
                 "      - --extra-index-url https://pypi.example.org/simple\n      - azure-functions"),
         "error: <repo>/environment.yml:9: dependencies[3].pip[0]: '--extra-index-url https://pypi.example.org/"
         "simple' is a pip option choosing where packages come from (--extra-index-url)", INDEX_HINT),
    case("requirements-trusted-host", 5, ENV, "--trusted-host", BLOB,
         requirements("numpy\n--trusted-host pypi.example.org\n"),
         "error: <repo>/requirements.txt:2: requirements: '--trusted-host pypi.example.org' is a pip option choosing "
         "where packages come from (--trusted-host)"),
    case("requirements-find-links", 5, ENV, "--find-links", BLOB, requirements("--find-links /srv/wheels\nnumpy\n"),
         "error: <repo>/requirements.txt:1: requirements: '--find-links /srv/wheels' is a pip option choosing where "
         "packages come from (--find-links)"),
    case("requirements-find-links-short", 5, ENV, "-f URL", BLOB,
         requirements("numpy\n-f https://example.org/wheels/\n"),
         "error: <repo>/requirements.txt:2: requirements: '-f https://example.org/wheels/' is a pip option choosing "
         "where packages come from (--find-links)"),
    case("requirements-no-index", 5, ENV, "--no-index", BLOB, requirements("--no-index\nnumpy\n"),
         "error: <repo>/requirements.txt:1: requirements: '--no-index' is a pip option choosing where packages come "
         "from (--no-index)"),
    case("requirements-file-url", 5, ENV, "name @ file:/… (a local wheel by URL)", BLOB,
         requirements("numpy\nmylib @ file:/srv/wheels/mylib-1.0-py3-none-any.whl\n"),
         f"error: <repo>/requirements.txt:2: requirements: 'mylib @ file:/srv/wheels/mylib-1.0-py3-none-any.whl' "
         f"{NOT_INDEXED}",
         "hint: pin a release from the package index (e.g. name==1.2.3), or copy the package's code beside "
         "score.py: that folder ships whole with the app"),
    case("requirements-relative-path-url", 5, ENV, "name @ ../x (a folder outside the repo)", BLOB,
         requirements("mylib @ ../mylib\n"),
         f"error: <repo>/requirements.txt:1: requirements: 'mylib @ ../mylib' {NOT_INDEXED}"),
    case("requirements-https-url", 5, ENV, "name @ https://… (a wheel by URL: refused, not fetched at build time)",
         BLOB, requirements("mylib @ https://example.org/mylib-1.0-py3-none-any.whl\n"),
         f"error: <repo>/requirements.txt:1: requirements: 'mylib @ https://example.org/mylib-1.0-py3-none-any.whl' "
         f"{NOT_INDEXED}"),
    case("requirements-wheel-path", 5, ENV, "a wheel file by path", BLOB,
         requirements("wheels/mylib-1.0-py3-none-any.whl\n"),
         f"error: <repo>/requirements.txt:1: requirements: 'wheels/mylib-1.0-py3-none-any.whl' {NOT_INDEXED}"),
    case("requirements-editable", 5, ENV, "-e ../mylib", BLOB, requirements("-e ../mylib\n"),
         f"error: <repo>/requirements.txt:1: requirements: '-e ../mylib' {NOT_INDEXED}"),
    case("requirements-dash-r-outside-the-repo", 5, ENV, "-r ../../shared/requirements.txt", BLOB,
         requirements("-r ../../shared/requirements.txt\n"),
         "error: <repo>/requirements.txt:1: requirements: '-r ../../shared/requirements.txt' is not supported: the "
         "app is built from a single requirements list"),
    # ---------------------------------------------------------------- (17) a marker that drops the app's requirement
    case("requirements-marker-drops-azure-functions", 17, ENV, "azure-functions; python_version < \"3.10\" (the app "
         "runs 3.11)", BLOB, requirements("azure-functions; python_version < \"3.10\"\nnumpy\n"),
         "error: <repo>/requirements.txt:1: requirements: 'azure-functions; python_version < \"3.10\"' leaves "
         "azure-functions out for the app's Python 3.11 on Linux (its marker does not hold there), but the app "
         "needs it: the Functions worker imports it",
         "hint: remove the marker, or the line (modelfunc adds azure-functions when it is missing)"),
    case("env-pip-marker-drops-azure-functions", 17, ENV, "azure-functions; sys_platform == \"win32\" in the pip: "
         "list", BLOB, replace("environment.yml", "      - azure-functions",
                               "      - azure-functions; sys_platform == \"win32\""),
         "error: <repo>/environment.yml:9: dependencies[3].pip[0]: 'azure-functions; sys_platform == \"win32\"' "
         "leaves azure-functions out for the app's Python 3.11 on Linux"),
    case("env-conda-name-not-a-package", 16, ENV, "a conda dependency '_openmp_mutex' (no pip package name)", BLOB,
         replace("environment.yml", "  - numpy>=1.26", "  - _openmp_mutex\n  - numpy>=1.26"),
         "error: <repo>/environment.yml:6: dependencies[1]: '_openmp_mutex' is not a conda package spec: "
         "'_openmp_mutex' is not a package name"),
    # ---------------------------------------------------------------- (16) samples
    case("samples-expected-nested-100000-deep", 16, FILES, "samples/expected.json nested 100,000 deep", BLOB,
         write("samples/expected.json", "[" * 100_000 + "]" * 100_000),
         "error: <repo>/samples/expected.json: is nested more than 100 levels deep, more than any model output (and "
         "more than the comparison follows)"),
    case("servicebus-sample-not-utf8", 16, FILES, "a Service Bus sample that is not UTF-8, tested through the local "
         "host (blob-test --host-url)", SB, write_bytes("samples/input.json", b'{"data": "\xff\xfe"}'),
         "error: <repo>/samples/input.json: is not UTF-8 text (invalid start byte at byte 10): a Service Bus message "
         "is sent to the local host as text, through its admin API (as to the Functions host's)",
         "hint: save the sample as UTF-8 text (JSON, CSV ...); a binary message can be tested in Azure, where "
         "`modelfunc deploy` sends the sample's bytes to the queue",
         args=("blob-test", "{repo}", "--host-url", "http://127.0.0.1:9")),
    case("servicebus-sample-not-utf8-up", 16, FILES, "the same sample, with modelfunc up", SB,
         write_bytes("samples/input.json", b'{"data": "\xff\xfe"}'),
         "error: <repo>/samples/input.json: is not UTF-8 text (invalid start byte at byte 10)",
         args=("up", "{repo}", "--out", "{tmp}/out", "--timeout", "30")),
    # ---------------------------------------------------------------- (17) waits
    *[case(f"{cmd}-timeout-{name}", 17, CLI, f"modelfunc {cmd} … --timeout {value}", HTTP, nothing,
           f"Error: Invalid value for '--timeout': '{value}' {TIMEOUT_RULE}", args=(cmd, NO_REPO, "--timeout=" + value))
      for cmd, name, value in [("blob-test", "nan", "nan"), ("blob-test", "inf", "inf"), ("up", "nan", "nan"),
                               ("up", "negative", "-1"), ("deploy", "nan", "nan"), ("deploy", "zero", "0"),
                               ("destroy", "inf", "inf")]],
    case("deploy-test-timeout-nan", 17, CLI, "modelfunc deploy … --test-timeout nan", HTTP, nothing,
         f"Error: Invalid value for '--test-timeout': 'nan' {TIMEOUT_RULE}",
         args=("deploy", NO_REPO, "--test-timeout", "nan")),
    *[case(f"serve-poll-interval-{name}", 17, CLI, f"modelfunc serve … --poll-interval {value}", HTTP, nothing,
           f"Error: Invalid value for '--poll-interval': '{value}' {POLL_RULE}",
           args=("serve", "{tmp}", "--poll-interval=" + value))
      for name, value in [("negative", "-1"), ("zero", "0"), ("nan", "nan")]],
    # ---------------------------------------------------------------- (16) outputs under a file
    case("package-json-under-a-file", 16, CLI, "modelfunc package … --json <a file>/result.json", HTTP, nothing,
         "Error: Invalid value for '--json': '<repo>/score.py/result.json' cannot be written: <repo>/score.py is a "
         "file, not a folder", args=(*PACKAGE, "--json", "{repo}/score.py/result.json")),
    case("blob-test-report-under-a-file", 16, CLI, "modelfunc blob-test … --report <a file>/report.json", BLOB,
         nothing, "Error: Invalid value for '--report': '<repo>/score.py/report.json' cannot be written: "
         "<repo>/score.py is a file, not a folder",
         args=("blob-test", "{repo}", "--report", "{repo}/score.py/report.json")),
    case("up-report-under-a-file", 16, CLI, "modelfunc up … --report <a file>/sub/report.json", HTTP, nothing,
         "Error: Invalid value for '--report': '<repo>/score.py/sub/report.json' cannot be written: <repo>/score.py "
         "is a file, not a folder", args=("up", NO_REPO, "--report", "{repo}/score.py/sub/report.json")),
    case("up-golden-under-a-file", 16, CLI, "modelfunc up … --golden <a file>/golden.json", HTTP, nothing,
         "Error: Invalid value for '--golden': '<repo>/score.py/golden.json' cannot be written",
         args=("up", NO_REPO, "--golden", "{repo}/score.py/golden.json")),
    case("deploy-json-under-a-file", 16, CLI, "modelfunc deploy … --json <a file>/deployment.json", HTTP, nothing,
         "Error: Invalid value for '--json': '<repo>/score.py/deployment.json' cannot be written",
         args=("deploy", NO_REPO, "--json", "{repo}/score.py/deployment.json")),
    case("serve-ready-file-under-a-file", 16, CLI, "modelfunc serve … --ready-file <a file>/ready.json", HTTP, nothing,
         "Error: Invalid value for '--ready-file': '<repo>/score.py/ready.json' cannot be written: <repo>/score.py is "
         "a file, not a folder", args=("serve", "{tmp}", "--ready-file", "{repo}/score.py/ready.json")),
]

# chmod 000: run in a child process that the permission stops (as root, without CAP_DAC_OVERRIDE).
UNREADABLE = [
    case("config-unreadable", 16, YAML, "modelfunc.yaml that cannot be read (chmod 000)", HTTP,
         lambda repo: (repo / "modelfunc.yaml").chmod(0),
         "error: <repo>/modelfunc.yaml: cannot be read: permission denied",
         "hint: make it readable by the user running modelfunc, e.g. chmod a+r modelfunc.yaml"),
    case("env-unreadable", 16, ENV, "environment.yml that cannot be read (chmod 000)", HTTP,
         lambda repo: (repo / "environment.yml").chmod(0),
         "error: <repo>/environment.yml: cannot be read: permission denied"),
    case("samples-input-unreadable", 16, FILES, "samples/input.json that cannot be read (chmod 000)", HTTP,
         lambda repo: (repo / "samples" / "input.json").chmod(0),
         "error: <repo>/samples/input.json: cannot be read: permission denied"),
    case("samples-folder-unreadable", 16, FILES, "the samples/ folder cannot be read (chmod 000)", HTTP,
         lambda repo: (repo / "samples").chmod(0),
         "error: <repo>/samples/input.json: cannot be read: permission denied"),
    case("samples-expected-unreadable", 16, FILES, "samples/expected.json that cannot be read (chmod 000)", HTTP,
         lambda repo: (repo / "samples" / "expected.json").chmod(0),
         "error: <repo>/samples/expected.json: cannot be read: permission denied"),
]


def _row(param, test: str) -> tuple[str, str, str, str, str]:  # noqa: ANN001
    bad: Bad = param.values[0]
    message = " … ".join(bad.expect)
    if bad.area == CLI:
        message = f"exit {bad.code}: {message}"
    return bad.area, param.id, bad.what, message, f"test_hardening_config.py::{test}[{param.id}]"


# (area, case id, what is wrong, the message the user sees, the test): rows of docs/bad-inputs.md.
ROWS: list[tuple[str, str, str, str, str]] = (
    [_row(p, "test_bad_config_input") for p in CASES] + [_row(p, "test_unreadable_file_is_named") for p in UNREADABLE])


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
BUDGET = 15.0 if EXAMPLES_EACH <= 400 else float("inf")  # seconds for each fuzz test
FUZZ = settings(max_examples=EXAMPLES_EACH, deadline=5000, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@dataclass
class Tally:
    name: str
    examples: int = 0
    good: int = 0
    refused: int = 0
    started: float = 0.0

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
        took = time.monotonic() - self.started
        with capsys.disabled():
            print(f"\nfuzz {self.name}: {self.examples} examples in {took:.1f} s "
                  f"({self.good} valid, {self.refused} refused with a ModelfuncError, 0 other exceptions or hangs)")
        return took


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
    tally = Tally("modelfunc.yaml (load_project)", started=time.monotonic())

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
    tally = Tally("environment files (read_requirements)", started=time.monotonic())

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
