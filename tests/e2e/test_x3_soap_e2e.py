"""The whole job over real HTTP with the SOAP connection method: the running connector (web server and workers)
posts orders to the simulated Sage X3 through ``CAdxWebServiceXmlCC`` ``save`` (zeep-built envelopes, HTTP Basic),
including a save whose answer is lost after X3 committed it (found again with ``query``, never saved twice)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal

import pytest

from accounting.models import Posting
from simulators.stack import STORE_HASH, Stack, start_stack, wait_for
from tests.e2e.conftest import database_url, settle
from tests.e2e.test_x3_graphql_e2e import RECEIVABLE, REVENUE, order, posted

pytestmark = pytest.mark.e2e
S = Posting.Status


@pytest.fixture
def soap_stack(transactional_db, tmp_path) -> Iterator[Stack]:
    with start_stack(
        database_url=database_url(),
        redis_url=os.environ.get("REDIS_URL", ""),
        log_dir=tmp_path,
        migrate=False,
        x3_method="soap_basic",
    ) as running:
        yield running


def assert_single_soap_entry(stack: Stack, data: dict, channel: int) -> dict:
    """X3 holds exactly one balanced entry for the order, saved over SOAP on the channel's accounts."""
    entries = stack.entries(reference=f"BC-{STORE_HASH}-{data['id']}")
    assert len(entries) == 1
    (entry,) = entries
    assert entry["_sim"]["api"] == "soap"
    lines = entry["_sim"]["lines"]
    assert {RECEIVABLE[channel], REVENUE[channel]} <= {line["account"] for line in lines}
    assert Decimal(entry["_sim"]["debit_total"]) == Decimal(entry["_sim"]["credit_total"])
    receivable = sum(Decimal(ln["debit"]) for ln in lines if ln["account"] == RECEIVABLE[channel])
    assert receivable == Decimal(data["total_inc_tax"])
    # amounts went over the wire at the currency's two decimals
    assert all(len(str(ln["DEB"]).split(".")[1]) == 2 for ln in entry["GACCENTRYD"])
    posting = Posting.objects.get(order_id=data["id"], kind=Posting.Kind.ORDER)
    assert posting.status == S.POSTED and posting.x3_document_number == entry["NUM"]
    return entry


def test_soap_posts_and_commit_then_drop_leaves_one_entry(soap_stack: Stack) -> None:
    stack = soap_stack
    # given a paid order on the main storefront
    first = order(stack, 1)

    # when its webhook reaches the connector, whose tenant posts through SOAP web services
    wait_for(posted(1), timeout=60, what="the first posting")

    # then one entry, saved through the SOAP endpoint, and no api1 or GraphQL call
    assert_single_soap_entry(stack, first, 1)
    stats = stack.x3.stats()
    assert stats["soap"]["save"] == 1 and stats["soap"]["created"] == 1
    assert stats["graphql"]["requests"] == 0
    assert not any(name.startswith(("POST api1", "GET api1")) for name in stats["by_endpoint"])

    # and when X3 commits the next save and drops the connection, the retry finds it instead of saving again
    stack.x3.set_faults(drop_after_commit_next=1, methods=["POST"])
    second = order(stack, 2)
    settle(stack, posted(2), what="the dropped posting")
    assert len(stack.entries(reference=f"BC-{STORE_HASH}-{second['id']}")) == 1
    posting = Posting.objects.get(order_id=second["id"], kind=Posting.Kind.ORDER)
    outcomes = list(posting.attempt_log.values_list("operation", "outcome"))
    assert ("create", "unknown") in outcomes and ("find", "ok") in outcomes
    assert_single_soap_entry(stack, second, 2)
    assert stack.x3.faults()["counters"] == {"drop_after_commit_next": 1}
    assert stack.x3.stats()["soap"]["save"] == 2 and stack.x3.stats()["soap"]["query"] >= 1
    assert len(stack.entries()) == 2
