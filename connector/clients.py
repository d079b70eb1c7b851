"""Build API clients from a tenant's stored configuration. The one place credentials leave the database."""

from __future__ import annotations

from integrations.bigcommerce.client import BigCommerceClient, StoreConfig
from integrations.sagex3.rest import RestConfig, SageX3RestClient

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


def x3_client(tenant: Tenant) -> SageX3RestClient:
    x3: X3Connection = tenant.x3
    verify: bool | str = x3.ca_bundle or x3.verify_tls
    return SageX3RestClient(
        RestConfig(
            base_url=x3.server_url,
            folder=x3.folder,
            username=x3.username,
            password=x3.password,
            mapping=x3.rest_mapping or {},
            timeout=(5.0, float(x3.timeout_seconds)),
            verify=verify,
        )
    )
