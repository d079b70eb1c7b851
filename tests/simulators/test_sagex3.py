"""The Sage X3 simulator over real HTTP: Basic auth, api1 create/query/details, accounting rules, faults."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from simulators.sagex3 import DEFAULT_FIELDS, parse_where

from .conftest import X3

CREATE = {"representation": "GACCENTRY.$create"}
QUERY = {"representation": "GACCENTRY.$query"}
DETAILS = {"representation": "GACCENTRY.$details"}


def entry(reference: str = "BC-acme-250", **overrides: Any) -> dict[str, Any]:
    body = {
        "TYP": "ODG",
        "JOU": "VEN",
        "FCY": "FR011",
        "ACCDAT": "2026-11-03",
        "CUR": "EUR",
        "DESVCR": "BigCommerce order 250",
        "REFINT": reference,
        "BPRVCR": "250",
        "GACCENTRYD": [
            {"LIN": 1, "ACC": "411000", "DES": "Customer", "DEB": "120.00", "CDT": "0.00"},
            {"LIN": 2, "ACC": "707000", "DES": "Sales", "DEB": "0.00", "CDT": "100.00"},
            {"LIN": 3, "ACC": "445710", "DES": "VAT", "DEB": "0.00", "CDT": "20.00"},
        ],
    }
    body.update(overrides)
    return body


def messages(response: requests.Response) -> list[str]:
    diags = response.json()["$diagnoses"]
    assert all(d["$severity"] == "error" for d in diags)
    return [d["$message"] for d in diags]


def test_basic_auth(x3: X3) -> None:
    r = requests.post(x3.url, params=CREATE, json=entry(), timeout=5)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="Syracuse"'
    assert messages(r)
    assert requests.get(x3.url, params=QUERY, auth=("admin", "wrong"), timeout=5).status_code == 401
    assert x3.ctl.entries() == []
    assert x3.http.get(x3.url, params=QUERY, timeout=5).status_code == 200


def test_create_query_details_and_sequences(x3: X3) -> None:
    r = x3.http.post(x3.url, params=CREATE, json=entry(), timeout=5)
    assert r.status_code == 201
    created = r.json()
    assert created["NUM"] == "ODG-000001" and created["$uuid"]
    assert (
        created["REFINT"] == "BC-acme-250" and created["ACCDAT"] == "2026-11-03" and created["CPY"] == "FR10"
    )
    assert [ln["LIN"] for ln in created["GACCENTRYD"]] == [1, 2, 3]
    assert r.headers["Location"].endswith("GACCENTRY('ODG-000001')?representation=GACCENTRY.$details")
    assert (
        x3.http.post(x3.url, params=CREATE, json=entry("BC-acme-251"), timeout=5).json()["NUM"]
        == "ODG-000002"
    )
    assert (
        x3.http.post(x3.url, params=CREATE, json=entry("BC-x", TYP="VTE"), timeout=5).json()["NUM"]
        == "VTE-000001"
    )

    found = x3.http.get(
        x3.url, params={**QUERY, "where": "(REFINT eq 'BC-acme-250')", "count": 10}, timeout=5
    ).json()
    assert set(found) == {"$resources", "$links"}
    assert [e["NUM"] for e in found["$resources"]] == ["ODG-000001"]
    assert "GACCENTRYD" not in found["$resources"][0]  # the query facet has no lines
    none = x3.http.get(x3.url, params={**QUERY, "where": "(REFINT eq 'nope')"}, timeout=5).json()
    assert none == {"$resources": [], "$links": {}}
    paged = x3.http.get(x3.url, params={**QUERY, "count": 2}, timeout=5).json()
    assert len(paged["$resources"]) == 2 and "$next" in paged["$links"]

    details = x3.http.get(f"{x3.url}('ODG-000001')", params=DETAILS, timeout=5)
    assert details.status_code == 200 and len(details.json()["GACCENTRYD"]) == 3
    assert (
        x3.http.get(f"{x3.url}('ODG~ODG-000002')", params=DETAILS, timeout=5).json()["REFINT"]
        == "BC-acme-251"
    )
    missing = x3.http.get(f"{x3.url}('ODG-999999')", params=DETAILS, timeout=5)
    assert missing.status_code == 404 and messages(missing)

    listed = x3.ctl.entries(reference="BC-acme-250")
    assert len(listed) == 1
    assert listed[0]["_sim"]["debit_total"] == listed[0]["_sim"]["credit_total"] == "120.00"
    assert [ln["account"] for ln in listed[0]["_sim"]["lines"]] == ["411000", "707000", "445710"]


def test_duplicate_references_are_accepted_like_x3_unless_configured(x3: X3) -> None:
    for _ in range(2):
        assert x3.http.post(x3.url, params=CREATE, json=entry("BC-dup"), timeout=5).status_code == 201
    found = x3.http.get(x3.url, params={**QUERY, "where": "(REFINT eq 'BC-dup')"}, timeout=5).json()[
        "$resources"
    ]
    assert [e["NUM"] for e in found] == ["ODG-000001", "ODG-000002"]
    x3.ctl.configure(reject_duplicate_reference=True)
    r = x3.http.post(x3.url, params=CREATE, json=entry("BC-dup"), timeout=5)
    assert r.status_code == 400 and "already exists" in messages(r)[0]


def test_sign_amount_lines_and_storno(x3: X3) -> None:
    lines = [
        {"ACC": "709000", "SNS": 1, "AMTCUR": "50.00"},
        {"ACC": "445710", "SNS": 1, "AMTCUR": "10.00"},
        {"ACC": "411000", "SNS": -1, "AMTCUR": "60.00"},
    ]
    assert (
        x3.http.post(x3.url, params=CREATE, json=entry("BC-sns", GACCENTRYD=lines), timeout=5).status_code
        == 201
    )
    storno = [
        {"ACC": "411000", "DEB": "-60.00"},
        {"ACC": "707000", "CDT": "-50.00"},
        {"ACC": "445710", "CDT": "-10.00"},
    ]
    r = x3.http.post(x3.url, params=CREATE, json=entry("BC-storno", GACCENTRYD=storno), timeout=5)
    assert r.status_code == 201, r.text
    assert x3.ctl.entries(reference="BC-storno")[0]["_sim"]["debit_total"] == "-60.00"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"GACCENTRYD": [{"ACC": "411000", "DEB": "100.00"}, {"ACC": "707000", "CDT": "99.99"}]},
            "Entry is not balanced: total debit 100.00 is not equal to total credit 99.99",
        ),
        ({"ACCDAT": "2026-10-31"}, "Accounting date 2026-10-31: period 2026-10 is closed"),
        (
            {"GACCENTRYD": [{"ACC": "411000", "DEB": "1"}, {"ACC": "999999", "CDT": "1"}]},
            "Line 2: account 999999 does not exist in the chart of accounts",
        ),
        ({"FCY": "XX999"}, "Site XX999 does not exist or is not a financial site"),
        ({"ACCDAT": "31/10/2026"}, "ACCDAT: invalid date 31/10/2026"),
        ({"JOU": ""}, "JOU: mandatory field"),
        ({"GACCENTRYD": []}, "GACCENTRYD: at least one line is required"),
        (
            {"GACCENTRYD": [{"ACC": "411000", "DEB": "1", "CDT": "1"}]},
            "Line 1: a line has either a DEB or a CDT amount, not both",
        ),
    ],
)
def test_rejected_entries(x3: X3, overrides: dict[str, Any], expected: str) -> None:
    r = x3.http.post(x3.url, params=CREATE, json=entry(**overrides), timeout=5)
    assert r.status_code == 400
    assert expected in messages(r)
    assert x3.ctl.entries() == []


def test_configured_journals_and_entry_types(x3: X3) -> None:
    x3.ctl.configure(journals=["VEN"], entry_types=["ODG"], closed_before="2026-01")
    r = x3.http.post(x3.url, params=CREATE, json=entry(JOU="ACH", TYP="XXX", ACCDAT="2025-12-31"), timeout=5)
    assert set(messages(r)) == {
        "Journal ACH does not exist",
        "Entry type XXX does not exist",
        "Accounting date 2025-12-31: period 2025-12 is closed",
    }


def test_bad_targets(x3: X3) -> None:
    assert x3.http.post(x3.url, json=entry(), timeout=5).status_code == 400  # no representation
    assert x3.http.post(x3.url, params=QUERY, json=entry(), timeout=5).status_code == 400  # wrong facet
    other = x3.base_url + "/api1/x3/erp/OTHER/GACCENTRY"
    assert x3.http.get(other, params=QUERY, timeout=5).status_code == 404
    assert (
        x3.http.get(x3.base_url + "/api1/x3/erp/SEED/BPCUSTOMER", params=QUERY, timeout=5).status_code == 404
    )
    r = x3.http.get(x3.url, params={**QUERY, "where": "REFINT = 'x'"}, timeout=5)
    assert r.status_code == 400


# ------------------------------------------------------------------------------------------------------------ faults


def test_commit_then_drop(x3: X3) -> None:
    x3.ctl.set_faults(drop_after_commit_next=1)
    with pytest.raises(requests.ConnectionError):
        x3.http.post(x3.url, params=CREATE, json=entry("BC-drop"), timeout=5)
    stored = x3.ctl.entries(reference="BC-drop")
    assert len(stored) == 1 and stored[0]["NUM"] == "ODG-000001"
    # the client can find it again by its reference, and the next create answers normally
    found = x3.http.get(x3.url, params={**QUERY, "where": "(REFINT eq 'BC-drop')"}, timeout=5).json()
    assert [e["NUM"] for e in found["$resources"]] == ["ODG-000001"]
    assert x3.http.post(x3.url, params=CREATE, json=entry("BC-next"), timeout=5).status_code == 201


def test_errors_resets_and_timeouts_do_not_commit(x3: X3) -> None:
    x3.ctl.set_faults(fail_next=1, fail_status=503)
    r = x3.http.post(x3.url, params=CREATE, json=entry("BC-1"), timeout=5)
    assert r.status_code == 503 and messages(r)
    x3.ctl.set_faults(reset_next=1)
    with pytest.raises(requests.ConnectionError):
        x3.http.post(x3.url, params=CREATE, json=entry("BC-2"), timeout=5)
    x3.ctl.set_faults(timeout_next=1, timeout_ms=600)
    with pytest.raises(requests.exceptions.ReadTimeout):
        x3.http.post(x3.url, params=CREATE, json=entry("BC-3"), timeout=0.2)
    time.sleep(0.5)
    assert x3.ctl.entries() == []
    x3.ctl.set_faults(fail_after_commit_next=1, fail_status=500)
    assert x3.http.post(x3.url, params=CREATE, json=entry("BC-4"), timeout=5).status_code == 500
    assert [e["REFINT"] for e in x3.ctl.entries()] == ["BC-4"]
    assert x3.ctl.stats()["faults"] == {
        "fail_next": 1,
        "reset_next": 1,
        "timeout_next": 1,
        "fail_after_commit_next": 1,
    }


def test_slow_commit_timeout_and_latency(x3: X3) -> None:
    x3.ctl.set_faults(timeout_next=1, timeout_ms=400, timeout_commits=True)
    with pytest.raises(requests.exceptions.ReadTimeout):
        x3.http.post(x3.url, params=CREATE, json=entry("BC-slow"), timeout=0.15)
    deadline = time.monotonic() + 2
    while not x3.ctl.entries(reference="BC-slow") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(x3.ctl.entries(reference="BC-slow")) == 1  # X3 committed after the client gave up
    x3.ctl.set_faults(latency_ms=100, methods=["GET"])
    started = time.monotonic()
    x3.http.get(x3.url, params=QUERY, timeout=5)
    assert time.monotonic() - started >= 0.1
    started = time.monotonic()
    x3.http.post(x3.url, params=CREATE, json=entry("BC-fast"), timeout=5)
    assert time.monotonic() - started < 0.1


def test_refused_connections_for_a_while(x3: X3) -> None:
    assert x3.http.get(x3.url, params=QUERY, timeout=5).status_code == 200  # a pooled keep-alive connection
    x3.ctl.set_faults(refuse_for_ms=300)
    time.sleep(0.1)
    with pytest.raises(requests.ConnectionError):
        x3.http.get(x3.url, params=QUERY, timeout=2)
    with pytest.raises(requests.ConnectionError, match="refused"):
        requests.get(x3.url, params=QUERY, auth=("admin", "s3cret"), timeout=2)
    time.sleep(0.35)
    assert x3.http.get(x3.url, params=QUERY, timeout=5).status_code == 200


def test_reset_and_config(x3: X3) -> None:
    x3.http.post(x3.url, params=CREATE, json=entry(), timeout=5)
    x3.ctl.configure(faults={"fail_next": 1})
    assert x3.http.get(x3.url, params=QUERY, timeout=5).status_code == 500
    x3.ctl.configure(chart=None, users={"other": "pw"})
    assert x3.http.get(x3.url, params=QUERY, timeout=5).status_code == 401
    x3.ctl.reset()
    assert x3.ctl.entries() == []
    assert x3.ctl.config()["users"] == {"admin": "s3cret"}
    assert x3.http.post(x3.url, params=CREATE, json=entry(), timeout=5).json()["NUM"] == "ODG-000001"


def test_where_parser() -> None:
    assert parse_where("(REFINT eq 'BC-a''b') and (TYP eq 'ODG')") == [
        ("REFINT", "eq", "BC-a'b"),
        ("TYP", "eq", "ODG"),
    ]
    assert parse_where("LIN gt 2") == [("LIN", "gt", "2")]


def test_default_fields_match_the_connector_mapping() -> None:
    from integrations.sagex3.types import DEFAULT_REST_MAPPING

    assert DEFAULT_FIELDS["header"] == DEFAULT_REST_MAPPING["header"]
    assert DEFAULT_FIELDS["lines_key"] == DEFAULT_REST_MAPPING["lines_key"]
    assert DEFAULT_FIELDS["line"] == DEFAULT_REST_MAPPING["line"]
    assert DEFAULT_FIELDS["document_number"] == DEFAULT_REST_MAPPING["document_number_field"]
