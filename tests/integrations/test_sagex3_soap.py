"""The Sage X3 SOAP client against canned answers (``responses``): request shape, X3 messages, HTTP failures."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

import pytest
import requests
import responses
from lxml import etree

from integrations.errors import AuthenticationError, BadResponseError, PermanentError, RetryableError
from integrations.sagex3.soap import (
    BUNDLED_WSDL,
    DEFAULT_SOAP_MAPPING,
    SageX3SoapClient,
    SoapConfig,
    effective_soap_mapping,
    parse_description,
    parse_result_rows,
    validate_soap_mapping,
)
from integrations.sagex3.types import Entry, EntryLine, PostedEntry

BASE = "https://x3.example.com:8124"
URL = f"{BASE}/soap-generic/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC"
PASSWORD = "s3cret-Pa55!word"
BASIC = "Basic " + base64.b64encode(f"WEBSVC:{PASSWORD}".encode()).decode()
REFERENCE = "BC-abc123-250"


def make_client(**overrides: Any) -> SageX3SoapClient:
    values: dict[str, Any] = {
        "base_url": BASE,
        "pool_alias": "SEED",
        "username": "WEBSVC",
        "password": PASSWORD,
    }
    values.update(overrides)
    return SageX3SoapClient(SoapConfig(**values))


def make_entry(currency: str = "USD") -> Entry:
    return Entry(
        reference=REFERENCE,
        accounting_date=date(2026, 3, 5),
        currency=currency,
        description="BigCommerce order 250",
        entry_type="ODG",
        journal="VEN",
        site="FR011",
        lines=(
            EntryLine("411000", Decimal("34.9600"), Decimal(0), "Customer"),
            EntryLine("707000", Decimal(0), Decimal("28.0000"), "Sales"),
            EntryLine("445710", Decimal(0), Decimal("6.9600"), "VAT <20%> & co"),
        ),
        source_document="250",
    )


def answer(operation: str, status: int, messages: list[tuple[int, str]] = (), result: Any = "") -> str:
    """A CAdxResultXml envelope as Syracuse sends it (messages as a SOAP-encoded array)."""
    result_xml = result if isinstance(result, str) else json.dumps(result)
    items = "".join(
        f"<messages><message>{escape(m)}</message><type>{t}</type></messages>" for t, m in messages
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:wss="http://www.adonix.com/WSS" xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/">'
        f"<soapenv:Body><wss:{operation}Response><{operation}Return>"
        f'<messages soapenc:arrayType="wss:CAdxMessage[{len(messages)}]">{items}</messages>'
        f"<resultXml>{escape(result_xml)}</resultXml><status>{status}</status>"
        f"</{operation}Return></wss:{operation}Response></soapenv:Body></soapenv:Envelope>"
    )


def fault(message: str) -> str:
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>soapenv:Server</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )


def sent(call: Any) -> tuple[str, etree._Element]:
    """(operation, call element) of a recorded request."""
    root = etree.fromstring(call.request.body)
    operation = root[0][0]
    return etree.QName(operation).localname, operation


@pytest.fixture
def x3() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


SAVED = {"GAS0_1": {"TYP": "ODG", "NUM": "ODG2603000042", "REFINT": REFERENCE}, "GAS1_1": [{"ACC": "411000"}]}


# --- the request ----------------------------------------------------------------------------------------------------


def test_save_sends_the_call_context_the_publication_and_the_object_xml(x3: responses.RequestsMock) -> None:
    # given
    x3.post(URL, body=answer("save", 1, [(1, "created")], SAVED), content_type="text/xml")
    client = make_client(
        code_lang="FRA", pool_id="P1", request_config="adxwss.optreturn=JSON&adxwss.beautify=true"
    )

    # when
    posted = client.create_entry(make_entry())

    # then
    assert posted == PostedEntry(document_number="ODG2603000042", reference=REFERENCE)
    request = x3.calls[0].request
    assert request.headers["Authorization"] == BASIC
    assert request.headers["Content-Type"] == "text/xml; charset=utf-8"
    operation, call = sent(x3.calls[0])
    assert operation == "save" and etree.QName(call).namespace == "http://www.adonix.com/WSS"
    context = {etree.QName(c).localname: c.text or "" for c in call.find("callContext")}
    assert context == {
        "codeLang": "FRA",
        "poolAlias": "SEED",
        "poolId": "P1",
        "requestConfig": "adxwss.optreturn=JSON&adxwss.beautify=true",
    }
    assert call.findtext("publicName") == "GAS"
    param = etree.fromstring(call.findtext("objectXml").encode())
    header = {f.get("NAME"): (f.text, f.get("TYPE")) for f in param.find("GRP[@ID='GAS0_1']")}
    assert header["ACCDAT"] == ("20260305", "Date") and header["REFINT"] == (REFERENCE, "Char")
    lines = param.find("TAB[@ID='GAS1_1']")
    assert lines.get("SIZE") == "3"
    rows = [{f.get("NAME"): f.text for f in lin} for lin in lines]
    # amounts at the currency's precision, never the stored four decimals; text escaped, not broken
    assert [(r["ACC"], r["DEB"], r["CDT"]) for r in rows] == [
        ("411000", "34.96", "0.00"),
        ("707000", "0.00", "28.00"),
        ("445710", "0.00", "6.96"),
    ]
    assert rows[2]["DES"] == "VAT <20%> & co"
    assert [lin.get("NUM") for lin in lines] == ["1", "2", "3"]
    # the call is recorded without the credentials
    [record] = client.call_log
    assert record.extra["soap_operation"] == "save" and record.extra["messages"] == ["info: created"]
    assert PASSWORD not in record.request_body + record.response_body and BASIC[6:] not in record.request_body


@pytest.mark.parametrize(("currency", "amount"), [("JPY", "3496"), ("KWD", "34.960")])
def test_amounts_follow_the_currency_precision(
    x3: responses.RequestsMock, currency: str, amount: str
) -> None:
    entry = make_entry(currency)
    if currency == "JPY":
        entry = Entry(
            **{
                **entry.__dict__,
                "lines": (
                    EntryLine("411000", Decimal("3496.0000"), Decimal(0)),
                    EntryLine("707000", Decimal(0), Decimal("3496.0000")),
                ),
            }
        )
    xml = make_client().build_object_xml(entry)
    first = etree.fromstring(xml.encode()).find("TAB/LIN/FLD[@NAME='DEB']")
    assert first.text == amount


def test_a_customer_mapping_places_fields_by_group_and_uses_sign_and_amount() -> None:
    client = make_client(
        public_name="ZGAS",
        mapping={
            "header_group": "GAS0_2",
            "field_groups": {"REFINT": "GAS0_3"},
            "header_static": {"CAT": 1},
            "lines_group": "GAS1_4",
            "amount_style": "sign_amount",
            "line": {"line_number": "LIN"},
            "line_static": {"LEDTYP": 1},
        },
    )
    param = etree.fromstring(client.build_object_xml(make_entry()).encode())
    assert [g.get("ID") for g in param.findall("GRP")] == ["GAS0_2", "GAS0_3"]
    assert param.find("GRP[@ID='GAS0_3']/FLD").get("NAME") == "REFINT"
    assert param.find("GRP[@ID='GAS0_2']/FLD[@NAME='CAT']").text == "1"
    rows = [{f.get("NAME"): f.text for f in lin} for lin in param.find("TAB[@ID='GAS1_4']")]
    assert [(r["LIN"], r["SNS"], r["AMTCUR"], r["LEDTYP"]) for r in rows] == [
        ("1", "1", "34.96", "1"),
        ("2", "-1", "28.00", "1"),
        ("3", "-1", "6.96", "1"),
    ]


# --- the mapping ----------------------------------------------------------------------------------------------------


def test_the_default_mapping_is_valid_and_mistakes_are_named() -> None:
    assert validate_soap_mapping(effective_soap_mapping({})) == []
    problems = validate_soap_mapping(
        effective_soap_mapping(
            {
                "lines_group": "GAS0_1",
                "amount_style": "both",
                "header": {"reference": None},
                "field_groups": {"XYZ": "GAS0_2"},
                "read_keys": [],
                "colour": "red",
            }
        )
    )
    text = "; ".join(problems)
    for expected in (
        "unknown key(s) colour",
        "must differ",
        "unknown amount_style",
        "'header.reference' is required",
        "places XYZ",
        "'read_keys'",
    ):
        assert expected in text
    assert set(DEFAULT_SOAP_MAPPING) >= {"header_group", "lines_group", "document_number_field"}


def test_an_invalid_mapping_sends_nothing(x3: responses.RequestsMock) -> None:
    client = make_client(mapping={"lines_group": "bad group"})
    with pytest.raises(PermanentError, match="Invalid Sage X3 SOAP field mapping"):
        client.create_entry(make_entry())
    assert len(x3.calls) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"base_url": "x3.example.com"}, "must look like"),
        ({"base_url": "https://u:p@x3.example.com"}, "must not contain a user name"),
        ({"pool_alias": " "}, "pool alias is required"),
        ({"public_name": "ZGAS_TOO_LONG"}, "at most 10 characters"),
        ({"wsdl_url": "file:///etc/passwd"}, "http"),
    ],
)
def test_settings_are_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_client(**overrides)


# --- X3's answers ---------------------------------------------------------------------------------------------------


def test_a_refusal_is_a_permanent_error_with_x3s_text(x3: responses.RequestsMock) -> None:
    x3.post(
        URL,
        body=answer("save", 0, [(2, "Rate date defaulted"), (3, "Account 999999 does not exist")]),
        content_type="text/xml",
    )
    client = make_client()
    with pytest.raises(PermanentError) as refused:
        client.create_entry(make_entry())
    error = refused.value
    assert "Account 999999 does not exist" in error.message and "Rate date" not in error.message
    assert not error.retryable and not error.outcome_unknown
    [record] = client.call_log
    assert record.error == error.message and record.status_code == 200
    assert record.extra["messages"] == [
        "warning: Rate date defaulted",
        "error: Account 999999 does not exist",
    ]


def test_status_one_with_an_error_message_is_a_refusal_that_may_have_saved(
    x3: responses.RequestsMock,
) -> None:
    x3.post(URL, body=answer("save", 1, [(3, "Signature failed")], SAVED), content_type="text/xml")
    client = make_client()
    with pytest.raises(PermanentError, match="Signature failed") as refused:
        client.create_entry(make_entry())
    assert refused.value.outcome_unknown
    assert client.call_log[0].error.startswith("X3 refused save")


def test_a_record_lock_is_retryable(x3: responses.RequestsMock) -> None:
    x3.post(URL, body=answer("save", 0, [(3, "Record locked by user ADMIN")]), content_type="text/xml")
    with pytest.raises(RetryableError, match="locked"):
        make_client().create_entry(make_entry())


def test_success_without_a_document_number_is_an_unknown_outcome(x3: responses.RequestsMock) -> None:
    x3.post(URL, body=answer("save", 1, [], {"GAS0_1": {"TYP": "ODG"}}), content_type="text/xml")
    with pytest.raises(BadResponseError, match="returned no NUM") as missing:
        make_client().create_entry(make_entry())
    assert missing.value.outcome_unknown


@pytest.mark.parametrize(
    ("status", "body", "error", "unknown"),
    [
        (500, fault("No Web services accepted"), RetryableError, True),
        (503, "Service Unavailable", RetryableError, True),
        (401, "", AuthenticationError, False),
        (404, "Not found", PermanentError, False),
        (200, "<html>proxy error</html>", BadResponseError, True),
    ],
)
def test_http_failures_on_save(
    x3: responses.RequestsMock, status: int, body: str, error: type[Exception], unknown: bool
) -> None:
    x3.post(URL, body=body, status=status, content_type="text/xml")
    with pytest.raises(error) as failed:
        make_client().create_entry(make_entry())
    assert type(failed.value) is error and failed.value.outcome_unknown is unknown
    if status == 500:
        assert "No Web services accepted" in failed.value.message


def test_a_timeout_after_sending_save_is_an_unknown_outcome(x3: responses.RequestsMock) -> None:
    x3.post(URL, body=requests.exceptions.ReadTimeout("read timed out"))
    client = make_client()
    with pytest.raises(RetryableError, match="read timeout") as timed_out:
        client.create_entry(make_entry())
    assert timed_out.value.outcome_unknown
    assert client.call_log[0].error and client.call_log[0].status_code is None


def test_a_refused_connection_is_retryable_and_known(x3: responses.RequestsMock) -> None:
    x3.post(URL, body=requests.exceptions.ConnectionError("Connection refused"))
    with pytest.raises(RetryableError) as refused:
        make_client().create_entry(make_entry())
    assert not refused.value.outcome_unknown


def test_a_5xx_on_a_lookup_is_retryable_but_known(x3: responses.RequestsMock) -> None:
    x3.post(URL, body=fault("boom"), status=500, content_type="text/xml")
    with pytest.raises(RetryableError) as failed:
        make_client().find_entry(REFERENCE)
    assert not failed.value.outcome_unknown


# --- find by reference ----------------------------------------------------------------------------------------------


def test_find_entry_queries_by_reference(x3: responses.RequestsMock) -> None:
    x3.post(
        URL,
        body=answer("query", 1, [], [{"TYP": "ODG", "NUM": "ODG2603000042", "REFINT": REFERENCE}]),
        content_type="text/xml",
    )
    found = make_client().find_entry(REFERENCE)
    assert found is not None and found.document_number == "ODG2603000042"
    operation, call = sent(x3.calls[0])
    assert operation == "query" and call.findtext("listSize") == "10"
    keys = [(kv.findtext("key"), kv.findtext("value")) for kv in call.find("objectKeys")]
    assert keys == [("REFINT", REFERENCE)]


def test_find_entry_without_hits_is_none(x3: responses.RequestsMock) -> None:
    x3.post(URL, body=answer("query", 1, [], []), content_type="text/xml")
    assert make_client().find_entry(REFERENCE) is None


def test_find_entry_confirms_with_read_when_the_query_list_hides_the_reference(
    x3: responses.RequestsMock,
) -> None:
    x3.post(URL, body=answer("query", 1, [], [{"TYP": "ODG", "NUM": "ODG1"}]), content_type="text/xml")
    x3.post(
        URL, body=answer("read", 1, [], SAVED | {"GAS0_1": {"REFINT": "BC-OTHER-1"}}), content_type="text/xml"
    )
    with pytest.raises(PermanentError, match="filter was not applied"):
        make_client().find_entry(REFERENCE)
    operation, call = sent(x3.calls[1])
    assert operation == "read"
    assert [(kv.findtext("key"), kv.findtext("value")) for kv in call.find("objectKeys")] == [
        ("TYP", "ODG"),
        ("NUM", "ODG1"),
    ]


def test_find_entry_rows_without_a_document_number_are_an_error(x3: responses.RequestsMock) -> None:
    x3.post(URL, body=answer("query", 1, [], [{"REFINT": REFERENCE}]), content_type="text/xml")
    with pytest.raises(BadResponseError, match="add NUM to the query list"):
        make_client().find_entry(REFERENCE)


# --- result and description formats ---------------------------------------------------------------------------------


def test_result_rows_read_json_and_xml() -> None:
    assert parse_result_rows('[{"NUM": "A"}, {"NUM": "B"}]') == [{"NUM": "A"}, {"NUM": "B"}]
    assert parse_result_rows('{"RESULT": [{"NUM": "A"}]}') == [{"NUM": "A"}]
    assert (
        parse_result_rows('{"G1": {"NUM": "A"}, "G2": {"REFINT": "R"}, "T": [{"ACC": "1"}]}')[0]["REFINT"]
        == "R"
    )
    xml_query = '<RESULT><TAB><LIN NUM="1"><FLD NAME="NUM">A</FLD></LIN><LIN NUM="2"><FLD NAME="NUM">B</FLD></LIN></TAB></RESULT>'
    assert parse_result_rows(xml_query) == [{"NUM": "A"}, {"NUM": "B"}]
    xml_object = '<RESULT><GRP ID="GAS0_1"><FLD NAME="NUM">A</FLD></GRP><TAB ID="GAS1_1"><LIN NUM="1"><FLD NAME="ACC">4</FLD></LIN></TAB></RESULT>'
    assert parse_result_rows(xml_object) == [{"NUM": "A"}]
    with pytest.raises(ValueError):
        parse_result_rows("not json or xml <")


def test_an_entity_in_an_answer_is_not_expanded() -> None:
    hostile = '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><RESULT><GRP ID="A"><FLD NAME="NUM">&x;</FLD></GRP></RESULT>'
    rows = parse_result_rows(hostile)
    assert "root:" not in json.dumps(rows)


def test_description_fields_and_groups() -> None:
    xml = (
        '<ADXDESC><GRP ID="GAS0_1"><FLD NAME="TYP"/><FLD NAME="REFINT"/></GRP>'
        '<TAB ID="GAS1_1"><FLD NAME="ACC"/></TAB></ADXDESC>'
    )
    fields = parse_description(xml)
    assert (fields["REFINT"].group, fields["REFINT"].in_table) == ("GAS0_1", False)
    assert (fields["ACC"].group, fields["ACC"].in_table) == ("GAS1_1", True)
    as_json = json.dumps(
        {"GRP": [{"ID": "G", "FLD": [{"NAME": "TYP"}]}], "TAB": [{"ID": "T", "FLD": [{"NAME": "ACC"}]}]}
    )
    parsed = parse_description(as_json)
    assert parsed["TYP"].group == "G" and parsed["ACC"].in_table


def test_test_connection_reports_a_missing_publication_in_x3s_words(x3: responses.RequestsMock) -> None:
    x3.post(
        URL,
        body=answer("getDescription", 0, [(3, "Web service ZGAS is not published")]),
        content_type="text/xml",
    )
    steps = make_client(public_name="ZGAS").connection_steps()
    assert [s.ok for s in steps] == [True, True, False]
    assert "ZGAS is not published" in steps[-1].detail


# --- the WSDL -------------------------------------------------------------------------------------------------------


def test_a_wsdl_url_is_loaded_once_with_the_connection_credentials(x3: responses.RequestsMock) -> None:
    wsdl_url = f"{BASE}/soap-wsdl/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC?wsdl&t=once"
    x3.get(wsdl_url, body=BUNDLED_WSDL.read_bytes(), content_type="text/xml")
    x3.post(URL, body=answer("query", 1, [], []), content_type="text/xml")
    x3.post(URL, body=answer("query", 1, [], []), content_type="text/xml")
    client = make_client(wsdl_url=wsdl_url)
    assert client.find_entry(REFERENCE) is None
    assert make_client(wsdl_url=wsdl_url).find_entry(REFERENCE) is None  # a second client: no second download
    wsdl_calls = [c for c in x3.calls if c.request.method == "GET"]
    assert len(wsdl_calls) == 1 and wsdl_calls[0].request.headers["Authorization"] == BASIC


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ({"status": 401, "body": "no"}, AuthenticationError),
        ({"status": 503, "body": "busy"}, RetryableError),
        ({"body": requests.exceptions.ConnectTimeout("slow")}, RetryableError),
        ({"body": "<html>not a wsdl</html>", "content_type": "text/html"}, PermanentError),
    ],
)
def test_a_wsdl_that_cannot_be_loaded_sends_nothing(
    x3: responses.RequestsMock, reply: dict[str, Any], error: type[Exception]
) -> None:
    wsdl_url = f"{BASE}/wsdl?case={error.__name__}-{reply.get('status')}-{type(reply['body']).__name__}"
    x3.get(wsdl_url, **reply)
    with pytest.raises(error) as failed:
        make_client(wsdl_url=wsdl_url).create_entry(make_entry())
    assert type(failed.value) is error
    assert [c.request.method for c in x3.calls] == ["GET"]
    x3.get(wsdl_url, **reply)
    [step] = make_client(wsdl_url=wsdl_url).connection_steps()
    assert (step.name, step.ok) == ("WSDL loaded", False) and "WSDL" in step.detail
