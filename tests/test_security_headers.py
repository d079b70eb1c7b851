"""The Content-Security-Policy is sent, and the pages it covers need nothing it forbids (no inline script or
style), so the admin works under it."""

from __future__ import annotations

import re

import pytest
import responses
from django.conf import settings

from connector.pipeline import sync_order
from tests.conftest import order_json, order_url
from tests.test_x3_oauth import AUTHORISE_URL, use_oauth


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE)


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in header.split(";")) if d}


def test_the_policy_allows_only_this_site(client):
    csp = policy(client.get("/admin/login/"))
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["form-action"] == ["'self'"]
    assert "'unsafe-inline'" not in str(csp) and "'unsafe-eval'" not in str(csp)


def test_every_answer_carries_it(client, db):
    for url in ("/healthz", "/admin/", "/x3/oauth/callback/"):
        assert "Content-Security-Policy" in client.get(url), url


def assert_no_inline_code(url: str, html: str) -> None:
    for pattern in (INLINE_SCRIPT, EVENT_HANDLER, STYLE_ATTRIBUTE):
        found = pattern.search(html)
        assert not found, (url, found.group(0))


def test_login_and_lockout_pages_need_no_inline_script_or_style(client, django_user_model):
    django_user_model.objects.create_superuser("boss", "b@example.com", "right-password-123")
    assert_no_inline_code("login", client.get("/admin/login/").content.decode())
    for _ in range(settings.AXES_FAILURE_LIMIT):
        locked = client.post("/admin/login/", {"username": "boss", "password": "wrong"})
    assert locked.status_code == 429
    assert_no_inline_code("lockout", locked.content.decode())


def test_admin_pages_need_no_inline_script_or_style(admin_client, tenant, http):
    http.get(order_url(250), json=order_json(250, status_id=1))
    sync_order(tenant=tenant, order_id=250, trigger="webhook")  # a posting row with its status badge
    pages = [
        "/admin/",
        "/admin/connector/tenant/",
        f"/admin/connector/tenant/{tenant.pk}/change/",
        "/admin/connector/tenant/add/",
        "/admin/accounting/posting/",
        "/admin/connector/webhookevent/",
        "/admin/accounting/channelmapping/",
        "/admin/axes/accessattempt/",
        "/admin/connector/tenant/setup/",
        f"/admin/connector/tenant/{tenant.pk}/setup/",
        "/x3/oauth/callback/",
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code in (200, 400), (url, response.status_code)
        assert_no_inline_code(url, response.content.decode())
    assert "connector-status-" in admin_client.get("/admin/accounting/posting/").content.decode()


def test_the_connect_page_may_post_on_to_the_sage_authorise_url(admin_client, tenant):
    use_oauth(tenant.x3)
    response = admin_client.get(f"/admin/connector/tenant/{tenant.pk}/x3-connect/")
    assert response.status_code == 200
    assert policy(response)["form-action"] == ["'self'", "https://api.eu-prod-sagex3.com"]
    assert AUTHORISE_URL.startswith("https://api.eu-prod-sagex3.com/")
    assert policy(admin_client.get("/admin/"))["form-action"] == ["'self'"]  # other pages do not


def test_the_policy_is_configured_in_every_mode():
    assert settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["script-src"] == ["'self'"]
