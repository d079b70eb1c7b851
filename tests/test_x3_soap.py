"""Posting through Sage X3 SOAP web services: the tenant's settings, the client factory, the exactly-once gate,
the admin form and "Test connection", and the tenant file format."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
import responses
from django.urls import reverse
from django.utils import timezone
from lxml import etree

from accounting.models import Posting, PostingAttempt
from connector.clients import UnusableX3Client, x3_client
from connector.configuration import ConfigurationError, apply_document
from connector.forms import X3ConnectionForm
from connector.models import X3Connection
from connector.pipeline import deliver_posting as submit_posting
from connector.pipeline import sync_order
from integrations.sagex3.soap import SOAP_PATH, SageX3SoapClient
from tests.conftest import X3_BASE, X3_PASSWORD, order_json, order_url
from tests.integrations.test_sagex3_soap import answer

S = Posting.Status
M = X3Connection.Method
SOAP_URL = X3_BASE + SOAP_PATH


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def soap_tenant(tenant):
    X3Connection.objects.filter(tenant=tenant).update(method=M.SOAP_BASIC, soap_public_name="ZGAS")
    tenant.refresh_from_db()
    return tenant


def soap_calls(http) -> list[tuple[str, etree._Element]]:
    out = []
    for call in http.calls:
        if call.request.url == SOAP_URL:
            operation = etree.fromstring(call.request.body)[0][0]
            out.append((etree.QName(operation).localname, operation))
    return out


def test_x3_client_builds_the_soap_client_from_the_tenant_settings(soap_tenant):
    client = x3_client(soap_tenant)
    assert isinstance(client, SageX3SoapClient)
    config = client.config
    assert (config.pool_alias, config.public_name, config.code_lang) == (
        "SEED",
        "ZGAS",
        "ENG",
    )  # alias: the folder
    assert config.request_config == "adxwss.optreturn=JSON&adxwss.beautify=false"
    assert config.password == X3_PASSWORD and config.endpoint == SOAP_URL

    X3Connection.objects.filter(tenant=soap_tenant).update(soap_pool_alias="WSPOOL", soap_code_lang="FRA")
    soap_tenant.refresh_from_db()
    assert (x3_client(soap_tenant).config.pool_alias, x3_client(soap_tenant).config.code_lang) == (
        "WSPOOL",
        "FRA",
    )


def test_unusable_soap_settings_stop_the_posting_with_the_reason(soap_tenant):
    X3Connection.objects.filter(tenant=soap_tenant).update(soap_public_name="Z-GAS!")
    soap_tenant.refresh_from_db()
    client = x3_client(soap_tenant)
    assert isinstance(client, UnusableX3Client) and "Sage X3 SOAP settings" in client.reason


@pytest.mark.django_db
def test_an_order_posts_through_soap_and_the_audit_trail_keeps_the_exchange(soap_tenant, http):
    # given a confirmed order and an X3 that saves it
    http.get(order_url(250), json=order_json(250))
    http.post(
        SOAP_URL, body=answer("save", 1, [], {"GAS0_1": {"NUM": "ODG-000777"}}), content_type="text/xml"
    )

    # when the order is synced
    result = sync_order(tenant=soap_tenant, order_id=250, trigger="webhook")

    # then it is posted with X3's number, and the SOAP exchange is in the audit trail without the password
    posting = Posting.objects.get()
    assert result.submitted == ("posted",) and posting.x3_document_number == "ODG-000777"
    [(operation, call)] = soap_calls(http)
    assert operation == "save" and call.findtext("publicName") == "ZGAS"
    param = etree.fromstring(call.findtext("objectXml").encode())
    assert param.find("GRP/FLD[@NAME='REFINT']").text == "BC-abc123-250"
    attempt = PostingAttempt.objects.get(posting=posting)
    assert attempt.operation == "create" and "<objectXml>" in attempt.request_body
    assert X3_PASSWORD not in attempt.request_body + attempt.response_body + attempt.url


@pytest.mark.django_db
def test_a_timeout_on_save_is_looked_up_with_query_before_any_resend(soap_tenant, http):
    # given the save times out (X3 may have committed)
    http.get(order_url(250), json=order_json(250))
    http.post(SOAP_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    sync_order(tenant=soap_tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    assert posting.status == S.UNKNOWN

    # when the retry comes and X3 does hold the entry
    http.replace(
        responses.POST,
        SOAP_URL,
        body=answer("query", 1, [], [{"TYP": "ODG", "NUM": "ODG-000042", "REFINT": "BC-abc123-250"}]),
        content_type="text/xml",
    )
    Posting.objects.filter(pk=posting.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    result = submit_posting(posting.pk)

    # then the query found it and nothing was saved again
    posting.refresh_from_db()
    assert result == "found-existing" and posting.x3_document_number == "ODG-000042"
    assert [operation for operation, _ in soap_calls(http)] == ["save", "query"]


@pytest.mark.django_db
def test_an_x3_refusal_stops_at_needs_attention_with_x3s_text(soap_tenant, http):
    http.get(order_url(250), json=order_json(250))
    http.post(SOAP_URL, body=answer("save", 0, [(3, "Account 411000 is closed")]), content_type="text/xml")
    sync_order(tenant=soap_tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    assert posting.status == S.NEEDS_ATTENTION and "Account 411000 is closed" in posting.last_error


def _form_data(x3: X3Connection, **changes) -> dict:
    data = {
        f.name: getattr(x3, f.name)
        for f in X3Connection._meta.fields
        if f.name in X3ConnectionForm.Meta.fields
    }
    data.update(
        tenant=x3.tenant_id,
        password="",
        oauth_client_secret="",
        app_secret="",
        rest_mapping="{}",
        graphql_variables="",
        graphql_mapping="",
        soap_mapping="",
        verify_tls="on",
    )
    data.update(changes)
    return data


def test_the_admin_form_checks_the_soap_mapping_and_public_name(soap_tenant):
    x3 = soap_tenant.x3
    form = X3ConnectionForm(
        data=_form_data(
            x3, method=M.SOAP_BASIC, soap_mapping='{"amount_style": "both"}', soap_public_name="Z-GAS"
        ),
        instance=x3,
    )
    assert not form.is_valid()
    assert "unknown amount_style" in str(form.errors["soap_mapping"])
    assert "at most 10" in str(form.errors["soap_public_name"])

    x3 = X3Connection.objects.get(pk=x3.pk)  # the refused form changed its instance
    form = X3ConnectionForm(
        data=_form_data(x3, method=M.SOAP_BASIC, soap_mapping='{"lines_group": "GAS1_2"}'), instance=x3
    )
    assert form.is_valid(), form.errors
    saved = form.save()
    assert saved.soap_mapping == {"lines_group": "GAS1_2"} and saved.password == X3_PASSWORD  # kept


def test_the_admin_test_connection_reports_each_step(soap_tenant, admin_client, http):
    # given a publication whose lines are not where the mapping sends them
    description = (
        '<ADXDESC><GRP ID="GAS0_1">'
        + "".join(
            f'<FLD NAME="{n}"/>' for n in ("TYP", "JOU", "FCY", "ACCDAT", "CUR", "DESVCR", "REFINT", "BPRVCR")
        )
        + '</GRP><TAB ID="GAS1_9"><FLD NAME="ACC"/><FLD NAME="DES"/><FLD NAME="DEB"/><FLD NAME="CDT"/></TAB></ADXDESC>'
    )
    http.post(SOAP_URL, body=answer("getDescription", 1, [], description), content_type="text/xml")
    url = reverse("admin:connector_tenant_x3_test", args=[soap_tenant.pk])

    # when an administrator runs the test
    assert "one step after the other" in admin_client.get(url).content.decode()
    page = admin_client.post(url, follow=True).content.decode()

    # then every step is reported, the mapping step with what to change
    assert "✓ Server reachable" in page and "✓ Credentials accepted" in page and "✓ Publication ZGAS" in page
    assert "✗ Field mapping" in page and "ACC is published in GAS1_9" in page


def test_a_tenant_file_sets_the_soap_method_and_checks_its_mapping(db):
    doc = {
        "tenant": {"slug": "soapy", "name": "Soapy", "rounding_account": "658000"},
        "x3": {
            "method": "soap_basic",
            "server_url": "https://x3.example.com:8124",
            "folder": "SEED",
            "username": "WEBSVC",
            "password": "pw-123456",
            "entry_type": "ODG",
            "journal": "VEN",
            "site": "FR011",
            "soap_public_name": "ZGAS",
            "soap_pool_alias": "WSPOOL",
            "soap_code_lang": "FRA",
            "soap_request_config": "adxwss.optreturn=JSON&adxwss.beautify=true",
            "soap_mapping": {"lines_group": "GAS1_2"},
        },
    }
    tenant, created = apply_document(json.loads(json.dumps(doc)))
    assert created and tenant.x3.method == M.SOAP_BASIC and tenant.x3.soap_pool_alias == "WSPOOL"
    assert x3_client(tenant).config.mapping == {"lines_group": "GAS1_2"}

    doc["x3"]["soap_mapping"] = {"amount_style": "both"}
    with pytest.raises(ConfigurationError, match="unknown amount_style"):
        apply_document(doc)


def test_the_tenant_page_shows_the_soap_fields_in_their_own_fieldsets(soap_tenant, admin_client):
    page = admin_client.get(reverse("admin:connector_tenant_change", args=[soap_tenant.pk])).content.decode()
    assert 'name="x3-0-soap_public_name"' in page and 'value="ZGAS"' in page
    assert 'name="x3-0-soap_mapping"' in page and "x3-method-soap_basic" in page
    assert "SOAP web services + HTTP Basic" in page
