"""The shared transport of every client: a session factory (a User-Agent, no redirects, no implicit retries),
:func:`send` (mandatory timeouts, transport failures mapped onto :mod:`integrations.errors`) and :class:`Transport`
(send, record the call, redact secrets, classify the answer), plus the small helpers the clients' error messages share.

Retries belong to the pipeline (with backoff stored in the database), never to the transport, so that every attempt
is visible in the audit trail.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from .errors import IntegrationError, RetryableError
from .metrics import observe_call, status_outcome

USER_AGENT = "bc-x3-connector/0.1 (+https://github.com/bc-x3-connector)"
MASK = "********"


def new_session(*, verify: bool | str = True) -> requests.Session:
    """A session with our User-Agent and no retries. ``verify`` may be a CA bundle path (self-signed X3 servers)."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    # Proxies from the environment are read once here, not on every request (requests' trust_env costs ~0.25 ms a
    # call); .netrc credentials are never picked up implicitly.
    session.trust_env = False
    session.proxies.update(urllib.request.getproxies())
    session.verify = verify
    adapter = requests.adapters.HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass
class CallRecord:
    """What one outbound call did, for the audit trail. Bodies are already redacted by the caller."""

    method: str
    url: str
    request_body: str = ""
    status_code: int | None = None
    response_body: str = ""
    duration_ms: int = 0
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: tuple[float, float] | float,
    is_write: bool = False,
    api: str = "other",
    **kwargs: Any,
) -> tuple[requests.Response, int]:
    """:func:`_send`, counted in the Prometheus metrics (integrations/metrics.py) under ``api``: "x3",
    "bigcommerce", "notify", …"""
    started = time.monotonic()
    try:
        response, duration_ms = _send(session, method, url, timeout=timeout, is_write=is_write, **kwargs)
    except RetryableError as exc:
        timed_out = isinstance(exc.__cause__, requests.exceptions.Timeout)
        observe_call(api, "timeout" if timed_out else "connection_error", time.monotonic() - started)
        raise
    observe_call(api, status_outcome(response.status_code), duration_ms / 1000)
    return response, duration_ms


