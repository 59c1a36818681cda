"""The ``cache:`` section of modelfunc.yaml (what the template's Redis choice writes): its forms, what it renders into
the app (the setting and the runtime's load argument, only when configured), and each bad section a config error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelfunc.appgen import render
from modelfunc.config import load_project
from modelfunc.errors import ConfigError
from support.core import run_modelfunc


def write_repo(example, config: str) -> Path:
    repo = example("diabetes-blob")
    (repo / "modelfunc.yaml").write_text(config, encoding="utf-8")
    return repo


@pytest.mark.parametrize("section", [
    "cache: redis\n",
    "cache:\n  redis:\n",
    "cache:\n  redis:\n    connection: RedisConnectionString\n    ttl_seconds: 3600\n",
])
def test_cache_section_forms(example, section: str) -> None:
    project = load_project(write_repo(example, "trigger: blob\n" + section))
    assert project.config.cache.redis.connection == "RedisConnectionString"
    assert project.config.cache.redis.ttl_seconds == 3600


def test_cache_renders_the_setting_and_the_load_argument_only_when_configured(example, tmp_path) -> None:
    plain = render(load_project(write_repo(example, "trigger: http\n")), tmp_path / "plain")
    cached = render(load_project(write_repo(
        example, "trigger: http\ncache:\n  redis:\n    connection: MyRedis\n    ttl_seconds: 60\n")), tmp_path / "c")
    plain_app = (plain.app_dir / "function_app.py").read_text()
    assert "cache_setting" not in plain_app
    assert "cache_setting='MyRedis', cache_ttl_seconds=60)" in (cached.app_dir / "function_app.py").read_text()
    assert "MyRedis" not in json.loads((plain.app_dir / "local.settings.json").read_text())["Values"]
    assert json.loads((cached.app_dir / "local.settings.json").read_text())["Values"]["MyRedis"] == ""


@pytest.mark.parametrize(("section", "where", "message"), [
    ("cache:\n  memcached: {}\n", "3: cache.memcached", "unknown field 'memcached'; allowed here: redis"),
    ("cache: {}\n", "2: cache", "names no cache backend; use redis"),
    ("cache: 5\n", "2: cache", "must be a mapping of fields, got int 5"),
    ("cache:\n  redis:\n    ttl_seconds: 0\n", "4: cache.redis.ttl_seconds", "greater than or equal to 1"),
    ("cache:\n  redis:\n    ttl_seconds: 1h\n", "4: cache.redis.ttl_seconds", "valid integer"),
    ("cache:\n  redis:\n    connection: Redis Conn\n", "4: cache.redis.connection", "not a valid app setting name"),
    ("cache:\n  redis:\n    conection: X\n", "4: cache.redis.conection", "did you mean 'connection'?"),
    ("cache:\n  redis:\n    connection: TriggerConnectionString\n", "2: cache",
     "'TriggerConnectionString' is already the trigger's connection setting"),
])
def test_bad_cache_section_is_a_config_error(example, section: str, where: str, message: str) -> None:
    repo = write_repo(example, "trigger: blob\n" + section)
    with pytest.raises(ConfigError) as err:
        load_project(repo)
    assert f"modelfunc.yaml:{where}: " in str(err.value) and message in str(err.value), str(err.value)
    result = run_modelfunc("package", str(repo), "--no-build")
    assert result.returncode == 2 and message in result.stderr
    assert not (repo / "build").exists()
