"""OAuth2 authorization-code flow of the Sage X3 cloud API gateway: the pairing URL, the code exchange and the
refresh. Pure HTTP, no Django: storing the tokens (and serializing refreshes) is connector/x3auth.py's job.

Facts (docs/reference/sagex3.md §7.2): ``GET {root}/token/authorise?client_id&scope&customer&redirect_uri&state``;
the callback names ``authorizationCode``, ``state`` and possibly ``endpoint`` (the customer's regional gateway, to be
used for every later call); ``POST {endpoint}/token`` with a JSON body exchanges the code. The access token lives
about 5 minutes, the refresh token 30 days and each refresh returns a new pair (rotating). Both are JWTs, so their
expiry is read from their ``exp`` claim when the answer carries no ``expires_in``.

NOT CONFIRMED, hence configurable or defensive: the exact refresh body (we send ``grant_type=refresh_token``,
``refresh_token``, ``client_id``, ``client_secret``, as JSON by default or form-encoded), the names of the fields in the
token answer (``access_token``/``accessToken``, ``refresh_token``/``refreshToken``, ``expires_in``,
``refresh_token_expires_in``), and whether a refreshed refresh token gets a fresh 30 days.

Error mapping of a refresh: any 4xx (expired, revoked, "Pairing request not found", "Invalid grant type", ...) raises
:class:`ReauthorizationRequired` with the gateway's own message: the stored authorization cannot be renewed as it
stands, only the "Connect to Sage X3" flow helps. 408, 429, 5xx and transport failures are retryable. A code exchange
that fails is an :class:`AuthenticationError` shown to the admin who connected.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
import requests

from integrations.errors import (
    AuthenticationError,
    BadResponseError,
    IntegrationError,
    PermanentError,
    RateLimitedError,
    ReauthorizationRequired,
    RetryableError,
)
from integrations.http import MASK, CallRecord, Transport, new_session, snippet

ACCESS_TOKEN_FALLBACK = timedelta(minutes=5)
REFRESH_TOKEN_FALLBACK = timedelta(days=30)
BODY_FORMATS = ("json", "form")
REDACTED = MASK
_SECRET_KEYS = frozenset(
    {"access_token", "accessToken", "refresh_token", "refreshToken", "id_token", "client_secret", "code"}
)

CallLog = Callable[[CallRecord], None]


@dataclass(frozen=True)
class OAuthApp:
    """The app registered in the Sage App Registry, as one tenant uses it."""

    client_id: str
    client_secret: str = field(repr=False)
    token_url: str = ""  # e.g. https://api.<region>-sagex3.com/v1/token (or {endpoint}/token after pairing)
    body_format: str = "json"  # how the token request body is encoded: "json" (Sage's example) or "form"
    timeout: tuple[float, float] = (5.0, 30.0)
    verify: bool | str = True

    def __post_init__(self) -> None:
        if self.body_format not in BODY_FORMATS:
            raise ValueError(f"body_format must be one of {', '.join(BODY_FORMATS)}")


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime


def authorization_url(
    authorise_url: str, *, client_id: str, scope: str, redirect_uri: str, state: str, customer: str = ""
) -> str:
    """The pairing URL the admin's browser is sent to. ``customer`` is the customer's X3 URL (Sage's example
    ``customer=https://x3.customer.com``)."""
    params = {"client_id": client_id, "scope": scope, "redirect_uri": redirect_uri, "state": state}
    if customer:
        params["customer"] = customer
    separator = "&" if urlsplit(authorise_url).query else "?"
    return f"{authorise_url}{separator}{urlencode(params)}"


def exchange_code(
    app: OAuthApp,
    *,
    code: str,
    redirect_uri: str,
    token_url: str = "",
    session: requests.Session | None = None,
    log: CallLog | None = None,
    now: datetime | None = None,
) -> TokenSet:
    """Exchange an authorization code for the first token pair. Raises :class:`AuthenticationError` when refused."""
    body = {
        "code": code,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "grant_type": "authorization_code",
        "redirect_uri": redirect_uri,
    }
    return _token_call(app, body, token_url or app.token_url, session=session, log=log, now=now)


def refresh_tokens(
    app: OAuthApp,
    *,
    refresh_token: str,
    token_url: str = "",
    session: requests.Session | None = None,
    log: CallLog | None = None,
    now: datetime | None = None,
) -> TokenSet:
    """Use the (single-use) refresh token for a new pair. Raises :class:`ReauthorizationRequired` when refused."""
    body = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    }
    return _token_call(app, body, token_url or app.token_url, session=session, log=log, now=now)


def token_expiry(token: str, *, fallback: timedelta, now: datetime) -> datetime:
    """When a JWT expires, from its ``exp`` claim read *without* verifying the signature (we are not the audience,
    only the holder: the gateway checks it). Not a JWT, or no ``exp``: ``now + fallback``."""
    try:
        claims = jwt.decode(
            token, options={"verify_signature": False, "verify_exp": False, "verify_aud": False}
        )
    except jwt.PyJWTError:
        return now + fallback
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return datetime.fromtimestamp(exp, tz=UTC)
    return now + fallback


