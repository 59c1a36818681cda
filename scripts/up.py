"""The action's main step: `modelfunc up` — package, run on the target, round-trip the sample.

Inputs (``INPUT_*``, see action.yml): model-repo, config, target, connection-string (masked at once),
install-requirements, run-blob-test, blob-test-timeout, report-path.
Outputs: image, app-url, test-result (pass|fail|skipped), report-path.
"""

from __future__ import annotations

from pathlib import Path

from modelfunc import github
from modelfunc.errors import ConfigError


@github.script
def main() -> int:
    connection_string = github.get_input("connection-string")
    github.mask_connection_string(connection_string)  # before anything else can print it

    from modelfunc import local
    from modelfunc.config import load_project

    repo = Path(github.get_input("model-repo", "."))
    target = github.get_input("target", "local")
    if target != "local":  # target azure runs the package, deploy, blob-test and swap steps instead
        raise ConfigError(f"{target!r} is not a target up.py runs: it runs target local", field="target",
                          hint="target: local here; target: azure runs scripts/package.py, deploy.py, "
                               "blob_test.py and swap.py (see action.yml)")
    run_test = github.get_bool("run-blob-test", True)
    report_path = Path(github.get_input("report-path") or github.default_report_path())
    project = load_project(repo, config_file=github.get_input("config") or None)
    with github.phases() as progress:  # each step of the pipeline is a log group of its own
        _, report = local.up(project, timeout=github.get_float("blob-test-timeout", 60.0), run_test=run_test,
                             install=github.get_bool("install-requirements", True),
                             connection_string=connection_string or None, progress=progress,
                             output=github.echo)
    github.set_output("image", "")  # target local runs the rendered app; no image is built
    github.set_output("app-url", "")  # the local host is stopped when the step ends
    if report is None:
        github.set_output("test-result", "skipped")
        github.set_output("report-path", "")
        github.add_summary(f"### modelfunc: {project.name} packaged; sample test skipped\n")
        return 0
    github.publish_test(report, report_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
