"""`make azure-rehearsal`: the Azure path, step by step, against the HTTPS ARM + Azure AD fake on 127.0.0.1.

For each trigger and both hosting plans, `modelfunc deploy` / `destroy` run as child processes through
``--arm-endpoint``, signed in as a service principal with azure-identity's real client-secret flow, TLS
verified against the fake's throwaway CA. Nothing leaves loopback: the child's ``HTTPS_PROXY`` is the fake's
CONNECT proxy (tests/support/armserver.py), which tunnels only to the fake itself, for the hosts it serves under their
real names (a Flex app's Kudu host ``<app>.scm.azurewebsites.net``: no DNS change, the certificate names it),
and refuses every other host; a step with a refused request, or a request that reached the fake under an
unexpected name, fails. Before the steps, the proxy is checked to refuse another host and the Kudu name to fail
TLS verification without the CA.

premium-container (an image on the staging slot, then the swap):

1. first deploy;
2. the same deploy again (expect: no write);
3. a new image (expect: the slot's image, the deployment id, a trigger sync, the swap);
4. a failed deploy: an image whose host lists no function (expect: exit 1, production keeps its image);
5. destroy (expect: nothing of the app left).

flex (Flex Consumption: the rendered app with vendored dependencies, zip-deployed by OneDeploy to Kudu; the
package's SHA-256 in the app setting MODELFUNC_PACKAGE_SHA256 identifies the deployment):

1. first deploy (expect: the published package is the one the setting names);
2. the same deploy again (expect: no write, neither to ARM nor to Kudu);
3. a changed package: score.py edited (expect: one OneDeploy, the setting follows the new package);
4. a failed deploy: score.py edited again, and Kudu ends the OneDeploy Failed (expect: exit 1, the previous
   package stays published and named by the setting);
5. destroy (expect: nothing of the app left).

The dependencies a Flex package vendors come from a wheelhouse this script downloads first (pip, from the
index, on the parent's network); the child's pip installs from it with ``--no-index`` (PIP_NO_INDEX,
PIP_FIND_LINKS), so the child itself reaches nothing but 127.0.0.1.

Each step prints its exit code, how many requests it sent (ARM and Kudu), every write, and the state it leaves.
The sample's round trip runs with ``--no-test``: the fake serves ARM and Kudu, not the app's storage or URL
(that round trip is tested on Azurite with the local host standing in for the app, tests/azure/test_azure_deploy.py).

Exit code 0 when every step did what it should, 1 otherwise. ``--json FILE`` writes the same as data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fake lives with the tests

from modelfunc.triggers import FUNCTION_NAMES  # noqa: E402
from support.armserver_fixture import ArmServer, start_arm_server  # noqa: E402

SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "72f988bf-1111-2222-3333-000000000000"
CLIENT = "0c1d2e3f-1111-2222-3333-000000000000"
IMAGES = {name: f"myreg.azurecr.io/diabetes@sha256:{c * 64}" for name, c in (("A", "a"), ("B", "b"), ("broken", "c"))}
TRIGGERS = {"blob": "diabetes-blob", "http": "diabetes-http", "service-bus-queue": "diabetes-servicebus"}
PLANS = ("premium-container", "flex")
PACKAGE_SETTING = "MODELFUNC_PACKAGE_SHA256"  # modelfunc.azure.flex.PACKAGE_SETTING (what identifies a package)
KUDU_STATUS = {-1: "Cancelled", 0: "Pending", 1: "Building", 2: "Deploying", 3: "Failed", 4: "Success",
               5: "Conflict", 6: "PartialSuccess"}  # modelfunc.azure.facts.KUDU_STATUS_NAMES
KUDU_FAILED = (3, "Deployment failed: the rehearsal's injected failure")


def child_env(server: ArmServer, secret: str, wheelhouse: Path | None) -> dict[str, str]:
    env = {**os.environ, **server.env, "AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT,
           "AZURE_CLIENT_SECRET": secret, "ACTIONS_ID_TOKEN_REQUEST_URL": "", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "",
           "AZURE_CLIENT_CERTIFICATE_PATH": "", "AZURE_AUTHORITY_HOST": "", "MODELFUNC_CLOUD": "",
           "MODELFUNC_ARM_ENDPOINT": "", "AZURE_SUBSCRIPTION_ID": "",
           **server.proxy_env()}  # every host but 127.0.0.1 goes to the fake's proxy: served there or refused
    if wheelhouse is not None:  # the child's pip installs from the wheelhouse, never from an index
        env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse), PIP_CONFIG_FILE=os.devnull)
    return env


def scm_host(app: str) -> str:
    return f"{app}.scm.azurewebsites.net"


def state(server: ArmServer, app: str, plan: str) -> dict[str, Any]:
    """What the fake holds for the app: resources by type, and what production (and the slot) runs."""
    store = server.store()
    rg = f"/subscriptions/{SUB}/resourcegroups/{app}-rg".lower()
    kinds: dict[str, int] = {}
    for key, value in store.items():
        if key.startswith(rg + "/providers/") and value.get("type") and "/providers/microsoft.authorization" not in key:
            kinds[value["type"]] = kinds.get(value["type"], 0) + 1
    roles = sum(1 for v in store.values() if v.get("type") == "microsoft.authorization/roleassignments")
    site = f"{rg}/providers/microsoft.web/sites/{app}"
    out: dict[str, Any] = {"group": rg in store, "resources": dict(sorted(kinds.items())), "role_assignments": roles}
    if plan == "flex":
        settings = (store.get(f"{site}/config/appsettings") or {}).get("properties", {})
        kudu = server.kudu()
        published = kudu["published"].get(app) if site in store else None  # (the fake keeps Kudu past a delete)
        return {**out, "package": (settings.get(PACKAGE_SETTING) or "")[:12] or None,
                "published": published[:12] if published else None,
                "kudu": [KUDU_STATUS.get(d["status"], str(d["status"])) for d in kudu["deployments"]
                         if d.get("site_name") == app]}

    def image(path: str) -> str:
        fx = (store.get(f"{path}/config/web") or {}).get("properties", {}).get("linuxFxVersion", "")
        return fx.rsplit("@", 1)[-1][:19] if "@" in fx else (fx.split("|")[-1] if fx else "-")

    return {**out, "production": image(site) if site in store else None,
            "slot": image(f"{site}/slots/staging") if f"{site}/slots/staging" in store else None}


def isolation(server: ArmServer, app: str, recorded: list[dict[str, Any]]) -> dict[str, Any]:
    """Did every request stay on loopback, verified TLS, addressed as expected? (the proxy's record and the fake's)"""
    proxy = server.proxy()
    expected = {f"127.0.0.1:{server.port}", scm_host(app)}
    hosts = ("login.microsoftonline.com", "management.azure.com", scm_host(app))  # as the fake took them

    def elsewhere(r: dict[str, Any]) -> bool:
        return r["host_header"] not in expected or r["host"] not in hosts or r["peer"] != "127.0.0.1" \
            or not (r["tls"] or "").startswith("TLS")

    foreign = [f"{r['method']} {r['host_header']}{r['path']}" for r in recorded if elsewhere(r)]
    wrong_tunnels = [t["target"] for t in proxy["tunnels"] if t["target"] != f"{scm_host(app)}:443"]
    return {"refused": proxy["refused"], "tunnels": len(proxy["tunnels"]), "foreign": foreign + wrong_tunnels}


def step(server: ArmServer, name: str, args: list[str], env: dict[str, str], app: str, plan: str, *,
         expect_exit: int, secret: str) -> dict[str, Any]:
    server.reset()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "modelfunc", *args], capture_output=True, text=True, env=env,
                          timeout=600, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if secret in proc.stdout or secret in proc.stderr:
        raise SystemExit(f"{name}: the client secret reached the output")
    everything = server.requests()
    recorded = [r for r in everything if r["host"] != "login.microsoftonline.com"]  # ARM and Kudu

    def shown(r: dict[str, Any]) -> str:
        if r["host"] == "management.azure.com":
            return f"{r['method']} {r['path'].split('/resourceGroups/', 1)[-1]}"
        return f"{r['method']} {r['host']}{r['path']}"

    result = {"plan": plan, "step": name, "exit": proc.returncode, "expected_exit": expect_exit,
              "seconds": round(seconds, 1), "requests": len(recorded),
              "kudu_requests": sum(1 for r in recorded if r["host"] == scm_host(app)),
              "writes": [shown(r) for r in recorded if r["mutating"]], "state": state(server, app, plan),
              "isolation": isolation(server, app, everything)}
    if proc.returncode != expect_exit:
        result["stderr"] = proc.stderr[-2000:]
    elif proc.returncode != 0:  # the expected failure: what it said
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error")] or lines[-1:]
        result["error"] = errors[-1] if errors else ""
    return result


def edit_score(repo: Path, note: str) -> None:
    """A code change: what a new package is made of (Flex deploys the rendered app, not an image)."""
    with open(repo / "score.py", "a", encoding="utf-8") as fh:
        fh.write(f"\n# {note}\n")


Check = Callable[[dict[str, Any], list[dict[str, Any]]], bool]  # (the step's result, the steps before it)


def premium_steps(repo: Path, app: str, arm: list[str]) -> list[tuple[str, list[str], int, Callable[[], None]]]:
    def deploy(image: str) -> list[str]:
        return ["deploy", str(repo), "--image", IMAGES[image], "--app-name", app, "--location", "westeurope",
                "--no-test", "--timeout", "12", *arm]

    return [("first deploy", deploy("A"), 0, lambda: None),
            ("redeploy, nothing changed", deploy("A"), 0, lambda: None),
            ("redeploy, new image", deploy("B"), 0, lambda: None),
            ("failed deploy (image lists no function)", deploy("broken"), 1, lambda: None),
            ("destroy", ["destroy", "--app-name", app, *arm], 0, lambda: None)]


def premium_checks() -> dict[str, Check]:
    b = IMAGES["B"].rsplit("@", 1)[-1][:19]
    return {
        "redeploy, nothing changed": lambda r, _: r["writes"] == [],
        "redeploy, new image": lambda r, _: r["state"]["production"] == b,
        "failed deploy (image lists no function)": lambda r, _: r["state"]["production"] == b
        and not any(w.endswith("slotsswap") for w in r["writes"]),
        "destroy": lambda r, _: not r["state"]["group"],
    }


def flex_steps(repo: Path, app: str, arm: list[str],
               server: ArmServer) -> list[tuple[str, list[str], int, Callable[[], None]]]:
    deploy = ["deploy", str(repo), "--hosting-plan", "flex", "--app-name", app, "--location", "westeurope",
              "--no-test", "--timeout", "60", *arm]

    def fail_next() -> None:
        edit_score(repo, "rehearsal: a change whose OneDeploy Kudu fails")
        server.kudu_outcomes([KUDU_FAILED])

    return [("first deploy", deploy, 0, lambda: None),
            ("redeploy, nothing changed", deploy, 0, lambda: None),
            ("redeploy, changed package (score.py)", deploy, 0,
             lambda: edit_score(repo, "rehearsal: a changed package")),
            ("failed deploy (Kudu: OneDeploy Failed)", deploy, 1, fail_next),
            ("destroy", ["destroy", "--app-name", app, *arm], 0, lambda: None)]


def flex_checks(app: str) -> dict[str, Check]:
    def publishes(r: dict[str, Any]) -> list[str]:
        return [w for w in r["writes"] if w == f"POST {scm_host(app)}/api/publish"]

    def runs(r: dict[str, Any]) -> bool:  # the setting names the package Kudu has published
        return r["state"]["package"] is not None and r["state"]["package"] == r["state"]["published"]

    return {
        "first deploy": lambda r, _: runs(r) and len(publishes(r)) == 1 and r["state"]["kudu"] == ["Success"],
        "redeploy, nothing changed": lambda r, before: r["writes"] == [] and r["kudu_requests"] == 0
        and r["state"]["package"] == before[-1]["state"]["package"],
        "redeploy, changed package (score.py)": lambda r, before: runs(r) and len(publishes(r)) == 1
        and r["state"]["package"] != before[-1]["state"]["package"],
        "failed deploy (Kudu: OneDeploy Failed)": lambda r, before: len(publishes(r)) == 1
        and r["state"]["package"] == before[-1]["state"]["package"]
        and r["state"]["published"] == before[-1]["state"]["published"] and r["state"]["kudu"][-1] == "Failed"
        and not any(w.endswith("/config/appsettings") for w in r["writes"]),
        "destroy": lambda r, _: not r["state"]["group"],
    }


def rehearse(trigger: str, plan: str, work: Path, secret: str, wheelhouse: Path | None) -> list[dict[str, Any]]:
    repo = work / plan / TRIGGERS[trigger]
    shutil.copytree(ROOT / "examples" / TRIGGERS[trigger], repo, ignore=shutil.ignore_patterns("build"))
    app = f"rehearse-{'flex-' if plan == 'flex' else ''}{trigger.split('-')[0]}"
    function = FUNCTION_NAMES[trigger]
    server = start_arm_server(work / f"arm-{plan}-{trigger}", zip_functions=[function], image_functions={
        IMAGES["A"]: [function], IMAGES["B"]: [function], IMAGES["broken"]: []})
    results: list[dict[str, Any]] = []
    try:
        env = child_env(server, secret, wheelhouse if plan == "flex" else None)
        arm = ["--subscription-id", SUB, "--arm-endpoint", f"{server.url}/"]
        steps = flex_steps(repo, app, arm, server) if plan == "flex" else premium_steps(repo, app, arm)
        for name, args, expect_exit, before in steps:
            before()
            results.append(step(server, name, args, env, app, plan, expect_exit=expect_exit, secret=secret))
    finally:
        server.stop()
    checks = flex_checks(app) if plan == "flex" else premium_checks()
    for i, r in enumerate(results):
        r["trigger"] = trigger
        iso = r["isolation"]
        r["ok"] = (r["exit"] == r["expected_exit"] and not iso["refused"] and not iso["foreign"]
                   and checks.get(r["step"], lambda *_: True)(r, results[:i]))
    return results


def prepare_wheelhouse(triggers: list[str], directory: Path) -> float:
    """The wheels the Flex packages vendor (linux/amd64, the projects' Python), downloaded here, on this
    process's network, so that the deploys' pip needs no index. Returns the seconds it took."""
    from modelfunc.appenv import default_pip_cache, pip_platform_args
    from modelfunc.appgen import render
    from modelfunc.config import load_project

    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    for trigger in triggers:
        project = load_project(ROOT / "examples" / TRIGGERS[trigger])
        with tempfile.TemporaryDirectory(prefix="modelfunc-rehearsal-render-") as tmp:
            requirements = render(project, Path(tmp) / "build").app_dir / "requirements.txt"
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--dest", str(directory),
                                   "--cache-dir", str(default_pip_cache()), "--disable-pip-version-check",
                                   "--no-input", "--progress-bar", "off",
                                   *pip_platform_args(project.config.python_version), "--requirement",
                                   str(requirements)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise SystemExit(f"the wheelhouse for {trigger} could not be downloaded:\n{proc.stdout[-2000:]}"
                             f"{proc.stderr[-2000:]}")
    return time.monotonic() - started


def check_isolation(work: Path) -> dict[str, Any]:
    """The proxy refuses a host the fake does not serve, and the fake's Kudu name fails TLS verification without
    the fake's CA (and passes with it): what makes the steps' zero refusals and their verified TLS mean something."""
    server = start_arm_server(work / "arm-isolation-check")
    port = int(server.proxy_url.rsplit(":", 1)[1])
    host = scm_host("rehearse-check")

    def connect(target: str) -> tuple[int, socket.socket]:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            if not chunk:
                break
            head += chunk
        return int(head.split(b" ", 2)[1] or 0), sock

    def handshake(context: ssl.SSLContext) -> str:
        status, sock = connect(f"{host}:443")
        try:
            if status != 200:
                return f"CONNECT answered {status}"
            with context.wrap_socket(sock, server_hostname=host) as tls:
                return f"verified ({tls.version()})"
        except ssl.SSLCertVerificationError as e:
            return f"refused: {e.verify_message}"
        finally:
            sock.close()

    try:
        other_status, other = connect("example.com:443")
        other.close()
        with_ca = handshake(ssl.create_default_context(cafile=str(server.ca_file)))
        without_ca = handshake(ssl.create_default_context())
        refused = server.proxy()["refused"]
    finally:
        server.stop()
    ok = other_status == 403 and len(refused) == 1 and with_ca.startswith("verified") and \
        without_ca.startswith("refused")
    return {"ok": ok, "other_host": f"CONNECT example.com:443 answered {other_status}, {len(refused)} refusal logged",
            "kudu_with_ca": with_ca, "kudu_without_ca": without_ca}


def render_rows(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        mark = "ok  " if r["ok"] else "FAIL"
        s, iso = r["state"], r["isolation"]
        requests = f"{r['requests']:>3} requests" + (f" ({r['kudu_requests']} Kudu)" if r["plan"] == "flex" else "")
        lines.append(f"{mark} {r['trigger']:<18} {r['plan']:<17} {r['step']:<40} exit {r['exit']}  "
                     f"{requests + ',':<23} {len(r['writes']):>2} writes  {r['seconds']:>5.1f} s")
        for w in r["writes"]:
            lines.append(f"       write: {w}")
        shown = (f"package={s['package']} published={s['published']} kudu={','.join(s['kudu']) or '-'}"
                 if r["plan"] == "flex" else f"production={s['production']} slot={s['slot']}")
        lines.append(f"       state: group={'yes' if s['group'] else 'no'} {shown} roles={s['role_assignments']} "
                     f"resources={s['resources']}")
        lines.append(f"       loopback: {iso['tunnels']} tunnel(s) to the fake, {len(iso['refused'])} refused, "
                     f"{len(iso['foreign'])} elsewhere")
        for what in iso["refused"]:
            lines.append(f"       REFUSED: {what['request']} ({what['why']})")
        for what in iso["foreign"]:
            lines.append(f"       ELSEWHERE: {what}")
        if r.get("error"):
            lines.append(f"       error (expected): {r['error'][:400]}")
        if "stderr" in r:
            lines.append("       stderr: " + r["stderr"].strip().replace("\n", "\n               "))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trigger", action="append", choices=sorted(TRIGGERS), help="repeatable; default: all")
    parser.add_argument("--plan", action="append", choices=PLANS, help="repeatable; default: both")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    triggers, plans = args.trigger or list(TRIGGERS), args.plan or list(PLANS)
    secret = f"rehearsal-secret-{os.urandom(8).hex()}"  # made up here; never printed
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelfunc-rehearsal-") as tmp:
        work = Path(tmp)
        checked = check_isolation(work)
        print(f"{'ok  ' if checked['ok'] else 'FAIL'} isolation: {checked['other_host']}; Kudu host with the fake's "
              f"CA: {checked['kudu_with_ca']}; without it: {checked['kudu_without_ca']}", flush=True)
        wheelhouse = None
        if "flex" in plans:
            wheelhouse = work / "wheelhouse"
            seconds = prepare_wheelhouse(triggers, wheelhouse)
            print(f"     wheelhouse for the Flex packages: {len(list(wheelhouse.glob('*.whl')))} wheels "
                  f"({seconds:.1f} s)", flush=True)
        for trigger in triggers:
            for plan in plans:
                print(f"==> {trigger}: {plan}" + (", staging slot" if plan == "premium-container" else
                                                 ", OneDeploy to Kudu (no slot)"), flush=True)
                done = rehearse(trigger, plan, work, secret, wheelhouse)
                print(render_rows(done), flush=True)
                results += done
    failed = [r for r in results if not r["ok"]]
    seconds = time.monotonic() - started
    print(f"\n{'trigger':<18} {'plan':<17} {'step':<40} {'exit':>4} {'reqs':>4} {'writes':>6} {'secs':>6}")
    for r in results:
        print(f"{r['trigger']:<18} {r['plan']:<17} {r['step']:<40} {r['exit']:>4} {r['requests']:>4} "
              f"{len(r['writes']):>6} {r['seconds']:>6.1f}  {'ok' if r['ok'] else 'FAIL'}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed"
          + ("" if checked["ok"] else "; the isolation check FAILED") + f" ({seconds:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"isolation": checked, "steps": results, "seconds": round(seconds, 1)},
                                        indent=2) + "\n", encoding="utf-8")
    return 1 if failed or not checked["ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