def parse_token_response(payload: Any, *, now: datetime) -> TokenSet:
    """A :class:`TokenSet` from a token answer; raises :class:`BadResponseError` when a token is missing."""
    if not isinstance(payload, Mapping):
        raise BadResponseError("the token endpoint answered without a JSON object")
    access = _first_text(payload, "access_token", "accessToken")
    refresh = _first_text(payload, "refresh_token", "refreshToken")
    if not access or not refresh:
        missing = " and ".join(n for n, v in (("access token", access), ("refresh token", refresh)) if not v)
        raise BadResponseError(f"the token endpoint answered without a {missing}")
    access_at = _expiry(payload, ("expires_in", "expiresIn"), access, ACCESS_TOKEN_FALLBACK, now)
    refresh_at = _expiry(
        payload,
        ("refresh_token_expires_in", "refresh_expires_in", "refreshTokenExpiresIn"),
        refresh,
        REFRESH_TOKEN_FALLBACK,
        now,
    )
    return TokenSet(access, refresh, access_at, refresh_at)


def classify_token_response(
    status: int, payload: Any, *, text: str, grant: str, where: str
) -> IntegrationError | None:
    """``None`` for a 2xx; otherwise the error to raise (see the module docstring)."""
    if 200 <= status < 300:
        return None
    says = _token_error_message(payload, text)
    detail = f": {says}" if says else ""
    common: dict[str, Any] = {"status_code": status, "response_body": _redact_body(text)[:2000]}
    if status == 429:
        return RateLimitedError(f"Sage token endpoint rate limit (HTTP 429, {where}){detail}", **common)
    if status == 408 or 500 <= status < 600:
        return RetryableError(f"Sage token endpoint error (HTTP {status}, {where}){detail}", **common)
    if 400 <= status < 500:
        if grant == "refresh_token":
            return ReauthorizationRequired(
                f"Sage X3 refused to renew the authorization (HTTP {status}{detail}): reconnect with "
                "'Connect to Sage X3'",
                **common,
            )
        return AuthenticationError(
            f"Sage X3 refused the authorization code (HTTP {status}{detail})", **common
        )
    return PermanentError(f"Sage token endpoint answered HTTP {status} ({where}){detail}", **common)


# --- internals ----------------------------------------------------------------------------------------------------


def _token_call(
    app: OAuthApp,
    body: dict[str, str],
    token_url: str,
    *,
    session: requests.Session | None,
    log: CallLog | None,
    now: datetime | None,
) -> TokenSet:
    if not token_url:
        raise PermanentError("no token URL is configured for the Sage X3 OAuth2 connection")
    grant = body["grant_type"]
    if app.body_format == "json":
        data = json.dumps(body)
        content_type = "application/json"
    else:
        data = urlencode(body)
        content_type = "application/x-www-form-urlencoded"
    shown = {k: (REDACTED if k in _SECRET_KEYS else v) for k, v in body.items()}
    transport = Transport(
        session if session is not None else new_session(verify=app.verify),
        api="x3_token",
        timeout=app.timeout,
        secrets=[v for k, v in body.items() if k in _SECRET_KEYS and v],
        min_secret_length=1,
        on_call=log,
        verify=app.verify,
    )
    answer = transport.exchange(
        "POST",
        token_url,
        body=data,
        headers={"Content-Type": content_type, "Accept": "application/json"},
        scrub=_redact_body,
        logged_body=json.dumps(shown),
    )
    # Classify and parse the answer as received; only what is kept (messages, the call record) is redacted.
    text = answer.response.text
    try:
        payload: Any = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None
    where = urlsplit(token_url).netloc
    error = classify_token_response(answer.response.status_code, payload, text=text, grant=grant, where=where)
    if error is None:
        try:
            return parse_token_response(payload, now=now or datetime.now(UTC))
        except BadResponseError as exc:
            error = exc
    raise transport.failed(error, answer.record)


def _first_text(payload: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _expiry(
    payload: Mapping[str, Any], keys: tuple[str, ...], token: str, fallback: timedelta, now: datetime
) -> datetime:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return now + timedelta(seconds=float(value))
    return token_expiry(token, fallback=fallback, now=now)


def _token_error_message(payload: Any, text: str) -> str:
    if isinstance(payload, Mapping):
        parts = [
            str(payload[k]).strip()
            for k in ("error_description", "message", "$message", "error")
            if isinstance(payload.get(k), str) and str(payload[k]).strip()
        ]
        if parts:
            return " ".join(dict.fromkeys(parts))
    return snippet(_redact_body(text)) if text.strip() else ""


def _redact_body(text: str) -> str:
    """A token answer with every token value replaced, for logs and error bodies."""
    try:
        payload = json.loads(text)
    except ValueError:
        return text
    if isinstance(payload, dict):
        payload = {k: (REDACTED if k in _SECRET_KEYS and v else v) for k, v in payload.items()}
        return json.dumps(payload)
    return text
