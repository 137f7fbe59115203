"""The two ways of serving Winback really serve: `gunicorn wsgi:app` and `winback serve`."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CHEAP_HASH

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, proc, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read().decode()
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINBACK_")}
    env["WINBACK_INSTANCE_PATH"] = str(tmp_path / "instance")
    env["WINBACK_PASSWORD_HASH_METHOD"] = CHEAP_HASH
    return env


def run_server(cmd, env):
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc


@pytest.mark.parametrize("kind", ["gunicorn", "winback serve"])
def test_server_answers_health_and_login(kind, env):
    port = free_port()
    subprocess.run([BIN / "winback", "init-db"], env=env, check=True, capture_output=True)
    cmd = ([BIN / "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "wsgi:app"] if kind == "gunicorn"
           else [BIN / "winback", "serve", "--port", str(port), "--no-scheduler"])
    proc = run_server(cmd, env)
    try:
        status, body = wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        assert status == 200 and '"ok":true' in body.replace(" ", "")
        status, body = wait_for(f"http://127.0.0.1:{port}/login", proc)
        assert status == 200 and "Log in" in body and 'name="csrf_token"' in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)
