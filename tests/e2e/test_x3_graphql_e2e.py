"""The whole job over real HTTP with the GraphQL connection methods: the running connector (web server and workers)
posts orders to the simulated Sage X3 through ``/xtrem/api`` with a connected-app JWT, and through the cloud gateway
(``/v1/service/SEED/api``) with OAuth2 tokens obtained by the real "Connect to Sage X3" flow (admin login, the
authorise redirect, the callback's code exchange), including an access token that expires at the gateway and a
create whose response is lost after X3 committed it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounting.models import Posting
from connector.models import Tenant, X3Connection
from simulators.stack import (
    STORE_HASH,
    TENANT,
    X3_OAUTH_CLIENT_ID,
    X3_OAUTH_CLIENT_SECRET,
    Stack,
    start_stack,
    wait_for,
)
from tests.e2e.conftest import database_url, settle

pytestmark = pytest.mark.e2e
S = Posting.Status
RECEIVABLE = {1: "411000", 2: "411100", 3: "467000"}
REVENUE = {1: "707000", 2: "707100", 3: "707200"}


def _stack(tmp_path, x3_method: str) -> Iterator[Stack]:
    with start_stack(
        database_url=database_url(),
        redis_url=os.environ.get("REDIS_URL", ""),
        log_dir=tmp_path,
        migrate=False,
        x3_method=x3_method,
    ) as running:
        yield running


@pytest.fixture
def jwt_stack(transactional_db, tmp_path) -> Iterator[Stack]:
    yield from _stack(tmp_path, "graphql_jwt")


@pytest.fixture
def oauth_stack(transactional_db, tmp_path) -> Iterator[Stack]:
    yield from _stack(tmp_path, "graphql_oauth2")


def posted(count: int) -> Callable[[], bool]:
    return lambda: Posting.objects.filter(status=S.POSTED).count() >= count


def order(stack: Stack, channel_id: int) -> dict[str, Any]:
    lines = [{"name": "Mug", "price": "12.50", "quantity": 2, "cost_price": "4.00"}]
    return stack.bc.create_order(
        STORE_HASH, status_id=11, channel_id=channel_id, lines=lines, shipping_cost="5.00"
    )["order"]


def sim_control(stack: Stack, path: str, body: dict[str, Any] | None = None) -> Any:
    response = requests.post(f"{stack.x3_url}/_sim{path}", json=body or {}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def assert_single_graphql_entry(stack: Stack, data: dict[str, Any], channel: int) -> dict[str, Any]:
    """X3 holds exactly one balanced entry for the order, created through GraphQL on the channel's accounts."""
    entries = stack.entries(reference=f"BC-{STORE_HASH}-{data['id']}")
    assert len(entries) == 1
    (entry,) = entries
    assert entry["_sim"]["api"] == "graphql"
    lines = entry["_sim"]["lines"]
    assert {RECEIVABLE[channel], REVENUE[channel]} <= {line["account"] for line in lines}
    assert Decimal(entry["_sim"]["debit_total"]) == Decimal(entry["_sim"]["credit_total"])
    receivable = sum(Decimal(ln["debit"]) for ln in lines if ln["account"] == RECEIVABLE[channel])
    assert receivable == Decimal(data["total_inc_tax"])
    posting = Posting.objects.get(order_id=data["id"], kind=Posting.Kind.ORDER)
    assert posting.status == S.POSTED and posting.x3_document_number == entry["NUM"]
    return entry


def assert_commit_then_drop_found_once(stack: Stack, data: dict[str, Any]) -> None:
    assert len(stack.entries(reference=f"BC-{STORE_HASH}-{data['id']}")) == 1
    posting = Posting.objects.get(order_id=data["id"], kind=Posting.Kind.ORDER)
    outcomes = list(posting.attempt_log.values_list("operation", "outcome"))
    assert ("create", "unknown") in outcomes and ("find", "ok") in outcomes


def test_connected_app_jwt_posts_through_xtrem_api(jwt_stack: Stack) -> None:
    stack = jwt_stack
    # given a paid order on the main storefront
    first = order(stack, 1)

    # when its webhook reaches the connector, whose tenant posts through GraphQL with a connected application
    wait_for(posted(1), timeout=60, what="the first posting")

    # then one entry, created by the default mutation on /xtrem/api, no api1 call and no refused token
    assert_single_graphql_entry(stack, first, 1)
    stats = stack.x3.stats()
    assert stats["graphql"]["xtrem"] >= 1 and stats["graphql"]["mutations"] == 1
    assert stats["graphql"]["unauthorized"] == 0 and stats["graphql"]["gateway"] == 0
    assert not any(name.startswith(("POST api1", "GET api1")) for name in stats["by_endpoint"])

    # and when X3 commits the next create and drops the connection, the retry finds it instead of posting again
    stack.x3.set_faults(drop_after_commit_next=1, methods=["POST"])
    second = order(stack, 2)
    settle(stack, posted(2), what="the dropped posting")
    assert_commit_then_drop_found_once(stack, second)
    assert_single_graphql_entry(stack, second, 2)
    assert stack.x3.faults()["counters"] == {"drop_after_commit_next": 1}


