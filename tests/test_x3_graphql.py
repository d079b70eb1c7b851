"""Posting through Sage X3 GraphQL (Xtrem): the tenant's mutation and lookup, each authentication kind, 401 handling,
GraphQL error shapes, mapping validation, and the same order posting identically whichever method a tenant uses."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from datetime import date, timedelta
from decimal import Decimal

import jwt
import pytest
import requests
import responses
from django.utils import timezone
from lxml import etree

from accounting.models import ChannelMapping, Posting, PostingAttempt
from connector.clients import UnusableX3Client, x3_client
from connector.forms import X3ConnectionForm
from connector.models import BigCommerceStore, Tenant, X3Connection
from connector.pipeline import deliver_posting as submit_posting
from connector.pipeline import sync_order
from integrations.errors import AuthenticationError, PermanentError
from integrations.sagex3.calls import DuplicateEntryError
from integrations.sagex3.connected_app import ConnectedApp, ConnectedAppTokens
from integrations.sagex3.graphql import GraphQLConfig, SageX3GraphQLClient, classify_graphql_response
from integrations.sagex3.graphql_mapping import (
    DEFAULT_MUTATION,
    GraphQLMappingError,
    effective_graphql_mapping,
    validate_graphql_mapping,
)
from integrations.sagex3.rest import SageX3RestClient
from integrations.sagex3.soap import SOAP_PATH, SageX3SoapClient
from integrations.sagex3.types import Entry, EntryLine
from tests.conftest import BC_BASE, X3_BASE, X3_ENTRY_URL, order_json, order_url
from tests.integrations.test_sagex3_soap import answer as soap_answer

S = Posting.Status
M = X3Connection.Method
GATEWAY = "https://api.eu-prod-sagex3.com/v1"
TOKEN_URL = f"{GATEWAY}/token"
CLOUD_GRAPHQL = f"{GATEWAY}/service/SEED/api"
ONPREM_GRAPHQL = f"{X3_BASE}/xtrem/api"
SOAP_URL = X3_BASE + SOAP_PATH
SOAP_X3_BASE = "soap:" + X3_BASE  # how the spy below tells the SOAP client's entries from the api1 client's
APP_SECRET = "connected-app-secret-0123456789-abcdefghij"
OAUTH_SECRET = "oauth-client-secret-9876543210"
ACCESS_0 = "access-token-0000-aaaaaaaaaaaa"
REFRESH_0 = "refresh-token-0000-rrrrrrrrrrrr"


# --- fixtures and helpers -----------------------------------------------------------------------------------------


def use_connected_app(x3: X3Connection) -> X3Connection:
    x3.method = M.GRAPHQL_JWT
    x3.app_client_id = "bc-connector"
    x3.app_secret = APP_SECRET
    x3.app_user = "APIUSER"
    x3.save()
    return x3


def use_oauth(x3: X3Connection, *, access_valid: bool = True, refresh_days: int = 30) -> X3Connection:
    now = timezone.now()
    x3.method = M.GRAPHQL_OAUTH2
    x3.oauth_client_id = "sage-app-client"
    x3.oauth_client_secret = OAUTH_SECRET
    x3.oauth_authorise_url = f"{GATEWAY}/token/authorise"
    x3.oauth_token_url = TOKEN_URL
    x3.access_token = ACCESS_0
    x3.access_token_expires_at = now + (timedelta(minutes=5) if access_valid else -timedelta(minutes=1))
    x3.refresh_token = REFRESH_0
    x3.refresh_token_expires_at = now + timedelta(days=refresh_days)
    x3.authorized_at = now
    x3.save()
    return x3


@pytest.fixture
def jwt_tenant(tenant) -> Tenant:
    use_connected_app(tenant.x3)
    return tenant


@pytest.fixture
def oauth_tenant(tenant) -> Tenant:
    use_oauth(tenant.x3)
    return tenant


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def created(number: str = "ODG-000042") -> dict:
    return {
        "data": {
            "x3Finance": {
                "journalEntry": {"create": {"journalEntryType": "ODG", "journalEntryNumber": number}}
            }
        }
    }


def found(*numbers_and_refs: tuple[str, str]) -> dict:
    edges = [
        {"node": {"journalEntryType": "ODG", "journalEntryNumber": n, "internalReference": r}}
        for n, r in numbers_and_refs
    ]
    return {"data": {"x3Finance": {"journalEntry": {"query": {"edges": edges}}}}}


def graphql_calls(http, url: str) -> list:
    return [c for c in http.calls if c.request.url == url]


def body_of(call) -> dict:
    return json.loads(call.request.body)


def make_entry(reference: str = "BC-abc123-250") -> Entry:
    return Entry(
        reference=reference,
        accounting_date=date(2026, 3, 5),
        currency="USD",
        description="BigCommerce order 250",
        entry_type="ODG",
        journal="VEN",
        site="FR011",
        lines=(
            EntryLine("412000", Decimal("97.20"), Decimal(0), "Order 250 receivable"),
            EntryLine("702000", Decimal(0), Decimal("80.00"), "Order 250 revenue"),
            EntryLine("702800", Decimal(0), Decimal("10.00"), "Order 250 shipping"),
            EntryLine("442570", Decimal(0), Decimal("7.2"), "Order 250 tax"),
        ),
        source_document="250",
    )


class StaticTokens:
    """A TokenSource handing out a fixed sequence of tokens, for client-level tests."""

    description = "test tokens"

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.renewals: list[str] = []

    def token(self, *, log=None) -> str:
        return self.tokens[0]

    def renew(self, rejected: str, *, log=None) -> str:
        self.renewals.append(rejected)
        self.tokens.pop(0)
        return self.tokens[0]


def client_with(tokens, *, mapping: dict | None = None, url: str = ONPREM_GRAPHQL) -> SageX3GraphQLClient:
    return SageX3GraphQLClient(GraphQLConfig(url=url, endpoint="SEED", mapping=mapping or {}), tokens)


# --- the default mapping and the variables it renders -------------------------------------------------------------


def test_default_mapping_is_valid_and_renders_one_row_per_non_zero_side(http):
    # given the default mapping and a client
    assert validate_graphql_mapping(effective_graphql_mapping({})) == []
    http.post(ONPREM_GRAPHQL, json=created())
    client = client_with(StaticTokens("tok-1"))

    # when an entry is created
    posted = client.create_entry(make_entry())

    # then the mutation and its variables go out exactly, amounts as exact JSON numbers
    assert posted.document_number == "ODG-000042" and posted.reference == "BC-abc123-250"
    raw = http.calls[0].request.body.decode()
    assert '"transactionAmount":97.20' in raw and '"transactionAmount":7.20' in raw
    sent = json.loads(raw)
    assert sent["query"] == DEFAULT_MUTATION
    data = sent["variables"]["data"]
    assert {k: v for k, v in data.items() if k != "journalEntryLines"} == {
        "journalEntryType": "ODG",
        "company": None,  # no company on the channel: X3 derives it from the site
        "site": "FR011",
        "journal": "VEN",
        "accountingDate": "2026-03-05",
        "transactionCurrency": "USD",
        "description": "BigCommerce order 250",
        "internalReference": "BC-abc123-250",
        "sourceDocument": "250",
    }
    assert [
        (r["lineNumber"], r["account"], r["sign"], r["transactionAmount"]) for r in data["journalEntryLines"]
    ] == [
        (1, "412000", 1, 97.2),
        (2, "702000", -1, 80),
        (3, "702800", -1, 10),
        (4, "442570", -1, 7.2),
    ]
    assert data["journalEntryLines"][0]["lineDescription"] == "Order 250 receivable"


def test_amounts_go_out_at_the_currency_precision_not_the_stored_scale(http):
    # given an entry whose amounts carry the database's four decimals, in USD and in JPY
    http.post(ONPREM_GRAPHQL, json=created())
    http.post(ONPREM_GRAPHQL, json=created("ODG-000043"))
    client = client_with(StaticTokens("tok-1"))
    usd = dataclasses.replace(
        make_entry(),
        lines=(
            EntryLine("412000", Decimal("69.8400"), Decimal(0)),
            EntryLine("702000", Decimal(0), Decimal("69.8400")),
        ),
    )
    jpy = dataclasses.replace(
        usd,
        currency="JPY",
        lines=(
            EntryLine("412000", Decimal("1500.0000"), Decimal(0)),
            EntryLine("702000", Decimal(0), Decimal("1500.0000")),
        ),
    )

    # when both are created
    client.create_entry(usd)
    client.create_entry(jpy)

    # then USD goes out with two decimals and JPY with none
    usd_raw, jpy_raw = (call.request.body.decode() for call in http.calls)
    assert '"transactionAmount":69.84}' in usd_raw and "69.8400" not in usd_raw
    assert '"transactionAmount":1500}' in jpy_raw and "1500.0" not in jpy_raw


def test_a_custom_mapping_drives_the_request_and_the_answer_paths(http):
    # given a partner's own mutation, debit/credit columns, a text amount and other result paths
    mapping = {
        "mutation": (
            "mutation Post($entry: ZGAS_Input!, $ref: String) {\n"
            "  zCustom { postEntry(input: $entry, ref: $ref) { result { number: NUM } } }\n}"
        ),
        "variables": {
            "entry": {
                "header": {
                    "TYP": "${entry_type}",
                    "REFINT": "${reference}",
                    "DESVCR": "BC ${source_document}",
                },
                "lines": {
                    "$lines": {"ACC": "${account}", "DEB": "${debit}", "CDT": "${credit:text}"},
                    "$amount_style": "debit_credit",
                },
            },
            "ref": "${reference}",
        },
        "document_number_path": "zCustom.postEntry.result.number",
        "date_format": "%Y%m%d",
    }
    assert validate_graphql_mapping(effective_graphql_mapping(mapping)) == []
    http.post(ONPREM_GRAPHQL, json={"data": {"zCustom": {"postEntry": {"result": {"number": "GAS-7"}}}}})

    # when
    posted = client_with(StaticTokens("t"), mapping=mapping).create_entry(make_entry())

    # then
    assert posted.document_number == "GAS-7"
    variables = body_of(http.calls[0])["variables"]
    assert variables["ref"] == "BC-abc123-250"
    assert variables["entry"]["header"] == {"TYP": "ODG", "REFINT": "BC-abc123-250", "DESVCR": "BC 250"}
    assert variables["entry"]["lines"][0] == {"ACC": "412000", "DEB": 97.2, "CDT": "0.00"}
    assert variables["entry"]["lines"][3] == {"ACC": "442570", "DEB": 0, "CDT": "7.20"}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"mutation": "mutation { x3Finance { "}, "mutation: GraphQL syntax error"),
        ({"mutation": "query Q { a }"}, "mutation: must be a mutation, not a query"),
        ({"variables": {"data": {"a": "${nope}"}}}, "unknown placeholder ${nope}"),
        ({"variables": {"data": {"l": {"$lines": {"x": "${account}"}}}, "extra": 1}}, "sets 'extra'"),
        ({"variables": {"data": {"a": "${reference}"}}}, "exactly one $lines"),
        ({"lookup_variables": {"filter": "{}"}}, "must use ${reference}"),
        ({"lookup_query": "query Find($filter: String) { x3Finance { other } }"}, "does not select"),
        ({"document_number_path": "x3Finance.journalEntry.create.nope"}, "the mutation does not select"),
        (
            {
                "variables": {
                    "data": {"l": {"$lines": {"d": "${debit}"}, "$amount_style": "sign_amount"}},
                }
            },
            "${debit} belongs to amount style debit_credit",
        ),
    ],
)
def test_mapping_problems_are_found_before_anything_is_sent(overrides, expected, http):
    # given a broken mapping
    problems = validate_graphql_mapping(effective_graphql_mapping(overrides))

    # then it is reported, and the client refuses to call X3 with it
    assert any(expected in p for p in problems), problems
    with pytest.raises(GraphQLMappingError):
        client_with(StaticTokens("t"), mapping=overrides).create_entry(make_entry())
    assert len(http.calls) == 0


def test_the_admin_form_shows_a_parse_error_next_to_the_mutation(tenant):
    # given a connected-app tenant being edited with a broken mutation
    x3 = use_connected_app(tenant.x3)
    data = {
        f.name: getattr(x3, f.name)
        for f in X3Connection._meta.fields
        if f.name in X3ConnectionForm.Meta.fields
    }
    data.update(
        tenant=tenant.pk,
        password="",
        oauth_client_secret="",
        app_secret="",
        rest_mapping="{}",
        graphql_variables="{}",
        graphql_mapping="{}",
        graphql_mutation="mutation CreateJournalEntry($data: JournalEntry_Input!) { x3Finance { ",
        verify_tls="on",
    )

    # when
    form = X3ConnectionForm(data=data, instance=x3)

    # then
    assert not form.is_valid()
    assert "GraphQL syntax error" in str(form.errors["graphql_mutation"])
    assert "line 1" in str(form.errors["graphql_mutation"])


def test_the_admin_form_requires_the_fields_of_the_chosen_method(tenant):
    x3 = tenant.x3
    data = {
        f.name: getattr(x3, f.name)
        for f in X3Connection._meta.fields
        if f.name in X3ConnectionForm.Meta.fields
    }
    data.update(
        tenant=tenant.pk,
        password="",
        oauth_client_secret="",
        app_secret="",
        rest_mapping="{}",
        graphql_variables="",
        graphql_mapping="",
        verify_tls="on",
        method=M.GRAPHQL_OAUTH2,
    )
    form = X3ConnectionForm(data=data, instance=x3)
    assert not form.is_valid()
    assert set(form.errors) >= {
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_authorise_url",
        "oauth_token_url",
    }

    data.update(method=M.GRAPHQL_JWT, app_client_id="app", app_secret=APP_SECRET, app_user="APIUSER")
    form = X3ConnectionForm(data=data, instance=x3)
    assert form.is_valid(), form.errors
    saved = form.save()
    assert saved.app_secret == APP_SECRET and saved.graphql_variables == {} and saved.password  # kept


# --- posting through the pipeline with each authentication kind --------------------------------------------------


def test_posting_via_graphql_with_a_connected_app_jwt(jwt_tenant, http):
    # given a confirmed order and an X3 that accepts the mutation
    http.get(order_url(250), json=order_json(250))
    http.post(ONPREM_GRAPHQL, json=created("ODG-000777"))
    before = int(time.time())

    # when the order is synced
    result = sync_order(tenant=jwt_tenant, order_id=250, trigger="webhook")

    # then it is posted with X3's number
    posting = Posting.objects.get()
    assert result.submitted == ("posted",)
    assert posting.status == S.POSTED and posting.x3_document_number == "ODG-000777"
    (call,) = graphql_calls(http, ONPREM_GRAPHQL)
    headers = call.request.headers
    assert headers["x-xtrem-endpoint"] == "SEED"
    assert headers["Content-Type"] == "application/json"
    scheme, token = headers["Authorization"].split(" ", 1)
    assert scheme == "Bearer"
    claims = jwt.decode(token, APP_SECRET, algorithms=["HS256"], audience=ONPREM_GRAPHQL)
    assert claims["iss"] == "bc-connector" and claims["sub"] == "APIUSER" and claims["aud"] == ONPREM_GRAPHQL
    assert before - 31 <= claims["iat"] <= int(time.time()) - 29  # back-dated for clock skew
    assert claims["exp"] - claims["iat"] == 300
    sent = body_of(call)
    assert sent["variables"]["data"]["internalReference"] == "BC-abc123-250"
    # the audit trail keeps the request and answer, never the secret or the token
    attempt = PostingAttempt.objects.get(posting=posting)
    assert (
        attempt.operation == "create" and attempt.status_code == 200 and "ODG-000777" in attempt.response_body
    )
    stored = attempt.request_body + attempt.response_body + attempt.url + attempt.error
    assert APP_SECRET not in stored and token not in stored


def test_posting_via_graphql_with_oauth2_uses_the_stored_access_token(oauth_tenant, http):
    # given
    http.get(order_url(250), json=order_json(250))
    http.post(CLOUD_GRAPHQL, json=created("ODG-000778"))

    # when
    sync_order(tenant=oauth_tenant, order_id=250, trigger="webhook")

    # then
    posting = Posting.objects.get()
    assert posting.status == S.POSTED and posting.x3_document_number == "ODG-000778"
    (call,) = graphql_calls(http, CLOUD_GRAPHQL)
    assert call.request.headers["Authorization"] == f"Bearer {ACCESS_0}"
    assert call.request.headers["x-xtrem-endpoint"] == "SEED"
    assert not [c for c in http.calls if c.request.url == TOKEN_URL]  # the stored token was still valid
    attempt = PostingAttempt.objects.get(posting=posting)
    assert ACCESS_0 not in attempt.request_body + attempt.response_body


def test_x3_client_returns_the_client_of_the_tenant_method(tenant):
    assert isinstance(x3_client(tenant), SageX3RestClient)
    use_connected_app(tenant.x3)
    client = x3_client(Tenant.objects.select_related("x3").get(pk=tenant.pk))
    assert isinstance(client, SageX3GraphQLClient) and client.config.url == ONPREM_GRAPHQL
    use_oauth(tenant.x3)
    client = x3_client(Tenant.objects.select_related("x3").get(pk=tenant.pk))
    assert isinstance(client, SageX3GraphQLClient) and client.config.url == CLOUD_GRAPHQL


def test_unusable_settings_stop_the_posting_with_the_reason_instead_of_crashing(jwt_tenant, http):
    # given a connected-app token lifetime the signer cannot use (set behind the admin's back)
    X3Connection.objects.filter(pk=jwt_tenant.x3.pk).update(app_token_lifetime=60)
    http.get(order_url(250), json=order_json(250))
    tenant = Tenant.objects.select_related("x3").get(pk=jwt_tenant.pk)
    assert isinstance(x3_client(tenant), UnusableX3Client)

    # when
    sync_order(tenant=tenant, order_id=250, trigger="webhook")

    # then
    posting = Posting.objects.get()
    assert posting.status == S.NEEDS_ATTENTION and "token lifetime must exceed" in posting.last_error


# --- connected-app tokens: reuse and renewal ----------------------------------------------------------------------


def test_a_connected_app_jwt_is_reused_until_shortly_before_it_expires():
    # given a signer on a fake clock
    now = [1_800_000_000.0]
    signer = ConnectedAppTokens(
        ConnectedApp(client_id="app", secret=APP_SECRET, user="U", audience=ONPREM_GRAPHQL),
        clock=lambda: now[0],
    )
    first = signer.token()
    claims = jwt.decode(
        first,
        APP_SECRET,
        algorithms=["HS256"],
        audience=ONPREM_GRAPHQL,
        options={"verify_iat": False, "verify_exp": False},
    )
    assert claims["iat"] == 1_800_000_000 - 30 and claims["exp"] == claims["iat"] + 300

    # when time passes, but less than exp - 60 s
    now[0] += 300 - 30 - 61
    # then the same token is used
    assert signer.token() == first

    # when it is within 60 s of expiry
    now[0] += 2
    # then a new one is signed
    second = signer.token()
    assert second != first
    # and renew() after a 401 on the current token signs yet another one, but not for a stale rejection
    now[0] += 1
    third = signer.renew(second)
    assert third != second
    assert signer.renew(first) == third


def test_connected_app_401_renews_the_token_once_and_the_retry_succeeds(http):
    # given X3 refuses the first token (e.g. clock skew) and accepts the next
    now = [1_800_000_000.0]
    signer = ConnectedAppTokens(
        ConnectedApp(client_id="app", secret=APP_SECRET, user="U", audience=ONPREM_GRAPHQL),
        clock=lambda: now[0],
    )
    first = signer.token()
    now[0] += 5
    http.post(ONPREM_GRAPHQL, body="Error 21: Invalid token", status=401, content_type="text/plain")
    http.post(ONPREM_GRAPHQL, json=created("ODG-9"))
    client = client_with(signer)

    # when
    posted = client.create_entry(make_entry())

    # then exactly two calls, the second with a new token
    assert posted.document_number == "ODG-9"
    calls = graphql_calls(http, ONPREM_GRAPHQL)
    assert len(calls) == 2
    assert calls[0].request.headers["Authorization"] == f"Bearer {first}"
    assert calls[1].request.headers["Authorization"] != f"Bearer {first}"
    assert (
        "Error 21: Invalid token" in client.call_log[0].error and "retrying once" in client.call_log[0].error
    )
    assert calls[0].request.body == calls[1].request.body


def test_a_second_401_is_an_authentication_error_with_x3s_message(http):
    # given X3 refuses every token
    http.post(ONPREM_GRAPHQL, body="Error 45: Invalid token", status=401)
    tokens = StaticTokens("tok-1", "tok-2")
    client = client_with(tokens)

    # when / then
    with pytest.raises(AuthenticationError) as caught:
        client.find_entry("BC-abc123-250")
    assert "Error 45: Invalid token" in caught.value.message and "401 twice" in caught.value.message
    assert tokens.renewals == ["tok-1"]  # renewed exactly once
    assert len(http.calls) == 2
    assert "tok-2" not in caught.value.message and all("tok-" not in r.response_body for r in client.call_log)


def test_a_second_401_stops_the_posting_at_needs_attention(jwt_tenant, http):
    http.get(order_url(250), json=order_json(250))
    http.post(ONPREM_GRAPHQL, json={"message": "Unauthorised"}, status=401)

    sync_order(tenant=jwt_tenant, order_id=250, trigger="webhook")

    posting = Posting.objects.get()
    assert posting.status == S.NEEDS_ATTENTION
    assert "Unauthorised" in posting.last_error and "401 twice" in posting.last_error
    assert len(graphql_calls(http, ONPREM_GRAPHQL)) == 2


# --- GraphQL error shapes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "posting_status", "outcome", "x3_says"),
    [
        (
            200,
            {
                "data": {"x3Finance": {"journalEntry": {"create": None}}},
                "errors": [
                    {
                        "message": "Creation failed",
                        "path": ["x3Finance", "journalEntry", "create"],
                        "extensions": {"diagnoses": [{"severity": 3, "message": "Period 2026-03 is closed"}]},
                    }
                ],
            },
            S.NEEDS_ATTENTION,
            PostingAttempt.Outcome.UNKNOWN,  # partial data on a write: X3 may have saved something
            "Period 2026-03 is closed",
        ),
        (
            400,
            {
                "errors": [{"message": 'Cannot query field "x3Financ" on type "sageMutation".'}],
                "extensions": {},
            },
            S.NEEDS_ATTENTION,
            PostingAttempt.Outcome.PERMANENT,  # refused before execution: nothing happened
            'Cannot query field "x3Financ"',
        ),
        (
            500,
            {"$severity": "error", "$dataCode": "InternalServerError", "$message": "", "$source": "Gateway"},
            S.UNKNOWN,
            PostingAttempt.Outcome.UNKNOWN,
            "InternalServerError",
        ),
        (
            500,
            {"$severity": "error", "$message": "Record GACCENTRY locked by ADMIN"},
            S.UNKNOWN,
            PostingAttempt.Outcome.UNKNOWN,
            "Record GACCENTRY locked by ADMIN",
        ),
        (
            503,
            {"message": "Service Unavailable"},
            S.UNKNOWN,
            PostingAttempt.Outcome.UNKNOWN,
            "Service Unavailable",
        ),
    ],
)
def test_graphql_errors_reach_the_posting_with_x3s_message(
    jwt_tenant, http, status, body, posting_status, outcome, x3_says
):
    # given
    http.get(order_url(250), json=order_json(250))
    http.post(ONPREM_GRAPHQL, json=body, status=status)

    # when
    sync_order(tenant=jwt_tenant, order_id=250, trigger="webhook")

    # then
    posting = Posting.objects.get()
    assert posting.status == posting_status
    assert x3_says in posting.last_error
    attempt = PostingAttempt.objects.get(posting=posting)
    assert attempt.outcome == outcome and attempt.status_code == status and x3_says in attempt.error


def test_errors_alongside_partial_data_fail_a_lookup_instead_of_trusting_it(http):
    http.post(
        ONPREM_GRAPHQL,
        json={
            "data": {"x3Finance": {"journalEntry": {"query": {"edges": []}}}},
            "errors": [
                {"message": "Access denied to node journalEntry", "path": ["x3Finance", "journalEntry"]}
            ],
        },
    )
    with pytest.raises(PermanentError) as caught:
        client_with(StaticTokens("t")).find_entry("BC-abc123-250")
    assert (
        "Access denied to node journalEntry" in caught.value.message
        and "partial data" in caught.value.message
    )
    assert not caught.value.outcome_unknown


def test_classification_is_closed_by_default():
    assert classify_graphql_response(200, {"data": {"a": 1}}, text="", is_write=True, where="w") is None
    assert classify_graphql_response(418, None, text="teapot", is_write=False, where="w").retryable is False
    assert (
        classify_graphql_response(502, None, text="<html>", is_write=True, where="w").outcome_unknown is True
    )
    assert (
        classify_graphql_response(200, {"no": "data"}, text="{}", is_write=False, where="w").retryable is True
    )
    forbidden = classify_graphql_response(403, {"message": "Forbidden"}, text="", is_write=True, where="w")
    assert isinstance(forbidden, AuthenticationError) and "Forbidden" in forbidden.message


# --- check-before-post --------------------------------------------------------------------------------------------


def test_a_timeout_on_create_is_checked_with_the_lookup_query_before_any_repost(jwt_tenant, http):
    # given the create times out (X3 may have committed)
    http.get(order_url(250), json=order_json(250))
    http.post(ONPREM_GRAPHQL, body=requests.exceptions.ReadTimeout("read timed out"))
    sync_order(tenant=jwt_tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    assert posting.status == S.UNKNOWN

    # when the retry comes and X3 does hold the entry
    http.replace(responses.POST, ONPREM_GRAPHQL, json=found(("ODG-000042", "BC-abc123-250")))
    Posting.objects.filter(pk=posting.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    result = submit_posting(posting.pk)

    # then the lookup found it and nothing was re-sent
    posting.refresh_from_db()
    assert (
        result == "found-existing"
        and posting.status == S.POSTED
        and posting.x3_document_number == "ODG-000042"
    )
    lookup = body_of(graphql_calls(http, ONPREM_GRAPHQL)[-1])
    assert lookup["query"].startswith("query FindJournalEntry")
    assert lookup["variables"] == {"filter": "{internalReference: 'BC-abc123-250'}"}


def test_lookup_distrusts_an_ignored_filter_and_reports_duplicates(http):
    client = client_with(StaticTokens("t"))
    http.post(ONPREM_GRAPHQL, json=found(("ODG-1", "BC-other-1")))
    with pytest.raises(PermanentError, match="filter was not applied"):
        client.find_entry("BC-abc123-250")
    http.replace(
        responses.POST, ONPREM_GRAPHQL, json=found(("ODG-1", "BC-abc123-250"), ("ODG-2", "BC-abc123-250"))
    )
    with pytest.raises(DuplicateEntryError) as caught:
        client.find_entry("BC-abc123-250")
    assert caught.value.document_numbers == ["ODG-1", "ODG-2"]
    with pytest.raises(PermanentError, match="cannot be put into an X3 filter"):
        client.find_entry("BC-x'}, {evil: 1")


# --- the same order, whichever method -----------------------------------------------------------------------------


def _tenant_like(slug: str, store_hash: str, method: str) -> Tenant:
    tenant = Tenant.objects.create(slug=slug, name=slug, rounding_account="658000")
    BigCommerceStore.objects.create(
        tenant=tenant, store_hash=store_hash, access_token="bc-token-" + slug, api_base_url=BC_BASE
    )
    x3 = X3Connection.objects.create(
        tenant=tenant,
        server_url=X3_BASE,
        folder="SEED",
        username="WEBUSER",
        password="x3-password-" + slug,
        entry_type="ODG",
        journal="VEN",
        site="FR011",
        reference_prefix="BC-acme",  # the same prefix, so the same order gets the same reference
    )
    if method == M.GRAPHQL_JWT:
        use_connected_app(x3)
    elif method == M.GRAPHQL_OAUTH2:
        use_oauth(x3)
    elif method == M.SOAP_BASIC:
        x3.method = method
        x3.save()
    ChannelMapping.objects.create(
        tenant=tenant,
        channel_id=2,
        receivable_account="412000",
        revenue_account="702000",
        shipping_account="702800",
        tax_account="442570",
        discount_account="702900",
        cogs_account="602000",
        inventory_account="372000",
    )
    return tenant


@pytest.mark.django_db
def test_the_same_order_posts_identically_whichever_method(http, monkeypatch):
    # given three tenants with the same order, one per method, and spies on what each client receives
    received: dict[str, list[Entry]] = {}

    def spy(cls):
        original = cls.create_entry

        def create_entry(self, entry):
            key = getattr(self.config, "url", None) or self.config.base_url
            received.setdefault(("soap:" if isinstance(self, SageX3SoapClient) else "") + key, []).append(
                entry
            )
            return original(self, entry)

        monkeypatch.setattr(cls, "create_entry", create_entry)

    spy(SageX3RestClient)
    spy(SageX3GraphQLClient)
    spy(SageX3SoapClient)
    order = order_json(250, channel_id=2, discount="5.00")
    tenants = {
        M.REST_BASIC: _tenant_like("rest", "hash1", M.REST_BASIC),
        M.GRAPHQL_JWT: _tenant_like("jwt", "hash2", M.GRAPHQL_JWT),
        M.GRAPHQL_OAUTH2: _tenant_like("oauth", "hash3", M.GRAPHQL_OAUTH2),
        M.SOAP_BASIC: _tenant_like("soap", "hash4", M.SOAP_BASIC),
    }
    for store_hash in ("hash1", "hash2", "hash3", "hash4"):
        http.get(f"{BC_BASE}/stores/{store_hash}/v2/orders/250", json=order)
    http.post(X3_ENTRY_URL, json={"NUM": "ODG-1"}, status=201)
    http.post(ONPREM_GRAPHQL, json=created("ODG-2"))
    http.post(CLOUD_GRAPHQL, json=created("ODG-3"))
    http.post(
        SOAP_URL, body=soap_answer("save", 1, [], {"GAS0_1": {"NUM": "ODG-4"}}), content_type="text/xml"
    )

    # when the order is synced for each
    for tenant in tenants.values():
        sync_order(tenant=tenant, order_id=250, trigger="webhook")

    # then every client received the very same Entry (reference, date, lines, amounts)
    rest_url = f"{X3_BASE}"
    entries = {url: items for url, items in received.items()}
    assert set(entries) == {rest_url, ONPREM_GRAPHQL, CLOUD_GRAPHQL, SOAP_X3_BASE}
    (rest_entry,) = entries[rest_url]
    assert entries[ONPREM_GRAPHQL] == [rest_entry] and entries[CLOUD_GRAPHQL] == [rest_entry]
    assert entries[SOAP_X3_BASE] == [rest_entry]
    assert rest_entry.reference == "BC-acme-250" and len(rest_entry.lines) >= 4
    assert Posting.objects.filter(status=S.POSTED).count() == 4

    # and what went over the wire carries the same accounts and amounts on each transport
    rest_body = json.loads([c for c in http.calls if c.request.url.startswith(X3_ENTRY_URL)][0].request.body)
    rest_lines = sorted(
        (r["ACC"], Decimal(str(r["DEB"])), Decimal(str(r["CDT"]))) for r in rest_body["GACCENTRYD"]
    )
    rest_lines = [line for line in rest_lines if line[1] or line[2]]
    for url in (ONPREM_GRAPHQL, CLOUD_GRAPHQL):
        data = body_of(graphql_calls(http, url)[0])["variables"]["data"]
        assert data["internalReference"] == rest_body["REFINT"] == "BC-acme-250"
        assert data["accountingDate"] == rest_body["ACCDAT"]
        graphql_lines = sorted(
            (
                r["account"],
                Decimal(str(r["transactionAmount"])) if r["sign"] == 1 else Decimal(0),
                Decimal(str(r["transactionAmount"])) if r["sign"] == -1 else Decimal(0),
            )
            for r in data["journalEntryLines"]
        )
        assert graphql_lines == rest_lines

    # and the SOAP object XML carries the same reference, date and lines, amounts written at two decimals
    (soap_call,) = [c for c in http.calls if c.request.url == SOAP_URL]
    param = etree.fromstring(etree.fromstring(soap_call.request.body)[0][0].findtext("objectXml").encode())
    header = {f.get("NAME"): f.text for f in param.find("GRP")}
    assert header["REFINT"] == rest_body["REFINT"]
    assert header["ACCDAT"] == rest_body["ACCDAT"].replace("-", "")  # SOAP dates are YYYYMMDD
    soap_rows = [{f.get("NAME"): f.text for f in lin} for lin in param.find("TAB")]
    assert all(len(r["DEB"].split(".")[1]) == 2 and len(r["CDT"].split(".")[1]) == 2 for r in soap_rows)
    soap_lines = sorted((r["ACC"], Decimal(r["DEB"]), Decimal(r["CDT"])) for r in soap_rows)
    assert [line for line in soap_lines if line[1] or line[2]] == rest_lines
    rest_raw = [c for c in http.calls if c.request.url.startswith(X3_ENTRY_URL)][0].request.body.decode()
    rest_amounts = re.findall(r'"(?:DEB|CDT)":(-?[0-9.]+)', rest_raw)
    assert rest_amounts and all(re.fullmatch(r"-?\d+\.\d\d", a) for a in rest_amounts)
