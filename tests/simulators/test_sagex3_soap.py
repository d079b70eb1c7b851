"""The Sage X3 simulator's SOAP endpoint over real HTTP, driven by the connector's SOAP client (zeep envelopes).

Same entries, rules, faults and inspection as the api1 side: an entry saved over SOAP is visible to api1 queries
and in /_sim/entries, and faults are set the same way (``save`` counts as a POST).
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests
import zeep
from lxml import etree

from integrations.errors import AuthenticationError, PermanentError, RetryableError
from integrations.sagex3.calls import DuplicateEntryError
from integrations.sagex3.soap import (
    BUNDLED_WSDL,
    SOAP_PATH,
    WSDL_PATH,
    SageX3SoapClient,
    SoapConfig,
    _zeep_client,
)
from integrations.sagex3.types import Entry, EntryLine

from .conftest import X3


def entry(reference: str = "BC-acme-250", **overrides: Any) -> Entry:
    values: dict[str, Any] = {
        "reference": reference,
        "accounting_date": date(2026, 11, 3),
        "currency": "EUR",
        "description": "BigCommerce order 250",
        "entry_type": "ODG",
        "journal": "VEN",
        "site": "FR011",
        "lines": (
            EntryLine("411000", Decimal("120.0000"), Decimal(0), "Customer"),
            EntryLine("707000", Decimal(0), Decimal("100.0000"), "Sales"),
            EntryLine("445710", Decimal(0), Decimal("20.0000"), "VAT"),
        ),
        "source_document": "250",
    }
    values.update(overrides)
    return Entry(**values)


def client(x3: X3, **overrides: Any) -> SageX3SoapClient:
    values: dict[str, Any] = {
        "base_url": x3.base_url,
        "pool_alias": "SEED",
        "username": "admin",
        "password": "s3cret",
        "timeout": (2.0, 2.0),
    }
    values.update(overrides)
    return SageX3SoapClient(SoapConfig(**values))


def test_save_creates_the_entry_visible_to_api1_and_inspection(x3: X3) -> None:
    # when an entry is saved over SOAP
    posted = client(x3).create_entry(entry())

    # then X3 numbered it, and the same store holds it for api1 and for inspection, at two decimals
    assert posted.document_number == "ODG-000001"
    (stored,) = x3.ctl.entries(reference="BC-acme-250")
    assert stored["_sim"]["api"] == "soap" and stored["ACCDAT"] == "2026-11-03"
    assert stored["_sim"]["debit_total"] == stored["_sim"]["credit_total"] == "120.00"
    assert [line["DEB"] for line in stored["GACCENTRYD"]] == ["120.00", "0.00", "0.00"]
    api1 = x3.http.get(
        x3.url,
        params={"representation": "GACCENTRY.$query", "where": "(REFINT eq 'BC-acme-250')"},
        timeout=5,
    ).json()
    assert [r["NUM"] for r in api1["$resources"]] == ["ODG-000001"]
    stats = x3.ctl.stats()["soap"]
    assert stats["save"] == 1 and stats["created"] == 1


def test_the_wsdl_served_is_one_zeep_consumes_and_the_answers_follow_it(x3: X3) -> None:
    # given the WSDL as the simulator publishes it
    r = requests.get(x3.base_url + WSDL_PATH, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml")
    assert (x3.base_url + SOAP_PATH).encode() in r.content
    soap = client(x3, wsdl_url=x3.base_url + WSDL_PATH)

    # when the client loads it (instead of the shipped copy) and saves an entry
    posted = soap.create_entry(entry())

    # then zeep built the request from it, and zeep's own reading of the answer agrees with ours
    assert posted.document_number == "ODG-000001"
    zeep_client = _zeep_client(soap.config)
    operation = zeep_client.service._binding._operations["save"]
    answer = operation.process_reply(etree.fromstring(soap.call_log[-1].response_body.encode()))
    assert answer.status == 1 and "ODG-000001" in answer.resultXml
    assert isinstance(zeep_client, zeep.Client) and BUNDLED_WSDL.exists()


def test_refusals_carry_x3s_messages_and_nothing_is_stored(x3: X3) -> None:
    soap = client(x3)
    unbalanced = entry(
        lines=(
            EntryLine("411000", Decimal("10.00"), Decimal(0)),
            EntryLine("707000", Decimal(0), Decimal("9.00")),
        )
    )
    with pytest.raises(PermanentError, match="not balanced") as refused:
        soap.create_entry(unbalanced)
    assert not refused.value.outcome_unknown and not refused.value.retryable
    with pytest.raises(PermanentError, match="account 999999 does not exist"):
        soap.create_entry(entry(lines=(EntryLine("999999", Decimal(5), Decimal(0)), *entry().lines[1:2])))
    with pytest.raises(PermanentError, match="period 2026-10 is closed"):
        soap.create_entry(entry(accounting_date=date(2026, 10, 31)))
    assert x3.ctl.entries() == []
    assert x3.ctl.stats()["soap"]["rejected"] == 3


def test_a_duplicate_reference_is_refused_when_x3_is_set_up_to(x3: X3) -> None:
    x3.ctl.configure(reject_duplicate_reference=True)
    soap = client(x3)
    soap.create_entry(entry())
    with pytest.raises(PermanentError, match="already exists"):
        soap.create_entry(entry())
    assert len(x3.ctl.entries()) == 1


def test_find_by_reference_and_duplicates(x3: X3) -> None:
    soap = client(x3)
    soap.create_entry(entry("BC-acme-249"))
    assert soap.find_entry("BC-acme-250") is None
    soap.create_entry(entry())
    assert soap.find_entry("BC-acme-250").document_number == "ODG-000002"
    soap.create_entry(entry())  # REFINT allows duplicates in a real X3
    with pytest.raises(DuplicateEntryError) as duplicates:
        soap.find_entry("BC-acme-250")
    assert duplicates.value.document_numbers == ["ODG-000002", "ODG-000003"]


def test_when_the_query_list_hides_the_reference_read_confirms_it(x3: X3) -> None:
    # given a publication whose query list shows only the key
    x3.ctl.configure(soap={"publications": {"GAS": {"query_fields": ["TYP", "NUM"]}}})
    soap = client(x3)
    soap.create_entry(entry())
    soap.call_log.clear()

    # when the entry is looked up
    found = soap.find_entry("BC-acme-250")

    # then read confirmed it
    assert found is not None and found.document_number == "ODG-000001"
    assert [c.extra["soap_operation"] for c in soap.call_log] == ["query", "read"]


def test_an_ignored_filter_is_not_trusted(x3: X3) -> None:
    # given a publication where REFINT is not a query criterion (X3 returns every entry)
    x3.ctl.configure(soap={"publications": {"GAS": {"criteria": ["TYP", "NUM"]}}})
    soap = client(x3)
    soap.create_entry(entry("BC-acme-1"))

    # then a lookup for another reference fails loudly instead of answering "found"
    with pytest.raises(PermanentError, match="filter was not applied"):
        soap.find_entry("BC-acme-2")


def test_faults_5xx_no_children_auth_and_unknown_pool(x3: X3) -> None:
    soap = client(x3)
    x3.ctl.set_faults(fail_next=1, fail_status=503)
    with pytest.raises(RetryableError, match="HTTP 503") as failed:
        soap.create_entry(entry())
    assert failed.value.outcome_unknown  # a 5xx on save: X3 may have committed
    x3.ctl.configure(soap={"children": 0})
    with pytest.raises(RetryableError, match="No Web services accepted"):
        soap.find_entry("BC-acme-250")
    x3.ctl.configure(soap={"children": 1})
    with pytest.raises(AuthenticationError, match="HTTP 401"):
        client(x3, password="wrong").find_entry("BC-acme-250")
    with pytest.raises(PermanentError, match="Pool NOPE does not exist"):
        client(x3, pool_alias="NOPE").find_entry("BC-acme-250")
    with pytest.raises(PermanentError, match="ZGAS is not published"):
        client(x3, public_name="ZGAS").find_entry("BC-acme-250")
    assert x3.ctl.entries() == []


def test_commit_then_drop_leaves_one_entry_found_by_reference(x3: X3) -> None:
    # given X3 commits the save and then drops the connection
    soap = client(x3)
    x3.ctl.set_faults(drop_after_commit_next=1, methods=["POST"])

    # when the entry is saved
    with pytest.raises(RetryableError) as dropped:
        soap.create_entry(entry())

    # then the outcome is unknown, and the lookup finds the one entry X3 holds
    assert dropped.value.outcome_unknown
    assert soap.find_entry("BC-acme-250").document_number == "ODG-000001"
    assert len(x3.ctl.entries()) == 1


def test_a_timeout_on_save_is_an_unknown_outcome(x3: X3) -> None:
    soap = client(x3, timeout=(2.0, 0.3))
    x3.ctl.set_faults(timeout_next=1, timeout_ms=800, timeout_commits=True, methods=["POST"])
    with pytest.raises(RetryableError, match="read timeout") as timed_out:
        soap.create_entry(entry())
    assert timed_out.value.outcome_unknown
    # a timeout on a read is retryable but known: nothing was written
    x3.ctl.set_faults(timeout_next=1, timeout_ms=800, methods=["GET"])
    with pytest.raises(RetryableError) as read_timeout:
        soap.find_entry("BC-acme-250")
    assert not read_timeout.value.outcome_unknown


def test_connection_steps_check_the_mapping_against_the_publication(x3: X3) -> None:
    # a matching publication: every step passes
    steps = client(x3).connection_steps()
    assert [s.ok for s in steps] == [True] * 5
    assert "Connected to" in client(x3).test_connection()

    # a publication whose lines sit in another table: the mapping step says where they are
    x3.ctl.configure(soap={"publications": {"GAS": {"lines_group": "GAS1_3"}}})
    steps = client(x3).connection_steps()
    assert steps[-1].name == "Field mapping" and not steps[-1].ok
    assert "ACC is published in GAS1_3" in steps[-1].detail
    with pytest.raises(PermanentError, match="Field mapping"):
        client(x3).test_connection()

    # wrong credentials stop at the second step
    bad = client(x3, password="nope").connection_steps()
    assert [(s.name, s.ok) for s in bad] == [("Server reachable", True), ("Credentials accepted", False)]


def test_sign_amount_style_and_storno_amounts(x3: X3) -> None:
    soap = client(x3, mapping={"amount_style": "sign_amount"})
    storno = entry(
        lines=(
            EntryLine("411000", Decimal("-120.00"), Decimal(0)),
            EntryLine("707000", Decimal(0), Decimal("-100.00")),
            EntryLine("445710", Decimal(0), Decimal("-20.00")),
        )
    )
    soap.create_entry(dataclasses.replace(storno, reference="BC-acme-250-R1"))
    (stored,) = x3.ctl.entries()
    assert [(ln["SNS"], ln["AMTCUR"]) for ln in stored["GACCENTRYD"]] == [
        ("1", "-120.00"),
        ("-1", "-100.00"),
        ("-1", "-20.00"),
    ]
