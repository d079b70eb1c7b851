"""The chart of accounts: refreshed from X3 (api1 here, unit HTTP), cached per tenant, mappings checked against it,
names shown next to codes."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import responses
import tablib
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import Schedule

from accounting.admin import ChannelMappingResource
from accounting.chart import mapping_account_warnings, store_chart, suggestions
from accounting.models import ChannelMapping, GlAccount, GlChart, Posting
from connector.chart import refresh_chart
from connector.configuration import ConfigurationError, apply_document
from connector.pipeline import sync_order
from connector.schedules import ensure_schedules
from integrations.sagex3.accounts import Account
from tests.conftest import X3_BASE, X3_ENTRY_URL, X3_PASSWORD, order_json, order_url

ACCOUNTS_URL = f"{X3_BASE}/api1/x3/erp/SEED/GACCOUNT"
FIRST_PAGE = f"{ACCOUNTS_URL}?representation=GACCOUNT.$query&count=200&orderBy={quote('ACC asc', safe='')}"
# The accounts the tenant fixture's channel 1 maps to, plus a closed one and a neighbour for suggestions.
CHART = [
    Account("411000", "Customers"),
    Account("701000", "Sales channel 1"),
    Account("701800", "Shipping channel 1"),
    Account("441570", "VAT collected"),
    Account("701900", "Discounts channel 1"),
    Account("601000", "Purchases"),
    Account("371000", "Stock"),
    Account("707000", "Sales of goods"),
    Account("707100", "Sales of goods - marketplace", postable=False),
]


def records(accounts):
    return [{"ACC": a.code, "DES": a.name, "ENAFLG": 2 if a.postable else 1, "DIE": ""} for a in accounts]


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def chart(tenant):
    store_chart(tenant.pk, CHART)
    return tenant


# --- refresh ------------------------------------------------------------------------------------------------------


def test_refresh_reads_the_chart_through_api1_and_replaces_the_cache(tenant, http):
    GlAccount.objects.create(tenant=tenant, code="999999", name="Gone", refreshed_at="2026-01-01T00:00Z")
    http.get(FIRST_PAGE, json={"$resources": records(CHART[:3]), "$links": {}})

    result = refresh_chart(tenant)

    assert result.ok and result.accounts == 3 and result.calls == 1
    assert dict(GlAccount.objects.filter(tenant=tenant).values_list("code", "name")) == {
        "411000": "Customers",
        "701000": "Sales channel 1",
        "701800": "Shipping channel 1",
    }
    chart = GlChart.objects.get(tenant=tenant)
    assert chart.ok and chart.account_count == 3 and chart.refreshed_at is not None


def test_refresh_follows_pages_by_key(tenant, http):
    tenant.x3.chart_query = {"page_size": 2}
    tenant.x3.save()
    first = f"{ACCOUNTS_URL}?representation=GACCOUNT.$query&count=2&orderBy={quote('ACC asc', safe='')}"
    http.get(first, json={"$resources": records(CHART[:2])})
    http.get(f"{first}&key=gt.701000", json={"$resources": records(CHART[2:3])})

    result = refresh_chart(tenant)

    assert result.ok and result.accounts == 3 and result.calls == 2


def test_a_failed_refresh_keeps_the_last_chart_and_says_why(chart, http):
    http.get(FIRST_PAGE, status=401, json={"$diagnoses": [{"$severity": "error", "$message": "Bad user"}]})

    result = refresh_chart(chart)

    assert not result.ok and "Bad user" in result.message
    assert GlAccount.objects.filter(tenant=chart).count() == len(CHART)
    state = GlChart.objects.get(tenant=chart)
    assert not state.ok and "Bad user" in state.message and X3_PASSWORD not in state.message


def test_an_empty_answer_never_wipes_the_chart(chart, http):
    http.get(FIRST_PAGE, json={"$resources": []})
    result = refresh_chart(chart)
    assert not result.ok and GlAccount.objects.filter(tenant=chart).count() == len(CHART)


def test_refresh_accounts_command(tenant, http, capsys):
    http.get(FIRST_PAGE, json={"$resources": records(CHART)})
    call_command("refresh_accounts", "--tenant", "acme")
    assert "9 accounts read from Sage X3 (1 closed to postings)" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No tenant"):
        call_command("refresh_accounts", "--tenant", "nobody")


def test_refresh_accounts_command_fails_loudly(tenant, http):
    http.get(FIRST_PAGE, status=500)
    with pytest.raises(CommandError, match="failed"):
        call_command("refresh_accounts", "--tenant", "acme")


@pytest.mark.django_db
def test_daily_schedule_exists():
    ensure_schedules()
    schedule = Schedule.objects.get(name="connector-refresh-charts")
    assert schedule.func == "connector.tasks.refresh_charts" and schedule.minutes == 24 * 60


def test_an_invalid_chart_query_cannot_be_saved(tenant):
    tenant.x3.chart_query = {"class": "GACCOUNT?x=1", "colour": "red"}
    with pytest.raises(ValidationError) as caught:
        tenant.x3.full_clean()
    text = str(caught.value.message_dict["chart_query"])
    assert "unknown key 'colour'" in text and "'class' must be an X3 code" in text


# --- mappings checked against the chart ----------------------------------------------------------------------------


def test_suggestions_by_prefix_then_similarity():
    codes = ["707000", "707100", "708500", "411000"]
    assert suggestions("707001", codes)[:2] == ["707000", "707100"]
    assert suggestions("411001", codes)[0] == "411000"
    assert suggestions("ZZZ", codes) == []


def test_unknown_account_is_an_error_with_a_suggestion(chart):
    mapping = ChannelMapping.objects.get(tenant=chart, channel_id=1)
    mapping.revenue_account = "707001"
    with pytest.raises(ValidationError) as caught:
        mapping.full_clean()
    message = caught.value.message_dict["revenue_account"][0]
    assert "707001 is not in the Sage X3 chart" in message and "Did you mean 707000" in message
    assert "707100" not in message  # closed accounts are never suggested


def test_closed_account_is_an_error(chart):
    mapping = ChannelMapping.objects.get(tenant=chart, channel_id=1)
    mapping.revenue_account = "707100"
    with pytest.raises(ValidationError, match="707100 is closed to postings"):
        mapping.full_clean()


def test_known_accounts_pass(chart):
    ChannelMapping.objects.get(tenant=chart, channel_id=1).full_clean()


def test_without_a_chart_only_a_warning(tenant):
    mapping = ChannelMapping.objects.get(tenant=tenant, channel_id=1)
    mapping.revenue_account = "000000"
    mapping.full_clean()  # no error
    assert "No Sage X3 chart of accounts is loaded" in mapping_account_warnings(mapping)[0]
    store_chart(tenant.pk, CHART)
    assert mapping_account_warnings(mapping) == []


def test_import_refuses_an_unknown_account(chart):
    dataset = tablib.Dataset(
        headers=[
            "tenant",
            "channel_id",
            "receivable_account",
            "revenue_account",
            "shipping_account",
            "tax_account",
        ]
    )
    dataset.append(["acme", 1, "411000", "707002", "701800", "441570"])
    result = ChannelMappingResource().import_data(dataset, dry_run=False)
    assert result.has_validation_errors()
    assert ChannelMapping.objects.get(tenant=chart, channel_id=1).revenue_account == "701000"


def test_tenant_file_refuses_an_unknown_account(chart):
    doc = {"tenant": {"slug": "acme"}, "channels": [{"channel_id": 1, "revenue_account": "707002"}]}
    with pytest.raises(ConfigurationError, match="707002 is not in the Sage X3 chart"):
        apply_document(doc)


def test_mapping_admin_refuses_an_unknown_account_and_shows_names(admin_client, chart):
    mapping = ChannelMapping.objects.get(tenant=chart, channel_id=1)
    url = f"/admin/accounting/channelmapping/{mapping.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert "Sales channel 1" in page and "Customers" in page
    data = {
        f.name: getattr(mapping, f.name) or ""
        for f in ChannelMapping._meta.fields
        if f.name not in ("id", "created_at", "updated_at")
    }
    data.update(tenant=chart.pk, is_active="on", revenue_account="707002")
    response = admin_client.post(url, data)
    assert response.status_code == 200 and "Did you mean 707000" in response.content.decode()

    listing = admin_client.get("/admin/accounting/channelmapping/").content.decode()
    assert "Sales channel 1" in listing


def test_mapping_changelist_reads_names_once_per_tenant(admin_client, chart):
    admin_client.get("/admin/accounting/channelmapping/")  # warm caches (session, content types)
    with CaptureQueriesContext(connection) as queries:
        admin_client.get("/admin/accounting/channelmapping/")
    assert sum("accounting_glaccount" in q["sql"] for q in queries.captured_queries) == 1


def test_posting_lines_show_account_names(admin_client, chart):
    store_chart(
        chart.pk, [*CHART, Account("702000", "Sales channel 2"), Account("442570", "VAT collected 2")]
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        http.get(order_url(250), json=order_json(250))
        http.post(X3_ENTRY_URL, json={"NUM": "ODG-1"}, status=201)
        sync_order(tenant=chart, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(f"/admin/accounting/posting/{posting.pk}/change/").content.decode()
    assert "Sales channel 2" in page and "VAT collected 2" in page
    assert sum("accounting_glaccount" in q["sql"] for q in queries.captured_queries) == 1


# --- admin action and test connection -------------------------------------------------------------------------------


def test_refresh_action_on_the_tenant(admin_client, tenant, http):
    http.get(FIRST_PAGE, json={"$resources": records(CHART)})
    response = admin_client.post(
        "/admin/connector/tenant/",
        {"action": "refresh_chart_of_accounts", "_selected_action": [tenant.pk]},
        follow=True,
    )
    assert "Acme Ltd: 9 accounts read from Sage X3" in response.content.decode()
    assert GlAccount.objects.filter(tenant=tenant).count() == 9


def test_x3_test_connection_reads_one_account_when_the_chart_is_used(admin_client, chart, http):
    http.get(f"{X3_ENTRY_URL}?representation=GACCENTRY.$query&count=1", json={"$resources": []})
    http.get(
        f"{ACCOUNTS_URL}?representation=GACCOUNT.$query&count=1&orderBy={quote('ACC asc', safe='')}",
        json={"$resources": records(CHART[:1])},
    )
    response = admin_client.post(f"/admin/connector/tenant/{chart.pk}/x3-test/", follow=True)
    html = response.content.decode()
    assert "Sage X3 connection test passed" in html
    assert "One account read: 411000 Customers (accepts postings)" in html


def test_x3_test_connection_reports_a_failing_account_read(admin_client, tenant, http):
    tenant.x3.chart_query = {"class": "ZACC", "representation": "ZACC"}
    tenant.x3.save()
    http.get(f"{X3_ENTRY_URL}?representation=GACCENTRY.$query&count=1", json={"$resources": []})
    http.get(
        f"{X3_BASE}/api1/x3/erp/SEED/ZACC?representation=ZACC.$query&count=1&orderBy={quote('ACC asc', safe='')}",
        status=404,
    )
    html = admin_client.post(f"/admin/connector/tenant/{tenant.pk}/x3-test/", follow=True).content.decode()
    assert "✗ One account read" in html and "404" in html


def test_chart_query_json_roundtrip(tenant):
    tenant.x3.chart_query = json.loads('{"where": "(COA eq \'PCG\')"}')
    tenant.x3.full_clean()


def test_tenant_page_shows_mapping_account_names(admin_client, chart):
    page = admin_client.get(f"/admin/connector/tenant/{chart.pk}/change/").content.decode()
    assert (
        "Sales channel 1" in page and "not in the loaded chart" in page
    )  # channel 2's accounts are not in CHART


def test_a_blank_chart_query_in_the_admin_form_means_the_defaults(tenant):
    from connector.forms import X3ConnectionForm
    from connector.models import X3Connection

    x3 = tenant.x3
    data = {
        f.name: getattr(x3, f.name)
        for f in X3Connection._meta.fields
        if f.name in X3ConnectionForm.Meta.fields
    }
    data.update(
        password="",
        oauth_client_secret="",
        app_secret="",
        rest_mapping="{}",
        verify_tls="on",
        graphql_variables="",
        graphql_mapping="",
        soap_mapping="",
        chart_query="",
    )
    form = X3ConnectionForm(data=data, instance=x3)
    assert form.is_valid(), form.errors
    assert form.save().chart_query == {}


def test_soap_test_connection_against_the_simulator_reads_one_account(admin_client, tenant):
    from connector.models import X3Connection
    from simulators import sagex3

    server, base = sagex3.start_in_thread(config={"users": {"WEBUSER": X3_PASSWORD}})
    try:
        X3Connection.objects.filter(tenant=tenant).update(
            method=X3Connection.Method.SOAP_BASIC,
            server_url=base,
            soap_public_name="GAS",
            chart_query={"list_size": 100},
        )
        html = admin_client.post(
            f"/admin/connector/tenant/{tenant.pk}/x3-test/", follow=True
        ).content.decode()
        assert "✓ Field mapping" in html
        assert "✓ One account read: 370000 Stock of goods (accepts postings)" in html

        fresh = type(tenant).objects.select_related("x3").get(pk=tenant.pk)
        assert refresh_chart(fresh).ok  # and the whole chart through SOAP, for the refresh
        assert GlAccount.objects.get(tenant=tenant, code="580000").postable is False
    finally:
        server.stop()
