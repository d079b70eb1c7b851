"""Call recording shared by the X3 clients: every call leaves a :class:`CallRecord`, and no secret survives in
an error message, a recorded response body or a log line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from integrations.errors import IntegrationError, PermanentError
from integrations.http import CallRecord

from .types import PostedEntry

FIND_PAGE_SIZE = 10  # more than one hit is already an error; 10 lets the message name the duplicates


class DuplicateEntryError(PermanentError):
    """X3 holds more than one entry with our reference. An accountant must decide which one stays."""

    def __init__(self, message: str, *, document_numbers: list[str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.document_numbers = document_numbers


class RecordsCalls:
    """Mixin: ``call_log`` plus redaction of the client's secrets (password forms, tokens)."""

    call_log: list[CallRecord]
    _secrets: Iterable[str]

    def _one_or_none(self, found: list[PostedEntry], described: str) -> PostedEntry | None:
        """The single entry a lookup by reference found, or None; several is an error an accountant must see."""
        if len(found) > 1:
            numbers = [p.document_number for p in found]
            more = " (or more)" if len(found) >= FIND_PAGE_SIZE else ""
            raise self._failed(
                DuplicateEntryError(
                    f"X3 holds {len(found)}{more} entries with {described}: {', '.join(numbers)}. "
                    "An accountant must check them before anything else is posted.",
                    document_numbers=numbers,
                )
            )
        return found[0] if found else None

    def _failed(self, error: IntegrationError) -> IntegrationError:
        """An error found while reading a successful answer: note it on the last call record (and its body)."""
        record = self.call_log[-1]
        if error.status_code is None:
            error.status_code = record.status_code
        if error.response_body is None:
            error.response_body = record.response_body[:2000]
        return self._recorded(record, error)

    def _recorded(self, record: CallRecord, error: IntegrationError) -> IntegrationError:
        """Scrub credentials from the error, note it on the call record, and hand it back for raising."""
        error.message = self._redact(error.message)
        error.args = (error.message,)
        if error.response_body is not None:
            error.response_body = self._redact(error.response_body)
        record.error = error.message
        return error

    def _redact(self, text: str) -> str:
        # Longest first, so a secret that contains another is replaced whole. One to three characters are no real
        # credential, and replacing them everywhere would make the message unreadable.
        for secret in sorted((s for s in self._secrets if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, "********")
        return text
