"""Order lifecycle scenarios (issue #5): each asserts the full list of entries, that every entry balances, and that
the order's entries add up to BigCommerce's final order total minus refunds, to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from accounting import figures
from accounting.models import Posting
from connector.pipeline import sync_order
from integrations.errors import RetryableError
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce, FakeX3
from tests.recon_reference import assert_same, old_reconcile

D = Decimal
S = Posting.Status


@pytest.fixture
def bc():
    return FakeBigCommerce()


@pytest.fixture
def x3():
    return FakeX3()


@pytest.fixture
def sync(tenant, bc, x3):
    def run(order_id: int = 250, *, refund_id: int | None = None, trigger: str = "webhook"):
        return sync_order(
            tenant=tenant, order_id=order_id, trigger=trigger, refund_id=refund_id, bc_client=bc, x3_client=x3
        )

    return run


@pytest.fixture(autouse=True)
def figures_follow_the_lines(tenant):
    """After each scenario: every entry's stored reconciliation figures are those of its snapshot and its lines as
    they are now (planning stores them with the lines; docs/decisions/0030), and the reconciliation from them
    equals the one from the snapshots and lines."""
    yield
    entries = (
        Posting.objects.filter(tenant=tenant).exclude(kind=Posting.Kind.SUMMARY).prefetch_related("lines")
    )
    for posting in entries:
        expected = figures.stored_figures(
            posting.kind, posting.currency, posting.snapshot, posting.lines.all()
        )
        assert {f: getattr(posting, f) for f in expected} == expected, posting.idempotency_key
    year = figures.Period(date(2000, 1, 1), date(2100, 12, 31))
    assert_same(figures.reconcile(tenant, year), old_reconcile(tenant, year))


def entries(x3: FakeX3) -> list[tuple[str, Decimal]]:
    """(reference, receivable amount) of every entry X3 holds, in posting order."""
    return [
        (
            e.reference,
            sum((line.debit - line.credit for line in e.lines if line.account.startswith("41")), D(0)),
        )
        for e in x3.entries
    ]


def assert_books(x3: FakeX3, tenant, order_id: int, expected_total: Decimal) -> None:
    for entry in x3.entries:
        assert sum(line.debit for line in entry.lines) == sum(line.credit for line in entry.lines), (
            entry.reference
        )
    assert x3.receivable_total() == expected_total
    # and our own records say the same as X3
    posted = Posting.objects.filter(tenant=tenant, order_id=order_id, status=S.POSTED)
    assert sum((p.total for p in posted), D(0)) == expected_total
    assert {p.x3_document_number for p in posted} == {f"ODG-{i:06d}" for i in range(1, len(x3.entries) + 1)}


def test_order_confirmed_after_pending_books_on_the_confirmation_date(tenant, bc, x3, sync):
    # given an order placed on the 31st, unpaid
    bc.put_order(
        order_json(
            250,
            status_id=7,
            date_created="Tue, 31 Mar 2026 22:00:00 +0000",
            date_modified="Tue, 31 Mar 2026 22:00:00 +0000",
        )
    )
    assert sync().posting_status == S.WAITING
    assert x3.entries == []

    # when it is paid on the 2nd
    bc.put_order(
        order_json(
            250,
            status_id=11,
            date_created="Tue, 31 Mar 2026 22:00:00 +0000",
            date_modified="Thu, 02 Apr 2026 09:00:00 +0000",
        )
    )
    result = sync()

    # then one entry, dated the 2nd (default policy: the confirmation date)
    assert result.posting_status == S.POSTED
    assert entries(x3) == [("BC-abc123-250", D("97.20"))]
    assert x3.entries[0].accounting_date.isoformat() == "2026-04-02"
    assert_books(x3, tenant, 250, D("97.20"))


def test_gl_date_policy_created_books_on_the_order_date(tenant, bc, x3, sync):
    tenant.gl_date_policy = "created"
    tenant.save()
    bc.put_order(order_json(250, status_id=7, date_created="Tue, 31 Mar 2026 22:00:00 +0000"))
    sync()
    bc.put_order(
        order_json(
            250,
            status_id=11,
            date_created="Tue, 31 Mar 2026 22:00:00 +0000",
            date_modified="Thu, 02 Apr 2026 09:00:00 +0000",
        )
    )
    sync()
    assert x3.entries[0].accounting_date.isoformat() == "2026-03-31"


def test_created_for_an_unpaid_order_posts_nothing(tenant, bc, x3, sync):
    bc.put_order(order_json(250, status_id=0))  # Incomplete (failed payment)
    assert sync().posting_status == S.WAITING
    bc.put_order(order_json(250, status_id=6))  # Declined
    assert sync().posting_status == S.SKIPPED
    assert x3.entries == []


def test_two_partial_refunds_then_a_full_refund(tenant, bc, x3, sync):
    # given a posted order of 97.20 (2 mugs at 21.60 inc tax, 1 tee at 43.20, shipping 10.80)
    bc.put_order(order_json(250))
    sync()
    # when a mug is refunded, then the shipping, then everything else
    bc.add_refund(
        250, 1, total="21.60", tax="1.60", items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}]
    )
    bc.put_order(order_json(250, status_id=14))
    sync(refund_id=1)
    bc.add_refund(250, 2, total="10.80", tax="0.80", items=[{"item_type": "SHIPPING", "item_id": 99}])
    sync(refund_id=2)
    bc.add_refund(
        250,
        3,
        total="64.80",
        tax="4.80",
        items=[
            {"item_type": "PRODUCT", "item_id": 11, "quantity": 1},
            {"item_type": "PRODUCT", "item_id": 12, "quantity": 1},
        ],
    )
    bc.put_order(order_json(250, status_id=4))
    sync(refund_id=3)

    # then four entries; the refunds are negative on the order's own accounts
    assert entries(x3) == [
        ("BC-abc123-250", D("97.20")),
        ("BC-abc123-250-R1", D("-21.60")),
        ("BC-abc123-250-R2", D("-10.80")),
        ("BC-abc123-250-R3", D("-64.80")),
    ]
    first = {(line.account, line.debit, line.credit) for line in x3.entries[1].lines}
    assert first == {
        ("412000", D("-21.60"), D("0")),
        ("702000", D("0"), D("-20.00")),
        ("442570", D("0"), D("-1.60")),
    }
    shipping = {(line.account, line.credit) for line in x3.entries[2].lines if line.credit}
    assert shipping == {("702800", D("-10.00")), ("442570", D("-0.80"))}
    assert_books(x3, tenant, 250, D("0.00"))


def test_refund_accounts_come_from_the_posting_not_todays_mapping(tenant, bc, x3, sync):
    bc.put_order(order_json(250))
    sync()
    tenant.channel_mappings.filter(channel_id=2).update(revenue_account="799999", tax_account="449999")
    bc.add_refund(
        250, 1, total="21.60", tax="1.60", items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}]
    )
    sync(refund_id=1)
    assert {line.account for line in x3.entries[1].lines} == {"412000", "702000", "442570"}


@pytest.mark.parametrize(
    "policy,expected",
    [
        ("refund_account", {("412000", D("-20.00"), D("0")), ("709999", D("0"), D("-20.00"))}),
        (
            "proportional",
            {
                ("412000", D("-20.00"), D("0")),
                ("702000", D("0"), D("-16.46")),
                ("702800", D("0"), D("-2.06")),
                ("442570", D("0"), D("-1.48")),
            },
        ),
    ],
)
def test_custom_amount_refund_under_each_policy(tenant, bc, x3, sync, policy, expected):
    tenant.order_refund_policy = policy
    tenant.refund_account = "709999"
    tenant.save()
    bc.put_order(order_json(250))
    sync()
    bc.add_refund(
        250,
        5,
        total="20.00",
        tax="0",
        items=[{"item_type": "ORDER", "item_id": 250, "requested_amount": D("20.00")}],
    )
    sync(refund_id=5)
    assert {(line.account, line.debit, line.credit) for line in x3.entries[1].lines} == expected
    assert_books(x3, tenant, 250, D("77.20"))


def test_refund_webhook_before_the_orders_posting_waits_for_it(tenant, bc, x3, sync):
    # given X3 is down when the order first syncs
    bc.put_order(order_json(250))
    x3.fail_next = [RetryableError("connection refused")]
    sync()
    assert Posting.objects.get(idempotency_key="order:250").status == S.RETRY
    # when the refund webhook arrives
    bc.add_refund(
        250, 1, total="21.60", tax="1.60", items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}]
    )
    sync(refund_id=1)
    # then the refund waits, nothing reached X3 in the wrong order
    assert Posting.objects.get(idempotency_key="refund:250:1").status == S.WAITING
    assert x3.entries == []
    # when the order's entry is finally posted (sweep/retry), the refund follows it
    Posting.objects.filter(idempotency_key="order:250").update(next_attempt_at=None)
    sync(trigger="sweep")
    assert entries(x3) == [("BC-abc123-250", D("97.20")), ("BC-abc123-250-R1", D("-21.60"))]
    assert_books(x3, tenant, 250, D("75.60"))


def test_waiting_refund_is_released_when_the_order_posts_asynchronously(
    tenant, bc, x3, sync, monkeypatch, django_capture_on_commit_callbacks
):
    from connector.pipeline import deliver_posting as submit_posting

    released = []
    monkeypatch.setattr("connector.tasks.enqueue_order_sync", lambda t, o: released.append((t, o)))
    bc.put_order(order_json(250))
    x3.fail_next = [RetryableError("down")]
    sync()
    bc.add_refund(
        250, 1, total="21.60", tax="1.60", items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}]
    )
    sync(refund_id=1)
    order_posting = Posting.objects.get(idempotency_key="order:250")
    Posting.objects.filter(pk=order_posting.pk).update(next_attempt_at=None)

    # when the sweep's retry posts the order entry on its own (not through a sync of the order)
    with django_capture_on_commit_callbacks(execute=True):
        assert submit_posting(order_posting.pk, client=x3) == "posted"

    # then a sync of the order is queued, which plans the waiting refund
    assert released == [(tenant.pk, 250)]


def test_refund_and_status_update_for_the_same_refund_post_once(tenant, bc, x3, sync):
    bc.put_order(order_json(250))
    sync()
    bc.add_refund(
        250, 1, total="21.60", tax="1.60", items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}]
    )
    bc.put_order(order_json(250, status_id=14))
    sync(refund_id=1)  # store/order/refund/created
    sync()  # store/order/statusUpdated to Partially Refunded
    sync(refund_id=1)  # a retry of the refund webhook
    assert entries(x3) == [("BC-abc123-250", D("97.20")), ("BC-abc123-250-R1", D("-21.60"))]
    assert_books(x3, tenant, 250, D("75.60"))


def test_cancel_after_posting_reverses_then_reconfirm_posts_again(tenant, bc, x3, sync):
    bc.put_order(order_json(250))
    sync()
    bc.put_order(order_json(250, status_id=5, date_modified="Fri, 10 Apr 2026 08:00:00 +0000"))
    assert sync().outcome == "reversed"
    bc.put_order(order_json(250, status_id=11, date_modified="Sat, 11 Apr 2026 08:00:00 +0000"))
    assert sync().outcome == "adjusted"

    assert entries(x3) == [
        ("BC-abc123-250", D("97.20")),
        ("BC-abc123-250-V1", D("-97.20")),
        ("BC-abc123-250-A1", D("97.20")),
    ]
    reversal = x3.entries[1]
    assert reversal.accounting_date.isoformat() == "2026-04-10"
    # the reversal is the exact storno of the order entry: same accounts and sides, negative amounts
    original = sorted((line.account, line.debit, line.credit) for line in x3.entries[0].lines)
    storno = sorted((line.account, -line.debit, -line.credit) for line in reversal.lines)
    assert original == storno
    assert_books(x3, tenant, 250, D("97.20"))


def test_archived_order_is_reversed(tenant, bc, x3, sync):
    bc.put_order(order_json(250))
    sync()
    bc.put_order(order_json(250, is_deleted=True))
    sync()
    assert entries(x3) == [("BC-abc123-250", D("97.20")), ("BC-abc123-250-V1", D("-97.20"))]
    assert_books(x3, tenant, 250, D("0.00"))


def test_order_edited_after_posting_posts_only_the_difference(tenant, bc, x3, sync):
    bc.put_order(order_json(250))
    sync()
    # a third mug is added: +20.00 revenue, +1.60 tax, +7.50 cost
    bc.put_order(
        order_json(
            250,
            products=[
                {"id": 11, "sku": "MUG-1", "quantity": 3, "price_ex": "20.00", "tax": "4.80", "cost": "7.50"},
                {
                    "id": 12,
                    "sku": "TEE-2",
                    "quantity": 1,
                    "price_ex": "40.00",
                    "tax": "3.20",
                    "cost": "15.00",
                },
            ],
        )
    )
    assert sync().outcome == "adjusted"

    assert entries(x3) == [("BC-abc123-250", D("97.20")), ("BC-abc123-250-A1", D("21.60"))]
    delta = {(line.account, line.debit, line.credit) for line in x3.entries[1].lines}
    assert delta == {
        ("412000", D("21.60"), D("0")),
        ("702000", D("0"), D("20.00")),
        ("442570", D("0"), D("1.60")),
        ("602000", D("7.50"), D("0")),
        ("372000", D("0"), D("7.50")),
    }
    adjustment = Posting.objects.get(idempotency_key="adjustment:250:1")
    assert adjustment.parent.idempotency_key == "order:250"
    assert_books(x3, tenant, 250, D("118.80"))


def test_replay_of_a_fully_posted_order_posts_nothing(tenant, bc, x3, sync):
    bc.put_order(order_json(250))
    sync()
    bc.add_refund(
        250, 1, total="21.60", tax="1.60", items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}]
    )
    sync(refund_id=1)
    before = list(x3.entries)
    results = [sync(trigger="replay") for _ in range(3)]
    assert [r.outcome for r in results] == ["already-posted"] * 3
    assert x3.entries == before
    assert_books(x3, tenant, 250, D("75.60"))


def test_channel_changed_after_posting_moves_the_amounts_to_the_new_accounts(tenant, bc, x3, sync):
    bc.put_order(order_json(250, channel_id=2))
    sync()
    bc.put_order(order_json(250, channel_id=3))
    assert sync().outcome == "adjusted"

    moved = {(line.account, line.debit, line.credit) for line in x3.entries[1].lines}
    assert moved == {
        # off the old channel's accounts …
        ("412000", D("-97.20"), D("0")),
        ("702000", D("0"), D("-80.00")),
        ("702800", D("0"), D("-10.00")),
        ("442570", D("0"), D("-7.20")),
        ("602000", D("-30.00"), D("0")),
        ("372000", D("0"), D("-30.00")),
        # … onto the new one's
        ("413000", D("97.20"), D("0")),
        ("703000", D("0"), D("80.00")),
        ("703800", D("0"), D("10.00")),
        ("443570", D("0"), D("7.20")),
        ("603000", D("30.00"), D("0")),
        ("373000", D("0"), D("30.00")),
    }
    assert_books(x3, tenant, 250, D("97.20"))


def test_channel_changed_to_an_unmapped_channel_is_parked(tenant, bc, x3, sync):
    bc.put_order(order_json(250, channel_id=2))
    sync()
    bc.put_order(order_json(250, channel_id=42))
    sync()
    parked = Posting.objects.get(idempotency_key="adjustment:250:1")
    assert parked.status == S.NEEDS_MAPPING and "channel 42" in parked.last_error
    tenant.channel_mappings.filter(channel_id=3).update(channel_id=42)
    sync(trigger="admin")
    parked.refresh_from_db()
    assert parked.status == S.POSTED
    assert len(x3.entries) == 2


def test_over_refund_is_parked_for_review(tenant, bc, x3, sync):
    bc.put_order(order_json(250))
    sync()
    bc.add_refund(
        250,
        1,
        total="90.00",
        tax="0",
        items=[{"item_type": "ORDER", "item_id": 250, "requested_amount": D("90")}],
    )
    bc.add_refund(
        250,
        2,
        total="20.00",
        tax="0",
        items=[{"item_type": "ORDER", "item_id": 250, "requested_amount": D("20")}],
    )
    sync(refund_id=2)
    over = Posting.objects.get(idempotency_key="refund:250:2")
    assert over.status == S.NEEDS_ATTENTION and "Over-refund" in over.last_error
    assert entries(x3) == [("BC-abc123-250", D("97.20")), ("BC-abc123-250-R1", D("-90.00"))]


def test_declined_refund_posts_nothing(tenant, bc, x3, sync):
    bc.put_order(order_json(250))
    sync()
    bc.add_refund(
        250,
        1,
        total="21.60",
        tax="1.60",
        declined=True,
        items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}],
    )
    sync(refund_id=1)
    assert Posting.objects.get(idempotency_key="refund:250:1").status == S.SKIPPED
    assert len(x3.entries) == 1


def test_restocked_refund_reverses_cost_of_goods_when_chosen(tenant, bc, x3, sync):
    tenant.refund_restock_cogs = True
    tenant.save()
    bc.put_order(order_json(250))
    sync()
    bc.add_refund(
        250, 1, total="21.60", tax="1.60", items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}]
    )
    sync(refund_id=1)
    cogs = {
        (line.account, line.debit, line.credit)
        for line in x3.entries[1].lines
        if line.account[:2] in ("60", "37")
    }
    assert cogs == {("602000", D("-7.50"), D("0")), ("372000", D("0"), D("-7.50"))}


# --- Property: whatever happens to an order, its entries add up to what BigCommerce shows ------------------------

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ORDER_IDS = iter(range(10_000, 1_000_000))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), st.integers(1, 5), st.integers(0, 3)),
        st.tuples(st.just("channel"), st.sampled_from([1, 2, 3])),
        st.tuples(st.just("status"), st.sampled_from([1, 5, 7, 10, 11])),
        st.tuples(st.just("refund"), st.integers(1, 2)),
        st.tuples(st.just("x3_down")),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(ops=[("status", 1), ("edit", 3, 0)])
@given(ops=operations)
def test_any_history_of_an_order_keeps_the_books_equal_to_the_order(tenant, ops):
    # each example gets its own order (posted rows cannot be deleted between examples)
    oid = next(ORDER_IDS)
    bc, x3 = FakeBigCommerce(), FakeX3()
    state = {"mugs": 2, "tees": 1, "channel": 2, "status": 11}
    refund_ids = iter(range(1, 100))

    def put():
        bc.put_order(
            order_json(
                oid,
                channel_id=state["channel"],
                status_id=state["status"],
                products=[
                    {
                        "id": 11,
                        "sku": "MUG",
                        "quantity": state["mugs"],
                        "price_ex": "20.00",
                        "tax": str(D("1.60") * state["mugs"]),
                        "cost": "7.50",
                    },
                    {
                        "id": 12,
                        "sku": "TEE",
                        "quantity": state["tees"],
                        "price_ex": "40.00",
                        "tax": str(D("3.20") * state["tees"]),
                        "cost": "15.00",
                    },
                ]
                if state["tees"]
                else [
                    {
                        "id": 11,
                        "sku": "MUG",
                        "quantity": state["mugs"],
                        "price_ex": "20.00",
                        "tax": str(D("1.60") * state["mugs"]),
                        "cost": "7.50",
                    },
                ],
            )
        )

    def run(refund_id=None):
        sync_order(
            tenant=tenant, order_id=oid, trigger="webhook", refund_id=refund_id, bc_client=bc, x3_client=x3
        )

    put()
    run()
    for op in ops:
        if op[0] == "edit":
            state["mugs"], state["tees"] = op[1], op[2]
        elif op[0] == "channel":
            state["channel"] = op[1]
        elif op[0] == "status":
            state["status"] = op[1]
        elif op[0] == "x3_down":
            x3.fail_next = [RetryableError("down")]
        put()
        refund_id = None
        if op[0] == "refund":
            refund_id = next(refund_ids)
            bc.add_refund(
                oid, refund_id, total="10.80", tax="0.80", items=[{"item_type": "SHIPPING", "item_id": 99}]
            )
        run(refund_id)
    # let retries through, as the sweep would
    for _ in range(3):
        Posting.objects.filter(order_id=oid, status__in=[S.RETRY, S.UNKNOWN]).update(next_attempt_at=None)
        run()

    order = bc.get_order(oid)
    void = order.status_id in (5, 6)
    confirmed_once = Posting.objects.filter(order_id=oid, kind="order", status=S.POSTED).exists()
    refunds = Posting.objects.filter(order_id=oid, kind="refund", status=S.POSTED)
    assert all(p.total == D("-10.80") for p in refunds)
    expected = D(0) if void or not confirmed_once else order.total_inc_tax.quantize(D("0.01"))
    expected += sum((p.total for p in refunds), D(0))
    for entry in x3.entries:
        assert sum(line.debit for line in entry.lines) == sum(line.credit for line in entry.lines)
    assert x3.receivable_total() == expected
    # nothing is left half-done, and nothing was posted twice
    assert not Posting.objects.filter(
        order_id=oid, status__in=[S.PENDING, S.POSTING, S.RETRY, S.UNKNOWN]
    ).exists()
    assert len({e.reference for e in x3.entries}) == len(x3.entries)


# --- Replay command -----------------------------------------------------------------------------------------------


def test_replay_command_by_id_and_by_date_range(tenant, bc, x3, monkeypatch):
    from io import StringIO

    from django.core.management import CommandError, call_command

    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda t: bc)
    monkeypatch.setattr("connector.clients.x3_client", lambda t: x3)
    bc.put_order(order_json(250))
    bc.put_order(order_json(251, status_id=7))
    out = StringIO()
    call_command("replay_orders", "--tenant", "acme", "250", "251", stdout=out)
    call_command("replay_orders", "--tenant", "acme", "250", stdout=out)
    text = out.getvalue()
    assert "order 250: created (posted)" in text and "order 251: created (waiting)" in text
    assert "order 250: already-posted (posted)" in text
    assert len(x3.entries) == 1

    bc.orders[250]["date_modified"] = "Thu, 05 Mar 2026 10:00:00 +0000"
    bc.orders[251]["date_modified"] = "Sun, 05 Apr 2026 10:00:00 +0000"
    out = StringIO()
    call_command(
        "replay_orders", "--tenant", "acme", "--since", "2026-03-01", "--until", "2026-03-31", stdout=out
    )
    assert "order 250" in out.getvalue() and "order 251" not in out.getvalue()

    with pytest.raises(CommandError):
        call_command("replay_orders", "--tenant", "acme")
    with pytest.raises(CommandError):
        call_command("replay_orders", "--tenant", "nobody", "1")
