"""The chart of accounts over real HTTP: each X3 client's ``list_accounts`` against the simulator (api1, GraphQL, SOAP)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integrations.errors import PermanentError
from integrations.sagex3.accounts import Account
from integrations.sagex3.connected_app import ConnectedApp, ConnectedAppTokens
from integrations.sagex3.graphql import GraphQLConfig, SageX3GraphQLClient
from integrations.sagex3.rest import RestConfig, SageX3RestClient
from integrations.sagex3.soap import SageX3SoapClient, SoapConfig
from simulators import sagex3

APP_ID, APP_SECRET, APP_USER = "shop-connector", "connected-app-secret-0123456789abcdef", "WEBSVC"


@pytest.fixture
def sim() -> Iterator[tuple[Any, str]]:
    server, base = sagex3.start_in_thread(
        config={
            "users": {"admin": "s3cret"},
            "connected_apps": {APP_ID: {"secret": APP_SECRET, "user": APP_USER, "url": None}},
        }
    )
    try:
        yield server, base
    finally:
        server.stop()


def rest(base: str) -> SageX3RestClient:
    return SageX3RestClient(
        RestConfig(base_url=base, folder="SEED", username="admin", password="s3cret", timeout=(2.0, 5.0))
    )


def graphql(base: str) -> SageX3GraphQLClient:
    url = f"{base}/xtrem/api"
    tokens = ConnectedAppTokens(
        ConnectedApp(client_id=APP_ID, secret=APP_SECRET, user=APP_USER, audience=url)
    )
    return SageX3GraphQLClient(GraphQLConfig(url=url, endpoint="SEED", timeout=(2.0, 5.0)), tokens)


def soap(base: str) -> SageX3SoapClient:
    return SageX3SoapClient(
        SoapConfig(base_url=base, pool_alias="SEED", username="admin", password="s3cret", timeout=(2.0, 5.0))
    )


CLIENTS = {"api1": rest, "graphql": graphql, "soap": soap}


@pytest.mark.parametrize("method", CLIENTS)
def test_every_method_reads_the_same_chart(sim, method):
    server, base = sim
    client = CLIENTS[method](base)
    accounts = client.list_accounts()
    assert [a.code for a in accounts] == sorted(sagex3.DEFAULT_CHART)
    by_code = {a.code: a for a in accounts}
    assert by_code["707000"] == Account("707000", "Sales of goods", True, ("CCT",))
    assert by_code["580000"].postable is False  # closed in the simulator
    assert by_code["411000"].dimensions == ()
    assert client.call_log and all(c.status_code == 200 for c in client.call_log)


@pytest.mark.parametrize("method", ["api1", "graphql"])
def test_pages_are_followed(sim, method):
    _, base = sim
    client = CLIENTS[method](base)
    accounts = client.list_accounts({"page_size": 7})
    assert len(accounts) == len(sagex3.DEFAULT_CHART)
    assert len(client.call_log) >= 4  # 25 accounts in pages of 7


@pytest.mark.parametrize("method", CLIENTS)
def test_limit_reads_one_account(sim, method):
    _, base = sim
    client = CLIENTS[method](base)
    assert [a.code for a in client.list_accounts(limit=1)] == ["370000"]


def test_soap_full_list_is_an_error_not_a_short_chart(sim):
    _, base = sim
    with pytest.raises(PermanentError, match="list_size"):
        soap(base).list_accounts({"list_size": 10})


def test_api1_unknown_class_is_a_clear_error(sim):
    _, base = sim
    with pytest.raises(PermanentError, match="404"):
        rest(base).list_accounts({"class": "ZACCOUNT", "representation": "ZACCOUNT"})


def test_a_bad_chart_query_is_refused_before_any_call(sim):
    _, base = sim
    client = rest(base)
    with pytest.raises(PermanentError, match="page_size"):
        client.list_accounts({"page_size": 0})
    assert client.call_log == []
