"""The history of a posting: every state change, who or what caused it, and why (append-only)."""

from __future__ import annotations

from .models import Posting, PostingLog


def log_transition(
    posting: Posting,
    to_status: str,
    message: str = "",
    *,
    from_status: str = "",
    trigger: str = "",
    user=None,
) -> None:
    PostingLog.objects.create(
        posting=posting,
        from_status=from_status,
        to_status=to_status,
        trigger=trigger,
        user=user if getattr(user, "pk", None) else None,
        message=message[:5000],
    )
