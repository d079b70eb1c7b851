"""The Sage X3 simulator's GraphQL side over real HTTP: the connector's default mutation and lookup, connected-app
JWTs, the cloud gateway's OAuth2 authorization code and rotating refresh tokens, errors, faults and statistics.

The connector's own protocol code (integrations/sagex3: GraphQL client, connected-app signer, OAuth2 calls) drives
the simulator wherever it can, so these tests also prove the simulator accepts exactly what the connector sends.
No database: the simulator runs in a thread on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from integrations.errors import (
    AuthenticationError,
    PermanentError,
    ReauthorizationRequired,
    RetryableError,
)
from integrations.sagex3 import oauth
from integrations.sagex3.connected_app import ConnectedApp, ConnectedAppTokens
from integrations.sagex3.graphql import GraphQLConfig, SageX3GraphQLClient
from integrations.sagex3.graphql_mapping import DEFAULT_LOOKUP_QUERY, DEFAULT_MUTATION
from integrations.sagex3.types import Entry, EntryLine
from simulators import sagex3
from simulators.control import SageX3Control, spawn
from simulators.xtrem import FilterError, filter_matches, parse_filter

APP_ID, APP_SECRET, APP_USER = "shop-connector", "connected-app-secret-0123456789abcdef", "WEBSVC"
CLIENT_ID, CLIENT_SECRET = "oauth-client-1", "oauth-client-secret-0123456789"
REDIRECT = "https://connector.example.com/x3/oauth/callback/"
CUSTOMER = "https://x3.customer.example.com"
FIELDS_QUERY = """\
query Q($filter: String, $first: Int, $after: String, $orderBy: String) {
  x3Finance { journalEntry { query(filter: $filter, first: $first, after: $after, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node {
      _id journalEntryType journalEntryNumber internalReference accountingDate site journal transactionCurrency
      company description sourceDocument journalEntryStatus
      journalEntryLines { query { edges { node { lineNumber account sign transactionAmount debit credit } } } }
    } }
  } } }
}
"""


@dataclass
class Sim:
    server: Any
    base: str
    ctl: SageX3Control
    http: requests.Session

    @property
    def app(self) -> sagex3.SageX3Sim:
        return self.server.app

    @property
    def xtrem(self) -> str:
        return f"{self.base}/xtrem/api"

    @property
    def gateway(self) -> str:
        return f"{self.base}/v1"

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.post(f"{self.base}/_sim{path}", json=body or {}, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self.ctl.stats()

    def authorizations(self) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.base}/_sim/oauth", timeout=5)
        assert response.status_code == 200, response.text
        return response.json()["authorizations"]


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, base = sagex3.start_in_thread(
        config={
            "users": {"admin": "s3cret"},
            "closed_periods": ["2026-10"],
            "sites": {"FR011": "FR10"},
            "connected_apps": {APP_ID: {"secret": APP_SECRET, "user": APP_USER, "url": None}},
            "oauth": {"clients": {CLIENT_ID: {"secret": CLIENT_SECRET, "redirect_uris": [REDIRECT]}}},
        }
    )
    ctl = SageX3Control(base)
    http = requests.Session()
    try:
        yield Sim(server, base, ctl, http)
    finally:
        http.close()
        ctl.session.close()
        server.stop()


def entry(reference: str = "BC-acme-250", accounting_date: date = date(2026, 11, 3), **changes: Any) -> Entry:
    lines = (
        EntryLine("411000", Decimal("120.00"), Decimal(0), "Customer"),
        EntryLine("707000", Decimal(0), Decimal("100.00"), "Sales"),
        EntryLine("445710", Decimal(0), Decimal("20.00"), "VAT"),
    )
    base = Entry(
        reference=reference,
        accounting_date=accounting_date,
        currency="EUR",
        description="BigCommerce order 250",
        entry_type="ODG",
        journal="VEN",
        site="FR011",
        lines=lines,
        source_document="250",
    )
    return replace(base, **changes)


def app_tokens(sim: Sim, **changes: Any) -> ConnectedAppTokens:
    settings = {"client_id": APP_ID, "secret": APP_SECRET, "user": APP_USER, "audience": sim.xtrem, **changes}
    return ConnectedAppTokens(ConnectedApp(**settings))


def xtrem_client(sim: Sim, tokens: Any = None, **mapping: Any) -> SageX3GraphQLClient:
    config = GraphQLConfig(url=sim.xtrem, endpoint="SEED", mapping=mapping, timeout=(2.0, 5.0))
    return SageX3GraphQLClient(config, tokens or app_tokens(sim))


def sign(claims: dict[str, Any], secret: str = APP_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def good_claims(sim: Sim, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": APP_ID, "sub": APP_USER, "aud": sim.xtrem, "iat": now - 30, "exp": now + 300, **changes}


def post_graphql(
    sim: Sim,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    url: str | None = None,
    endpoint: str | None = "SEED",
) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if endpoint is not None:
        headers["x-xtrem-endpoint"] = endpoint
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"query": query, "variables": variables or {}})
    return sim.http.post(url or sim.xtrem, data=body, headers=headers, timeout=5)


def jwt_token(sim: Sim) -> str:
    return sign(good_claims(sim))


def create_variables(reference: str, **data: Any) -> dict[str, Any]:
    return {
        "data": {
            "journalEntryType": "ODG",
            "site": "FR011",
            "journal": "VEN",
            "accountingDate": "2026-11-03",
            "transactionCurrency": "EUR",
            "description": "order",
            "internalReference": reference,
            "journalEntryLines": [
                {"lineNumber": 1, "account": "411000", "sign": 1, "transactionAmount": 97.20},
                {"lineNumber": 2, "account": "707000", "sign": -1, "transactionAmount": "97.20"},
            ],
            **data,
        }
    }


def oauth_app(sim: Sim, body_format: str = "json", secret: str = CLIENT_SECRET) -> oauth.OAuthApp:
    return oauth.OAuthApp(
        client_id=CLIENT_ID,
        client_secret=secret,
        token_url=f"{sim.gateway}/token",
        body_format=body_format,
        timeout=(2.0, 5.0),
    )


def authorise(sim: Sim, **params: Any) -> requests.Response:
    query = {
        "client_id": CLIENT_ID,
        "scope": "businessDomain.ALL api.graphQL",
        "customer": CUSTOMER,
        "redirect_uri": REDIRECT,
        "state": "state-123",
        **params,
    }
    query = {k: v for k, v in query.items() if v is not None}
    return sim.http.get(f"{sim.gateway}/token/authorise", params=query, allow_redirects=False, timeout=5)


def pair(sim: Sim, body_format: str = "json") -> oauth.TokenSet:
    """Run the whole authorization-code flow as the connector does: authorise URL, redirect, code exchange."""
    url = oauth.authorization_url(
        f"{sim.gateway}/token/authorise",
        client_id=CLIENT_ID,
        scope="businessDomain.ALL api.graphQL",
        redirect_uri=REDIRECT,
        state="s-1",
        customer=CUSTOMER,
    )
    redirect = sim.http.get(url, allow_redirects=False, timeout=5)
    assert redirect.status_code == 302
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["authorizationCode"][0]
    return oauth.exchange_code(oauth_app(sim, body_format), code=code, redirect_uri=REDIRECT)


class PairTokens:
    """A TokenSource over one token pair that refreshes through the simulator (what connector/x3auth.py does)."""

    description = "OAuth2 (test)"

    def __init__(self, sim: Sim, tokens: oauth.TokenSet) -> None:
        self.sim, self.tokens, self.renewals = sim, tokens, 0

    def token(self, *, log: Any = None) -> str:
        return self.tokens.access_token

    def renew(self, rejected: str, *, log: Any = None) -> str:
        self.renewals += 1
        self.tokens = oauth.refresh_tokens(
            oauth_app(self.sim), refresh_token=self.tokens.refresh_token, log=log
        )
        return self.tokens.access_token


def gateway_client(sim: Sim, tokens: Any, folder: str = "SEED") -> SageX3GraphQLClient:
    config = GraphQLConfig(url=f"{sim.gateway}/service/{folder}/api", endpoint=folder, timeout=(2.0, 5.0))
    return SageX3GraphQLClient(config, tokens)


# ------------------------------------------------------------------------------------------- GraphQL: the documents


def test_connector_default_mutation_and_lookup_share_api1_storage_and_sequence(sim: Sim) -> None:
    # given an entry posted through api1
    api1 = f"{sim.base}/api1/x3/erp/SEED/GACCENTRY"
    body = {
        "TYP": "ODG",
        "JOU": "VEN",
        "FCY": "FR011",
        "ACCDAT": "2026-11-02",
        "CUR": "EUR",
        "REFINT": "BC-acme-249",
        "GACCENTRYD": [{"ACC": "411000", "DEB": "10.00"}, {"ACC": "707000", "CDT": "10.00"}],
    }
    created = sim.http.post(
        api1, params={"representation": "GACCENTRY.$create"}, json=body, auth=("admin", "s3cret"), timeout=5
    )
    assert created.json()["NUM"] == "ODG-000001"

    # when the connector posts one through GraphQL with its default template and a connected-app JWT
    client = xtrem_client(sim)
    posted = client.create_entry(entry())

    # then the number comes from the same sequence, both APIs see both entries, and the lines are exact
    assert posted.document_number == "ODG-000002"
    assert client.find_entry("BC-acme-250").document_number == "ODG-000002"
    assert client.find_entry("BC-acme-249").document_number == "ODG-000001"
    assert client.find_entry("BC-nothing") is None
    found = sim.http.get(
        api1,
        params={"representation": "GACCENTRY.$query", "where": "(REFINT eq 'BC-acme-250')"},
        auth=("admin", "s3cret"),
        timeout=5,
    ).json()["$resources"]
    assert [e["NUM"] for e in found] == ["ODG-000002"]
    entries = sim.ctl.entries()
    assert [(e["NUM"], e["_sim"]["api"]) for e in entries] == [
        ("ODG-000001", "api1"),
        ("ODG-000002", "graphql"),
    ]
    stored = entries[1]
    assert stored["REFINT"] == "BC-acme-250" and stored["ACCDAT"] == "2026-11-03" and stored["CPY"] == "FR10"
    assert stored["BPRVCR"] == "250" and stored["JOU"] == "VEN" and stored["FCY"] == "FR011"
    assert [(ln["ACC"], ln["SNS"], ln["AMTCUR"]) for ln in stored["GACCENTRYD"]] == [
        ("411000", 1, "120.00"),
        ("707000", -1, "100.00"),
        ("445710", -1, "20.00"),
    ]
    assert stored["_sim"]["debit_total"] == stored["_sim"]["credit_total"] == "120.00"
    # the exact mutation and query the connector sent are its documented defaults
    sent = [json.loads(call.request_body)["query"] for call in client.call_log]
    assert sent[0] == DEFAULT_MUTATION and set(sent[1:]) == {DEFAULT_LOOKUP_QUERY}


def test_debit_credit_template_and_storno_amounts(sim: Sim) -> None:
    variables = {
        "data": {
            "journalEntryType": "${entry_type}",
            "site": "${site}",
            "journal": "${journal}",
            "accountingDate": "${accounting_date}",
            "transactionCurrency": "${currency}",
            "internalReference": "${reference}",
            "journalEntryLines": {
                "$lines": {"account": "${account}", "debit": "${debit}", "credit": "${credit:text}"},
                "$amount_style": "debit_credit",
            },
        }
    }
    refund = entry(
        "BC-acme-R1",
        lines=(
            EntryLine("411000", Decimal("-54.00"), Decimal(0)),
            EntryLine("707000", Decimal(0), Decimal("-45.00")),
            EntryLine("445710", Decimal(0), Decimal("-9.00")),
        ),
    )
    assert xtrem_client(sim, variables=variables).create_entry(refund).document_number == "ODG-000001"
    lines = sim.ctl.entries()[0]["_sim"]["lines"]
    assert [(ln["line"], Decimal(ln["debit"]), Decimal(ln["credit"])) for ln in lines] == [
        (1, Decimal("-54.00"), 0),
        (2, 0, Decimal("-45.00")),
        (3, 0, Decimal("-9.00")),
    ]
    assert [ln["CDT"] for ln in sim.ctl.entries()[0]["GACCENTRYD"]] == ["0.00", "-45.00", "-9.00"]  # as sent


def test_node_fields_lines_and_pagination(sim: Sim) -> None:
    client = xtrem_client(sim)
    for n in range(5):
        client.create_entry(entry(f"BC-page-{n}"))
    token = jwt_token(sim)

    def query(**variables: Any) -> dict[str, Any]:
        r = post_graphql(sim, FIELDS_QUERY, variables, token=token)
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        return r.json()["data"]["x3Finance"]["journalEntry"]["query"]

    first = query(first=2, orderBy="{journalEntryNumber: -1}")
    assert first["totalCount"] == 5 and first["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["journalEntryNumber"] for e in first["edges"]] == ["ODG-000005", "ODG-000004"]
    rest = query(first=10, after=first["pageInfo"]["endCursor"], orderBy="{journalEntryNumber: -1}")
    assert [e["node"]["journalEntryNumber"] for e in rest["edges"]] == [
        "ODG-000003",
        "ODG-000002",
        "ODG-000001",
    ]
    assert rest["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "endCursor": rest["edges"][-1]["cursor"],
    }
    node = query(filter="{internalReference: 'BC-page-3'}")["edges"][0]["node"]
    assert (
        node["accountingDate"] == "2026-11-03"
        and node["company"] == "FR10"
        and node["sourceDocument"] == "250"
    )
    assert node["journalEntryStatus"] == "temporary" and node["_id"]
    lines = [e["node"] for e in node["journalEntryLines"]["query"]["edges"]]
    assert lines[0] == {
        "lineNumber": 1,
        "account": "411000",
        "sign": 1,
        "transactionAmount": "120.00",
        "debit": "120.00",
        "credit": "0",
    }
    assert [ln["sign"] for ln in lines] == [1, -1, -1]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("{internalReference: 'BC-f-1'}", ["BC-f-1"]),
        ('{ internalReference: { _eq: "BC-f-2" } }', ["BC-f-2"]),
        ("{internalReference: {$in: ['BC-f-1', 'BC-f-3']}}", ["BC-f-1", "BC-f-3"]),
        ("{internalReference: {_regex: '^bc-F-[23]$', _options: 'i'}}", ["BC-f-2", "BC-f-3"]),
        (
            "{_and: [{journalEntryType: 'ODG'}, {journalEntryNumber: {_gte: 'ODG-000002'}}]}",
            ["BC-f-2", "BC-f-3"],
        ),
        ("{_or: [{internalReference: 'BC-f-1'}, {internalReference: 'BC-f-3'}]}", ["BC-f-1", "BC-f-3"]),
        ("{internalReference: {_ne: 'BC-f-1'}, site: 'FR011'}", ["BC-f-2", "BC-f-3"]),
        ("{_not: {internalReference: 'BC-f-1'}}", ["BC-f-2", "BC-f-3"]),
        ("{}", ["BC-f-1", "BC-f-2", "BC-f-3"]),
    ],
)
def test_lookup_filters(sim: Sim, flt: str, expected: list[str]) -> None:
    client = xtrem_client(sim)
    for n in (1, 2, 3):
        client.create_entry(entry(f"BC-f-{n}"))
    r = post_graphql(sim, FIELDS_QUERY, {"filter": flt}, token=jwt_token(sim))
    edges = r.json()["data"]["x3Finance"]["journalEntry"]["query"]["edges"]
    assert [e["node"]["internalReference"] for e in edges] == expected


def test_filter_parser_errors() -> None:
    assert parse_filter("{a: 'x\\'y', b: [1, 2.5, true, null], \"c d\": {_gt: -3}}") == {
        "a": "x'y",
        "b": [Decimal(1), Decimal("2.5"), True, None],
        "c d": {"_gt": Decimal(-3)},
    }
    for bad in ("{a: }", "{a 'x'}", "['a']", "{a: 'x'} extra", "{a: 'x'", "{a: @}"):
        with pytest.raises(FilterError):
            parse_filter(bad)
    with pytest.raises(FilterError, match="unknown property"):
        filter_matches({"a": 1}, {"b": 1})
    with pytest.raises(FilterError, match="unknown operator"):
        filter_matches({"a": 1}, {"a": {"_near": 1}})


def test_lookup_with_a_bad_filter_is_a_graphql_error(sim: Sim) -> None:
    r = post_graphql(sim, FIELDS_QUERY, {"filter": "{nope: 'x'}"}, token=jwt_token(sim))
    assert r.status_code == 200
    body = r.json()
    assert body["data"]["x3Finance"]["journalEntry"]["query"] is None
    assert body["errors"][0]["message"] == "Invalid filter: unknown property nope"
    assert body["errors"][0]["path"] == ["x3Finance", "journalEntry", "query"]


# --------------------------------------------------------------------------------------- GraphQL: errors X3-style


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"accounting_date": date(2026, 10, 15)}, "Accounting date 2026-10-15: period 2026-10 is closed"),
        (
            {
                "lines": (
                    EntryLine("411000", Decimal("120.00"), Decimal(0)),
                    EntryLine("999999", Decimal(0), Decimal("120.00")),
                )
            },
            "Line 2: account 999999 does not exist in the chart of accounts",
        ),
        (
            {
                "lines": (
                    EntryLine("411000", Decimal("120.00"), Decimal(0)),
                    EntryLine("707000", Decimal(0), Decimal("100.00")),
                )
            },
            "Entry is not balanced: total debit 120.00 is not equal to total credit 100.00",
        ),
        ({"currency": "EURO"}, "Currency EURO does not exist"),
    ],
)
def test_business_rules_answer_graphql_errors(sim: Sim, changes: dict[str, Any], message: str) -> None:
    client = xtrem_client(sim)
    with pytest.raises(PermanentError) as caught:
        client.create_entry(entry(**changes))
    assert message in caught.value.message and caught.value.outcome_unknown
    body = json.loads(client.call_log[-1].response_body)
    assert body["data"] == {"x3Finance": {"journalEntry": {"create": None}}}
    (error,) = body["errors"]
    assert error["message"] == "The record was not created."
    assert error["path"] == ["x3Finance", "journalEntry", "create"]
    assert message in [d["message"] for d in error["extensions"]["diagnoses"]]
    assert sim.ctl.entries() == []
    stats = sim.stats()
    assert stats["rejected"] == 1 and stats["graphql"]["rejected"] == 1 and stats["graphql"]["errors"] == 1


def test_request_errors_answer_400_and_execute_nothing(sim: Sim) -> None:
    token = jwt_token(sim)
    syntax = post_graphql(sim, "mutation { x3Finance {", token=token)
    assert syntax.status_code == 400 and "Syntax Error" in syntax.json()["errors"][0]["message"]
    assert syntax.json()["extensions"] == {}
    unknown = post_graphql(sim, "{ x3Finanse { journalEntry { query { totalCount } } } }", token=token)
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["message"].startswith(
        "Cannot query field 'x3Finanse' on type 'Query'."
    )
    missing = post_graphql(sim, DEFAULT_MUTATION, {}, token=token)
    assert missing.status_code == 400 and "$data" in missing.json()["errors"][0]["message"]
    bad_date = post_graphql(
        sim, DEFAULT_MUTATION, create_variables("BC-1", accountingDate="03/11/2026"), token=token
    )
    assert bad_date.status_code == 400 and "Date must be a string YYYY-MM-DD" in bad_date.text
    bad_amount = create_variables("BC-1")
    bad_amount["data"]["journalEntryLines"][0]["transactionAmount"] = "12,5"
    assert post_graphql(sim, DEFAULT_MUTATION, bad_amount, token=token).status_code == 400
    not_json = sim.http.post(
        sim.xtrem,
        data=b"{not json",
        headers={"Authorization": f"Bearer {token}", "x-xtrem-endpoint": "SEED"},
        timeout=5,
    )
    assert not_json.status_code == 400 and not_json.json()["errors"]
    over_get = sim.http.get(
        sim.xtrem,
        params={"query": DEFAULT_MUTATION},
        headers={"Authorization": f"Bearer {token}", "x-xtrem-endpoint": "SEED"},
        timeout=5,
    )
    assert over_get.status_code == 405
    query_over_get = sim.http.get(
        sim.xtrem,
        params={"query": DEFAULT_LOOKUP_QUERY, "variables": json.dumps({"filter": "{}"})},
        headers={"Authorization": f"Bearer {token}", "x-xtrem-endpoint": "SEED"},
        timeout=5,
    )
    assert query_over_get.status_code == 200 and query_over_get.json()["data"]
    assert sim.ctl.entries() == []
    # amounts keep their digits: 97.20 as a JSON number is stored as 97.20
    text = json.dumps({"query": DEFAULT_MUTATION, "variables": create_variables("BC-ok")})
    ok = sim.http.post(
        sim.xtrem,
        data=text.replace(": 97.2}", ": 97.20}"),
        headers={"Authorization": f"Bearer {token}", "x-xtrem-endpoint": "SEED"},
        timeout=5,
    )
    assert ok.status_code == 200 and "errors" not in ok.json()
    assert [ln["AMTCUR"] for ln in sim.ctl.entries()[0]["GACCENTRYD"]] == ["97.20", "97.20"]


def test_endpoint_header_and_unknown_folder(sim: Sim) -> None:
    token = jwt_token(sim)
    no_header = post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=token, endpoint=None)
    assert no_header.status_code == 400 and "x-xtrem-endpoint" in no_header.json()["errors"][0]["message"]
    other = post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=token, endpoint="OTHER")
    assert other.status_code == 404
    assert other.json() == {
        "$severity": "error",
        "$dataCode": "NotFound",
        "$message": "Endpoint OTHER not found",
        "$source": "Gateway",
    }
    with pytest.raises(PermanentError, match="404"):
        SageX3GraphQLClient(GraphQLConfig(url=sim.xtrem, endpoint="OTHER"), app_tokens(sim)).find_entry(
            "BC-1"
        )


# ----------------------------------------------------------------------------------- connected-application JWTs


def test_connected_app_jwt_checks(sim: Sim) -> None:
    now = int(time.time())
    cases = {
        "wrong secret": (sign(good_claims(sim), secret="another-secret-0123456789abcdefgh"), 50),
        "unknown iss": (sign(good_claims(sim, iss="someone-else")), 41),
        "wrong sub": (sign(good_claims(sim, sub="ADMIN")), 42),
        "aud with a trailing slash": (sign(good_claims(sim, aud=sim.xtrem + "/")), 45),
        "aud with another host spelling": (
            sign(good_claims(sim, aud=sim.xtrem.replace("127.0.0.1", "localhost"))),
            45,
        ),
        "aud as a list": (sign(good_claims(sim, aud=[sim.xtrem])), 45),
        "expired": (sign(good_claims(sim, iat=now - 400, exp=now - 5)), 50),
        "issued in the future": (sign(good_claims(sim, iat=now + 600, exp=now + 900)), 21),
        "no exp": (sign({k: v for k, v in good_claims(sim).items() if k != "exp"}), 50),
        "HS512": (sign(good_claims(sim), secret="k" * 64, algorithm="HS512"), 50),
        "not a JWT": ("not-a-jwt", 50),
    }
    for name, (token, code) in cases.items():
        r = post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=token)
        assert (r.status_code, r.text) == (401, f"Error {code}: Invalid token"), name
        assert r.headers["Content-Type"].startswith("text/plain"), name
    missing = post_graphql(sim, DEFAULT_LOOKUP_QUERY)
    assert (missing.status_code, missing.json()) == (401, {"message": "Unauthorised"})
    # a little clock skew is tolerated, and the connector's signer (iat back-dated 30 s) is accepted
    skewed = sign(good_claims(sim, iat=now + 20, exp=now + 300))
    assert post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=skewed).status_code == 200
    assert "answered" in xtrem_client(sim).test_connection()
    stats = sim.stats()["graphql"]
    assert stats["unauthorized"] == len(cases) + 1 and stats["xtrem"] == len(cases) + 3


def test_connected_app_registration_is_configurable(sim: Sim) -> None:
    url = "https://x3.example.com:8124/xtrem/api"  # registered URL differs from where the request goes
    sim.ctl.configure(
        connected_apps={APP_ID: {"secret": APP_SECRET, "user": APP_USER, "url": url, "max_lifetime_s": 600}}
    )
    assert post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=jwt_token(sim)).text == "Error 45: Invalid token"
    assert post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=sign(good_claims(sim, aud=url))).status_code == 200
    now = int(time.time())
    too_long = sign(good_claims(sim, aud=url, iat=now - 30, exp=now + 3600))
    assert post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=too_long).text == "Error 50: Invalid token"
    sim.ctl.configure(connected_apps={APP_ID: {"secret": APP_SECRET, "user": APP_USER, "enabled": False}})
    assert post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=jwt_token(sim)).text == "Error 41: Invalid token"
    r = sim.http.post(f"{sim.base}/_sim/config", json={"connected_apps": {"x": {"user": "U"}}}, timeout=5)
    assert r.status_code == 400 and "secret" in r.json()["error"]


def test_connector_renews_a_refused_jwt_once(sim: Sim) -> None:
    # the connector's signer believes its token is fine; X3 says otherwise once (e.g. the secret was rotated)
    tokens = app_tokens(sim)
    tokens.token()
    sim.ctl.configure(connected_apps={APP_ID: {"secret": "short", "user": APP_USER}})
    with pytest.raises(AuthenticationError, match="Error 50: Invalid token"):
        xtrem_client(sim, tokens).find_entry("BC-1")
    assert sim.stats()["graphql"]["unauthorized"] == 2  # the call and its one retry with a fresh token


# ------------------------------------------------------------------------------------------- OAuth2: the pairing


def test_authorise_redirects_with_a_code_and_the_state(sim: Sim) -> None:
    r = authorise(sim)
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    params = parse_qs(location.query)
    assert params["state"] == ["state-123"] and params["authorizationCode"][0]
    assert "endpoint" not in params
    sim.ctl.configure(oauth={"callback_endpoint": "self"})
    assert parse_qs(urlsplit(authorise(sim).headers["Location"]).query)["endpoint"] == [sim.gateway]
    sim.ctl.configure(oauth={"callback_endpoint": "https://api.us-prod-sagex3.com/v1"})
    endpoint = parse_qs(urlsplit(authorise(sim).headers["Location"]).query)["endpoint"]
    assert endpoint == ["https://api.us-prod-sagex3.com/v1"]

    sim.ctl.configure(oauth={"approve": "deny"})
    denied = parse_qs(urlsplit(authorise(sim).headers["Location"]).query)
    assert denied["error"] == ["access_denied"] and denied["state"] == ["state-123"]
    assert "authorizationCode" not in denied

    assert authorise(sim, state=None).json() == {"message": "Missing required request parameters"}
    assert authorise(sim, client_id="nobody").status_code == 404
    assert authorise(sim, redirect_uri="https://evil.example.com/cb").status_code == 400
    sim.ctl.configure(oauth={"clients": {CLIENT_ID: {"secret": CLIENT_SECRET, "enabled": False}}})
    disabled = authorise(sim)
    assert disabled.status_code == 403
    assert disabled.json()["message"] == "The application registered on Sage Business Cloud is disabled"
    stats = sim.stats()["token"]
    assert stats["authorise"] == 8 and stats["refused"] == 4


@pytest.mark.parametrize("body_format", ["json", "form"])
def test_code_exchange_gives_a_five_minute_and_a_thirty_day_token(sim: Sim, body_format: str) -> None:
    started = time.time()
    tokens = pair(sim, body_format)
    assert 295 <= (tokens.access_expires_at.timestamp() - started) <= 305
    assert abs(tokens.refresh_expires_at.timestamp() - started - 30 * 86400) < 10
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    assert claims["iss"] == claims["aud"] == sim.gateway and claims["azp"] == CLIENT_ID
    assert claims["exp"] - claims["iat"] == 300 and claims["scopes"] == "businessDomain.ALL api.graphQL"
    assert jwt.decode(tokens.refresh_token, options={"verify_signature": False})["jti"]
    (authorization,) = sim.authorizations()
    assert authorization["customer"] == CUSTOMER and authorization["folders"] == ["SEED"]
    assert authorization["live_access_tokens"] == 1 and authorization["live_refresh_tokens"] == 1


def test_code_exchange_errors(sim: Sim) -> None:
    token_url = f"{sim.gateway}/token"

    def code() -> str:
        return parse_qs(urlsplit(authorise(sim).headers["Location"]).query)["authorizationCode"][0]

    def exchange(**body: Any) -> requests.Response:
        base = {
            "grant_type": "authorization_code",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT,
        }
        return sim.http.post(token_url, json={**base, **body}, timeout=5)

    used = code()
    assert exchange(code=used).status_code == 200
    assert (exchange(code=used).status_code, exchange(code=used).json()) == (
        403,
        {"message": "Pairing request not found"},
    )
    assert exchange(code=code(), client_secret="wrong").status_code == 401
    assert exchange(code=code(), grant_type="password").json() == {"message": "Invalid grant type"}
    assert exchange(code=code(), redirect_uri=None).json() == {
        "message": "Missing required request parameters"
    }
    assert exchange(code=code(), redirect_uri="https://connector.example.com/other/").status_code == 400
    sim.ctl.configure(oauth={"code_lifetime_s": 0.2})
    late = code()
    time.sleep(0.3)
    assert exchange(code=late).json() == {"message": "The request has expired."}
    with pytest.raises(AuthenticationError, match="Pairing request not found"):
        oauth.exchange_code(oauth_app(sim), code="made-up", redirect_uri=REDIRECT)


# ------------------------------------------------------------------------------------- OAuth2: rotating refresh


def test_refresh_rotates_and_a_spent_refresh_token_is_refused(sim: Sim) -> None:
    first = pair(sim)
    second = oauth.refresh_tokens(oauth_app(sim), refresh_token=first.refresh_token)
    assert second.access_token != first.access_token and second.refresh_token != first.refresh_token
    # the spent refresh token no longer works (the connector reads that as "reconnect")
    with pytest.raises(ReauthorizationRequired, match="Pairing request not found") as caught:
        oauth.refresh_tokens(oauth_app(sim), refresh_token=first.refresh_token)
    assert caught.value.status_code == 403
    # ... but the new one does, once, and access tokens stay valid until they expire
    third = oauth.refresh_tokens(oauth_app(sim, "form"), refresh_token=second.refresh_token)
    for access in (first.access_token, second.access_token, third.access_token):
        r = post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=access, url=f"{sim.gateway}/service/SEED/api")
        assert r.status_code == 200
    with pytest.raises(ReauthorizationRequired):
        oauth.refresh_tokens(oauth_app(sim, secret="wrong"), refresh_token=third.refresh_token)
    with pytest.raises(ReauthorizationRequired, match="Pairing request not found"):
        oauth.refresh_tokens(
            oauth_app(sim), refresh_token=first.access_token
        )  # an access token is no refresh
    stats = sim.stats()["token"]
    assert stats["authorization_code"] == 1 and stats["refresh_token"] == 5
    assert stats["issued"] == 3 and stats["refused"] == 3


def test_concurrent_refreshes_with_one_token_only_one_wins(sim: Sim) -> None:
    tokens = pair(sim)
    results: list[str] = []
    barrier = threading.Barrier(6)

    def refresh() -> None:
        barrier.wait(timeout=5)
        try:
            oauth.refresh_tokens(oauth_app(sim), refresh_token=tokens.refresh_token)
            results.append("ok")
        except ReauthorizationRequired:
            results.append("refused")

    threads = [threading.Thread(target=refresh) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == ["ok"] + ["refused"] * 5


def test_refresh_options_reuse_detection_and_expiry(sim: Sim) -> None:
    sim.ctl.configure(oauth={"refresh_reuse_revokes": True})
    first = pair(sim)
    second = oauth.refresh_tokens(oauth_app(sim), refresh_token=first.refresh_token)
    with pytest.raises(ReauthorizationRequired):
        oauth.refresh_tokens(
            oauth_app(sim), refresh_token=first.refresh_token
        )  # reuse: the family is revoked
    with pytest.raises(ReauthorizationRequired):
        oauth.refresh_tokens(oauth_app(sim), refresh_token=second.refresh_token)
    gateway_url = f"{sim.gateway}/service/SEED/api"
    assert (
        post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=second.access_token, url=gateway_url).status_code == 401
    )

    # lifetimes are configurable; the simulator's clock can jump ahead
    sim.ctl.configure(
        oauth={
            "refresh_reuse_revokes": False,
            "access_token_lifetime_s": 60,
            "refresh_token_lifetime_s": 3600,
            "token_fields": "camel",
        }
    )
    tokens = pair(sim)  # camelCase answer, read by the connector all the same
    assert 55 <= tokens.access_expires_at.timestamp() - time.time() <= 65
    sim.ctl.configure(clock_offset_s=120)
    assert post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=tokens.access_token, url=gateway_url).json() == {
        "message": "Unauthorised"
    }
    renewed = oauth.refresh_tokens(oauth_app(sim), refresh_token=tokens.refresh_token)
    sim.ctl.configure(clock_offset_s=120 + 3601)
    with pytest.raises(ReauthorizationRequired, match="The request has expired."):
        oauth.refresh_tokens(oauth_app(sim), refresh_token=renewed.refresh_token)

    # a rotated refresh token may keep its predecessor's expiry; without expires_in the client reads exp claims
    sim.ctl.configure(
        clock_offset_s=0, oauth={"rotated_refresh_keeps_expiry": True, "include_expires_in": False}
    )
    start = pair(sim)
    raw = sim.http.post(
        f"{sim.gateway}/token",
        json={
            "grant_type": "refresh_token",
            "refresh_token": start.refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        timeout=5,
    ).json()
    assert set(raw) == {"accessToken", "refreshToken", "tokenType", "scope"}
    exp = [
        jwt.decode(t, options={"verify_signature": False})["exp"]
        for t in (start.refresh_token, raw["refreshToken"])
    ]
    assert exp[0] == exp[1]


def test_revoking_and_expiring_an_authorization(sim: Sim) -> None:
    tokens = pair(sim)
    gateway_url = f"{sim.gateway}/service/SEED/api"
    assert sim.control("/oauth/expire", {"client_id": CLIENT_ID}) == {"expired": 1}
    assert (
        post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=tokens.access_token, url=gateway_url).status_code == 401
    )
    renewed = oauth.refresh_tokens(oauth_app(sim), refresh_token=tokens.refresh_token)
    assert (
        post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=renewed.access_token, url=gateway_url).status_code
        == 200
    )
    assert sim.control("/oauth/revoke", {"customer": CUSTOMER}) == {"revoked": 1}
    assert (
        post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=renewed.access_token, url=gateway_url).status_code
        == 401
    )
    with pytest.raises(ReauthorizationRequired, match="Pairing request not found"):
        oauth.refresh_tokens(oauth_app(sim), refresh_token=renewed.refresh_token)
    # pairing again works; a new pairing for the same customer replaces the previous one
    again = pair(sim)
    newest = pair(sim)
    assert (
        post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=again.access_token, url=gateway_url).status_code == 401
    )
    assert (
        post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=newest.access_token, url=gateway_url).status_code == 200
    )
    authorizations = sim.authorizations()
    assert [a["revoked"] for a in authorizations] == [True, True, False]
    bad = sim.http.post(f"{sim.base}/_sim/oauth/revoke", json={"tenant": "x"}, timeout=5)
    assert bad.status_code == 400
    sim.ctl.reset()
    assert sim.authorizations() == []
    assert (
        post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=newest.access_token, url=gateway_url).status_code == 401
    )


# ---------------------------------------------------------------------------------------- OAuth2: the gateway API


def test_gateway_graphql_with_refresh_on_401(sim: Sim) -> None:
    source = PairTokens(sim, pair(sim))
    client = gateway_client(sim, source)
    assert client.create_entry(entry("BC-cloud-1")).document_number == "ODG-000001"
    # the access token expires at the gateway while the client still believes in it: one 401, one refresh
    sim.control("/oauth/expire")
    assert client.create_entry(entry("BC-cloud-2")).document_number == "ODG-000002"
    assert source.renewals == 1
    statuses = [call.status_code for call in client.call_log]
    assert statuses == [200, 401, 200, 200]  # create, create refused, refresh, create retried
    assert [e["_sim"]["api"] for e in sim.ctl.entries()] == ["graphql", "graphql"]
    stats = sim.stats()
    assert stats["graphql"]["gateway"] == 3 and stats["graphql"]["unauthorized"] == 1
    assert stats["token"]["refresh_token"] == 1
    assert stats["by_endpoint"]["POST /v1/service/{folder}/api"] == 3
    # once the authorization is revoked, the refresh fails and the connector asks for a reconnect
    sim.control("/oauth/revoke")
    with pytest.raises(ReauthorizationRequired):
        client.find_entry("BC-cloud-1")


def test_gateway_refuses_missing_foreign_and_unapproved_tokens(sim: Sim) -> None:
    url = f"{sim.gateway}/service/SEED/api"
    for token in (None, "garbage", jwt_token(sim)):  # none, unknown, a connected-app JWT
        r = post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=token, url=url)
        assert (r.status_code, r.json()) == (401, {"message": "Unauthorised"})
    tokens = pair(sim)
    mismatch = post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=tokens.access_token, url=url, endpoint="OTHER")
    assert mismatch.status_code == 400
    no_header = post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=tokens.access_token, url=url, endpoint=None)
    assert no_header.status_code == 200
    sim.ctl.configure(folders=["SEED", "PROD"])
    forbidden = post_graphql(
        sim,
        DEFAULT_LOOKUP_QUERY,
        token=tokens.access_token,
        url=f"{sim.gateway}/service/PROD/api",
        endpoint="PROD",
    )
    assert forbidden.status_code == 403 and forbidden.json()["$source"] == "Gateway"
    # the gateway token does not open the on-premise API either
    assert (
        post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=tokens.access_token).text == "Error 41: Invalid token"
    )


# -------------------------------------------------------------------------------------------------------- faults


def test_commit_then_drop_on_a_graphql_create(sim: Sim) -> None:
    sim.ctl.set_faults(drop_after_commit_next=1, methods=["POST"])
    client = xtrem_client(sim)
    with pytest.raises(RetryableError) as caught:
        client.create_entry(entry("BC-drop"))
    assert caught.value.outcome_unknown
    # stored once; the connector's lookup (a query: not a "POST" for the faults) finds it
    assert len(sim.ctl.entries(reference="BC-drop")) == 1
    assert client.find_entry("BC-drop").document_number == "ODG-000001"
    assert sim.ctl.faults()["counters"] == {"drop_after_commit_next": 1}


def test_injected_faults_hit_graphql_in_the_gateway_format(sim: Sim) -> None:
    token = jwt_token(sim)
    sim.ctl.set_faults(fail_next=1, fail_status=503, methods=["POST"])
    assert post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=token).status_code == 200  # a query is a "GET"
    r = post_graphql(sim, DEFAULT_MUTATION, create_variables("BC-1"), token=token)
    assert r.status_code == 503
    assert r.json() == {
        "$severity": "error",
        "$dataCode": "InternalServerError",
        "$message": "Internal server error (503, simulated)",
        "$source": "Gateway",
    }
    assert sim.ctl.entries() == []
    sim.ctl.set_faults(fail_after_commit_next=1, fail_status=500)
    assert post_graphql(sim, DEFAULT_MUTATION, create_variables("BC-2"), token=token).status_code == 500
    assert [e["REFINT"] for e in sim.ctl.entries()] == ["BC-2"]
    sim.ctl.set_faults(fail_next=1)
    with pytest.raises(RetryableError, match="Internal server error") as caught:
        xtrem_client(sim).create_entry(entry("BC-3"))
    assert caught.value.outcome_unknown and caught.value.status_code == 500
    sim.ctl.set_faults(clear=True)
    sim.ctl.set_faults(reset_next=1)
    with pytest.raises(requests.ConnectionError):
        post_graphql(sim, DEFAULT_MUTATION, create_variables("BC-4"), token=token)
    sim.ctl.set_faults(timeout_next=1, timeout_ms=500)
    with pytest.raises(requests.exceptions.ReadTimeout):
        sim.http.post(
            sim.xtrem,
            json={"query": DEFAULT_MUTATION, "variables": create_variables("BC-5")},
            headers={"Authorization": f"Bearer {token}", "x-xtrem-endpoint": "SEED"},
            timeout=0.2,
        )
    time.sleep(0.4)
    assert [e["REFINT"] for e in sim.ctl.entries()] == ["BC-2"]
    sim.ctl.set_faults(latency_ms=150, methods=["GET"])
    started = time.monotonic()
    post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=token)
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    post_graphql(sim, DEFAULT_MUTATION, create_variables("BC-6"), token=token)
    assert time.monotonic() - started < 0.15


def test_token_endpoint_faults_only_when_targeted(sim: Sim) -> None:
    tokens = pair(sim)
    sim.ctl.set_faults(fail_next=1, fail_status=502, methods=["POST"])
    renewed = oauth.refresh_tokens(oauth_app(sim), refresh_token=tokens.refresh_token)  # not a "POST" fault
    sim.ctl.set_faults(clear=True)
    sim.ctl.set_faults(fail_next=1, fail_status=502, methods=["TOKEN"])
    with pytest.raises(RetryableError, match="HTTP 502"):
        oauth.refresh_tokens(oauth_app(sim), refresh_token=renewed.refresh_token)
    # nothing was spent: the same refresh token still works
    assert oauth.refresh_tokens(oauth_app(sim), refresh_token=renewed.refresh_token).access_token


def test_refused_connections_apply_to_graphql(sim: Sim) -> None:
    token = jwt_token(sim)
    assert post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=token).status_code == 200
    sim.ctl.set_faults(refuse_for_ms=300)
    time.sleep(0.1)
    with pytest.raises(requests.ConnectionError):
        requests.post(sim.xtrem, json={"query": DEFAULT_LOOKUP_QUERY}, timeout=2)
    time.sleep(0.35)
    assert post_graphql(sim, DEFAULT_LOOKUP_QUERY, token=token).status_code == 200


# ------------------------------------------------------------------------------------------------ config, process


def test_config_validation_and_merge(sim: Sim) -> None:
    for bad in (
        {"oauth": {"lifetime": 5}},
        {"oauth": {"access_token_lifetime_s": 0}},
        {"oauth": {"approve": "maybe"}},
        {"oauth": {"clients": {"c": {"redirect_uris": []}}}},
    ):
        r = sim.http.post(f"{sim.base}/_sim/config", json=bad, timeout=5)
        assert r.status_code == 400, bad
    config = sim.ctl.configure(oauth={"access_token_lifetime_s": 30})
    assert config["oauth"]["access_token_lifetime_s"] == 30
    assert list(config["oauth"]["clients"]) == [CLIENT_ID]  # merged, not replaced


def test_process_registers_clients_from_the_command_line() -> None:
    proc, banner = spawn(
        "sagex3",
        "--oauth-client",
        f"{CLIENT_ID}:{CLIENT_SECRET}",
        "--connected-app",
        f"{APP_ID}:{APP_SECRET}:{APP_USER}",
    )
    try:
        assert banner["oauth_clients"] == [CLIENT_ID] and banner["connected_apps"] == [APP_ID]
        base = banner["base_url"]
        assert banner["graphql"] == f"{base}/xtrem/api" and banner["gateway"] == f"{base}/v1"
        token = sign(
            {
                "iss": APP_ID,
                "sub": APP_USER,
                "aud": f"{base}/xtrem/api",
                "iat": int(time.time()) - 30,
                "exp": int(time.time()) + 300,
            }
        )
        r = requests.post(
            banner["graphql"],
            json={"query": DEFAULT_LOOKUP_QUERY, "variables": {"filter": "{}"}},
            headers={"Authorization": f"Bearer {token}", "x-xtrem-endpoint": "SEED"},
            timeout=5,
        )
        assert r.status_code == 200 and r.json()["data"]["x3Finance"]["journalEntry"]["query"]["edges"] == []
    finally:
        proc.terminate()
        proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
