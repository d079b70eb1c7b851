"""OAuth2 with the Sage X3 cloud gateway: refresh on 401, rotating refresh tokens under concurrency, re-authorization
holding and resuming postings, the "Connect to Sage X3" views, and the admin's test connection and notices."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.db import connection, connections
from django.utils import timezone

from accounting.models import Posting, PostingAttempt
from connector import x3auth
from connector.clients import x3_client
from connector.models import Tenant, X3AuthorizationRequest, X3Connection
from connector.pipeline import deliver_posting as submit_posting
from connector.pipeline import sync_order
from integrations.errors import ReauthorizationRequired, RetryableError
from tests.conftest import X3_BASE, X3_ENTRY_URL, X3_PASSWORD, order_json, order_url

S = Posting.Status
M = X3Connection.Method
GATEWAY = "https://api.eu-prod-sagex3.com/v1"
AUTHORISE_URL = f"{GATEWAY}/token/authorise"
TOKEN_URL = f"{GATEWAY}/token"
CLOUD_GRAPHQL = f"{GATEWAY}/service/SEED/api"
CUSTOMER_GATEWAY = "https://api.us-prod-sagex3.com/v1"
OAUTH_SECRET = "oauth-client-secret-9876543210"
APP_SECRET = "connected-app-secret-0123456789-abcdefghij"
CALLBACK = "/x3/oauth/callback/"


# --- a faithful fake of the gateway: rotating, single-use refresh tokens ------------------------------------------


class FakeGateway:
    """Token endpoint and GraphQL endpoint of the Sage X3 cloud gateway, as the facts describe them.

    * each refresh token works once: using it returns a new pair and invalidates it (rotation);
    * a used, unknown or revoked refresh token gets 400 ``invalid_grant``;
    * GraphQL answers 401 ``{"message": "Unauthorised"}`` to any access token it did not issue or that expired.

    ``hold_refreshes=n`` makes the token endpoint wait until n refresh requests are in flight (bounded by a timeout),
    so a test can prove what happens when workers really do refresh at the same moment.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.valid_refresh = {"refresh-0"}
        self.valid_access: set[str] = set()  # the initial access token is not in it: expired or revoked
        self.counter = 0
        self.refresh_requests: list[dict] = []
        self.code_requests: list[dict] = []
        self.refused: list[str] = []
        self.hold_refreshes = 0
        self.barrier: threading.Barrier | None = None
        self.delay = 0.0
        self.codes = {"code-123"}

    def install(self, rsps, *, token_url: str = TOKEN_URL, graphql_url: str = CLOUD_GRAPHQL) -> None:
        rsps.add_callback(responses.POST, token_url, callback=self.token)
        rsps.add_callback(responses.POST, graphql_url, callback=self.graphql)

    def _pair(self) -> dict:
        self.counter += 1
        access, refresh = f"access-{self.counter}", f"refresh-{self.counter}"
        self.valid_access.add(access)
        self.valid_refresh.add(refresh)
        return {"access_token": access, "refresh_token": refresh, "expires_in": 300}

    def token(self, request):
        body = json.loads(request.body)
        if body.get("grant_type") == "authorization_code":
            self.code_requests.append(body)
            with self.lock:
                if body.get("code") not in self.codes:
                    return 403, {}, json.dumps({"message": "Pairing request not found"})
                self.codes.discard(body["code"])
                return 200, {}, json.dumps(self._pair())
        self.refresh_requests.append(body)
        if self.hold_refreshes:
            barrier = self.barrier or threading.Barrier(self.hold_refreshes)
            self.barrier = barrier
            try:
                barrier.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass
        time.sleep(self.delay)  # a slow gateway widens any race
        with self.lock:
            token = body.get("refresh_token")
            if body.get("grant_type") != "refresh_token":
                return 400, {}, json.dumps({"message": "Invalid grant type"})
            if token not in self.valid_refresh:
                self.refused.append(token)
                return (
                    400,
                    {},
                    json.dumps({"error": "invalid_grant", "error_description": "Refresh token is invalid"}),
                )
            self.valid_refresh.discard(token)  # rotation: a refresh token works once
            return 200, {}, json.dumps(self._pair())

    def graphql(self, request):
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            ok = token in self.valid_access
        if not ok:
            return 401, {}, json.dumps({"message": "Unauthorised"})
        body = json.loads(request.body)
        if body["query"].lstrip().startswith("mutation"):
            number = f"ODG-{self.counter:06d}"
            create = {"journalEntryType": "ODG", "journalEntryNumber": number}
            return 200, {}, json.dumps({"data": {"x3Finance": {"journalEntry": {"create": create}}}})
        return 200, {}, json.dumps({"data": {"x3Finance": {"journalEntry": {"query": {"edges": []}}}}})


