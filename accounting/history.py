"""The history of a posting: every state change, who or what caused it, and why (append-only, hash-chained)."""

from __future__ import annotations

from .audit_chain import append_log
from .models import Posting


def log_transition(
    posting: Posting,
    to_status: str,
    message: str = "",
    *,
    from_status: str = "",
    trigger: str = "",
    user=None,
) -> None:
    append_log(
        posting=posting,
        from_status=from_status,
        to_status=to_status,
        trigger=trigger,
        user=user if getattr(user, "pk", None) else None,
        message=message[:5000],
    )
