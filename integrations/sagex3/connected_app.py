"""Connected-application bearer tokens for on-premise X3 GraphQL: a JWT the client signs itself.

Facts (docs/reference/sagex3.md §7.1): HS256 signed with the connected application's secret; ``iss`` = client ID,
``sub`` = the allowed Syracuse user, ``aud`` = the URL registered on the connected application (byte for byte), ``iat``
and ``exp``. There is no token endpoint. A token "issued in the future" is refused (error 21), so ``iat`` is back-dated
by ``skew_seconds``; ``exp - iat`` is ``lifetime_seconds``, which must not exceed the application's "Tokens validity".

A token is reused until ``reuse_margin_seconds`` before it expires, then a new one is signed. After a 401 the client
asks for a new token once (:meth:`ConnectedAppTokens.renew`); if X3 refuses that too, the error names X3's message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt

from integrations.http import CallRecord

CallLog = Callable[[CallRecord], None]


@dataclass(frozen=True)
class ConnectedApp:
    client_id: str
    secret: str = field(repr=False)
    user: str
    audience: str
    lifetime_seconds: int = 300
    skew_seconds: int = 30
    reuse_margin_seconds: int = 60

    def __post_init__(self) -> None:
        if not (self.client_id and self.secret and self.user and self.audience):
            raise ValueError("a connected application needs a client ID, a secret, an allowed user and a URL")
        if self.lifetime_seconds <= self.skew_seconds + self.reuse_margin_seconds:
            raise ValueError(
                f"token lifetime must exceed {self.skew_seconds + self.reuse_margin_seconds} seconds "
                "(clock-skew back-dating plus the reuse margin)"
            )


class ConnectedAppTokens:
    """A :class:`~integrations.sagex3.graphql.TokenSource` that signs JWTs. Thread-safe; share one per connection."""

    def __init__(self, app: ConnectedApp, *, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.description = f"connected application {app.client_id} as {app.user}"
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at = 0.0

    def token(self, *, log: CallLog | None = None) -> str:
        with self._lock:
            if not self._token or self._clock() >= self._expires_at - self.app.reuse_margin_seconds:
                self._sign()
            return self._token

    def renew(self, rejected: str, *, log: CallLog | None = None) -> str:
        with self._lock:
            # Another call may have signed a fresh one since ``rejected`` was handed out: use it.
            usable = self._token and self._clock() < self._expires_at - self.app.reuse_margin_seconds
            if self._token == rejected or not usable:
                self._sign()
            return self._token

    def _sign(self) -> None:
        issued_at = int(self._clock()) - self.app.skew_seconds
        expires_at = issued_at + self.app.lifetime_seconds
        claims = {
            "iss": self.app.client_id,
            "sub": self.app.user,
            "aud": self.app.audience,
            "iat": issued_at,
            "exp": expires_at,
        }
        self._token = jwt.encode(claims, self.app.secret, algorithm="HS256")
        self._expires_at = float(expires_at)
