"""End-to-end fixtures: the real connector (gunicorn + django-q2 workers) and both simulators, over real HTTP,
sharing the test database (PostgreSQL in CI, a SQLite file locally) and, when REDIS_URL is set, Redis as broker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connection

from simulators.stack import start_stack


def settle(stack, predicate, *, timeout: float = 60, what: str = "postings") -> None:
    """``Stack.settle`` that also names every posting's state when it times out."""
    from accounting.models import Posting

    def describe() -> str:
        return str(list(Posting.objects.values_list("idempotency_key", "status", "last_error")))

    stack.settle(predicate, timeout=timeout, what=what, describe=describe)


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def stack(transactional_db, tmp_path):
    if connection.vendor == "sqlite" and ":memory:" in str(connection.settings_dict["NAME"]):
        pytest.fail("end-to-end tests need a file or server database (see connector/settings_test.py)")
    with start_stack(
        database_url=database_url(),
        redis_url=os.environ.get("REDIS_URL", ""),
        log_dir=tmp_path,
        migrate=False,
    ) as running:
        yield running
