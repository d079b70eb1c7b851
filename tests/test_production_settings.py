"""Production start-up refuses keys that protect nothing: the published development values, short or repetitive
ones. Each case imports the settings in a fresh interpreter, as the server would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_SECRET = "Zq8#x!v2@Lm9$wE4^rT6&yU1*iO3(pA5)sD7-fG0+hJ-secret-key"
GOOD_ENCRYPTION = "Vt3kP9wQ2mX7zL4nB8cR1sD6fG5hJ0yU-credentials"


def start(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENCRYPTION_KEY", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        CONNECTOR_ENV="production",
        SECRET_KEY=GOOD_SECRET,
        ENCRYPTION_KEY=GOOD_ENCRYPTION,
        ALLOWED_HOSTS="connector.example.com",
        CONNECTOR_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    env.update(overrides)
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import connector.settings as s; print('started', len(s.CRYPTOGRAPHY_KEY))"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sound_keys_start(tmp_path):
    result = start(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"started {len(GOOD_ENCRYPTION)}"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "ENCRYPTION_KEY",
            "dev-only-insecure-encryption-key",
            "ENCRYPTION_KEY is the published development value",
        ),
        ("ENCRYPTION_KEY", "short-but-random-9Xq", "ENCRYPTION_KEY is too weak: use at least 32"),
        ("ENCRYPTION_KEY", "ab" * 30, "ENCRYPTION_KEY is too weak"),
        (
            "SECRET_KEY",
            "dev-only-insecure-secret-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz",
            "SECRET_KEY is the published development value",
        ),
        ("SECRET_KEY", "x" * 60, "SECRET_KEY is too weak"),
        ("ENCRYPTION_KEY", GOOD_SECRET, "ENCRYPTION_KEY must differ from SECRET_KEY"),
    ],
)
def test_production_refuses_weak_or_published_keys(tmp_path, name, value, message):
    result = start(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr, result.stderr[-2000:]
    assert value not in result.stderr  # the message names the key, never its value


def test_development_keeps_its_fallback_keys(tmp_path):
    result = start(tmp_path, CONNECTOR_ENV="development", ENCRYPTION_KEY="dev-only-insecure-encryption-key")
    assert result.returncode == 0, result.stderr