def _send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: tuple[float, float] | float,
    is_write: bool = False,
    **kwargs: Any,
) -> tuple[requests.Response, int]:
    """Send one request; map transport failures onto our error hierarchy. Returns (response, duration in ms).

    A timeout or a dropped connection on a *write* leaves the outcome unknown: the remote side may have committed.
    A connect timeout/refusal happens before anything was sent, so the outcome is known (nothing happened).
    """
    started = time.monotonic()
    try:
        response = session.request(method, url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.exceptions.ConnectTimeout as exc:
        raise RetryableError(f"Connection to {_host(url)} timed out", unavailable=True) from exc
    except requests.exceptions.ReadTimeout as exc:
        raise RetryableError(
            f"No response from {_host(url)} in time (read timeout)",
            outcome_unknown=is_write,
            unavailable=True,
        ) from exc
    except requests.exceptions.SSLError as exc:
        raise RetryableError(f"TLS handshake with {_host(url)} failed: {type(exc).__name__}") from exc
    except requests.exceptions.ConnectionError as exc:
        # Refused before sending: nothing happened. Reset/aborted mid-request: the write may have landed.
        refused = "refused" in str(exc).lower() or "name or service not known" in str(exc).lower()
        raise RetryableError(
            f"Connection to {_host(url)} failed" + (" (refused)" if refused else " (reset or aborted)"),
            outcome_unknown=is_write and not refused,
            unavailable=True,
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise RetryableError(
            f"HTTP request to {_host(url)} failed: {type(exc).__name__}",
            outcome_unknown=is_write,
            unavailable=True,
        ) from exc
    return response, int((time.monotonic() - started) * 1000)


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def snippet(text: str, limit: int = 200) -> str:
    """A remote answer flattened to one line and cut at ``limit`` characters, for an error message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay in seconds or an HTTP date); ``None`` when absent or unreadable."""
    value = (headers or {}).get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


# --- one exchange: send, record, redact, classify -----------------------------------------------------------------


@dataclass
class Exchange:
    """One answered call: the response, its :class:`CallRecord` and the answer's text with every secret redacted."""

    response: requests.Response
    record: CallRecord
    text: str


Scrub = Callable[[str], str]
Classifier = Callable[[Exchange], IntegrationError | None]


def response_text(response: requests.Response) -> str:
    return response.text


class Transport:
    """The wire of one client: session, timeout, redaction of the client's secrets and the call log.

    :meth:`exchange` sends one request through :func:`send` (so transport failures keep their ``unavailable`` and
    ``outcome_unknown`` meaning), appends a :class:`CallRecord` to ``call_log`` *before* sending (a call that fails
    in transport is recorded too), fills it with the status, the duration and the redacted answer, and asks the
    API's own classifier whether the answer is an error. Every error that leaves through :meth:`failed` is redacted
    and noted on its call record. Not thread-safe: one transport per client.

    ``secrets`` are replaced by ``mask`` wherever they appear (longest first; shorter than ``min_secret_length``
    characters is no credential and is left alone); ``scrubbers`` run first, for secrets known by their place (a
    JSON key, a header value) rather than their value. ``log_size`` bounds ``call_log`` (oldest dropped first);
    ``on_call`` also receives each new record. ``request_kwargs`` (``auth``, ``verify``) go with every request.
    """

    def __init__(
        self,
        session: requests.Session,
        *,
        timeout: tuple[float, float] | float,
        secrets: Iterable[str] = (),
        scrubbers: Iterable[Scrub] = (),
        mask: str = MASK,
        min_secret_length: int = 4,
        body_limit: int = 10_000,
        log_size: int | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
        decode: Callable[[requests.Response], str] = response_text,
        api: str = "other",
        **request_kwargs: Any,
    ) -> None:
        self.session = session
        self.api = api  # the metrics label of every call (integrations/metrics.py)
        self.timeout = timeout
        self.secrets: set[str] = {s for s in secrets if s}
        self.scrubbers = list(scrubbers)
        self.mask = mask
        self.min_secret_length = min_secret_length
        self.body_limit = body_limit
        self.log_size = log_size
        self.on_call = on_call
        self.decode = decode
        self.request_kwargs = request_kwargs
        self.call_log: list[CallRecord] = []

    def add_secret(self, secret: str) -> None:
        if secret:
            self.secrets.add(secret)

    def redact(self, text: str, scrub: Scrub | None = None) -> str:
        """``text`` without any secret: the per-call ``scrub`` and the scrubbers first, then the secrets' values."""
        if not text:
            return text
        if scrub is not None:
            text = scrub(text)
        for scrubber in self.scrubbers:
            text = scrubber(text)
        long_enough = (s for s in self.secrets if len(s) >= self.min_secret_length)
        for secret in sorted(long_enough, key=len, reverse=True):  # a secret that contains another goes whole
            text = text.replace(secret, self.mask)
        return text

    def keep(self, record: CallRecord) -> None:
        """Append ``record`` to ``call_log`` (bounded by ``log_size``) and hand it to ``on_call``."""
        self.call_log.append(record)
        if self.log_size is not None and len(self.call_log) > self.log_size:
            del self.call_log[: len(self.call_log) - self.log_size]
        if self.on_call is not None:
            self.on_call(record)

    def exchange(
        self,
        method: str,
        url: str,
        *,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
        is_write: bool = False,
        classify: Classifier | None = None,
        scrub: Scrub | None = None,
        logged_body: str | None = None,
    ) -> Exchange:
        """Send one request (``body`` as UTF-8), record it, and raise what ``classify`` finds wrong with the answer.

        ``scrub`` redacts this call's bodies further (e.g. hook header values); ``logged_body`` replaces the request
        body in the record when the client has a better redacted form of it.
        """
        record = CallRecord(
            method=method,
            url=self.redact(url),
            request_body=logged_body if logged_body is not None else self.redact(body or "", scrub),
        )
        self.keep(record)
        started = time.monotonic()
        try:
            response, duration_ms = send(
                self.session,
                method,
                url,
                timeout=self.timeout,
                is_write=is_write,
                api=self.api,
                headers=headers,
                data=body.encode("utf-8") if body is not None else None,
                **self.request_kwargs,
            )
        except IntegrationError as exc:
            record.duration_ms = int((time.monotonic() - started) * 1000)
            self.failed(exc, record)
            raise
        text = self.redact(self.decode(response), scrub)
        record.status_code = response.status_code
        record.duration_ms = duration_ms
        record.response_body = text[: self.body_limit]
        answer = Exchange(response=response, record=record, text=text)
        if classify is not None:
            error = classify(answer)
            if error is not None:
                raise self.failed(error, record)
        return answer

    def failed(self, error: IntegrationError, record: CallRecord | None = None) -> IntegrationError:
        """Redact ``error`` and note it on ``record`` (default: the latest call); hand it back for raising."""
        error.message = self.redact(error.message)
        error.args = (error.message,)
        if error.response_body is not None:
            error.response_body = self.redact(error.response_body)
        target = record if record is not None else self.call_log[-1]
        target.error = error.message
        return error
