"""Admin login throttling (django-axes): repeated wrong passwords lock the login, even for the right password."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

LOGIN = "/admin/login/"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "right-password-123")


def attempt(client, password: str, username: str = "boss", ip: str = "203.0.113.7", **extra):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip, **extra
    )


def logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_defaults():
    assert settings.AXES_ENABLED and settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_the_right_password_logs_in(client, staff):
    response = attempt(client, "right-password-123")
    assert response.status_code == 302 and logged_in(client)


def test_wrong_passwords_lock_the_login_even_for_the_right_password(client, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "wrong").status_code == 200  # the login form again, with its error
    locked = attempt(client, "wrong")
    assert locked.status_code == 429
    assert "Login locked" in locked.content.decode()

    refused = attempt(client, "right-password-123")

    assert refused.status_code == 429
    assert not logged_in(client)


def test_the_lock_ends_after_the_cool_off(client, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "wrong")
    assert attempt(client, "right-password-123").status_code == 429
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )

    assert attempt(client, "right-password-123").status_code == 302
    assert logged_in(client)


def test_by_default_only_that_username_from_that_address_is_locked(client, staff, django_user_model):
    django_user_model.objects.create_superuser("colleague", "c@example.com", "colleague-pw-456")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "wrong")

    assert attempt(client, "right-password-123", ip="198.51.100.9").status_code == 302  # the boss elsewhere
    client.logout()
    assert attempt(client, "colleague-pw-456", username="colleague").status_code == 302  # a colleague here


@override_settings(AXES_LOCKOUT_PARAMETERS=["ip_address"])
def test_lockout_by_address_locks_every_username_from_it(client, staff, django_user_model):
    django_user_model.objects.create_superuser("colleague", "c@example.com", "colleague-pw-456")
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "wrong", username=f"guess{n}")  # password spraying over usernames

    assert attempt(client, "colleague-pw-456", username="colleague").status_code == 429
    assert attempt(client, "colleague-pw-456", username="colleague", ip="198.51.100.9").status_code == 302


@override_settings(AXES_IPWARE_META_PRECEDENCE_ORDER=("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"))
def test_behind_a_proxy_the_address_the_proxy_appended_counts(client, staff):
    # The client forges a first X-Forwarded-For entry; the proxy (10.0.0.2) appends the real address.
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "wrong", ip="10.0.0.2", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.7")

    assert AccessAttempt.objects.get().ip_address == "203.0.113.7"
    assert (
        attempt(client, "right-password-123", ip="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code
        == 429
    )
    assert (
        attempt(client, "right-password-123", ip="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.9").status_code
        == 302
    )


def _settings_in_subprocess(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LOGIN_", "DJANGO_SETTINGS"))}
    return subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-c",
            "import connector.settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME, s.AXES_LOCKOUT_PARAMETERS)",
        ],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_environment_configures_throttling():
    done = _settings_in_subprocess(LOGIN_FAILURE_LIMIT="10", LOGIN_COOLOFF_MINUTES="0", LOGIN_LOCKOUT_BY="ip")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "10 None ['ip_address']"

    bad = _settings_in_subprocess(LOGIN_LOCKOUT_BY="user")
    assert bad.returncode != 0 and "LOGIN_LOCKOUT_BY must be one of username_ip, ip" in bad.stderr
