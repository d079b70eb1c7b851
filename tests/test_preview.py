"""Dry run (connector/preview.py, manage.py preview_orders): real orders → the exact X3 request, nothing sent or stored."""

from __future__ import annotations

import json
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.core.management import CommandError, call_command
from django.utils import timezone
from lxml import etree

from accounting.models import ChannelMapping, GlAccount, Posting
from connector.models import X3Connection
from connector.preview import preview_orders
from tests.conftest import BC_BASE, STORE_HASH, order_json, order_url
from tests.test_x3_graphql import use_connected_app

API = f"{BC_BASE}/stores/{STORE_HASH}"
M = X3Connection.Method


@pytest.fixture
def http():
    # Only BigCommerce is registered: any call to Sage X3 would fail the test with a ConnectionError.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def serve(http, *orders: dict) -> None:
    http.get(
        f"{API}/v2/orders",
        json=[{k: o[k] for k in ("id", "date_modified", "status_id", "channel_id")} for o in orders],
    )
    for order in orders:
        http.get(order_url(order["id"]), json=order)


def assert_nothing_written(http) -> None:
    assert Posting.objects.count() == 0
    assert all(urlsplit(c.request.url).netloc == urlsplit(BC_BASE).netloc for c in http.calls)
    assert all(c.request.method == "GET" for c in http.calls)


def test_api1_body_lines_and_balance_for_the_newest_orders(tenant, http):
    serve(http, order_json(251), order_json(250))
    result = preview_orders(tenant, last=2)
    assert not result.error and [o.order_id for o in result.orders] == [251, 250]
    listing = next(c for c in http.calls if urlsplit(c.request.url).path.endswith("/v2/orders"))
    query = parse_qs(urlsplit(listing.request.url).query)
    assert query["sort"] == ["date_created:desc"] and query["limit"] == ["2"]  # newest first
    order = result.orders[1]
    assert order.state == "post" and order.ok and order.balanced
    assert order.reference == "BC-abc123-250"
    assert order.total_debit == order.total_credit > 0
    assert str(order.lines[0].debit).count(".") == 1 and len(str(order.lines[0].debit).split(".")[1]) == 2
    body = json.loads(order.body)  # the api1 payload the REST client would POST
    assert body["REFINT"] == "BC-abc123-250" and body["JOU"] == "VEN"
    assert {row["ACC"] for row in body["GACCENTRYD"]} == {ln.account for ln in order.lines}
    assert order.body_format == "api1 JSON"
    assert_nothing_written(http)


def test_graphql_body_has_the_mutation_and_variables(tenant, http):
    use_connected_app(tenant.x3)
    serve(http, order_json(250))
    (order,) = preview_orders(tenant, last=1).orders
    body = json.loads(order.body)
    assert "mutation" in body["query"] and "BC-abc123-250" in json.dumps(body["variables"])
    assert order.body_format == "GraphQL query and variables"
    assert_nothing_written(http)  # no token was asked for either


def test_soap_body_is_the_object_xml(tenant, http):
    X3Connection.objects.filter(tenant=tenant).update(method=M.SOAP_BASIC, soap_public_name="ZGAS")
    tenant.refresh_from_db()
    serve(http, order_json(250))
    (order,) = preview_orders(tenant, last=1).orders
    root = etree.fromstring(order.body.encode())
    assert "BC-abc123-250" in etree.tostring(root, encoding="unicode")
    assert order.body_format == "SOAP object XML"
    assert_nothing_written(http)


def test_gaps_no_mapping_inactive_mapping_unknown_and_closed_accounts(tenant, http):
    ChannelMapping.objects.filter(tenant=tenant, channel_id=3).update(is_active=False)
    now = timezone.now()
    for code, postable in (("412000", True), ("702000", True), ("702800", False), ("442570", True)):
        GlAccount.objects.create(
            tenant=tenant, code=code, name=f"Account {code}", postable=postable, refreshed_at=now
        )
    serve(http, order_json(252, channel_id=99), order_json(251, channel_id=3), order_json(250, channel_id=2))
    unmapped, inactive, mapped = preview_orders(tenant, last=3).orders
    assert [g.kind for g in unmapped.gaps] == ["no_mapping"] and unmapped.lines == () and unmapped.body == ""
    assert unmapped.state == "unmapped"
    assert inactive.gaps[0].kind == "inactive_mapping" and inactive.lines and inactive.state == "unmapped"
    kinds = {g.kind: g.message for g in mapped.gaps}
    assert "closed_account" in kinds and "702800" in kinds["closed_account"]
    assert "unknown_account" in kinds  # 702900 (discount), 602000/372000 (COGS) are not in the chart
    assert mapped.lines[0].account_name == "Account 412000"
    assert_nothing_written(http)


