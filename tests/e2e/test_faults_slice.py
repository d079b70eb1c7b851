"""A slice of the fault suite (bench/faults.py, same code) that runs with the other end-to-end tests: R3, X3
committing entries and dropping the answers, lookups failing until the postings give up, then "Retry now"; R7,
fuzzed webhook requests, signed and unsigned."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bench import faults
from simulators.stack import Stack, start_stack
from tests.e2e.conftest import database_url

pytestmark = pytest.mark.e2e


@pytest.fixture
def fault_stack(transactional_db, tmp_path) -> Iterator[Stack]:
    with start_stack(
        database_url=database_url(),
        redis_url=os.environ.get("REDIS_URL", ""),
        log_dir=tmp_path,
        migrate=False,
        extra_env={**faults.FAULT_ENV, "DEBUG": "false"},
    ) as running:
        yield running


def test_commit_then_drop_and_retry_now_leave_one_entry_per_order(fault_stack: Stack) -> None:
    # given X3 commits each entry and drops the answer, then answers every lookup with 429 until the postings give
    # up, and an accountant presses "Retry now" twice (connector.operations.retry_now, in a manage.py shell)
    result = faults.round_r3(fault_stack, 2)

    # then the postings really gave up with the "may exist in X3" flag, and the retry found each entry in X3
    # instead of posting it again: one entry per order, all posted
    assert result["gave_up"] == 2 and result["gave_up_flagged_may_exist"] == 2, result
    assert result["retry_now"] == 2, result
    assert result["entries_per_order"] == {"none": 0, "one": 2, "more": 0}, result
    assert result["posted"] == 2, result
    assert faults.duplicate_references(fault_stack) == []


def test_fuzzed_webhooks_store_nothing_unauthenticated_and_never_fail_with_5xx(fault_stack: Stack) -> None:
    # given 200 requests without a valid signature (none, wrong, stale, malformed, tampered, a wrong custom header,
    # an unknown tenant, no trailing slash, other methods) carrying any of the fuzzer's bodies
    unsigned = faults.round_r7(fault_stack, 200, only=faults.UNSIGNED)

    # then every one got a 4xx (or a redirect), none a 5xx or no answer, and nothing was stored
    assert unsigned["requests"] == 200
    assert unsigned["server_errors"] == 0, unsigned["server_errors_by_kind"]
    assert unsigned["events_stored"] == 0, unsigned
    assert all(status != "None" and not status.startswith("5") for status in unsigned["by_status"]), unsigned

    # and given 200 validly signed requests whose bodies are absurd (bad JSON, non-finite numbers, huge ids, deep
    # nesting, NUL, UTF-16/32, long strings, wrong types, random byte flips) or sent without the trailing slash
    signed = faults.round_r7(fault_stack, 200, only=faults.SIGNED)

    # then only signed requests were stored, and none answers 5xx (intake validates before storing: 400)
    assert signed["requests"] == 200
    assert signed["events_stored_unauthenticated"] == 0, signed
    assert signed["events_stored"] <= signed["signed_accepted"], signed
    assert signed["server_errors"] == 0, signed["server_errors_by_kind"]
