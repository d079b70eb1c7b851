"""Company, site and analytical dimensions over real HTTP: the X3 simulator stores the same entry whichever method
(api1, GraphQL, SOAP) sent it, and checks the site belongs to the company."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from integrations.errors import PermanentError
from integrations.sagex3.types import Entry, EntryLine
from simulators import sagex3
from tests.simulators.test_sagex3_accounts import APP_ID, APP_SECRET, APP_USER, CLIENTS


@pytest.fixture
def sim() -> Iterator[tuple[Any, str]]:
    server, base = sagex3.start_in_thread(
        config={
            "users": {"admin": "s3cret"},
            "connected_apps": {APP_ID: {"secret": APP_SECRET, "user": APP_USER, "url": None}},
            "sites": {"FR011": "FR10", "FR012": "FR10", "US001": "US10"},
        }
    )
    try:
        yield server, base
    finally:
        server.stop()


def entry(reference: str, company: str = "FR10", site: str = "FR012") -> Entry:
    return Entry(
        reference=reference,
        accounting_date=date(2026, 3, 5),
        currency="EUR",
        description="BigCommerce order 250",
        entry_type="VTE",
        journal="WEB",
        site=site,
        company=company,
        lines=(
            EntryLine("411000", Decimal("120.00"), Decimal(0), "receivable", (("BRA", "2"),)),
            EntryLine("707000", Decimal(0), Decimal("100.00"), "revenue", (("CCT", "WEB"), ("BRA", "2"))),
            EntryLine("445710", Decimal(0), Decimal("20.00"), "tax"),
        ),
        source_document="250",
    )


@pytest.mark.parametrize("method", CLIENTS)
def test_every_method_stores_company_site_and_dimensions(sim, method):
    server, base = sim
    CLIENTS[method](base).create_entry(entry(f"BC-dim-{method}"))

    (stored,) = server.app.entries
    assert (stored["CPY"], stored["FCY"], stored["TYP"], stored["JOU"]) == ("FR10", "FR012", "VTE", "WEB")
    assert [line["dimensions"] for line in stored["_lines"]] == [{"BRA": "2"}, {"CCT": "WEB", "BRA": "2"}, {}]


@pytest.mark.parametrize("method", CLIENTS)
def test_a_site_of_another_company_is_refused(sim, method):
    server, base = sim
    with pytest.raises(PermanentError, match="Site US001 does not belong to company FR10"):
        CLIENTS[method](base).create_entry(entry(f"BC-bad-{method}", site="US001"))
    assert server.app.entries == []