def test_rounding_line_is_shown_with_its_amount(tenant, http):
    serve(http, order_json(250, total_inc_tax="98.21"))  # one cent BigCommerce cannot explain
    (order,) = preview_orders(tenant, last=1).orders
    assert order.balanced and order.rounding != 0
    assert any(ln.is_rounding and ln.account == "658000" for ln in order.lines)


def test_bigcommerce_401_and_outage_are_one_plain_line(tenant, http):
    http.get(f"{API}/v2/orders", status=401, json={"status": 401, "title": "Unauthorized"})
    result = preview_orders(tenant, last=5)
    assert result.orders == () and "refused the access token" in result.error
    http.replace(responses.GET, f"{API}/v2/orders", body=requests.ConnectionError("refused"))
    result = preview_orders(tenant, last=5)
    assert "could not be reached" in result.error and "\n" not in result.error


def test_command_text_and_json(tenant, http):
    serve(http, order_json(250))
    out = StringIO()
    call_command("preview_orders", "acme", "--last", "1", stdout=out)
    text = out.getvalue()
    assert "Order 250" in text and "balanced" in text and "nothing sent to Sage X3" in text
    assert '"REFINT":"BC-abc123-250"' in text  # the exact body, as sent
    out = StringIO()
    call_command("preview_orders", "acme", "--order", "250", "--format", "json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["sent_to_x3"] is False and data["orders"][0]["balanced"] is True
    assert data["orders"][0]["lines"][0]["debit"].count(".") == 1
    assert_nothing_written(http)


@pytest.mark.parametrize(
    "args",
    [
        ("nobody",),
        ("acme", "--last", "0"),
        ("acme", "--last", "x"),
        ("acme", "--last", "1000"),
        ("acme", "--order", "abc"),
        ("acme", "--format", "xml"),
    ],
)
def test_command_bad_input_is_exit_code_2(tenant, args):
    with pytest.raises(CommandError) as caught:
        call_command("preview_orders", *args)
    assert caught.value.returncode == 2


def test_command_bigcommerce_down_is_one_line_exit_1(tenant, http):
    http.get(f"{API}/v2/orders", status=401, json={"status": 401, "title": "Unauthorized"})
    with pytest.raises(CommandError) as caught:
        call_command("preview_orders", "acme")
    assert (
        caught.value.returncode == 1 and "access token" in str(caught.value) and "\n" not in str(caught.value)
    )


def test_blank_required_account_and_missing_rounding_account_are_gaps(tenant, http):
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).update(tax_account="")
    type(tenant).objects.filter(pk=tenant.pk).update(rounding_account="")
    tenant.refresh_from_db()
    serve(http, order_json(250, total_inc_tax="98.21"))
    (order,) = preview_orders(tenant, last=1).orders
    messages = [g.message for g in order.gaps if g.kind == "blank_account"]
    assert any("tax account" in m for m in messages) and any("rounding account" in m for m in messages)
    assert_nothing_written(http)


def test_an_order_that_does_not_exist_is_reported_alone(tenant, http):
    http.get(
        order_url(404), status=404, json={"status": 404, "title": "The requested resource was not found"}
    )
    http.get(order_url(250), json=order_json(250))
    missing, found = preview_orders(tenant, order_ids=[404, 250]).orders
    assert "does not exist" in missing.error and found.ok


def test_orders_carry_the_stores_channel_name_and_the_threshold_reads_like_money(tenant, http):
    from connector.models import StoreChannel

    StoreChannel.objects.create(
        tenant=tenant, channel_id=2, name="Amazon EU", type="marketplace", refreshed_at=timezone.now()
    )
    serve(http, order_json(251, channel_id=3), order_json(250, total_inc_tax="99.20"))
    by_id = {o.order_id: o for o in preview_orders(tenant, last=2).orders}
    assert by_id[250].channel_name == "Amazon EU"  # the store's name, not the mapping's "Channel 2"
    assert by_id[251].channel_name == "Channel 3"  # no store name read: the mapping's
    assert by_id[250].flag_reason.endswith("(threshold 0.05 USD)")  # not the stored 0.0500
