"""What the X3 clients share beyond the transport: the call log of their :class:`~integrations.http.Transport`
(every call leaves a :class:`CallRecord`, no secret survives in it or in an error message) and the duplicate check."""

from __future__ import annotations

from typing import Any

from integrations.errors import IntegrationError, PermanentError
from integrations.http import CallRecord, Transport

from .types import PostedEntry

FIND_PAGE_SIZE = 10  # more than one hit is already an error; 10 lets the message name the duplicates


class DuplicateEntryError(PermanentError):
    """X3 holds more than one entry with our reference. An accountant must decide which one stays."""

    def __init__(self, message: str, *, document_numbers: list[str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.document_numbers = document_numbers


class RecordsCalls:
    """Mixin for the X3 clients: ``call_log`` is their :class:`Transport`'s, which redacts the client's secrets."""

    _transport: Transport

    @property
    def call_log(self) -> list[CallRecord]:
        return self._transport.call_log

    @call_log.setter
    def call_log(self, value: list[CallRecord]) -> None:
        # The posting service takes the records after each operation and hands the client a fresh list.
        self._transport.call_log = value

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
        return self._transport.failed(error, record)
