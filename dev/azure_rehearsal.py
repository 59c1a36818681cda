"""`make azure-rehearsal`: the Azure path, step by step, against the HTTPS ARM + Azure AD fake on 127.0.0.1.

For each trigger, `modelfunc deploy` / `destroy` run as child processes through ``--arm-endpoint``, signed in
as a service principal with azure-identity's real client-secret flow, TLS verified against the fake's
throwaway CA, with a dead proxy for every other host (nothing leaves loopback). The steps:

1. first deploy;
2. the same deploy again (expect: no write);
3. a new image (expect: the slot's image, the deployment id, a trigger sync, the swap);
4. a failed deploy: an image whose host lists no function (expect: exit 1, production keeps its image);
5. destroy (expect: nothing of the app left).

Each step prints its exit code, how many requests it sent, every write, and the state it leaves. The
sample's round trip runs with ``--no-test``: the fake serves ARM, not the slot's storage or URL (that round
trip is tested on Azurite with the local host standing in for the slot, tests/test_azure_deploy.py).
Not rehearsed here yet: Flex Consumption (its OneDeploy goes to the app's Kudu host, which the fake does not
serve on loopback).

Exit code 0 when every step did what it should, 1 otherwise. ``--json FILE`` writes the same as data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fake lives with the tests

from armserver_fixture import ArmServer, start_arm_server  # noqa: E402
from modelfunc.appgen import FUNCTION_NAMES  # noqa: E402

SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "72f988bf-1111-2222-3333-000000000000"
CLIENT = "0c1d2e3f-1111-2222-3333-000000000000"
IMAGES = {name: f"myreg.azurecr.io/diabetes@sha256:{c * 64}" for name, c in (("A", "a"), ("B", "b"), ("broken", "c"))}
TRIGGERS = {"blob": "diabetes-blob", "http": "diabetes-http", "service-bus-queue": "diabetes-servicebus"}


def child_env(server: ArmServer, secret: str) -> dict[str, str]:
    dead = "http://127.0.0.1:9"  # a proxy nobody listens on: any request for another host fails
    return {**os.environ, **server.env, "AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT,
            "AZURE_CLIENT_SECRET": secret, "ACTIONS_ID_TOKEN_REQUEST_URL": "", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "",
            "AZURE_CLIENT_CERTIFICATE_PATH": "", "MODELFUNC_CLOUD": "", "MODELFUNC_ARM_ENDPOINT": "",
            "HTTPS_PROXY": dead, "HTTP_PROXY": dead, "https_proxy": dead, "http_proxy": dead,
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def state(server: ArmServer, app: str) -> dict[str, Any]:
    """What the fake holds for the app: resources by type, and each site's image."""
    store = server.store()
    rg = f"/subscriptions/{SUB}/resourcegroups/{app}-rg".lower()
    kinds: dict[str, int] = {}
    for key, value in store.items():
        if key.startswith(rg + "/providers/") and value.get("type") and "/providers/microsoft.authorization" not in key:
            kinds[value["type"]] = kinds.get(value["type"], 0) + 1
    roles = sum(1 for v in store.values() if v.get("type") == "microsoft.authorization/roleassignments")
    site = f"{rg}/providers/microsoft.web/sites/{app}"

    def image(path: str) -> str:
        fx = (store.get(f"{path}/config/web") or {}).get("properties", {}).get("linuxFxVersion", "")
        return fx.rsplit("@", 1)[-1][:19] if "@" in fx else (fx.split("|")[-1] if fx else "-")

    return {"group": rg in store, "resources": dict(sorted(kinds.items())), "role_assignments": roles,
            "production": image(site) if site in store else None,
            "slot": image(f"{site}/slots/staging") if f"{site}/slots/staging" in store else None}


