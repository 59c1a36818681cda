"""The round-trip test of a running app as an action step (`modelfunc blob-test`).

Inputs (``INPUT_*``): model-repo, config, connection-string (blob; masked), url and function-key (http;
the key masked), host-url (Service Bus, through the local host), blob-test-timeout, report-path; or, for
target azure, deployment (the deploy step's hand-off) with tenant-id and client-id (OIDC), and golden (the package
step's golden table: the slot's answer is added, the table published, and any difference fails the step).
Outputs: test-result (pass|fail), report-path; target azure: golden.
"""

from __future__ import annotations

from pathlib import Path

from modelfunc import github, golden


@github.script
def main() -> int:
    # Secrets first: masked before anything else can print them.
    connection_string = github.get_input("connection-string")
    function_key = github.get_input("function-key")
    github.mask_connection_string(connection_string)  # every form it may be printed in (the SAS too)
    github.mask(function_key)

    from modelfunc.blobtest import round_trip
    from modelfunc.config import load_project

    progress = github.echo

    report_path = Path(github.get_input("report-path") or github.default_report_path())
    project = load_project(Path(github.get_input("model-repo", ".")),
                           config_file=github.get_input("config") or None)
    deployment_file = github.get_input("deployment")
    with github.group(f"test the sample of {project.name}"):
        if deployment_file:  # target azure: the slot the deploy step ran the image on, by identity
            from modelfunc.azure import clouds, credentials, handoff, test_slot
            from modelfunc.azure.clients import default_settings

            deployment = handoff.load(Path(deployment_file))
            cloud = clouds.for_options(github.get_input("cloud") or None,
                                       github.get_input("arm-endpoint") or None)
            credential = credentials.get_credential(tenant_id=github.get_input("tenant-id") or None,
                                                    client_id=github.get_input("client-id") or None, cloud=cloud)
            report = test_slot(project, deployment, credential=credential, progress=progress,
                               settings=clouds.with_cloud(default_settings(), cloud),
                               timeout=github.get_float("blob-test-timeout", 0.0) or None)  # by the trigger
        else:
            report = round_trip(project, connection_string=connection_string or None,
                                url=github.get_input("url") or None, function_key=function_key or None,
                                host_url=github.get_input("host-url") or None,
                                timeout=github.get_float("blob-test-timeout", 60.0), progress=progress)
    if not deployment_file:
        github.publish_test(report, report_path)
        return 0
    # target azure: the slot's answer joins the package step's (run() directly and the function, in the image).
    golden_file = github.get_input("golden")
    if golden_file:
        table = golden.load(Path(golden_file))
    else:  # flex: the app is zip-deployed, no image is built or self-tested
        table = golden.for_project(project)
        for place in (golden.DIRECT, golden.IMAGE):
            table.set(place, golden.Answer(skipped="no image (flex: the app is zip-deployed)"))
        table.set(golden.LOCAL_HOST, golden.Answer(skipped="the app does not run on the runner (target azure)"))
    where = deployment.slot_url if deployment.slot else f"{deployment.app_url} (flex: no slot)"
    table.set(golden.SLOT, golden.from_report(report, where))
    github.publish_golden(table, check=False)
    github.publish_test(report, report_path)
    table.check()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
