"""`modelfunc package` on a real Docker engine and a real registry: layering, reproducibility, the in-image
self-test, digests, credentials."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from modelfunc import appenv
from support.core import run_modelfunc
from support.engine import BASE_IMAGE, package


def test_build_push_and_the_printed_digest_is_the_registrys(example, tmp_path, registry) -> None:
    repo = example("diabetes-blob")
    result, data = package(repo, tmp_path / "out", "--image", f"{registry.host}/models/diabetes", "--tag", "v1")
    assert result.returncode == 0, result.stderr
    reference = result.stdout.strip()
    assert reference.startswith(f"{registry.host}/models/diabetes@sha256:")
    digest = reference.split("@", 1)[1]
    assert registry.manifest_digest("models/diabetes", "v1") == digest
    assert registry.manifest_digest("models/diabetes", digest) == digest
    assert data["digest"] == digest and data["self_test"]["passed"] is True
    # progress was shown for the build, the self-test and the push
    for line in ("==> build", "Step 2/2 : ADD layers/code.tar /", "==> self-test", "==> push", ": pushed ("):
        assert line in result.stderr


@pytest.mark.parametrize("name", ["diabetes-blob", "diabetes-http", "diabetes-servicebus"])
def test_self_test_passes_inside_the_image(example, tmp_path, docker_engine, name: str) -> None:
    repo = example(name)
    result, data = package(repo, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    test = data["self_test"]
    assert test["passed"] and test["status"] == 200
    assert json.loads(test["body"]) == [661.6371, 362.4341]
    # Scored twice inside the image: run() through the contract alone, and through the app's own function called
    # with the objects the worker builds for its trigger (HttpRequest, InputStream and Out, ServiceBusMessage).
    sha = hashlib.sha256(b"[661.6371, 362.4341]").hexdigest()
    assert test["direct"]["sha256"] == test["function"]["sha256"] == sha
    assert test["functions"][0] == {"diabetes-blob": "score_blob", "diabetes-http": "score",
                                    "diabetes-servicebus": "score_message"}[name]
    assert result.stdout.strip() == data["tag"]  # no registry host: built and tested, not pushed
    assert "not pushed" in result.stderr


def test_the_images_python_imports_the_dependencies_from_the_layers_bytecode(example, tmp_path, docker_engine) -> None:
    """The dependencies layer carries hash-based .pyc files (PEP 552, https://peps.python.org/pep-0552/) compiled on
    this machine: the image's own interpreter (the base's CPython, not the one that compiled them) checks each against
    its source and uses it, so no module of the dependencies is compiled when the app starts. `python -v` says, for
    each module, "<pyc> matches <source>" when it takes the bytecode and "code object from <source>.py" when it
    compiles the source (importlib._bootstrap_external.SourceLoader.get_code; the layer without bytecode gave 183 of
    those lines here, none of the first)."""
    import docker

    repo = example("diabetes-http")
    result, data = package(repo, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "dependencies: compiling" in result.stderr or "reusing the layer built before" in result.stderr
    site = "/home/site/wwwroot/.python_packages/lib/site-packages"
    log = docker.from_env().containers.run(
        data["tag"], entrypoint=["python3", "-v", "-c", "import function_app"], working_dir="/home/site/wwwroot",
        environment={"PYTHONPATH": f"/home/site/wwwroot:{site}"}, network_mode="none", remove=True, stderr=True,
        stdout=False).decode()
    taken = [ln for ln in log.splitlines() if ln.startswith(f"# {site}/") and " matches " in ln]
    compiled = [ln for ln in log.splitlines() if ln.startswith(f"# code object from {site}/")]
    assert len(taken) > 100, log[-2000:]  # numpy and azure.functions, from bytecode
    assert compiled == []
    # The layer is reproducible with its bytecode: test_layer_tars_are_reproducible_byte_for_byte compiles it twice.


def test_up_puts_the_images_answer_beside_run_directly_and_the_local_host(example, tmp_path, docker_engine) -> None:
    repo = example("diabetes-blob")
    result = run_modelfunc("up", str(repo), "--image", "on", "--base-image", BASE_IMAGE, "--golden",
                           str(tmp_path / "g.json"), timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "==> self-test" in result.stderr and "==> start Azurite" in result.stderr
    answers = json.loads((tmp_path / "g.json").read_text())["answers"]
    sha = hashlib.sha256(b"[661.6371, 362.4341]").hexdigest()
    assert [answers[p]["sha256"] for p in ("run() directly", "local host", "image self-test")] == [sha] * 3
    assert answers["image self-test"]["where"].startswith("image ")
    assert answers["staging slot"] == {"skipped": "target local"}
    # The versions each place imported (read inside the container, in the host's process, by run() directly's
    # process) were compared with the lock: the same everywhere.
    lock = appenv.read_lock(repo / "build" / "app" / "requirements.lock")
    assert (f"environment: {len(lock.packages)} locked packages, the same versions in image, run() directly, "
            "local host") in result.stdout


def test_up_fails_naming_the_image_when_only_the_image_answers_differently(example, tmp_path, docker_engine) -> None:
    repo = example("diabetes-http")
    # 0.991 on this machine, 1.009 in the image's self-test (its sample is mounted there): each within the
    # tolerance of the expected 1.0, not of each other.
    (repo / "score.py").write_text(
        "import os\n\ndef init():\n    pass\n\ndef run(data):\n"
        "    return {'value': 1.009 if os.path.exists('/modelfunc-selftest') else 0.991}\n")
    (repo / "samples" / "expected.json").write_text('{"value": 1.0}\n')
    (repo / "modelfunc.yaml").write_text((repo / "modelfunc.yaml").read_text().replace("1.0e-4", "0.01"))
    result = run_modelfunc("up", str(repo), "--image", "on", "--base-image", BASE_IMAGE, timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: the sample's answers differ: image self-test (image " in result.stderr
    assert ") answered differently vs run() directly: .value: 0.991 vs 1.009" in result.stderr


def test_missing_package_fails_at_package_time_with_the_import_error(example, tmp_path, registry) -> None:
    repo = example("diabetes-blob")
    (repo / "environment.yml").write_text("dependencies:\n  - python=3.11\n")  # numpy forgotten
    result, data = package(repo, tmp_path / "out", "--image", f"{registry.host}/models/broken")
    assert result.returncode == 1
    assert "the image does not score the sample: nothing was pushed" in result.stderr
    assert "ModuleNotFoundError: No module named 'numpy'" in result.stderr
    assert registry.tags("models/broken") == []
    assert data["self_test"]["passed"] is False
    assert not docker_image_exists(data["tag"])


def docker_image_exists(reference: str) -> bool:
    import docker

    try:
        docker.from_env().images.get(reference)
        return True
    except docker.errors.ImageNotFound:
        return False


def test_score_py_change_ships_only_the_code_layer(example, tmp_path, registry) -> None:
    repo = example("diabetes-http")
    image = f"{registry.host}/models/layered"
    first, a = package(repo, tmp_path / "a", "--image", image, "--tag", "one")
    assert first.returncode == 0, first.stderr
    score = repo / "score.py"
    score.write_text(score.read_text().replace(".round(4)", ".round(4)  # a one-line change"))
    second, b = package(repo, tmp_path / "b", "--image", image, "--tag", "two")
    assert second.returncode == 0, second.stderr
    la, lb = a["layers"], b["layers"]
    assert la["dependencies"] == lb["dependencies"]
    assert la["model"] == lb["model"]
    assert la["code"] != lb["code"]
    assert a["diff_ids"][:-3] == b["diff_ids"][:-3]  # the base is untouched
    # The push uploaded the code layer only; everything else was already in the registry.
    assert list(b["pushed_layers"]) == [lb["code"].split(":")[1][:12]]
    assert len(b["existing_layers"]) == len(b["diff_ids"]) - 1
    # The code layer is score.py and its folder plus the runtime shim and the OpenAPI builder (about 77 KB of the
    # 80 KB pushed): a layer of their own would make this one file (issue 17).
    assert sum(b["pushed_layers"].values()) < 128 * 1024


def test_two_builds_on_a_clean_engine_give_the_same_layers(example, tmp_path, docker_engine) -> None:
    repo = example("diabetes-blob")
    first, a = package(repo, tmp_path / "a", "--tag", "first")
    assert first.returncode == 0, first.stderr
    docker_engine.images.remove(a["tag"], force=True)
    docker_engine.images.prune(filters={"dangling": True})
    second, b = package(repo, tmp_path / "b", "--tag", "second")
    assert second.returncode == 0, second.stderr
    assert a["diff_ids"] == b["diff_ids"]
    assert a["layers"] == b["layers"]
    assert a["layer_tars"] == b["layer_tars"]  # the tars in the build context too


def test_registry_password_never_reaches_the_output(example, tmp_path, auth_registry) -> None:
    password = auth_registry.password
    repo = example("diabetes-servicebus")
    env = {"MODELFUNC_REGISTRY_USERNAME": "modelfunc", "MODELFUNC_REGISTRY_PASSWORD": password}
    result, data = package(repo, tmp_path / "out", "--image", f"{auth_registry.host}/secure/model", env=env)
    assert result.returncode == 0, result.stderr
    assert auth_registry.manifest_digest("secure/model", data["digest"]) == data["digest"]
    everything = result.stdout + result.stderr + (tmp_path / "out.json").read_text()
    assert password not in everything
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file() and path.suffix != ".tar":
            assert password.encode() not in path.read_bytes(), path


def test_bad_credentials_are_a_clear_error_and_nothing_is_pushed(example, tmp_path, auth_registry) -> None:
    repo = example("diabetes-servicebus")
    wrong = "not-the-password-0123"
    env = {"MODELFUNC_REGISTRY_USERNAME": "modelfunc", "MODELFUNC_REGISTRY_PASSWORD": wrong}
    result, _ = package(repo, tmp_path / "out", "--image", f"{auth_registry.host}/secure/denied", env=env)
    assert result.returncode == 1
    assert f"error: registry {auth_registry.host} rejected the credentials" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert auth_registry.tags("secure/denied") == []


def test_unreachable_registry_is_a_clear_error(example, tmp_path, docker_engine) -> None:
    repo = example("diabetes-servicebus")
    result, _ = package(repo, tmp_path / "out", "--image", "127.0.0.1:9/models/nowhere")
    assert result.returncode == 1
    assert "error: pushing to registry 127.0.0.1:9 failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_base_image_is_a_clear_error(example, tmp_path, docker_engine) -> None:
    repo = example("diabetes-servicebus")
    result = run_modelfunc("package", str(repo), "--out", str(tmp_path / "out"), "--no-pull", "--base-image",
                           "modelfunc-local/no-such-base:1.0", timeout=600)
    assert result.returncode == 1
    assert "error: the base image modelfunc-local/no-such-base:1.0 is not available" in result.stderr
    assert "--base-image" in result.stderr and "Traceback" not in result.stderr


def test_unresolvable_environment_is_a_clear_error_and_leaves_nothing(example, tmp_path) -> None:
    repo = example("diabetes-servicebus")
    (repo / "requirements.txt").write_text("numpy\nmodelfunc-no-such-package-xyz==1.0\n")
    (repo / "environment.yml").unlink()
    out = tmp_path / "out"
    result = run_modelfunc("package", str(repo), "--out", str(out), "--no-build", timeout=600)
    assert result.returncode == 2
    assert "the dependencies cannot be resolved for CPython 3.11 on linux/x86-64 from wheels: Could not find a " \
           "version that satisfies the requirement modelfunc-no-such-package-xyz==1.0" in result.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_no_build_writes_a_complete_context_without_an_engine(example, tmp_path) -> None:
    repo = example("diabetes-http")
    out = tmp_path / "out"
    result = run_modelfunc("package", str(repo), "--out", str(out), "--no-build",
                           env={"DOCKER_HOST": "unix:///nonexistent.sock"}, timeout=600)
    assert result.returncode == 0, result.stderr
    dockerfile = (out / "Dockerfile").read_text()
    assert dockerfile.index("ADD layers/dependencies.tar /") < dockerfile.index("ADD layers/model.tar /") \
        < dockerfile.index("ADD layers/code.tar /")
    assert "FROM mcr.microsoft.com/azure-functions/python:4-python3.11" in dockerfile
    assert {p.name for p in (out / "layers").iterdir()} == {"dependencies.tar", "model.tar", "code.tar"}


def test_no_engine_is_a_clear_error(example, tmp_path) -> None:
    repo = example("diabetes-http")
    result = run_modelfunc("package", str(repo), "--out", str(tmp_path / "out"),
                           env={"DOCKER_HOST": "unix:///nonexistent.sock"}, timeout=600)
    assert result.returncode == 1
    assert "error: no Docker engine answers at unix:///nonexistent.sock" in result.stderr
    assert "--no-build" in result.stderr


def test_layer_tars_are_reproducible_byte_for_byte(example, tmp_path) -> None:
    from importlib.metadata import version

    repo = example("diabetes-blob")
    # pinned to releases this machine has, so both resolutions see the same index
    (repo / "environment.yml").write_text(f"dependencies:\n  - numpy=={version('numpy')}\n"
                                          f"  - pip:\n      - azure-functions=={version('azure-functions')}\n")
    for name in ("a", "b"):  # both resolve and install the dependencies from scratch
        result = run_modelfunc("package", str(repo), "--out", str(tmp_path / name), "--no-build",
                               "--refresh-dependencies", timeout=600)
        assert result.returncode == 0, result.stderr
        assert "dependencies: resolving for CPython" in result.stderr
        assert "dependencies: installing" in result.stderr
    for layer in ("dependencies", "model", "code"):
        a, b = (tmp_path / name / "layers" / f"{layer}.tar" for name in ("a", "b"))
        assert a.read_bytes() == b.read_bytes()


def test_dependencies_layer_is_reused_until_refreshed(example, tmp_path) -> None:
    repo = example("diabetes-servicebus")
    (repo / "environment.yml").write_text("dependencies:\n  - python=3.11\n  - numpy>=1.26\n  - six\n")
    first = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "a"), timeout=600)
    second = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "b"), timeout=600)
    third = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "c"), "--refresh-dependencies",
                          timeout=600)
    assert all(r.returncode == 0 for r in (first, second, third)), first.stderr + second.stderr + third.stderr
    assert "locked before for these requirements" in second.stderr
    assert "reusing the layer built before for this lock" in second.stderr
    assert "dependencies: resolving for CPython 3.11" in third.stderr and "reusing" not in third.stderr
    tars = [(tmp_path / d / "layers" / "dependencies.tar").read_bytes() for d in "abc"]
    assert tars[0] == tars[1]  # reused byte for byte
    # the refreshed layer was resolved anew (unpinned requirements may legitimately pick newer releases)
    assert tars[2][:6] == b"home/\x00" and len(tars[2]) > 1_000_000


def test_requirement_without_a_wheel_falls_back_to_installing_in_the_build(example, tmp_path) -> None:
    import tarfile

    # A package published only as an sdist, served from a local folder (pip --find-links).
    src = tmp_path / "mf_sdist_only-0.1"
    (src / "mf_sdist_only").mkdir(parents=True)
    (src / "mf_sdist_only" / "__init__.py").write_text("VALUE = 1\n")
    (src / "setup.py").write_text("from setuptools import setup\nsetup(name='mf-sdist-only', version='0.1', "
                                  "packages=['mf_sdist_only'])\n")
    (src / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: mf-sdist-only\nVersion: 0.1\n")
    links = tmp_path / "links"
    links.mkdir()
    with tarfile.open(links / "mf_sdist_only-0.1.tar.gz", "w:gz") as tar:
        tar.add(src, arcname=src.name)
    repo = example("diabetes-servicebus")
    (repo / "environment.yml").write_text("dependencies:\n  - numpy\n  - pip:\n      - mf-sdist-only==0.1\n")
    out = tmp_path / "out"
    result = run_modelfunc("package", str(repo), "--out", str(out), "--no-build", timeout=600,
                           env={"PIP_FIND_LINKS": str(links)})
    assert result.returncode == 0, result.stderr
    assert "WARNING: mf-sdist-only==0.1 has no wheel for CPython 3.11 on linux/x86-64" in result.stderr
    dockerfile = (out / "Dockerfile").read_text()
    assert "ADD layers/dependencies.tar" not in dockerfile
    assert "RUN python -m pip install" in dockerfile and "-r /home/site/requirements.txt" in dockerfile
    assert "# mf-sdist-only==0.1 has no wheel" in dockerfile
    assert not (out / "layers" / "dependencies.tar").exists()


def test_the_package_step_hands_the_images_answers_to_the_test_step(example, tmp_path, docker_engine, monkeypatch,
                                                                    capfd) -> None:
    """scripts/package.py: run() directly and through the function, both inside the image (the runner has not
    the app's dependencies), go to the `golden` output, which the azure test step completes with the slot's."""
    from modelfunc.action.handoff import load_golden
    from support.action_step import Step, load_script

    step = Step(tmp_path, monkeypatch)
    step.inputs(model_repo=str(example("diabetes-servicebus")), base_image=BASE_IMAGE, pull="false")
    assert load_script("package").main([]) == 0, capfd.readouterr().out
    table = load_golden(Path(step.outputs()["golden"]))
    assert table.answer("run() directly").body == table.answer("image self-test").body == b"[661.6371, 362.4341]"
    assert table.answer("run() directly").where.endswith("(no function)")
    assert table.answer("local host").skipped == "the app does not run on the runner (target azure)"
    assert "golden answer" not in step.summary_text()  # published once, complete, by the test step