def step(server: ArmServer, name: str, args: list[str], env: dict[str, str], app: str, *, expect_exit: int,
         secret: str) -> dict[str, Any]:
    server.reset()
    proc = subprocess.run([sys.executable, "-m", "modelfunc", *args], capture_output=True, text=True, env=env,
                          timeout=300, stdin=subprocess.DEVNULL)
    if secret in proc.stdout or secret in proc.stderr:
        raise SystemExit(f"{name}: the client secret reached the output")
    recorded = [r for r in server.requests() if r["host"] == "management.azure.com"]
    writes = [f"{r['method']} {r['path'].split('/resourceGroups/', 1)[-1]}" for r in recorded if r["mutating"]]
    result = {"step": name, "exit": proc.returncode, "expected_exit": expect_exit, "requests": len(recorded),
              "writes": writes, "state": state(server, app)}
    if proc.returncode != expect_exit:
        result["stderr"] = proc.stderr[-2000:]
    return result


def rehearse(trigger: str, work: Path, secret: str) -> list[dict[str, Any]]:
    repo = work / TRIGGERS[trigger]
    shutil.copytree(ROOT / "examples" / TRIGGERS[trigger], repo, ignore=shutil.ignore_patterns("build"))
    app = f"rehearse-{trigger.split('-')[0]}"
    server = start_arm_server(work / f"arm-{trigger}", image_functions={
        IMAGES["A"]: [FUNCTION_NAMES[trigger]], IMAGES["B"]: [FUNCTION_NAMES[trigger]], IMAGES["broken"]: []})
    try:
        env = child_env(server, secret)
        arm = ["--subscription-id", SUB, "--arm-endpoint", f"{server.url}/"]

        def deploy(image: str) -> list[str]:
            return ["deploy", str(repo), "--image", IMAGES[image], "--app-name", app, "--location", "westeurope",
                    "--no-test", "--timeout", "12", *arm]

        results = [step(server, "first deploy", deploy("A"), env, app, expect_exit=0, secret=secret),
                   step(server, "redeploy, nothing changed", deploy("A"), env, app, expect_exit=0, secret=secret),
                   step(server, "redeploy, new image", deploy("B"), env, app, expect_exit=0, secret=secret),
                   step(server, "failed deploy (image lists no function)", deploy("broken"), env, app,
                        expect_exit=1, secret=secret),
                   step(server, "destroy", ["destroy", "--app-name", app, *arm], env, app, expect_exit=0,
                        secret=secret)]
    finally:
        server.stop()
    checks = {
        "redeploy, nothing changed": lambda r: r["writes"] == [],
        "redeploy, new image": lambda r: r["state"]["production"] == IMAGES["B"].rsplit("@", 1)[-1][:19],
        "failed deploy (image lists no function)": lambda r: r["state"]["production"]
        == IMAGES["B"].rsplit("@", 1)[-1][:19] and not any(w.endswith("slotsswap") for w in r["writes"]),
        "destroy": lambda r: not r["state"]["group"],
    }
    for r in results:
        r["trigger"] = trigger
        r["ok"] = r["exit"] == r["expected_exit"] and checks.get(r["step"], lambda _: True)(r)
    return results


def render(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        mark = "ok  " if r["ok"] else "FAIL"
        s = r["state"]
        lines.append(f"{mark} {r['trigger']:<18} {r['step']:<42} exit {r['exit']}  {r['requests']:>3} requests, "
                     f"{len(r['writes']):>2} writes")
        for w in r["writes"]:
            lines.append(f"       write: {w}")
        lines.append(f"       state: group={'yes' if s['group'] else 'no'} production={s['production']} "
                     f"slot={s['slot']} roles={s['role_assignments']} resources={s['resources']}")
        if "stderr" in r:
            lines.append("       stderr: " + r["stderr"].strip().replace("\n", "\n               "))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trigger", action="append", choices=sorted(TRIGGERS), help="repeatable; default: all")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    secret = f"rehearsal-secret-{os.urandom(8).hex()}"  # made up here; never printed
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelfunc-rehearsal-") as tmp:
        for trigger in args.trigger or list(TRIGGERS):
            print(f"==> {trigger}: premium-container, staging slot", flush=True)
            done = rehearse(trigger, Path(tmp), secret)
            print(render(done), flush=True)
            results += done
    print("not rehearsed: Flex Consumption (OneDeploy goes to the app's Kudu host, not served on loopback yet)")
    failed = [r for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
