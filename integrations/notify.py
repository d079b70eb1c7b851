"""Chat webhooks for alarms: one POST of ``{"text": ...}`` (Slack incoming webhooks, Google Chat, Mattermost and
Teams' older incoming webhooks accept it). Never raises: the caller records the typed result and carries on."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from .errors import IntegrationError
from .http import new_session, send

# Chat services answer in well under a second; a stuck one must not hold up the alarm run.
NOTIFY_TIMEOUT: tuple[float, float] = (5.0, 10.0)
# Slack refuses texts above 40,000 characters; stay well below.
MAX_TEXT = 30_000


@dataclass(frozen=True)
class NotifyResult:
    ok: bool
    status_code: int | None = None
    error: str = ""


def post_text(
    url: str,
    text: str,
    *,
    session: requests.Session | None = None,
    timeout: tuple[float, float] = NOTIFY_TIMEOUT,
) -> NotifyResult:
    """POST ``{"text": text}`` to ``url``. 2xx is success; anything else is a failure with a short reason.

    The URL itself is a secret (whoever has it can post to the channel), so it never appears in the error."""
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 20] + "\n… (truncated)"
    try:
        response, _ = send(
            session if session is not None else new_session(),
            "POST",
            url,
            timeout=timeout,
            api="notify",
            json={"text": text},
        )
    except IntegrationError as exc:
        return NotifyResult(False, error=exc.message)
    if 200 <= response.status_code < 300:
        return NotifyResult(True, response.status_code)
    snippet = response.text[:200].replace("\n", " ")
    return NotifyResult(False, response.status_code, f"HTTP {response.status_code}: {snippet}")
