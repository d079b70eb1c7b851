"""The README's demo command works end to end (embedded defaults: SQLite + ORM broker)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_demo_posts_the_story_and_stops_cleanly():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "simulators.demo", "--exit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Sage X3 now holds 9 journal entries" in out
    assert "BC-demostore1-100-R1" in out and "-V1" in out  # the refund and the cancellation
    assert "Posted                                9" in out
    assert "Needs a look" not in out
    assert "/admin/" in out
