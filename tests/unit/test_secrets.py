"""The secrets guard (tests/support/secrets_guard.py) itself: it finds what it must, and only that."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from modelfunc.azurite import DEV_KEY, connection_string
from support.core import ROOT
from support.secrets_guard import secrets_in

TESTS = ROOT / "tests"  # on the inner pytest's PYTHONPATH: `support` imports from it

LEAKY = '''
import os, subprocess, sys
from support.secrets_guard import secret

def test_child_prints_a_password_from_its_environment():
    env = {**os.environ, "REGISTRY_PASSWORD": "pw-from-the-env-1234"}
    out = subprocess.run([sys.executable, "-c", "import os; print(os.environ['REGISTRY_PASSWORD'])"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0

def test_log_file_holds_an_invented_secret(tmp_path):
    (tmp_path / "host.log").write_text("connecting with " + secret("invented-redis-pass-99") + "\\n")

def test_connection_string_key_is_printed(tmp_path):
    conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWFjY291bnQta2V5;"
    subprocess.run([sys.executable, "-c", "import os; print(os.environ['MY_CONN'][-30:])"],
                   env={**os.environ, "MY_CONN": conn}, capture_output=True, text=True)

def test_clean(tmp_path):
    (tmp_path / "host.log").write_text("nothing secret here\\n")
    out = subprocess.run([sys.executable, "-c", "print('hello')"], env={**os.environ, "API_TOKEN": "tok-abcdef-123456"},
                         capture_output=True, text=True)
    assert out.stdout == "hello\\n"
'''


def test_guard_fails_each_leaking_test_and_never_prints_the_secret(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["support.secrets_guard"]\n')
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--basetemp",
                           str(tmp_path / "base"), str(tmp_path / "test_leaky.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "4 passed, 3 errors" in out, out  # each leaking test fails at its teardown; test_clean does not
    assert "stdout of `" in out and "host.log: 1 secret value(s)" in out, out
    for value in ("pw-from-the-env-1234", "invented-redis-pass-99", "c2VjcmV0LWFjY291bnQta2V5"):
        assert value not in out, value
    assert "test_clean" not in out.split("short test summary")[-1], out


def test_what_counts_as_a_secret() -> None:
    assert secrets_in("MODELFUNC_REGISTRY_PASSWORD", "s3cret-value") == {"s3cret-value"}
    assert secrets_in("RedisConnectionString", "h.redis.cache.windows.net:6380,password=abcdefgh12,ssl=True") \
        == {"abcdefgh12"}
    assert secrets_in("RedisConnectionString", "rediss://:p4ssw0rd-x@h:6380") == {"p4ssw0rd-x"}
    assert secrets_in("X", "Endpoint=sb://n.servicebus.windows.net/;SharedAccessKey=a1b2c3d4e5f6") == {"a1b2c3d4e5f6"}
    assert secrets_in("MODELFUNC_CONNECTION_STRING", connection_string(10000)) == set()  # Azurite's public key
    assert DEV_KEY not in secrets_in("AccountKey", DEV_KEY)
    assert secrets_in("PATH", "/usr/bin:/bin") == set() and secrets_in("API_KEY", "short") == set()