def use_oauth(x3: X3Connection, **overrides) -> X3Connection:
    now = timezone.now()
    values = {
        "method": M.GRAPHQL_OAUTH2,
        "oauth_client_id": "sage-app-client",
        "oauth_client_secret": OAUTH_SECRET,
        "oauth_authorise_url": AUTHORISE_URL,
        "oauth_token_url": TOKEN_URL,
        "access_token": "access-0",
        "access_token_expires_at": now + timedelta(minutes=4),
        "refresh_token": "refresh-0",
        "refresh_token_expires_at": now + timedelta(days=30),
        "authorized_at": now - timedelta(days=1),
    }
    values.update(overrides)
    for key, value in values.items():
        setattr(x3, key, value)
    x3.save()
    return x3


@pytest.fixture
def oauth_tenant(tenant) -> Tenant:
    use_oauth(tenant.x3)
    return Tenant.objects.select_related("x3").get(pk=tenant.pk)


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def gateway(http) -> FakeGateway:
    fake = FakeGateway()
    fake.install(http)
    return fake


def stored(tenant: Tenant) -> X3Connection:
    return X3Connection.objects.get(tenant=tenant)


# --- refresh on 401 -----------------------------------------------------------------------------------------------


def test_a_401_refreshes_once_stores_the_new_pair_and_retries_once(oauth_tenant, gateway, http):
    # given the stored access token is no longer accepted (X3 says 401 Unauthorised)
    client = x3_client(oauth_tenant)

    # when a lookup is made
    assert client.find_entry("BC-abc123-250") is None

    # then: one 401, one refresh with the stored refresh token, one retry with the new token
    urls = [c.request.url for c in http.calls]
    assert urls == [CLOUD_GRAPHQL, TOKEN_URL, CLOUD_GRAPHQL]
    assert gateway.refresh_requests == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "refresh-0",
            "client_id": "sage-app-client",
            "client_secret": OAUTH_SECRET,
        }
    ]
    assert http.calls[0].request.headers["Authorization"] == "Bearer access-0"
    assert http.calls[2].request.headers["Authorization"] == "Bearer access-1"
    assert http.calls[1].request.headers["Content-Type"] == "application/json"
    # the rotated pair is stored (encrypted) before it is used
    x3 = stored(oauth_tenant)
    assert (x3.access_token, x3.refresh_token) == ("access-1", "refresh-1")
    assert timedelta(minutes=4) < x3.access_token_expires_at - timezone.now() <= timedelta(minutes=5)
    # and the audit trail has all three calls without any token or secret
    assert [r.url for r in client.call_log] == urls
    logged = json.dumps([r.__dict__ for r in client.call_log])
    for secret in ("access-0", "access-1", "refresh-0", "refresh-1", OAUTH_SECRET):
        assert secret not in logged, secret
    assert "Unauthorised" in client.call_log[0].error


def test_an_expired_access_token_is_refreshed_before_use(oauth_tenant, gateway, http):
    X3Connection.objects.filter(tenant=oauth_tenant).update(access_token_expires_at=timezone.now())
    x3_client(oauth_tenant).find_entry("BC-abc123-250")
    assert [c.request.url for c in http.calls] == [TOKEN_URL, CLOUD_GRAPHQL]


