"""The Docker HEALTHCHECK's request passes production mode's host check and HTTPS redirect, which the plain
request it used to send did not (400, then 301)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from connector.healthcheck import HTTPS_HEADER, host_for, probe, request_headers

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_LIKE = {
    "DEBUG": False,
    "ALLOWED_HOSTS": ["connector.example.com", "www.example.com"],
    "SECURE_SSL_REDIRECT": True,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
}


def as_meta(headers: dict[str, str]) -> dict[str, str]:
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}


@pytest.mark.django_db
@override_settings(**PRODUCTION_LIKE)
def test_the_healthchecks_request_gets_200_under_production_settings(client):
    headers = request_headers(["connector.example.com", "www.example.com"])
    assert headers["Host"] == "connector.example.com" and headers["X-Forwarded-Proto"] == "https"

    response = client.get("/healthz", **as_meta(headers))

    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
@override_settings(**PRODUCTION_LIKE)
def test_the_old_plain_request_failed_there(client):
    assert client.get("/healthz", HTTP_HOST="127.0.0.1:8000").status_code == 400
    with override_settings(ALLOWED_HOSTS=["127.0.0.1"]):
        assert client.get("/healthz", HTTP_HOST="127.0.0.1:8000").status_code == 301


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        (["connector.example.com", "other"], "connector.example.com"),
        ([".example.com"], "example.com"),
        (["*"], "localhost"),
        ([], "localhost"),
    ],
)
def test_the_host_is_one_the_settings_allow(allowed, host):
    assert host_for(allowed) == host


def test_the_https_header_is_the_one_production_trusts(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        CONNECTOR_ENV="production",
        SECRET_KEY="Zq8#x!v2@Lm9$wE4^rT6&yU1*iO3(pA5)sD7-fG0+hJ-secret-key",
        ENCRYPTION_KEY="Vt3kP9wQ2mX7zL4nB8cR1sD6fG5hJ0yU-credentials",
        ALLOWED_HOSTS="connector.example.com",
        CONNECTOR_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import connector.settings as s; print(*s.SECURE_PROXY_SSL_HEADER)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    meta_name, value = done.stdout.split()
    assert meta_name == "HTTP_" + HTTPS_HEADER[0].upper().replace("-", "_") and value == HTTPS_HEADER[1]


def test_a_server_that_does_not_answer_is_unhealthy():
    healthy, message = probe("http://127.0.0.1:9/healthz", {"Host": "localhost"}, timeout=2)
    assert not healthy and message.startswith("unhealthy: http://127.0.0.1:9/healthz")


def test_the_module_runs_without_django_and_exits_1_when_unhealthy():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}  # no settings needed
    env.update(HEALTHCHECK_URL="http://127.0.0.1:9/healthz", HEALTHCHECK_TIMEOUT="2")
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "connector.healthcheck"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "unhealthy" in done.stdout
