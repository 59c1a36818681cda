"""The action's main step: `modelfunc up` — package, run on the target, round-trip the sample.

Inputs (``INPUT_*``, see action.yml): model-repo, config, target, connection-string (masked at once),
run-blob-test, blob-test-timeout, report-path, build-image (auto|true|false; empty: the
MODELFUNC_UP_IMAGE variable, else auto), base-image.
Outputs: image, app-url, test-result (pass|fail|skipped), report-path, golden (the golden table as JSON).
"""

from __future__ import annotations

import os
from pathlib import Path

from modelfunc import github
from modelfunc.errors import ConfigError
from modelfunc.local import UP_IMAGE_ENV


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
    image_mode = (github.get_input("build-image") or os.environ.get(UP_IMAGE_ENV) or "auto").lower()
    modes = {"auto": "auto", "true": "on", "on": "on", "false": "off", "off": "off"}
    if image_mode not in modes:
        raise ConfigError(f"{image_mode!r} is not a build-image value", field="build-image",
                          hint="auto (when a Docker engine answers), true or false")
    with github.phases() as progress:  # each step of the pipeline is a log group of its own
        result = local.up(project, timeout=github.get_float("blob-test-timeout", 60.0), run_test=run_test,
                          connection_string=connection_string or None, progress=progress,
                          output=github.echo, image=modes[image_mode],
                          base_image=github.get_input("base-image") or None)
    report = result.report
    github.set_output("image", "")  # target local runs the rendered app; no image is built
    github.set_output("app-url", "")  # the local host is stopped when the step ends
    if report is None:
        github.set_output("test-result", "skipped")
        github.set_output("report-path", "")
        github.add_summary(f"### modelfunc: {project.name} packaged; sample test skipped\n")
        return 0
    # The table first: it shows where the answer went wrong, also when the round trip failed.
    github.publish_golden(result.golden, check=False)
    github.publish_test(report, report_path)
    result.golden.check()
    github.echo(result.check_environment())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
