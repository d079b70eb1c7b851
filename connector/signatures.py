"""Webhook authentication schemes. Each takes the raw body and headers and says whether the request passes.

* Standard Webhooks (what BigCommerce documents since 2024): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature`` headers, HMAC-SHA256 over ``id.timestamp.body`` keyed with the app's client secret
  (BigCommerce's recipe base64-encodes the secret for the ``standardwebhooks`` library, which decodes it again, so
  the HMAC key is the raw secret), with a ±5 minute timestamp window. Computed over the raw bytes, so a body that
  is not UTF-8 can still be authenticated (and then refused as a bad payload, 400, rather than 401).
* Custom header: the secret header registered with the hook (BigCommerce's ``headers``), echoed on every callback.
* ``X-BC-Signature``: HMAC-SHA256 of the body with the client secret, hex or base64. Not in BigCommerce's docs
  (see docs/reference/bigcommerce.md §3.4); off by default, available for stores or proxies that send it.

All comparisons are constant-time. Nothing here logs or returns a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping

# Deliveries whose timestamp is further than this from our clock are refused (the Standard Webhooks window).
TOLERANCE_SECONDS = 5 * 60
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

STANDARD = "standard_webhooks"
CUSTOM_HEADER = "custom_header"
X_BC_SIGNATURE = "x_bc_signature"


class SignatureError(Exception):
    """The request passed none of the tenant's schemes. The message is safe to return and log."""


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def verify_standard_webhooks(
    body: bytes, headers: Mapping[str, str], client_secret: str, *, now: float | None = None
) -> None:
    """HMAC-SHA256 over the exact bytes ``id.timestamp.body``, as the ``standardwebhooks`` library computes it.

    Done here rather than with the library because the library decodes the body as UTF-8 first: a validly signed
    body in another encoding would then look unsigned (401) when it is a well-authenticated bad payload (400).
    """
    h = _lower(headers)
    msg_id, timestamp, signatures = (
        h.get("webhook-id"),
        h.get("webhook-timestamp"),
        h.get("webhook-signature"),
    )
    if not (msg_id and timestamp and signatures):
        raise SignatureError("Standard Webhooks headers missing")
    if not client_secret:
        raise SignatureError("No client secret configured")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("Standard Webhooks: webhook-timestamp is not a Unix time in seconds")
    now = time.time() if now is None else now
    if int(timestamp) < now - TOLERANCE_SECONDS:
        raise SignatureError("Standard Webhooks: message timestamp too old")
    if int(timestamp) > now + TOLERANCE_SECONDS:
        raise SignatureError("Standard Webhooks: message timestamp too new")
    try:
        signed = f"{msg_id}.{timestamp}.".encode() + body
    except UnicodeEncodeError:
        raise SignatureError("Standard Webhooks: malformed webhook-id") from None
    expected = hmac.new(client_secret.encode(), signed, hashlib.sha256).digest()
    for versioned in signatures.split(" "):
        version, _, encoded = versioned.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded)
        except (ValueError, binascii.Error):
            continue
        if hmac.compare_digest(expected, given):
            return
    raise SignatureError("Standard Webhooks: no matching signature found")


def verify_x_bc_signature(body: bytes, headers: Mapping[str, str], client_secret: str) -> None:
    given = _lower(headers).get("x-bc-signature", "").strip()
    if not given:
        raise SignatureError("X-BC-Signature header missing")
    if not client_secret:
        raise SignatureError("No client secret configured")
    digest = hmac.new(client_secret.encode(), body, hashlib.sha256).digest()
    candidates = (digest.hex(), base64.b64encode(digest).decode())
    if not any(hmac.compare_digest(given.encode(), c.encode()) for c in candidates):
        raise SignatureError("X-BC-Signature does not match")


def verify_custom_header(headers: Mapping[str, str], name: str, expected: str) -> None:
    if not (name and expected):
        raise SignatureError("No custom webhook header configured")
    given = _lower(headers).get(name.lower())
    if given is None:
        raise SignatureError(f"Header {name} missing")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureError(f"Header {name} does not match")


def verify(
    body: bytes,
    headers: Mapping[str, str],
    *,
    schemes: list[str],
    client_secret: str,
    header_name: str = "",
    header_value: str = "",
) -> str:
    """Return the first scheme that passes, or raise :class:`SignatureError` listing why each failed."""
    failures: list[str] = []
    for scheme in schemes:
        try:
            if scheme == STANDARD:
                verify_standard_webhooks(body, headers, client_secret)
            elif scheme == CUSTOM_HEADER:
                verify_custom_header(headers, header_name, header_value)
            elif scheme == X_BC_SIGNATURE:
                verify_x_bc_signature(body, headers, client_secret)
            else:
                raise SignatureError(f"unknown scheme {scheme}")
        except SignatureError as exc:
            failures.append(str(exc))
            continue
        return scheme
    raise SignatureError("; ".join(failures) or "No authentication scheme enabled for this store")
