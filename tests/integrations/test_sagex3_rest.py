"""The Sage X3 api1 client: payloads, URLs, parsing and error classification, with HTTP faked by ``responses``."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses

from integrations.errors import (
    AuthenticationError,
    BadResponseError,
    IntegrationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from integrations.sagex3.calls import DuplicateEntryError
from integrations.sagex3.diagnoses import Diagnosis, collect_diagnoses, error_diagnoses
from integrations.sagex3.rest import (
    MappingError,
    RestConfig,
    SageX3RestClient,
    dumps,
    effective_mapping,
    json_amount,
    validate_mapping,
)
from integrations.sagex3.types import DEFAULT_REST_MAPPING, Entry, EntryLine, PostedEntry

BASE = "https://x3.example.com:8124"
PASSWORD = "s3cret-Pa55!word"
BASIC = "Basic " + base64.b64encode(f"WEBSVC:{PASSWORD}".encode()).decode()
CREATE_URL = f"{BASE}/api1/x3/erp/SEED/GACCENTRY?representation=GACCENTRY.$create"
QUERY_URL = f"{BASE}/api1/x3/erp/SEED/GACCENTRY?representation=GACCENTRY.$query"
REFERENCE = "BC-abc123-250"
FIND_URL = f"{QUERY_URL}&where=%28REFINT%20eq%20%27{REFERENCE}%27%29&count=10"


def make_config(**overrides: Any) -> RestConfig:
    values: dict[str, Any] = {"base_url": BASE, "folder": "SEED", "username": "WEBSVC", "password": PASSWORD}
    values.update(overrides)
    return RestConfig(**values)


def make_client(mapping: dict[str, Any] | None = None) -> SageX3RestClient:
    return SageX3RestClient(make_config(mapping=mapping or {}))


def make_entry(*lines: EntryLine, reference: str = REFERENCE) -> Entry:
    return Entry(
        reference=reference,
        accounting_date=date(2025, 3, 31),
        currency="EUR",
        description="BigCommerce order 250",
        entry_type="ODG",
        journal="VEN",
        site="FR011",
        lines=lines
        or (
            EntryLine(account="411000", debit=Decimal("120.00"), credit=Decimal(0), description="Customer"),
            EntryLine(account="706000", debit=Decimal(0), credit=Decimal("100.0000"), description="Revenue"),
            EntryLine(account="445710", debit=Decimal(0), credit=Decimal(20), description="VAT"),
        ),
        source_document="250",
    )


@pytest.fixture
def x3() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


# --- payload ------------------------------------------------------------------------------------------------------


def test_debit_credit_payload_maps_header_lines_and_static_fields() -> None:
    # given
    client = make_client({"header_static": {"CAT": 1, "CPY": "FR10"}, "line_static": {"LEDTYP": 1}})

    # when
    payload = client.build_payload(make_entry())

    # then
    assert payload == {
        "TYP": "ODG",
        "JOU": "VEN",
        "FCY": "FR011",
        "ACCDAT": "2025-03-31",
        "CUR": "EUR",
        "DESVCR": "BigCommerce order 250",
        "REFINT": REFERENCE,
        "BPRVCR": "250",
        "CAT": 1,
        "CPY": "FR10",
        "GACCENTRYD": [
            {
                "LIN": 1,
                "ACC": "411000",
                "DES": "Customer",
                "DEB": Decimal("120.00"),
                "CDT": Decimal("0.00"),
                "LEDTYP": 1,
            },
            {
                "LIN": 2,
                "ACC": "706000",
                "DES": "Revenue",
                "DEB": Decimal("0.00"),
                "CDT": Decimal("100.00"),
                "LEDTYP": 1,
            },
            {
                "LIN": 3,
                "ACC": "445710",
                "DES": "VAT",
                "DEB": Decimal("0.00"),
                "CDT": Decimal("20.00"),
                "LEDTYP": 1,
            },
        ],
    }
    # Every amount at the currency's precision (EUR: two decimals), whatever scale it was stored with.
    assert [str(row["CDT"]) for row in payload["GACCENTRYD"]] == ["0.00", "100.00", "20.00"]


def test_debit_credit_payload_keeps_storno_amounts_negative_on_their_side() -> None:
    # given: a refund reversal posted as a storno (same sides, negative amounts)
    entry = make_entry(
        EntryLine(account="411000", debit=Decimal("-120.00"), credit=Decimal(0)),
        EntryLine(account="706000", debit=Decimal(0), credit=Decimal("-120.00")),
    )

    # when
    rows = make_client().build_payload(entry)["GACCENTRYD"]

    # then
    assert [(r["ACC"], r["DEB"], r["CDT"]) for r in rows] == [
        ("411000", Decimal("-120.00"), Decimal("0.00")),
        ("706000", Decimal("0.00"), Decimal("-120.00")),
    ]


def test_sign_amount_payload_emits_one_row_per_non_zero_side() -> None:
    # given
    client = make_client({"amount_style": "sign_amount"})

    # when
    rows = client.build_payload(make_entry())["GACCENTRYD"]

    # then
    assert rows == [
        {"LIN": 1, "ACC": "411000", "DES": "Customer", "SNS": 1, "AMTCUR": Decimal("120.00")},
        {"LIN": 2, "ACC": "706000", "DES": "Revenue", "SNS": -1, "AMTCUR": Decimal("100.0000")},
        {"LIN": 3, "ACC": "445710", "DES": "VAT", "SNS": -1, "AMTCUR": Decimal("20.00")},
    ]


def test_sign_amount_storno_keeps_the_side_and_the_negative_amount() -> None:
    # given: a storno entry and a line that has both sides filled
    client = make_client({"amount_style": "sign_amount"})
    entry = make_entry(
        EntryLine(account="411000", debit=Decimal("-50.5"), credit=Decimal(0)),
        EntryLine(account="706000", debit=Decimal(0), credit=Decimal("-40.5")),
        EntryLine(account="445710", debit=Decimal(2), credit=Decimal(-8)),
    )

    # when
    rows = client.build_payload(entry)["GACCENTRYD"]

    # then: never flipped to the other sign, never made positive
    assert [(r["LIN"], r["ACC"], r["SNS"], r["AMTCUR"]) for r in rows] == [
        (1, "411000", 1, Decimal("-50.50")),
        (2, "706000", -1, Decimal("-40.50")),
        (3, "445710", 1, Decimal("2.00")),
        (4, "445710", -1, Decimal("-8.00")),
    ]


def test_payload_skips_unmapped_fields_and_uses_the_date_format() -> None:
    # given
    client = make_client(
        {
            "header": {"source_document": None, "description": ""},
            "line": {"line_number": None},
            "date_format": "%Y%m%d",
        }
    )

    # when
    payload = client.build_payload(make_entry())

    # then
    assert "BPRVCR" not in payload
    assert "DESVCR" not in payload
    assert payload["ACCDAT"] == "20250331"
    assert "LIN" not in payload["GACCENTRYD"][0]
    assert payload["JOU"] == "VEN"  # the rest of the default header mapping still applies


def test_dumps_writes_decimals_as_exact_json_numbers() -> None:
    # given
    value = {
        "a": json_amount(Decimal("12.5"), "USD"),
        "b": Decimal("0.10"),
        "c": Decimal("-1.2345"),
        "d": "é",
    }

    # when
    text = dumps(value)

    # then
    assert text == '{"a":12.50,"b":0.10,"c":-1.2345,"d":"é"}'
    assert json.loads(text, parse_float=Decimal) == {
        "a": Decimal("12.50"),
        "b": Decimal("0.10"),
        "c": Decimal("-1.2345"),
        "d": "é",
    }


def test_json_amount_normalises_exponents_and_negative_zero() -> None:
    assert str(json_amount(Decimal("1E+2"), "EUR")) == "100.00"
    assert str(json_amount(Decimal("-0"), "EUR")) == "0.00"
    with pytest.raises(PermanentError):
        json_amount(Decimal("NaN"), "EUR")


@pytest.mark.parametrize(
    ("stored", "currency", "sent"),
    [
        ("34.9600", "USD", "34.96"),
        ("-21.6500", "EUR", "-21.65"),
        ("1500.0000", "JPY", "1500"),
        ("1.2350", "KWD", "1.235"),
        ("12.5", "USD", "12.50"),
    ],
)
def test_amounts_go_out_at_the_currency_precision(stored: str, currency: str, sent: str) -> None:
    # given an entry whose amounts carry the database's four decimals
    client = make_client()
    entry = dataclasses.replace(
        make_entry(),
        currency=currency,
        lines=(
            EntryLine(account="411000", debit=Decimal(stored), credit=Decimal(0)),
            EntryLine(account="706000", debit=Decimal(0), credit=Decimal(stored)),
        ),
    )

    # when
    body = dumps(client.build_payload(entry))

    # then
    rows = json.loads(body, parse_float=str, parse_int=str)["GACCENTRYD"]
    assert [rows[0]["DEB"], rows[1]["CDT"]] == [sent, sent]
    assert rows[0]["CDT"] == ("0" if currency == "JPY" else "0.000" if currency == "KWD" else "0.00")


def test_an_amount_finer_than_the_currency_is_refused_not_rounded() -> None:
    with pytest.raises(PermanentError, match="more decimals than USD"):
        json_amount(Decimal("34.965"), "USD")


# --- create -------------------------------------------------------------------------------------------------------


def test_create_entry_posts_the_exact_body_with_basic_auth(x3: responses.RequestsMock) -> None:
    # given
    x3.add(
        responses.POST,
        CREATE_URL,
        json={"$uuid": "7f0c-uuid", "NUM": "ODG2503000123", "REFINT": REFERENCE},
        status=201,
    )
    client = make_client()

    # when
    posted = client.create_entry(make_entry())

    # then
    assert posted == PostedEntry(document_number="ODG2503000123", reference=REFERENCE, uuid="7f0c-uuid")
    request = x3.calls[0].request
    assert request.url == CREATE_URL
    assert request.headers["Authorization"] == BASIC
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    expected_body = (
        '{"TYP":"ODG","JOU":"VEN","FCY":"FR011","ACCDAT":"2025-03-31","CUR":"EUR",'
        '"DESVCR":"BigCommerce order 250","REFINT":"BC-abc123-250","BPRVCR":"250","GACCENTRYD":['
        '{"LIN":1,"ACC":"411000","DES":"Customer","DEB":120.00,"CDT":0.00},'
        '{"LIN":2,"ACC":"706000","DES":"Revenue","DEB":0.00,"CDT":100.00},'
        '{"LIN":3,"ACC":"445710","DES":"VAT","DEB":0.00,"CDT":20.00}]}'
    )
    assert request.body == expected_body.encode()
    [record] = client.call_log
    assert (record.method, record.url, record.request_body, record.status_code) == (
        "POST",
        CREATE_URL,
        expected_body,
        201,
    )
    assert json.loads(record.response_body)["NUM"] == "ODG2503000123"
    assert record.error == ""


def test_create_entry_uses_mapped_class_representation_and_folder(x3: responses.RequestsMock) -> None:
    # given: a tenant-published representation and a folder needing no escaping
    url = f"{BASE}/api1/x3/erp/PROD/YGAS?representation=YGASREST.$create"
    x3.add(responses.POST, url, json={"VCRNUM": "J-42"}, status=200)
    client = SageX3RestClient(
        make_config(
            folder="PROD",
            mapping={"class": "YGAS", "representation": "YGASREST", "document_number_field": "VCRNUM"},
        )
    )

    # when
    posted = client.create_entry(make_entry())

    # then
    assert posted.document_number == "J-42"
    assert posted.uuid is None
    assert x3.calls[0].request.url == url


def test_create_entry_reads_the_number_from_the_first_resource(x3: responses.RequestsMock) -> None:
    # given
    x3.add(
        responses.POST,
        CREATE_URL,
        json={"$resources": [{"$uuid": "u-1", "NUM": 123456}]},
        status=201,
    )

    # when
    posted = make_client().create_entry(make_entry())

    # then
    assert (posted.document_number, posted.uuid) == ("123456", "u-1")


def test_create_entry_without_a_document_number_leaves_the_outcome_unknown(
    x3: responses.RequestsMock,
) -> None:
    # given: X3 says OK but names no document
    x3.add(responses.POST, CREATE_URL, json={"$uuid": "u-1", "NUM": ""}, status=201)

    client = make_client()

    # when
    with pytest.raises(BadResponseError) as caught:
        client.create_entry(make_entry())

    # then
    assert caught.value.outcome_unknown is True
    assert "NUM" in caught.value.message
    assert client.call_log[0].error == caught.value.message
    assert caught.value.status_code == 201


# --- find ---------------------------------------------------------------------------------------------------------


def test_find_entry_queries_by_reference_and_returns_none(x3: responses.RequestsMock) -> None:
    # given
    x3.add(responses.GET, FIND_URL, json={"$resources": [], "$links": {}})
    client = make_client()

    # when
    found = client.find_entry(REFERENCE)

    # then
    assert found is None
    request = x3.calls[0].request
    assert request.url == FIND_URL  # spaces as %20, quotes and parentheses encoded
    assert request.headers["Authorization"] == BASIC
    assert request.headers["Accept"] == "application/json"
    assert client.call_log[0].method == "GET"
    assert client.call_log[0].request_body == ""


def test_find_entry_returns_the_single_match(x3: responses.RequestsMock) -> None:
    # given
    x3.add(
        responses.GET,
        FIND_URL,
        json={"$resources": [{"$uuid": "u-9", "TYP": "ODG", "NUM": "ODG2503000123", "REFINT": REFERENCE}]},
    )

    # when
    found = make_client().find_entry(REFERENCE)

    # then
    assert found == PostedEntry(document_number="ODG2503000123", reference=REFERENCE, uuid="u-9")


def test_find_entry_with_several_matches_names_them(x3: responses.RequestsMock) -> None:
    # given
    x3.add(
        responses.GET,
        FIND_URL,
        json={"$resources": [{"NUM": "ODG-1", "REFINT": REFERENCE}, {"NUM": "ODG-2", "REFINT": REFERENCE}]},
    )

    client = make_client()

    # when
    with pytest.raises(DuplicateEntryError) as caught:
        client.find_entry(REFERENCE)

    # then
    assert isinstance(caught.value, PermanentError)
    assert client.call_log[0].error == caught.value.message
    assert caught.value.document_numbers == ["ODG-1", "ODG-2"]
    assert "ODG-1, ODG-2" in caught.value.message


def test_find_entry_escapes_quotes_in_the_reference(x3: responses.RequestsMock) -> None:
    # given
    url = f"{QUERY_URL}&where=%28REFINT%20eq%20%27O%27%27Brien%27%29&count=10"
    x3.add(responses.GET, url, json={"$resources": []})

    # when
    make_client().find_entry("O'Brien")

    # then
    assert x3.calls[0].request.url == url


def test_find_entry_refuses_results_for_another_reference(x3: responses.RequestsMock) -> None:
    # given: X3 ignored the where clause and returned whatever came first
    x3.add(responses.GET, FIND_URL, json={"$resources": [{"NUM": "ODG-7", "REFINT": "SOMETHING-ELSE"}]})

    # when
    with pytest.raises(PermanentError) as caught:
        make_client().find_entry(REFERENCE)

    # then
    assert "where filter was not applied" in caught.value.message
    assert not isinstance(caught.value, DuplicateEntryError)


def test_find_entry_without_resources_is_a_bad_response(x3: responses.RequestsMock) -> None:
    x3.add(responses.GET, FIND_URL, json={"unexpected": True})

    with pytest.raises(BadResponseError) as caught:
        make_client().find_entry(REFERENCE)

    assert caught.value.outcome_unknown is False


# --- test_connection ----------------------------------------------------------------------------------------------


def test_connection_reads_one_record(x3: responses.RequestsMock) -> None:
    # given
    x3.add(responses.GET, f"{QUERY_URL}&count=1", json={"$resources": [{"NUM": "X"}]})

    # when
    description = make_client().test_connection()

    # then
    assert description.startswith("Connected to x3.example.com:8124, folder SEED, as WEBSVC")
    assert "1 record(s)" in description
    assert x3.calls[0].request.headers["Authorization"] == BASIC


def test_connection_raises_on_bad_credentials(x3: responses.RequestsMock) -> None:
    x3.add(responses.GET, f"{QUERY_URL}&count=1", body="Unauthorized", status=401)

    with pytest.raises(AuthenticationError):
        make_client().test_connection()


# --- diagnoses ----------------------------------------------------------------------------------------------------


def test_collect_diagnoses_finds_top_level_nested_and_gateway_style() -> None:
    # given
    body = {
        "$diagnoses": [{"$severity": "warning", "$message": "Rate date adjusted"}],
        "GACCENTRYD": [
            {"ACC": "411000"},
            {
                "ACC": "999999",
                "$diagnoses": [{"$severity": "error", "$message": "Account 999999 does not exist"}],
            },
        ],
    }
    gateway = {"$severity": "error", "$dataCode": "InternalServerError", "$message": "", "$source": "Gateway"}

    # when
    found = collect_diagnoses(body)
    from_gateway = collect_diagnoses(gateway)

    # then
    assert found == [
        Diagnosis("warning", "Rate date adjusted", ()),
        Diagnosis("error", "Account 999999 does not exist", ("GACCENTRYD", 1)),
    ]
    assert [d.describe() for d in error_diagnoses(found)] == ["GACCENTRYD #2: Account 999999 does not exist"]
    assert from_gateway == [Diagnosis("error", "InternalServerError", ())]


@pytest.mark.parametrize(
    "odd", [None, "text", 3, [], [1, [2]], {"$diagnoses": "not a list"}, {"$diagnoses": [1]}]
)
def test_collect_diagnoses_tolerates_odd_shapes(odd: Any) -> None:
    assert collect_diagnoses(odd) == []


def test_unknown_severity_counts_as_an_error() -> None:
    found = collect_diagnoses(
        {"$diagnoses": [{"$severity": "fatal", "$message": "Boom"}, {"$message": "No severity"}]}
    )

    assert [d.is_error for d in found] == [True, True]


def test_warnings_alone_do_not_fail_a_create(x3: responses.RequestsMock) -> None:
    # given
    x3.add(
        responses.POST,
        CREATE_URL,
        json={
            "NUM": "ODG-5",
            "$diagnoses": [
                {"$severity": "warning", "$message": "Entry saved as Temporary"},
                {"$severity": "info", "$message": "Number assigned"},
                {"$severity": "success", "$message": "Created"},
            ],
        },
        status=201,
    )
    client = make_client()

    # when
    posted = client.create_entry(make_entry())

    # then
    assert posted.document_number == "ODG-5"
    assert client.call_log[0].extra["diagnoses"] == ["Entry saved as Temporary", "Number assigned", "Created"]


def test_success_status_with_a_nested_error_is_permanent(x3: responses.RequestsMock) -> None:
    # given
    x3.add(
        responses.POST,
        CREATE_URL,
        json={
            "$diagnoses": [{"$severity": "warning", "$message": "Check the rate"}],
            "GACCENTRYD": [
                {"ACC": "411000"},
                {
                    "ACC": "999999",
                    "$diagnoses": [{"$severity": "error", "$message": "Account 999999 does not exist"}],
                },
            ],
        },
        status=200,
    )

    # when
    with pytest.raises(PermanentError) as caught:
        make_client().create_entry(make_entry())

    # then
    assert caught.value.message.endswith(": GACCENTRYD #2: Account 999999 does not exist")
    assert "Check the rate" not in caught.value.message
    assert caught.value.outcome_unknown is True  # X3 said 200: it may have saved something


# --- error classes ------------------------------------------------------------------------------------------------


def test_401_is_an_authentication_error(x3: responses.RequestsMock) -> None:
    x3.add(
        responses.POST,
        CREATE_URL,
        json={"$diagnoses": [{"$severity": "error", "$message": "Bad login"}]},
        status=401,
    )

    with pytest.raises(AuthenticationError) as caught:
        make_client().create_entry(make_entry())

    assert caught.value.retryable is False
    assert caught.value.status_code == 401
    assert "Bad login" in caught.value.message


def test_404_is_permanent_and_not_a_missing_entry(x3: responses.RequestsMock) -> None:
    x3.add(responses.GET, FIND_URL, body="<html>Not found</html>", status=404, content_type="text/html")

    with pytest.raises(PermanentError) as caught:
        make_client().find_entry(REFERENCE)

    assert not isinstance(caught.value, NotFoundError)
    assert "folder SEED" in caught.value.message
    assert "published" in caught.value.message


def test_400_with_diagnoses_carries_x3s_own_messages(x3: responses.RequestsMock) -> None:
    # given
    x3.add(
        responses.POST,
        CREATE_URL,
        json={
            "$diagnoses": [
                {"$severity": "error", "$message": "Period closed"},
                {"$severity": "error", "$message": "Entry not balanced"},
                {"$severity": "error", "$message": "Period closed"},
            ]
        },
        status=400,
    )
    client = make_client()

    # when
    with pytest.raises(PermanentError) as caught:
        client.create_entry(make_entry())

    # then
    error = caught.value
    assert error.message.endswith("): Period closed; Entry not balanced")
    assert (error.retryable, error.outcome_unknown, error.status_code) == (False, False, 400)
    assert client.call_log[0].error == error.message
    assert client.call_log[0].status_code == 400


def test_422_without_diagnoses_is_still_permanent(x3: responses.RequestsMock) -> None:
    x3.add(responses.POST, CREATE_URL, body="Unprocessable", status=422)

    with pytest.raises(PermanentError) as caught:
        make_client().create_entry(make_entry())

    assert "HTTP 422" in caught.value.message
    assert "Unprocessable" in caught.value.message


@pytest.mark.parametrize("status", [409, 423])
def test_locked_record_is_retryable_with_a_known_outcome(x3: responses.RequestsMock, status: int) -> None:
    x3.add(
        responses.POST,
        CREATE_URL,
        json={"$diagnoses": [{"$severity": "error", "$message": "Record locked by ADMIN"}]},
        status=status,
    )

    with pytest.raises(RetryableError) as caught:
        make_client().create_entry(make_entry())

    assert caught.value.retryable is True
    assert caught.value.outcome_unknown is False
    assert "Record locked by ADMIN" in caught.value.message


def test_500_on_create_leaves_the_outcome_unknown(x3: responses.RequestsMock) -> None:
    x3.add(
        responses.POST,
        CREATE_URL,
        json={"$severity": "error", "$dataCode": "InternalServerError", "$message": "", "$source": "Gateway"},
        status=500,
    )

    with pytest.raises(RetryableError) as caught:
        make_client().create_entry(make_entry())

    assert caught.value.outcome_unknown is True
    assert "InternalServerError" in caught.value.message


@pytest.mark.parametrize("status", [408, 502, 503])
def test_server_errors_on_a_read_have_a_known_outcome(x3: responses.RequestsMock, status: int) -> None:
    x3.add(responses.GET, FIND_URL, body="busy", status=status)

    with pytest.raises(RetryableError) as caught:
        make_client().find_entry(REFERENCE)

    assert caught.value.outcome_unknown is False


def test_429_is_rate_limited_with_retry_after(x3: responses.RequestsMock) -> None:
    x3.add(responses.POST, CREATE_URL, body="slow down", status=429, headers={"Retry-After": "30"})

    with pytest.raises(RateLimitedError) as caught:
        make_client().create_entry(make_entry())

    assert caught.value.retry_after == 30.0
    assert caught.value.outcome_unknown is True


def test_read_timeout_on_create_leaves_the_outcome_unknown(x3: responses.RequestsMock) -> None:
    # given
    x3.add(responses.POST, CREATE_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    client = make_client()

    # when
    with pytest.raises(RetryableError) as caught:
        client.create_entry(make_entry())

    # then
    assert caught.value.outcome_unknown is True
    [record] = client.call_log
    assert record.status_code is None
    assert "read timeout" in record.error


def test_connect_timeout_on_create_has_a_known_outcome(x3: responses.RequestsMock) -> None:
    x3.add(responses.POST, CREATE_URL, body=requests.exceptions.ConnectTimeout("connect timed out"))

    with pytest.raises(RetryableError) as caught:
        make_client().create_entry(make_entry())

    assert caught.value.outcome_unknown is False


def test_bad_json_on_create_is_a_bad_response_with_unknown_outcome(x3: responses.RequestsMock) -> None:
    x3.add(responses.POST, CREATE_URL, body="<html>proxy error</html>", status=200, content_type="text/html")

    with pytest.raises(BadResponseError) as caught:
        make_client().create_entry(make_entry())

    assert caught.value.outcome_unknown is True
    assert "proxy error" in caught.value.message


def test_bad_json_on_a_read_is_a_bad_response_with_known_outcome(x3: responses.RequestsMock) -> None:
    x3.add(responses.GET, FIND_URL, body='{"$resources": [', status=200, content_type="application/json")

    with pytest.raises(BadResponseError) as caught:
        make_client().find_entry(REFERENCE)

    assert caught.value.outcome_unknown is False


def test_redirect_is_permanent(x3: responses.RequestsMock) -> None:
    x3.add(responses.GET, FIND_URL, status=302, headers={"Location": "https://sso.example.com/login?next=x"})

    with pytest.raises(PermanentError) as caught:
        make_client().find_entry(REFERENCE)

    assert "https://sso.example.com/login" in caught.value.message
    assert "next=x" not in caught.value.message


# --- credentials never leak ---------------------------------------------------------------------------------------


def _echo_password(mock: responses.RequestsMock) -> None:
    # A misbehaving server or proxy that echoes the request back, credentials included.
    body = {"$diagnoses": [{"$severity": "error", "$message": f"Bad password {PASSWORD} / header {BASIC}"}]}
    mock.add(responses.POST, CREATE_URL, json=body, status=401)


def _server_error(mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, CREATE_URL, body=f"Traceback ... auth={PASSWORD}", status=500)


def _timeout(mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, CREATE_URL, body=requests.exceptions.ReadTimeout(f"timed out {PASSWORD}"))


def _success(mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, CREATE_URL, json={"NUM": "ODG-1", "echo": BASIC}, status=201)


@pytest.mark.parametrize("scenario", [_echo_password, _server_error, _timeout, _success])
def test_password_never_appears_in_messages_or_call_log(x3: responses.RequestsMock, scenario: Any) -> None:
    # given
    scenario(x3)
    client = make_client()

    # when
    texts: list[str] = []
    try:
        posted = client.create_entry(make_entry())
        texts.append(repr(posted.raw))
    except IntegrationError as exc:
        texts += [str(exc), exc.message, repr(exc.args), exc.response_body or ""]

    # then
    assert x3.calls[0].request.headers["Authorization"] == BASIC  # it was sent...
    texts += [repr(dataclasses.asdict(record)) for record in client.call_log]
    texts.append(repr(client.config))
    for text in texts:  # ...and is nowhere else
        assert PASSWORD not in text
        assert BASIC.split()[1] not in text
        assert "Authorization" not in text


# --- mapping ------------------------------------------------------------------------------------------------------


def test_default_mapping_is_valid() -> None:
    assert validate_mapping(effective_mapping({})) == []


def test_validate_mapping_catches_a_bad_amount_style() -> None:
    problems = validate_mapping(effective_mapping({"amount_style": "signed"}))

    assert len(problems) == 1
    assert "unknown amount_style 'signed'" in problems[0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"header": {"reference": None}}, "'header.reference' is required"),
        ({"header": {"ledger": "LED"}}, "unknown field 'ledger'"),
        ({"line": {"debit": ""}}, "'line.debit' is required"),
        ({"amount_style": "sign_amount", "line": {"sign": None}}, "'line.sign' is required"),
        ({"date_format": "2025"}, "'date_format'"),
        ({"class": "GACCENTRY?x=1"}, "'class' must be an X3 code"),
        ({"header_static": {"REFINT": "x"}}, "already filled from the entry"),
        ({"header": {"journal": "TYP"}}, "both mapped to TYP"),
        ({"amount_stlye": "sign_amount"}, "unknown key(s) amount_stlye"),
    ],
)
def test_validate_mapping_explains_problems(overrides: dict[str, Any], expected: str) -> None:
    problems = validate_mapping(effective_mapping(overrides))

    assert any(expected in problem for problem in problems), problems


def test_effective_mapping_merges_one_level_deep_without_touching_defaults() -> None:
    # when
    merged = effective_mapping({"header": {"source_document": None}, "amount_style": "sign_amount"})
    merged["line"]["account"] = "CHANGED"

    # then
    assert merged["header"]["source_document"] is None
    assert merged["header"]["reference"] == "REFINT"
    assert merged["amount_style"] == "sign_amount"
    assert DEFAULT_REST_MAPPING["line"]["account"] == "ACC"
    assert DEFAULT_REST_MAPPING["header"]["source_document"] == "BPRVCR"


def test_client_with_an_invalid_mapping_sends_nothing(x3: responses.RequestsMock) -> None:
    client = make_client({"amount_style": "both"})

    with pytest.raises(MappingError) as caught:
        client.create_entry(make_entry())

    assert "unknown amount_style 'both'" in caught.value.message
    assert client.call_log == []
    assert len(x3.calls) == 0


def test_config_rejects_credentials_in_the_url_and_hides_the_password() -> None:
    with pytest.raises(ValueError, match="must not contain a user name or password") as caught:
        make_config(base_url=f"https://WEBSVC:{PASSWORD}@x3.example.com:8124")

    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(make_config())
