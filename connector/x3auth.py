"""Sage X3 GraphQL authorization, Django side: stored OAuth2 tokens, the "Connect to Sage X3" flow, connected-app
signers, and the URLs derived from a connection. The pure protocol code is in integrations/sagex3/{oauth,
connected_app}.py.

Rotating refresh tokens and several workers (docs/decisions/0007-x3-graphql-and-oauth.md): each refresh returns a
new pair and burns the old refresh token, so two workers refreshing at once would lock the tenant out. Hence
:func:`x3_access_token_refresh` takes a row lock on the tenant's X3Connection (``select_for_update`` inside a durable
``atomic``), re-reads the row once it holds the lock (another worker may have refreshed meanwhile: it then uses that
token and leaves the refresh token alone), and commits the new pair before anyone uses it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.errors import IntegrationError, ReauthorizationRequired
from integrations.sagex3 import oauth
from integrations.sagex3.connected_app import ConnectedApp, ConnectedAppTokens
from integrations.sagex3.graphql import CallLog

from .models import X3AuthorizationRequest, X3Connection

logger = logging.getLogger(__name__)

M = X3Connection.Method
# An access token this close to its expiry is renewed before use rather than sent and refused.
ACCESS_TOKEN_MARGIN = timedelta(seconds=30)


def _verify(x3: X3Connection) -> bool | str:
    return x3.ca_bundle or x3.verify_tls


# --- URLs ---------------------------------------------------------------------------------------------------------


def gateway_root(x3: X3Connection) -> str:
    """The cloud gateway's root API (``https://api.<region>-sagex3.com/v1``): the endpoint the authorization named,
    else the configured token URL without its ``/token``."""
    if x3.gateway_endpoint:
        return x3.gateway_endpoint.rstrip("/")
    token_url = x3.oauth_token_url.rstrip("/")
    return token_url[: -len("/token")] if token_url.endswith("/token") else ""


def token_url(x3: X3Connection) -> str:
    """Refreshes go to ``{endpoint}/token`` once the authorization named an endpoint ("use it for future calls")."""
    return f"{x3.gateway_endpoint.rstrip('/')}/token" if x3.gateway_endpoint else x3.oauth_token_url


def graphql_url(x3: X3Connection) -> str:
    """Where GraphQL requests go: the explicit URL, else the method's default.

    Connected application: ``{server_url}/xtrem/api`` (Sage's connected-app example). Cloud: the gateway's
    ``{root}/service/{endpoint}/api`` (Sage's root API listing, ``customerUsage.graphQL``).
    """
    if x3.graphql_url:
        return x3.graphql_url
    if x3.method == M.GRAPHQL_OAUTH2:
        root = gateway_root(x3)
        return f"{root}/service/{quote(x3.folder.strip(), safe='')}/api" if root else ""
    return f"{x3.server_url.rstrip('/')}/xtrem/api"


def oauth_app(x3: X3Connection, *, url: str = "") -> oauth.OAuthApp:
    return oauth.OAuthApp(
        client_id=x3.oauth_client_id,
        client_secret=x3.oauth_client_secret,
        token_url=url or token_url(x3),
        body_format=x3.oauth_token_format or "json",
        verify=_verify(x3),
    )


# --- stored OAuth2 tokens -----------------------------------------------------------------------------------------


class StoredOAuthTokens:
    """A TokenSource over the tokens stored on one X3Connection row. Reads the row on every call, so a token
    refreshed by another worker is picked up at once."""

    description = "OAuth2 via the Sage X3 cloud gateway"

    def __init__(self, connection_id: int, *, session: requests.Session | None = None) -> None:
        self.connection_id = connection_id
        self._session = session

    def token(self, *, log: CallLog | None = None) -> str:
        x3 = X3Connection.objects.only(
            "access_token", "access_token_expires_at", "refresh_token", "authorization_error", "method"
        ).get(pk=self.connection_id)
        usable = _usable_access_token(x3, timezone.now())
        if usable:
            return usable
        return x3_access_token_refresh(connection_id=self.connection_id, session=self._session, log=log)

    def renew(self, rejected: str, *, log: CallLog | None = None) -> str:
        return x3_access_token_refresh(
            connection_id=self.connection_id, rejected=rejected, session=self._session, log=log
        )


def _usable_access_token(x3: X3Connection, now: datetime) -> str:
    if x3.authorization_error or not x3.access_token:
        return ""
    if x3.access_token_expires_at is None or x3.access_token_expires_at <= now + ACCESS_TOKEN_MARGIN:
        return ""
    return x3.access_token


def _locked_connection(connection_id: int) -> X3Connection:
    """The row, locked until the surrounding transaction ends (a no-op on SQLite, whose writers queue anyway)."""
    return X3Connection.objects.select_for_update().get(pk=connection_id)


def x3_access_token_refresh(
    *,
    connection_id: int,
    rejected: str | None = None,
    session: requests.Session | None = None,
    log: CallLog | None = None,
) -> str:
    """A usable access token for the connection, refreshing the stored pair if needed. Serialized per tenant.

    ``rejected`` is the token X3 just refused with a 401: it is not handed out again. Raises
    :class:`ReauthorizationRequired` when there is no authorization, the refresh token has expired, or the token
    endpoint refuses it (the reason is kept on the row for the admin); :class:`RetryableError` when the token endpoint
    is unreachable or failing (nothing is changed then).

    Must not run inside another transaction: the new pair has to be committed before the token is used (a
    ``RuntimeError`` from the durable block says so loudly).
    """
    failure: ReauthorizationRequired | None = None
    with transaction.atomic(durable=True):
        x3 = _locked_connection(connection_id)
        now = timezone.now()
        # Re-read under the lock: a worker that held it before us may have refreshed already.
        usable = _usable_access_token(x3, now)
        if usable and usable != rejected:
            return usable
        if x3.authorization_error:
            raise ReauthorizationRequired(f"Sage X3 needs re-authorization: {x3.authorization_error}")
        if not x3.refresh_token:
            raise ReauthorizationRequired(
                "Sage X3 is not connected yet: use 'Connect to Sage X3' in the admin"
            )
        if x3.refresh_token_expires_at is not None and x3.refresh_token_expires_at <= now:
            failure = ReauthorizationRequired(
                f"The Sage X3 authorization expired on {x3.refresh_token_expires_at:%Y-%m-%d %H:%M} UTC: "
                "reconnect with 'Connect to Sage X3'"
            )
        else:
            try:
                tokens = oauth.refresh_tokens(
                    oauth_app(x3), refresh_token=x3.refresh_token, session=session, log=log, now=now
                )
            except ReauthorizationRequired as exc:
                failure = exc
            else:
                _store_tokens(x3, tokens, now)
                x3.save(
                    update_fields=[
                        "access_token",
                        "access_token_expires_at",
                        "refresh_token",
                        "refresh_token_expires_at",
                        "tokens_refreshed_at",
                    ]
                )
                return tokens.access_token
        # Remember why, so other workers stop at once instead of calling the token endpoint again.
        x3.authorization_error = failure.message[:2000]
        x3.save(update_fields=["authorization_error"])
    logger.warning("Sage X3 authorization of connection %s needs renewal: %s", connection_id, failure.message)
    raise failure


def _store_tokens(x3: X3Connection, tokens: oauth.TokenSet, now: datetime) -> None:
    x3.access_token = tokens.access_token
    x3.access_token_expires_at = tokens.access_expires_at
    x3.refresh_token = tokens.refresh_token
    x3.refresh_token_expires_at = tokens.refresh_expires_at
    x3.tokens_refreshed_at = now


# --- "Connect to Sage X3": the authorization-code flow ------------------------------------------------------------


class AuthorizationFlowError(Exception):
    """The callback cannot be accepted (bad, used or expired state; refused pairing). ``message`` is for the admin."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Connected:
    connection: X3Connection
    endpoint: str


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def missing_oauth_settings(x3: X3Connection) -> list[str]:
    names = X3Connection.REQUIRED_BY_METHOD[M.GRAPHQL_OAUTH2]
    return [
        str(getattr(X3Connection._meta.get_field(n), "verbose_name", n)) for n in names if not getattr(x3, n)
    ]


def x3_authorization_start(*, x3: X3Connection, user, redirect_uri: str) -> str:
    """Record a single-use state for this connection and return the Sage authorise URL to send the browser to."""
    if x3.method != M.GRAPHQL_OAUTH2:
        raise AuthorizationFlowError("This tenant's Sage X3 connection does not use OAuth2.")
    missing = missing_oauth_settings(x3)
    if missing:
        raise AuthorizationFlowError(f"Fill in {', '.join(missing)} and save before connecting.")
    state = secrets.token_urlsafe(32)
    ttl = timedelta(seconds=settings.CONNECTOR["X3_OAUTH_STATE_TTL_SECONDS"])
    X3AuthorizationRequest.objects.create(
        connection=x3,
        state_hash=_state_hash(state),
        redirect_uri=redirect_uri,
        created_by=user if getattr(user, "pk", None) else None,
        expires_at=timezone.now() + ttl,
    )
    return oauth.authorization_url(
        x3.oauth_authorise_url,
        client_id=x3.oauth_client_id,
        scope=x3.oauth_scope,
        redirect_uri=redirect_uri,
        state=state,
        customer=x3.server_url,
    )


def _consume_state(state: str, user) -> X3AuthorizationRequest:
    """Mark the request used (whatever happens next: a state works once) and check it. Raises on any problem."""
    if not state:
        raise AuthorizationFlowError("The callback carries no state: start again with 'Connect to Sage X3'.")
    problem = ""
    with transaction.atomic(durable=True):
        request = (
            X3AuthorizationRequest.objects.select_for_update()
            .select_related("connection__tenant")
            .filter(state_hash=_state_hash(state))
            .first()
        )
        if request is None:
            raise AuthorizationFlowError("Unknown authorization request (bad state): start again.")
        now = timezone.now()
        if request.used_at is not None:
            raise AuthorizationFlowError("This authorization request was already used: start again.")
        if request.expires_at <= now:
            problem = "This authorization request has expired: start again."
        elif getattr(user, "is_authenticated", False) and request.created_by_id not in (None, user.pk):
            problem = "This authorization request was started by another user."
        request.used_at = now
        request.outcome = problem or "state accepted"
        request.save(update_fields=["used_at", "outcome"])
    if problem:
        raise AuthorizationFlowError(problem)
    return request


def _checked_endpoint(endpoint: str) -> str:
    """The ``endpoint`` named by the callback, if any. We send the client secret there, so only HTTPS hosts that look
    like a Sage gateway are accepted (``X3_OAUTH_ENDPOINT_HOST_PATTERN``)."""
    endpoint = (endpoint or "").strip()
    if not endpoint:
        return ""
    parts = urlsplit(endpoint)
    pattern = settings.CONNECTOR["X3_OAUTH_ENDPOINT_HOST_PATTERN"]
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username
        or parts.query
        or not re.fullmatch(pattern, parts.hostname)
    ):
        raise AuthorizationFlowError(
            f"The callback named an endpoint that is not a Sage gateway: {endpoint[:200]}"
        )
    return endpoint.rstrip("/")


def x3_authorization_complete(
    *,
    state: str,
    code: str,
    endpoint: str = "",
    error: str = "",
    user=None,
    session: requests.Session | None = None,
) -> Connected:
    """Finish "Connect to Sage X3": check the state, exchange the code at the endpoint the callback named (else the
    configured token URL), store the pair and the endpoint, clear any authorization error and resume the postings
    that waited for re-authorization."""
    request = _consume_state(state, user)
    if error:
        _note_outcome(request, f"refused: {error}")
        raise AuthorizationFlowError(f"Sage X3 did not authorize the connection: {error}")
    if not code:
        _note_outcome(request, "no code")
        raise AuthorizationFlowError("The callback carries no authorization code.")
    try:
        named = _checked_endpoint(endpoint)
    except AuthorizationFlowError as exc:
        _note_outcome(request, exc.message)
        raise
    x3 = request.connection
    url = f"{named}/token" if named else x3.oauth_token_url
    try:
        tokens = oauth.exchange_code(
            oauth_app(x3, url=url), code=code, redirect_uri=request.redirect_uri, session=session
        )
    except IntegrationError as exc:
        _note_outcome(request, exc.message)
        raise AuthorizationFlowError(f"The code exchange failed: {exc.message}", status=502) from exc

    now = timezone.now()
    with transaction.atomic(durable=True):
        x3 = _locked_connection(x3.pk)
        _store_tokens(x3, tokens, now)
        x3.gateway_endpoint = named
        x3.authorized_at = now
        x3.authorization_error = ""
        x3.save(
            update_fields=[
                "access_token",
                "access_token_expires_at",
                "refresh_token",
                "refresh_token_expires_at",
                "tokens_refreshed_at",
                "gateway_endpoint",
                "authorized_at",
                "authorization_error",
            ]
        )
    _note_outcome(request, "connected")
    return Connected(connection=x3, endpoint=named)


def _note_outcome(request: X3AuthorizationRequest, outcome: str) -> None:
    X3AuthorizationRequest.objects.filter(pk=request.pk).update(outcome=outcome[:500])


# --- connected applications ---------------------------------------------------------------------------------------

_signers: dict[tuple, ConnectedAppTokens] = {}
_signers_lock = threading.Lock()


def connected_app_tokens(x3: X3Connection) -> ConnectedAppTokens:
    """The process-wide signer for this connection's current settings, so a JWT is reused across postings until
    shortly before it expires. A changed secret, user, audience or lifetime makes a new signer."""
    app = ConnectedApp(
        client_id=x3.app_client_id,
        secret=x3.app_secret,
        user=x3.app_user,
        audience=x3.app_audience or graphql_url(x3),
        lifetime_seconds=x3.app_token_lifetime,
    )
    key = (
        x3.pk,
        app.client_id,
        hashlib.sha256(app.secret.encode("utf-8")).hexdigest(),
        app.user,
        app.audience,
        app.lifetime_seconds,
    )
    with _signers_lock:
        signer = _signers.get(key)
        if signer is None:
            for old in [k for k in _signers if k[0] == x3.pk]:
                del _signers[old]
            signer = _signers[key] = ConnectedAppTokens(app)
        return signer


# --- status for the admin -----------------------------------------------------------------------------------------


def refresh_days_left(x3: X3Connection, *, now: datetime | None = None) -> int | None:
    """Whole days until the refresh token expires (0 on the last day, negative once expired); None if unknown."""
    if x3.method != M.GRAPHQL_OAUTH2 or not x3.refresh_token or x3.refresh_token_expires_at is None:
        return None
    return (x3.refresh_token_expires_at - (now or timezone.now())).days