def test_a_401_after_the_refresh_is_an_authentication_error(oauth_tenant, http):
    # given the gateway refuses even a freshly refreshed token
    fake = FakeGateway()
    http.add_callback(responses.POST, TOKEN_URL, callback=fake.token)
    http.post(CLOUD_GRAPHQL, status=401, json={"message": "Unauthorised"})
    http.get(order_url(250), json=order_json(250))

    # when the order is posted
    sync_order(tenant=oauth_tenant, order_id=250, trigger="webhook")

    # then one refresh, two GraphQL calls, and the posting stops with X3's message (not "needs re-authorization":
    # the authorization itself was renewed fine)
    posting = Posting.objects.get()
    assert posting.status == S.NEEDS_ATTENTION
    assert "Unauthorised" in posting.last_error and "401 twice" in posting.last_error
    assert len(fake.refresh_requests) == 1
    assert [c.request.url for c in http.calls if "sagex3" in c.request.url] == [
        CLOUD_GRAPHQL,
        TOKEN_URL,
        CLOUD_GRAPHQL,
    ]
    assert stored(oauth_tenant).refresh_token == "refresh-1"  # the rotated token was kept: no lock-out
    assert PostingAttempt.objects.filter(posting=posting).count() == 3


def test_a_failing_token_endpoint_is_retryable_and_changes_nothing(oauth_tenant, http):
    http.post(CLOUD_GRAPHQL, status=401, json={"message": "Unauthorised"})
    http.post(TOKEN_URL, status=503, json={"message": "Service Unavailable"})
    with pytest.raises(RetryableError, match="Service Unavailable"):
        x3_client(oauth_tenant).find_entry("BC-abc123-250")
    x3 = stored(oauth_tenant)
    assert (x3.access_token, x3.refresh_token, x3.authorization_error) == ("access-0", "refresh-0", "")


# --- rotating refresh under concurrency ---------------------------------------------------------------------------


def _concurrent_lookups(tenant_id: int, workers: int) -> list[str]:
    """Run ``workers`` lookups at the same moment, each in its own thread with its own database connection."""
    start = threading.Barrier(workers)
    results: list[str] = [""] * workers

    def work(index: int) -> None:
        try:
            tenant = Tenant.objects.select_related("x3").get(pk=tenant_id)
            client = x3_client(tenant)
            start.wait(timeout=10)
            client.find_entry(f"BC-abc123-{index}")
            results[index] = "ok"
        except Exception as exc:  # noqa: BLE001 - the test reports whatever happened in the thread
            results[index] = f"{type(exc).__name__}: {exc}"
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _skip_on_sqlite() -> None:
    if connection.vendor == "sqlite":
        pytest.skip(
            "The row lock needs PostgreSQL (SQLite has no SELECT FOR UPDATE); CI runs this on PostgreSQL"
        )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("access_expired", [False, True], ids=["after-401", "before-use"])
def test_concurrent_refreshes_use_the_rotating_refresh_token_once_and_never_lock_out(tenant, access_expired):
    _skip_on_sqlite()
    # given a stored access token the gateway no longer accepts (or that is past its expiry), and 6 workers
    use_oauth(tenant.x3)
    if access_expired:
        X3Connection.objects.filter(pk=tenant.x3.pk).update(access_token_expires_at=timezone.now())
    fake = FakeGateway()
    fake.delay = 0.3  # the first refresh is slow: the others pile up behind the row lock meanwhile
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)

        # when they all call X3 at the same moment
        results = _concurrent_lookups(tenant.pk, workers=6)

        # then every one succeeded, the refresh token was used exactly once, and the stored pair is the live one
        assert results == ["ok"] * 6
        assert [r["refresh_token"] for r in fake.refresh_requests] == ["refresh-0"]
        assert fake.refused == []
        x3 = X3Connection.objects.get(pk=tenant.x3.pk)
        assert x3.refresh_token in fake.valid_refresh and x3.access_token == "access-1"
        assert x3.authorization_error == ""

        # and the next refresh works too: nobody burned the stored refresh token
        fake.valid_access.discard("access-1")
        assert x3_client(Tenant.objects.select_related("x3").get(pk=tenant.pk)).find_entry("BC-x") is None
        assert [r["refresh_token"] for r in fake.refresh_requests] == ["refresh-0", "refresh-1"]


