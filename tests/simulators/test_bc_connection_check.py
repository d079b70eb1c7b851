"""BigCommerce test connection over real HTTP against the simulator: scopes present or missing, channels listed."""

from __future__ import annotations

from integrations.bigcommerce.client import BigCommerceClient, StoreConfig
from integrations.bigcommerce.connection import check_store
from simulators import bigcommerce


def client(base_url: str, store_hash: str, token: str) -> BigCommerceClient:
    return BigCommerceClient(StoreConfig(store_hash=store_hash, access_token=token, api_base_url=base_url))


def test_every_step_passes_and_channels_are_named(bc):
    check = check_store(client(bc.base_url, "usstore01", "tok-us"))
    assert check.ok, check.steps
    assert [s.name for s in check.steps][:2] == ["Store reachable", "Access token accepted"]
    assert check.channels and check.channels[0].id == 1
    channel_step = next(s for s in check.steps if s.name.startswith("Channels"))
    assert check.channels[0].name in channel_step.detail


def test_a_missing_scope_is_named_and_the_others_still_checked():
    server, base_url = bigcommerce.start_in_thread(
        stores=[{"hash": "s1", "access_token": "tok", "orders": 2, "missing_scopes": ["channels"]}], seed=1
    )
    try:
        check = check_store(client(base_url, "s1", "tok"))
    finally:
        server.stop()
    by_name = {s.name.split(":")[0]: s for s in check.steps}
    assert by_name["Orders"].ok and by_name["Webhooks"].ok
    assert not by_name["Channels"].ok and "lacks this scope" in by_name["Channels"].detail
    assert not check.ok and check.channels == []


def test_wrong_token_and_wrong_store(bc):
    check = check_store(client(bc.base_url, "usstore01", "not-the-token"))
    assert [(s.name, s.ok) for s in check.steps] == [
        ("Store reachable", True),
        ("Access token accepted", False),
    ]
    check = check_store(client(bc.base_url, "nosuchstore", "tok-us"))
    assert [(s.name, s.ok) for s in check.steps] == [("Store reachable", False)]
    assert "store hash" in check.steps[0].detail
