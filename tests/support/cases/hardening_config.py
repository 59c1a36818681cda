"""Issue 13, configuration and inputs: the cases unit/test_hardening_config.py runs and the rows of docs/bad-inputs.md
made from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from support.core import EXAMPLES
from support.repo_steps import BLOB, HTTP, SB, Step, replace, steps, write, write_bytes


def requirements(text: str) -> Step:
    """The repo's environment as a requirements.txt with ``text``."""
    return steps(lambda repo: (repo / "environment.yml").unlink(), write("requirements.txt", text))


def nothing(repo: Path) -> None:
    pass


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
