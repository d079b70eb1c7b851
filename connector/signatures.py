"""Webhook authentication schemes. Each takes the raw body and headers and says whether the request passes.

* Standard Webhooks (what BigCommerce documents since 2024): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature`` headers, HMAC-SHA256 over ``id.timestamp.body`` keyed with the app's client secret
  (BigCommerce's recipe base64-encodes the secret for the ``standardwebhooks`` library, which decodes it again, so
  the HMAC key is the raw secret). The library enforces the ±5 minute timestamp window.
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
from collections.abc import Mapping

from standardwebhooks import Webhook, WebhookVerificationError

STANDARD = "standard_webhooks"
CUSTOM_HEADER = "custom_header"
X_BC_SIGNATURE = "x_bc_signature"


class SignatureError(Exception):
    """The request passed none of the tenant's schemes. The message is safe to return and log."""


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def verify_standard_webhooks(body: bytes, headers: Mapping[str, str], client_secret: str) -> None:
    h = _lower(headers)
    if not (h.get("webhook-id") and h.get("webhook-timestamp") and h.get("webhook-signature")):
        raise SignatureError("Standard Webhooks headers missing")
    if not client_secret:
        raise SignatureError("No client secret configured")
    key = base64.b64encode(client_secret.encode()).decode()
    try:
        Webhook(key).verify(body, h, json_parse=False)
    except WebhookVerificationError as exc:
        raise SignatureError(f"Standard Webhooks: {exc}") from None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        # Malformed signature list ("v1" without a comma, bad base64) or a body that is not UTF-8.
        raise SignatureError("Standard Webhooks: malformed signature header or body") from None


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
