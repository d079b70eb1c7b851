"""The shared HTTP session factory: mandatory timeouts, a User-Agent, no redirects, no implicit retries.

Retries belong to the pipeline (with backoff stored in the database), never to the transport, so that every attempt
is visible in the audit trail.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from .errors import RetryableError
from .metrics import observe_call, status_outcome

USER_AGENT = "bc-x3-connector/0.1 (+https://github.com/bc-x3-connector)"

# (connect, read) seconds. BigCommerce's own client uses 7 s; Sage X3 servers are often slow on writes.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)


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
