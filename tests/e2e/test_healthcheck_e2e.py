"""The image's HEALTHCHECK command against a real gunicorn in production mode (the Dockerfile's web process)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.stack import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
# What the Dockerfile's HEALTHCHECK ran before: a plain GET, refused in production mode.
OLD_HEALTHCHECK = (
    "import urllib.request,sys; "
    "sys.exit(urllib.request.urlopen('http://127.0.0.1:{port}/healthz').status != 200)"
)


@pytest.fixture
def production_server(tmp_path):
    port = free_port()
    static = tmp_path / "static"
    static.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "ENCRYPTION_KEY")
    }
    env.update(
        CONNECTOR_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        ENCRYPTION_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="connector.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CONNECTOR_VAR_DIR=str(tmp_path),
        STATIC_ROOT=str(static),
    )
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gunicorn", "connector.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("gunicorn did not start: " + (tmp_path / "gunicorn.log").read_text()[-2000:])
                time.sleep(0.2)
        yield port, env
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def test_the_healthcheck_passes_against_production_mode(production_server):
    port, env = production_server
    env = {**env, "HEALTHCHECK_URL": f"http://127.0.0.1:{port}/healthz", "HEALTHCHECK_TIMEOUT": "20"}
    run = [sys.executable, "-m", "connector.healthcheck"]  # the Dockerfile's HEALTHCHECK

    done = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # noqa: S603

    assert done.returncode == 0, done.stdout + done.stderr
    assert "healthy: " in done.stdout and '"status": "ok"' in done.stdout

    old = subprocess.run(  # noqa: S603
        [sys.executable, "-c", OLD_HEALTHCHECK.format(port=port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert old.returncode != 0 and "HTTP Error 400" in old.stderr