@pytest.mark.django_db(transaction=True)
def test_without_the_row_lock_concurrent_refreshes_lock_the_tenant_out(tenant, monkeypatch):
    """The control for the test above: it shows that the fake and the threads really detect a burned token."""
    _skip_on_sqlite()
    # given the lock is taken away (a plain read), and the gateway holds refreshes until 3 are in flight
    monkeypatch.setattr(x3auth, "_locked_connection", lambda pk: X3Connection.objects.get(pk=pk))
    use_oauth(tenant.x3)
    fake = FakeGateway()
    fake.hold_refreshes = 3
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)

        # when
        results = _concurrent_lookups(tenant.pk, workers=3)

    # then the same refresh token went out three times: one worker won, the others were refused
    assert [r["refresh_token"] for r in fake.refresh_requests] == ["refresh-0"] * 3
    assert fake.refused == ["refresh-0", "refresh-0"]
    assert sum(r.startswith("ReauthorizationRequired") for r in results) == 2


# --- expired or revoked authorization: postings wait, reconnecting resumes them -----------------------------------


def test_an_expired_refresh_token_holds_postings_and_reconnecting_resumes_them(
    admin_client, oauth_tenant, http
):
    # given the refresh token expired yesterday and the access token too
    X3Connection.objects.filter(tenant=oauth_tenant).update(
        access_token_expires_at=timezone.now() - timedelta(days=1),
        refresh_token_expires_at=timezone.now() - timedelta(days=1),
    )
    http.get(order_url(250), json=order_json(250))
    http.get(order_url(251), json=order_json(251))

    # when two orders arrive
    sync_order(tenant=oauth_tenant, order_id=250, trigger="webhook")
    sync_order(tenant=oauth_tenant, order_id=251, trigger="webhook")

    # then both wait for re-authorization; nothing was sent to Sage at all
    assert list(Posting.objects.values_list("status", flat=True)) == [S.NEEDS_REAUTH, S.NEEDS_REAUTH]
    assert "expired" in Posting.objects.first().last_error
    assert not [c for c in http.calls if "sagex3" in c.request.url]
    assert "expired" in stored(oauth_tenant).authorization_error

    # and the admin says so prominently
    page = admin_client.get(f"/admin/connector/tenant/{oauth_tenant.pk}/change/").content.decode()
    assert "2 posting(s) of Acme Ltd wait for Sage X3 re-authorization" in page
    assert "Connect to Sage X3" in page
    listing = admin_client.get("/admin/connector/tenant/").content.decode()
    assert "Postings wait for Sage X3 re-authorization" in listing and "Acme Ltd (2)" in listing

    # when the admin reconnects (the customer's gateway answers at another regional endpoint)
    fake = FakeGateway()
    fake.install(
        http, token_url=f"{CUSTOMER_GATEWAY}/token", graphql_url=f"{CUSTOMER_GATEWAY}/service/SEED/api"
    )
    start = admin_client.post(f"/x3/oauth/{oauth_tenant.pk}/start/")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    done = admin_client.get(
        CALLBACK, {"authorizationCode": "code-123", "state": state, "endpoint": CUSTOMER_GATEWAY}
    )

    # then both postings are posted through the endpoint the callback named, and the tenant is healthy again
    assert (
        done.status_code == 302 and done["Location"] == f"/admin/connector/tenant/{oauth_tenant.pk}/change/"
    )
    assert list(Posting.objects.values_list("status", flat=True)) == [S.POSTED, S.POSTED]
    x3 = stored(oauth_tenant)
    assert x3.gateway_endpoint == CUSTOMER_GATEWAY and x3.authorization_error == ""
    assert x3.refresh_token == "refresh-1" and x3.refresh_token_expires_at > timezone.now() + timedelta(
        days=29
    )
    assert fake.code_requests == [
        {
            "code": "code-123",
            "client_id": "sage-app-client",
            "client_secret": OAUTH_SECRET,
            "grant_type": "authorization_code",
            "redirect_uri": "http://testserver/x3/oauth/callback/",
        }
    ]
    page = admin_client.get(f"/admin/connector/tenant/{oauth_tenant.pk}/change/").content.decode()
    assert (
        "wait for Sage X3 re-authorization" not in page
        and "2 posting(s) waiting for re-authorization were resumed" in page
    )


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "Refresh token is invalid"},
            "Refresh token is invalid",
        ),
        (403, {"message": "Pairing request not found"}, "Pairing request not found"),
    ],
)
def test_a_revoked_authorization_holds_postings_and_stops_calling_the_token_endpoint(
    oauth_tenant, http, status, body, says
):
    # given the customer deleted the authorization in Sage
    http.post(CLOUD_GRAPHQL, status=401, json={"message": "Unauthorised"})
    http.post(TOKEN_URL, status=status, json=body)
    http.get(order_url(250), json=order_json(250))
    http.get(order_url(251), json=order_json(251))

    # when two orders are posted
    sync_order(tenant=oauth_tenant, order_id=250, trigger="webhook")
    sync_order(tenant=oauth_tenant, order_id=251, trigger="webhook")

    # then both wait, with Sage's reason, and the token endpoint was asked only once
    postings = list(Posting.objects.all())
    assert [p.status for p in postings] == [S.NEEDS_REAUTH, S.NEEDS_REAUTH]
    assert all(says in p.last_error for p in postings)
    assert len([c for c in http.calls if c.request.url == TOKEN_URL]) == 1
    assert says in stored(oauth_tenant).authorization_error
    with pytest.raises(ReauthorizationRequired):
        x3_client(oauth_tenant).test_connection()


