"""What we send to and get back from Sage X3, independent of the transport (REST api1, GraphQL or SOAP)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from integrations.http import CallRecord

from .accounts import Account


@dataclass(frozen=True)
class EntryLine:
    account: str
    debit: Decimal  # may be negative on a storno entry (refund, reversal): same side, negative amount
    credit: Decimal
    description: str = ""
    dimensions: tuple[tuple[str, str], ...] = ()  # analytical (dimension type, dimension) pairs, in order


@dataclass(frozen=True)
class Entry:
    """A balanced GL journal entry ready for X3. ``reference`` is our idempotency reference (e.g. BC-abc123-250)."""

    reference: str
    accounting_date: date
    currency: str
    description: str
    entry_type: str
    journal: str
    site: str
    lines: tuple[EntryLine, ...]
    source_document: str = ""  # e.g. the BigCommerce order number, for X3's "source document" field
    company: str = ""  # X3 company (CPY); blank: not sent (X3 derives it from the site)
    # BigCommerce's rate from the store's default currency to ``currency`` (units of ``currency`` per 1 unit of the
    # store currency), when the entry is in another currency than the store's; else None. Sent only when a field
    # mapping maps the optional header key "exchange_rate" (docs/payments-and-currencies.md).
    exchange_rate: Decimal | None = None


@dataclass(frozen=True)
class PostedEntry:
    """An entry that exists in X3."""

    document_number: str
    reference: str
    uuid: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class X3Client(Protocol):
    """What the posting service needs from a Sage X3 client, whichever transport and authentication it uses."""

    call_log: list[CallRecord]  # every HTTP call made, for the audit trail; never holds credentials or tokens

    def create_entry(self, entry: Entry) -> PostedEntry: ...

    def find_entry(self, reference: str) -> PostedEntry | None: ...

    def test_connection(self) -> str: ...

    def preview(self, entry: Entry) -> str:
        """The exact request body ``create_entry`` would send for ``entry`` (for review before posting)."""
        ...

    def list_accounts(
        self, settings: Mapping[str, Any] | None = None, *, limit: int | None = None
    ) -> list[Account]:
        """The chart of accounts read through the tenant's method (settings: the chart query overrides)."""
        ...


# The default api1 field mapping. Every X3 installation publishes its own class/representation for journal entries
# (NOT CONFIRMED which one exists), so this is only a starting point; each tenant can override any key.
# Field names follow table GACCENTRY (header) / GACCENTRYD (lines): see docs/reference/sagex3.md §4.
DEFAULT_REST_MAPPING: dict[str, Any] = {
    "class": "GACCENTRY",
    "representation": "GACCENTRY",
    "header": {
        "entry_type": "TYP",
        "journal": "JOU",
        "site": "FCY",
        "accounting_date": "ACCDAT",
        "currency": "CUR",
        "description": "DESVCR",
        "reference": "REFINT",
        "source_document": "BPRVCR",
        "company": "CPY",
    },
    "header_static": {},
    "lines_key": "GACCENTRYD",
    "line": {
        "line_number": "LIN",
        "account": "ACC",
        "description": "DES",
        # amount_style "debit_credit" uses "debit"/"credit"; "sign_amount" uses "sign" (+1 debit / -1 credit)
        # and "amount".
        "debit": "DEB",
        "credit": "CDT",
        "sign": "SNS",
        "amount": "AMTCUR",
        # Analytical dimensions: the line's dimension types and values as two parallel lists (NOT CONFIRMED field
        # names: GACCENTRYA's DIE/CCE; null leaves dimensions out).
        "dimension_type": "DIE",
        "dimension_value": "CCE",
    },
    "line_static": {},
    "amount_style": "debit_credit",
    "date_format": "%Y-%m-%d",
    # Where X3 returns the document number it assigned, and the key used to read one entry back.
    "document_number_field": "NUM",
}
