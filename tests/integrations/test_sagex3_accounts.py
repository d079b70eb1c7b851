"""list_accounts with HTTP faked by ``responses``: paging edge cases, record parsing, chart query validation."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from integrations.errors import BadResponseError, PermanentError, RetryableError
from integrations.sagex3.accounts import (
    DEFAULT_CHART_QUERY,
    account_from_record,
    chart_query_problems,
    effective_chart_query,
)
from integrations.sagex3.graphql import GraphQLConfig, SageX3GraphQLClient
from integrations.sagex3.rest import RestConfig, SageX3RestClient

BASE = "https://x3.example.com:8124"
COLLECTION = f"{BASE}/api1/x3/erp/SEED/GACCOUNT"
GRAPHQL = f"{BASE}/xtrem/api"


class StaticTokens:
    description = "static token"

    def token(self, *, log=None) -> str:
        return "tok-0123456789"

    def renew(self, rejected: str, *, log=None) -> str:
        return "tok-0123456789"


def rest() -> SageX3RestClient:
    return SageX3RestClient(RestConfig(base_url=BASE, folder="SEED", username="U", password="secret-pass"))


def graphql() -> SageX3GraphQLClient:
    return SageX3GraphQLClient(GraphQLConfig(url=GRAPHQL, endpoint="SEED"), StaticTokens())


@responses.activate
def test_api1_follows_the_next_link():
    responses.get(
        COLLECTION,
        json={
            "$resources": [{"ACC": "411000", "DES": "Customers"}],
            "$links": {"$next": {"$url": f"{COLLECTION}?page=2"}},
        },
        match=[
            responses.matchers.query_param_matcher(
                {"representation": "GACCOUNT.$query", "count": "200", "orderBy": "ACC asc"}
            )
        ],
    )
    responses.get(
        f"{COLLECTION}?page=2", json={"$resources": [{"ACC": "707000", "DES": "Sales", "ENAFLG": 1}]}
    )
    accounts = rest().list_accounts()
    assert [(a.code, a.postable) for a in accounts] == [("411000", True), ("707000", False)]


@responses.activate
def test_api1_refuses_a_next_link_to_another_server():
    responses.get(
        COLLECTION,
        json={"$resources": [{"ACC": "1"}], "$links": {"$next": {"$url": "https://evil.example/x"}}},
    )
    with pytest.raises(PermanentError, match="another server"):
        rest().list_accounts()


@responses.activate
def test_api1_key_paging_that_is_ignored_stops_with_an_error():
    page = {"$resources": [{"ACC": "411000"}, {"ACC": "707000"}]}
    responses.get(COLLECTION, json=page)
    with pytest.raises(PermanentError, match="same page twice"):
        rest().list_accounts({"page_size": 2})


@responses.activate
def test_api1_server_error_is_retryable_and_recorded():
    responses.get(COLLECTION, status=503)
    client = rest()
    with pytest.raises(RetryableError):
        client.list_accounts()
    assert client.call_log[0].status_code == 503 and "secret-pass" not in json.dumps(
        client.call_log[0].__dict__
    )


@responses.activate
def test_api1_timeout_is_a_retryable_error():
    responses.get(COLLECTION, body=requests.ReadTimeout("slow"))
    with pytest.raises(RetryableError):
        rest().list_accounts()


def _page(codes, has_next, cursor):
    edges = [
        {"node": {"code": c, "description": f"Account {c}", "isActive": True, "dimensionTypes": ["CCT"]}}
        for c in codes
    ]
    return {
        "data": {
            "x3FinanceData": {
                "account": {
                    "query": {"edges": edges, "pageInfo": {"endCursor": cursor, "hasNextPage": has_next}}
                }
            }
        }
    }


@responses.activate
def test_graphql_follows_cursors():
    responses.post(GRAPHQL, json=_page(["411000"], True, "c1"))
    responses.post(GRAPHQL, json=_page(["707000"], False, "c2"))
    accounts = graphql().list_accounts({"page_size": 1})
    assert [a.code for a in accounts] == ["411000", "707000"] and accounts[0].dimensions == ("CCT",)
    second = json.loads(responses.calls[1].request.body)
    assert second["variables"] == {"first": 1, "after": "c1"}


@responses.activate
def test_graphql_has_next_page_without_cursor_is_an_error():
    responses.post(GRAPHQL, json=_page(["411000"], True, None))
    with pytest.raises(BadResponseError, match="endCursor"):
        graphql().list_accounts()


@responses.activate
def test_graphql_errors_are_refusals():
    responses.post(GRAPHQL, json={"data": None, "errors": [{"message": "Cannot query field 'isActive'"}]})
    with pytest.raises(PermanentError, match="isActive"):
        graphql().list_accounts()


def test_record_parsing():
    settings = effective_chart_query("api1", {"postable_values": ["Y"]})
    assert account_from_record(
        {"ACC": " 411000 ", "DES": "C", "ENAFLG": "y", "DIE": "CCT, DEP"}, settings
    ).dimensions == ("CCT", "DEP")
    assert account_from_record({"ACC": "411000", "ENAFLG": "N"}, settings).postable is False
    assert account_from_record({"ACC": "411000"}, settings).postable is True  # no flag: postable
    assert account_from_record({"DES": "summary row"}, settings) is None


def test_chart_query_validation():
    assert chart_query_problems({}) == [] and chart_query_problems(None) == []
    assert "must be a JSON object" in chart_query_problems([1])[0]
    problems = " ".join(chart_query_problems({"query": "mutation M { x }", "postable_values": []}))
    assert "not a mutation" in problems and "$first" in problems and "postable_values" in problems
    assert "criteria" in " ".join(chart_query_problems({"criteria": {"COA": 1}}))
    assert set(DEFAULT_CHART_QUERY) == {"api1", "soap", "graphql"}