def connect_through_the_admin(stack: Stack) -> requests.Response:
    """Log in to the running connector's admin, press "Connect to Sage X3", let the simulated Sage pairing page
    approve, and follow its redirect to the connector's callback (which exchanges the code)."""
    password = "e2e-admin-password-0123"  # noqa: S105
    user = get_user_model().objects.create_superuser("e2e-admin", "admin@example.com")
    # The test settings hash with MD5, which the connector's own settings do not accept: store a PBKDF2 hash.
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(password, hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])
    tenant = Tenant.objects.get(slug=TENANT)
    http = requests.Session()
    login_url = f"{stack.connector_url}/admin/login/"
    http.get(login_url, timeout=10)
    login = http.post(
        login_url,
        data={
            "username": "e2e-admin",
            "password": password,
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
            "next": "/admin/",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert login.status_code == 302, login.text[-2000:]

    start = http.post(
        f"{stack.connector_url}/x3/oauth/{tenant.pk}/start/",
        data={"csrfmiddlewaretoken": http.cookies["csrftoken"]},
        allow_redirects=False,
        timeout=10,
    )
    assert start.status_code == 302, start.text[-2000:]
    assert start.headers["Location"].startswith(f"{stack.x3_url}/v1/token/authorise?")
    pairing = http.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert pairing.status_code == 302, pairing.text
    assert pairing.headers["Location"].startswith(
        f"{stack.connector_url}/x3/oauth/callback/?authorizationCode="
    )
    callback = http.get(pairing.headers["Location"], allow_redirects=False, timeout=30)
    http.close()
    return callback


def test_oauth2_connect_post_refresh_and_commit_then_drop(oauth_stack: Stack) -> None:
    stack = oauth_stack
    # given a tenant on the cloud gateway that nobody has connected yet: its first order waits, nothing is lost
    first = order(stack, 1)
    wait_for(
        lambda: Posting.objects.filter(status=S.NEEDS_REAUTH).count() == 1,
        timeout=60,
        what="the posting to wait for re-authorization",
    )
    assert stack.entries() == []

    # when an admin connects through the real authorization-code flow
    callback = connect_through_the_admin(stack)

    # then the code was exchanged, the pair stored, and the held posting resumed and posted through the gateway
    assert callback.status_code == 302, callback.text[-2000:]
    x3 = X3Connection.objects.get(tenant__slug=TENANT)
    assert x3.access_token and x3.refresh_token and not x3.authorization_error and x3.authorized_at
    settle(stack, posted(1), what="the resumed posting")
    assert_single_graphql_entry(stack, first, 1)
    stats = stack.x3.stats()
    assert stats["token"]["authorise"] == 1 and stats["token"]["authorization_code"] == 1
    assert stats["token"]["refresh_token"] == 0 and stats["graphql"]["gateway"] >= 1
    assert stats["graphql"]["xtrem"] == 0 and stats["graphql"]["unauthorized"] == 0
    (authorization,) = requests.get(f"{stack.x3_url}/_sim/oauth", timeout=10).json()["authorizations"]
    assert authorization["client_id"] == X3_OAUTH_CLIENT_ID and authorization["customer"] == stack.x3_url

    # when the access token expires at the gateway while the connector still believes in it
    assert sim_control(stack, "/oauth/expire") == {"expired": 1}
    spent_refresh = x3.refresh_token
    second = order(stack, 2)
    wait_for(posted(2), timeout=60, what="the posting after the expiry")

    # then the create was refused once, the pair refreshed once (rotated and stored), and the retry posted
    assert_single_graphql_entry(stack, second, 2)
    after = stack.x3.stats()
    assert after["graphql"]["unauthorized"] == 1 and after["token"]["refresh_token"] == 1
    assert after["token"]["issued"] == 2 and after["token"]["refused"] == 0
    x3.refresh_from_db()
    assert x3.refresh_token != spent_refresh and x3.tokens_refreshed_at and not x3.authorization_error
    reused = requests.post(
        f"{stack.x3_url}/v1/token",
        json={
            "grant_type": "refresh_token",
            "refresh_token": spent_refresh,
            "client_id": X3_OAUTH_CLIENT_ID,
            "client_secret": X3_OAUTH_CLIENT_SECRET,
        },
        timeout=10,
    )
    assert (reused.status_code, reused.json()) == (403, {"message": "Pairing request not found"})

    # and when X3 commits a create and drops the connection, the retry finds the entry instead of posting again
    stack.x3.set_faults(drop_after_commit_next=1, methods=["POST"])
    third = order(stack, 3)
    settle(stack, posted(3), what="the dropped posting")
    assert_commit_then_drop_found_once(stack, third)
    assert_single_graphql_entry(stack, third, 3)
    assert len(stack.entries()) == 3
