"""One entry with a company, a site and analytical dimensions goes out the same through api1, GraphQL and SOAP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import responses
from lxml import etree

from integrations.sagex3.graphql import GraphQLConfig, SageX3GraphQLClient
from integrations.sagex3.graphql_mapping import effective_graphql_mapping, validate_graphql_mapping
from integrations.sagex3.rest import RestConfig, SageX3RestClient, effective_mapping, validate_mapping
from integrations.sagex3.soap import SOAP_PATH, SageX3SoapClient, SoapConfig
from integrations.sagex3.types import Entry, EntryLine
from tests.integrations.test_sagex3_soap import answer as soap_answer

BASE = "https://x3.example.com:8124"
REFERENCE = "BC-abc123-250"


def entry(company: str = "FR10") -> Entry:
    return Entry(
        reference=REFERENCE,
        accounting_date=date(2026, 3, 5),
        currency="USD",
        description="BigCommerce order 250",
        entry_type="VTE",
        journal="WEB",
        site="FR012",
        company=company,
        lines=(
            EntryLine("412000", Decimal("97.20"), Decimal(0), "receivable", (("BRA", "2"),)),
            EntryLine("702000", Decimal(0), Decimal("90.00"), "revenue", (("CCT", "WEB"), ("BRA", "2"))),
            EntryLine("442570", Decimal(0), Decimal("7.20"), "tax"),
        ),
        source_document="250",
    )


EXPECTED_LINES = [
    ("412000", {"BRA": "2"}),
    ("702000", {"CCT": "WEB", "BRA": "2"}),
    ("442570", {}),
]


class Tokens:
    description = "test tokens"

    def token(self, *, log=None) -> str:
        return "access-token"

    def renew(self, rejected: str, *, log=None) -> str:  # pragma: no cover - never asked here
        raise AssertionError("no renewal expected")


@pytest.fixture
def x3() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_api1_graphql_and_soap_send_the_same_organisation_and_dimensions(x3: responses.RequestsMock) -> None:
    # given the three clients on their default mappings, each answering a create
    x3.post(f"{BASE}/api1/x3/erp/SEED/GACCENTRY", json={"NUM": "VTE-1"}, status=201)
    x3.post(
        f"{BASE}/xtrem/api",
        json={"data": {"x3Finance": {"journalEntry": {"create": {"journalEntryNumber": "VTE-2"}}}}},
    )
    saved = {"GAS0_1": {"TYP": "VTE", "NUM": "VTE-3", "REFINT": REFERENCE}, "GAS1_1": []}
    x3.post(BASE + SOAP_PATH, body=soap_answer("save", 1, [(1, "created")], saved), content_type="text/xml")
    rest = SageX3RestClient(RestConfig(base_url=BASE, folder="SEED", username="U", password="p4ssw0rd-x"))
    graphql = SageX3GraphQLClient(
        GraphQLConfig(url=f"{BASE}/xtrem/api", endpoint="SEED", mapping={}), Tokens()
    )
    soap = SageX3SoapClient(SoapConfig(base_url=BASE, pool_alias="SEED", username="U", password="p4ssw0rd-x"))

    # when the same entry is created through each
    for client in (rest, graphql, soap):
        client.create_entry(entry())

    # then every body carries the company, the site, the entry type, the journal and each line's dimensions
    api1 = json.loads(x3.calls[0].request.body)
    assert (api1["CPY"], api1["FCY"], api1["TYP"], api1["JOU"]) == ("FR10", "FR012", "VTE", "WEB")
    assert [
        (r["ACC"], dict(zip(r.get("DIE", []), r.get("CCE", []), strict=True))) for r in api1["GACCENTRYD"]
    ] == (EXPECTED_LINES)
    assert api1["GACCENTRYD"][1]["DIE"] == ["CCT", "BRA"] and api1["GACCENTRYD"][1]["CCE"] == ["WEB", "2"]

    data = json.loads(x3.calls[1].request.body)["variables"]["data"]
    assert (data["company"], data["site"], data["journalEntryType"], data["journal"]) == (
        "FR10",
        "FR012",
        "VTE",
        "WEB",
    )
    assert [
        (r["account"], {d["dimensionType"]: d["dimension"] for d in r["dimensions"]})
        for r in data["journalEntryLines"]
    ] == EXPECTED_LINES

    body = etree.fromstring(x3.calls[2].request.body)
    param = etree.fromstring(body.find(".//objectXml").text.encode())
    header = {f.get("NAME"): f.text for f in param.find("GRP[@ID='GAS0_1']")}
    assert (header["CPY"], header["FCY"], header["TYP"], header["JOU"]) == ("FR10", "FR012", "VTE", "WEB")
    soap_lines = []
    for lin in param.find("TAB[@ID='GAS1_1']"):
        lists = {lst.get("NAME"): [i.text for i in lst] for lst in lin.findall("LST")}
        soap_lines.append(
            (
                lin.find("FLD[@NAME='ACC']").text,
                dict(zip(lists.get("DIE", []), lists.get("CCE", []), strict=True)),
            )
        )
    assert soap_lines == EXPECTED_LINES
    lst = param.find("TAB/LIN[@NUM='2']/LST[@NAME='CCE']")
    assert lst.get("SIZE") == "2" and lst.get("TYPE") == "Char"


def test_no_company_sends_none_and_a_static_company_fills_in() -> None:
    # given an entry without a company
    plain = entry(company="")
    rest = SageX3RestClient(RestConfig(base_url=BASE, folder="SEED", username="U", password="p4ssw0rd-x"))
    soap = SageX3SoapClient(SoapConfig(base_url=BASE, pool_alias="SEED", username="U", password="p4ssw0rd-x"))
    graphql = SageX3GraphQLClient(
        GraphQLConfig(url=f"{BASE}/xtrem/api", endpoint="SEED", mapping={}), Tokens()
    )

    # then no CPY goes out (X3 derives the company from the site); GraphQL sends null
    assert "CPY" not in rest.build_payload(plain)
    assert 'NAME="CPY"' not in soap.build_object_xml(plain)
    assert graphql.build_variables(plain)["data"]["company"] is None

    # and a tenant-wide CPY in header_static fills it, unless the channel names one
    static = {"header_static": {"CPY": "FR99"}}
    assert validate_mapping(effective_mapping(static)) == []
    static_rest = SageX3RestClient(
        RestConfig(base_url=BASE, folder="SEED", username="U", password="p4ssw0rd-x", mapping=static)
    )
    assert static_rest.build_payload(plain)["CPY"] == "FR99"
    assert static_rest.build_payload(entry())["CPY"] == "FR10"
    static_soap = SageX3SoapClient(
        SoapConfig(base_url=BASE, pool_alias="SEED", username="U", password="p4ssw0rd-x", mapping=static)
    )
    assert static_soap.build_object_xml(entry()).count('NAME="CPY"') == 1


def test_dimension_fields_are_configurable_and_can_be_left_out() -> None:
    rest = SageX3RestClient(
        RestConfig(
            base_url=BASE,
            folder="SEED",
            username="U",
            password="p4ssw0rd-x",
            mapping={"line": {"dimension_type": "DIE_0", "dimension_value": None}},
        )
    )
    rows = rest.build_payload(entry())["GACCENTRYD"]
    assert all("DIE_0" not in r and "CCE" not in r for r in rows)  # both fields are needed to send dimensions
    renamed = SageX3RestClient(
        RestConfig(
            base_url=BASE,
            folder="SEED",
            username="U",
            password="p4ssw0rd-x",
            mapping={"line": {"dimension_type": "YDIE", "dimension_value": "YCCE"}},
        )
    )
    assert renamed.build_payload(entry())["GACCENTRYD"][1]["YCCE"] == ["WEB", "2"]
    keys: dict[str, Any] = {"dimension_keys": {"type": "axis", "value": "code"}}
    assert validate_graphql_mapping(effective_graphql_mapping(keys)) == []
    graphql = SageX3GraphQLClient(
        GraphQLConfig(url=f"{BASE}/xtrem/api", endpoint="SEED", mapping=keys), Tokens()
    )
    line = graphql.build_variables(entry())["data"]["journalEntryLines"][1]
    assert line["dimensions"] == [{"axis": "CCT", "code": "WEB"}, {"axis": "BRA", "code": "2"}]
    bad = validate_graphql_mapping(effective_graphql_mapping({"dimension_keys": {"type": "x", "value": "x"}}))
    assert bad and "dimension_keys" in bad[0]