def test_a_held_posting_is_resumed_by_submit_posting_with_any_client(oauth_tenant, http):
    """Driven through connector.pipeline.deliver_posting directly, with the client passed in."""
    X3Connection.objects.filter(tenant=oauth_tenant).update(authorization_error="revoked", access_token="")
    http.get(order_url(250), json=order_json(250))
    sync_order(tenant=oauth_tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    assert posting.status == S.NEEDS_REAUTH
    # a second attempt while still unauthorized changes nothing and calls nobody
    Posting.objects.filter(pk=posting.pk).update(status=S.RETRY, next_attempt_at=None)
    assert submit_posting(posting.pk, client=x3_client(oauth_tenant)) == "needs-reauthorization"
    assert not [c for c in http.calls if "sagex3" in c.request.url]


# --- the "Connect to Sage X3" views -------------------------------------------------------------------------------


def test_start_redirects_to_sage_with_a_single_use_state_stored_server_side(admin_client, oauth_tenant):
    response = admin_client.post(f"/x3/oauth/{oauth_tenant.pk}/start/")

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == AUTHORISE_URL
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert params["client_id"] == "sage-app-client"
    assert params["scope"] == "businessDomain.ALL api.graphQL"
    assert params["redirect_uri"] == "http://testserver/x3/oauth/callback/"
    assert params["customer"] == X3_BASE
    assert len(params["state"]) >= 40
    request = X3AuthorizationRequest.objects.get()
    assert (
        params["state"] not in request.state_hash and len(request.state_hash) == 64
    )  # only a hash is stored
    assert request.created_by.username == "admin" and request.used_at is None


def test_start_is_for_admins_only_and_by_post(client, admin_client, oauth_tenant, django_user_model):
    url = f"/x3/oauth/{oauth_tenant.pk}/start/"
    assert admin_client.get(url).status_code == 405
    anonymous = client.post(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.post(url).status_code == 403
    assert X3AuthorizationRequest.objects.count() == 0


def test_start_explains_what_is_missing(admin_client, oauth_tenant):
    X3Connection.objects.filter(tenant=oauth_tenant).update(oauth_client_id="")
    response = admin_client.post(f"/x3/oauth/{oauth_tenant.pk}/start/", follow=True)
    assert "Fill in OAuth client ID" in response.content.decode()
    assert X3AuthorizationRequest.objects.count() == 0


def _start(admin_client, tenant) -> str:
    response = admin_client.post(f"/x3/oauth/{tenant.pk}/start/")
    return parse_qs(urlsplit(response["Location"]).query)["state"][0]


def test_a_bad_state_is_rejected_and_nothing_is_exchanged(admin_client, oauth_tenant, gateway):
    _start(admin_client, oauth_tenant)
    response = admin_client.get(CALLBACK, {"authorizationCode": "code-123", "state": "forged-state"})
    assert response.status_code == 400 and "bad state" in response.content.decode()
    response = admin_client.get(CALLBACK, {"authorizationCode": "code-123"})
    assert response.status_code == 400
    assert gateway.code_requests == [] and stored(oauth_tenant).refresh_token == "refresh-0"


def test_a_state_works_once(admin_client, oauth_tenant, gateway):
    state = _start(admin_client, oauth_tenant)
    first = admin_client.get(CALLBACK, {"authorizationCode": "code-123", "state": state})
    gateway.codes.add("code-456")
    second = admin_client.get(CALLBACK, {"authorizationCode": "code-456", "state": state})

    assert first.status_code == 302
    assert second.status_code == 400 and "already used" in second.content.decode()
    assert [r["code"] for r in gateway.code_requests] == ["code-123"]
    assert stored(oauth_tenant).refresh_token == "refresh-1"


def test_an_expired_state_or_another_users_state_is_rejected(
    admin_client, client, oauth_tenant, gateway, django_user_model
):
    state = _start(admin_client, oauth_tenant)
    X3AuthorizationRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = admin_client.get(CALLBACK, {"authorizationCode": "code-123", "state": state})
    assert response.status_code == 400 and "expired" in response.content.decode()

    state = _start(admin_client, oauth_tenant)
    other = django_user_model.objects.create_superuser("other", password="pw")
    client.force_login(other)
    response = client.get(CALLBACK, {"authorizationCode": "code-123", "state": state})
    assert response.status_code == 400 and "another user" in response.content.decode()
    assert gateway.code_requests == []


def test_sages_cross_site_post_callback_is_accepted_on_the_state_alone(
    admin_client, client, oauth_tenant, gateway
):
    """Sage documents the callback as a POST; a cross-site POST carries no (SameSite=Lax) session cookie."""
    state = _start(admin_client, oauth_tenant)
    response = client.post(CALLBACK, {"authorizationCode": "code-123", "state": state})
    assert response.status_code == 200 and "Sage X3 connected for Acme Ltd" in response.content.decode()
    assert stored(oauth_tenant).refresh_token == "refresh-1"


def test_a_refused_pairing_or_a_foreign_endpoint_connects_nothing(admin_client, oauth_tenant, gateway):
    state = _start(admin_client, oauth_tenant)
    response = admin_client.get(CALLBACK, {"state": state, "error": "access_denied"})
    assert response.status_code == 400 and "access_denied" in response.content.decode()

    state = _start(admin_client, oauth_tenant)
    response = admin_client.get(
        CALLBACK, {"authorizationCode": "code-123", "state": state, "endpoint": "https://evil.example.com/v1"}
    )
    assert response.status_code == 400 and "not a Sage gateway" in response.content.decode()

    state = _start(admin_client, oauth_tenant)
    response = admin_client.get(CALLBACK, {"authorizationCode": "wrong-code", "state": state})
    assert response.status_code == 502 and "Pairing request not found" in response.content.decode()
    assert OAUTH_SECRET not in response.content.decode()
    assert stored(oauth_tenant).refresh_token == "refresh-0"
    assert [r.outcome for r in X3AuthorizationRequest.objects.order_by("pk")][0] == "refused: access_denied"


# --- the admin: test connection, days left, secrets ---------------------------------------------------------------


def test_admin_test_connection_for_rest(admin_client, tenant, http):
    http.get(f"{X3_ENTRY_URL}?representation=GACCENTRY.$query&count=1", json={"$resources": []})
    page = admin_client.get(f"/admin/connector/tenant/{tenant.pk}/x3-test/")
    assert page.status_code == 200 and "REST api1 + HTTP Basic" in page.content.decode()

    response = admin_client.post(f"/admin/connector/tenant/{tenant.pk}/x3-test/", follow=True)

    html = response.content.decode()
    assert "Sage X3 connection test passed" in html and "folder SEED, as WEBUSER" in html
    assert X3_PASSWORD not in html


def test_admin_test_connection_for_a_connected_app_shows_x3s_exact_error(admin_client, tenant, http):
    x3 = tenant.x3
    x3.method, x3.app_client_id, x3.app_secret, x3.app_user = M.GRAPHQL_JWT, "app", APP_SECRET, "APIUSER"
    x3.save()
    http.post(f"{X3_BASE}/xtrem/api", status=401, body="Error 45: Invalid token")

    response = admin_client.post(f"/admin/connector/tenant/{tenant.pk}/x3-test/", follow=True)

    html = response.content.decode()
    assert "Sage X3 connection test failed" in html and "Error 45: Invalid token" in html
    assert APP_SECRET not in html


def test_admin_test_connection_for_oauth(admin_client, oauth_tenant, gateway):
    response = admin_client.post(f"/admin/connector/tenant/{oauth_tenant.pk}/x3-test/", follow=True)
    html = response.content.decode()
    assert "Sage X3 connection test passed" in html and "OAuth2 via the Sage X3 cloud gateway" in html
    assert "endpoint SEED" in html


def test_admin_shows_days_left_and_warns_before_the_refresh_token_expires(
    admin_client, oauth_tenant, settings
):
    X3Connection.objects.filter(tenant=oauth_tenant).update(
        refresh_token_expires_at=timezone.now() + timedelta(days=20, hours=1)
    )
    html = admin_client.get(f"/admin/connector/tenant/{oauth_tenant.pk}/change/").content.decode()
    assert "Refresh token: 20 days left" in html and "Reconnect before then" not in html

    X3Connection.objects.filter(tenant=oauth_tenant).update(
        refresh_token_expires_at=timezone.now() + timedelta(days=3, hours=1)
    )
    html = admin_client.get(f"/admin/connector/tenant/{oauth_tenant.pk}/change/").content.decode()
    assert "Refresh token: 3 days left" in html and "Reconnect before then" in html
    assert 'class="messagelist"' in html  # shown as a page message too, not only in the form
    connect = admin_client.get(f"/admin/connector/tenant/{oauth_tenant.pk}/x3-connect/").content.decode()
    assert (
        "http://testserver/x3/oauth/callback/" in connect and f"/x3/oauth/{oauth_tenant.pk}/start/" in connect
    )


def test_tokens_and_secrets_are_encrypted_at_rest_and_never_shown(admin_client, oauth_tenant):
    from tests.test_configuration import raw_column

    x3 = stored(oauth_tenant)
    for field, secret in (
        ("access_token", "access-0"),
        ("refresh_token", "refresh-0"),
        ("oauth_client_secret", OAUTH_SECRET),
    ):
        assert secret.encode() not in raw_column(X3Connection, field, x3.pk)
    html = admin_client.get(f"/admin/connector/tenant/{oauth_tenant.pk}/change/").content.decode()
    for secret in ("access-0", "refresh-0", OAUTH_SECRET):
        assert secret not in html
