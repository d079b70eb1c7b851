"""Build API clients from a tenant's stored configuration. The one place credentials leave the database."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from integrations.bigcommerce.client import BigCommerceClient, StoreConfig
from integrations.errors import PermanentError
from integrations.http import CallRecord, new_session
from integrations.sagex3.accounts import Account
from integrations.sagex3.graphql import GraphQLConfig, SageX3GraphQLClient, TokenSource
from integrations.sagex3.rest import RestConfig, SageX3RestClient
from integrations.sagex3.soap import SageX3SoapClient, SoapConfig
from integrations.sagex3.types import Entry, PostedEntry, X3Client

from . import x3auth
from .models import Tenant, X3Connection

# One BigCommerce client per store and process: it remembers the rate-limit headers BigCommerce sent last, so a
# worker going through many orders throttles before the store's shared quota runs out instead of meeting 429s.
_bc_clients: dict[tuple, BigCommerceClient] = {}


def bigcommerce_client(tenant: Tenant) -> BigCommerceClient:
    store = tenant.bigcommerce
    key = (tenant.pk, store.store_hash, store.access_token, store.api_base_url)
    client = _bc_clients.get(key)
    if client is None:
        config = StoreConfig(store_hash=store.store_hash, access_token=store.access_token)
        if store.api_base_url:
            config = StoreConfig(
                store_hash=store.store_hash, access_token=store.access_token, api_base_url=store.api_base_url
            )
        for stale in [k for k in _bc_clients if k[0] == tenant.pk]:  # credentials changed: forget the old one
            del _bc_clients[stale]
        client = _bc_clients[key] = BigCommerceClient(config)
    return client


# One HTTP session per X3 server and process, so a worker keeps its connection (and TLS session) to the X3 server
# across postings. Clients themselves are cheap and made per posting: each keeps the call log of that posting.
_x3_sessions: dict[tuple, requests.Session] = {}


def _x3_session(tenant: Tenant, verify: bool | str) -> requests.Session:
    x3 = tenant.x3
    key = (tenant.pk, verify, x3.method, x3.server_url, x3.username)  # a new server or user: a fresh session
    session = _x3_sessions.get(key)
    if session is None:
        for stale in [k for k in _x3_sessions if k[0] == tenant.pk]:
            _x3_sessions.pop(stale).close()
        session = _x3_sessions[key] = new_session(verify=verify)
    return session


class UnusableX3Client:
    """Stands in when the stored settings cannot make a client: every call raises the reason as a permanent error,
    so a posting stops at "needs attention" with it instead of crashing half-claimed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.call_log: list[CallRecord] = []

    def create_entry(self, entry: Entry) -> PostedEntry:
        raise PermanentError(self.reason)

    def find_entry(self, reference: str) -> PostedEntry | None:
        raise PermanentError(self.reason)

    def test_connection(self) -> str:
        raise PermanentError(self.reason)

    def preview(self, entry: Entry) -> str:
        raise PermanentError(self.reason)

    def list_accounts(
        self, settings: Mapping[str, Any] | None = None, *, limit: int | None = None
    ) -> list[Account]:
        raise PermanentError(self.reason)


def x3_client(tenant: Tenant) -> X3Client:
    """The tenant's Sage X3 client for its connection method. All of them take the same :class:`Entry`.

    Never raises for bad settings: the returned client raises them on use (see :class:`UnusableX3Client`).
    """
    try:
        return _x3_client(tenant)
    except PermanentError as exc:
        return UnusableX3Client(exc.message)


def _x3_client(tenant: Tenant) -> X3Client:
    x3: X3Connection = tenant.x3
    verify: bool | str = x3.ca_bundle or x3.verify_tls
    timeout = (5.0, float(x3.timeout_seconds))
    if x3.method == X3Connection.Method.REST_BASIC:
        try:
            config = RestConfig(
                base_url=x3.server_url,
                folder=x3.folder,
                username=x3.username,
                password=x3.password,
                mapping=x3.rest_mapping or {},
                timeout=timeout,
                verify=verify,
            )
        except ValueError as exc:
            raise PermanentError(f"Sage X3 REST settings: {exc}") from exc
        return SageX3RestClient(config, session=_x3_session(tenant, verify))
    if x3.method == X3Connection.Method.SOAP_BASIC:
        try:
            soap_config = SoapConfig(
                base_url=x3.server_url,
                pool_alias=x3.soap_pool_alias or x3.folder,
                username=x3.username,
                password=x3.password,
                public_name=x3.soap_public_name,
                code_lang=x3.soap_code_lang,
                pool_id=x3.soap_pool_id,
                request_config=x3.soap_request_config,
                mapping=x3.soap_mapping or {},
                wsdl_url=x3.soap_wsdl_url,
                timeout=timeout,
                verify=verify,
            )
        except ValueError as exc:
            raise PermanentError(f"Sage X3 SOAP settings: {exc}") from exc
        return SageX3SoapClient(soap_config, session=_x3_session(tenant, verify))
    tokens: TokenSource
    if x3.method == X3Connection.Method.GRAPHQL_OAUTH2:
        tokens = x3auth.StoredOAuthTokens(x3.pk)
    elif x3.method == X3Connection.Method.GRAPHQL_JWT:
        try:
            tokens = x3auth.connected_app_tokens(x3)
        except ValueError as exc:
            raise PermanentError(f"Sage X3 connected application settings: {exc}") from exc
    else:
        raise PermanentError(f"Unknown Sage X3 connection method {x3.method!r}")
    url = x3auth.graphql_url(x3)
    if not url:
        raise PermanentError(
            "No Sage X3 GraphQL URL: set it, or the token URL, or connect with 'Connect to Sage X3' first"
        )
    try:
        graphql_config = GraphQLConfig(
            url=url, endpoint=x3.folder, mapping=x3.graphql_overrides(), timeout=timeout, verify=verify
        )
    except ValueError as exc:
        raise PermanentError(f"Sage X3 GraphQL settings: {exc}") from exc
    return SageX3GraphQLClient(graphql_config, tokens, session=_x3_session(tenant, verify))
