"""The SOAP side of the Sage X3 simulator: Syracuse's classic web service ``CAdxWebServiceXmlCC``.

Mounted by :class:`simulators.sagex3.SageX3Sim` on the same server, over the same entries, rules (balanced, known
accounts, open period, duplicate reference when configured), sequences, faults and inspection as api1 and GraphQL:

* ``GET /soap-wsdl/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC?wsdl``: the WSDL (RPC/encoded, namespace
  ``http://www.adonix.com/WSS``), the same file the connector ships, with this server as the service address;
* ``POST /soap-generic/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC`` with HTTP Basic: ``save``,
  ``query``, ``read`` and ``getDescription``. The call context's ``poolAlias`` picks the folder
  (config ``soap.pools``: alias -> folder) and ``publicName`` a publication (config ``soap.publications``).

Answers: HTTP 200 with ``CAdxResultXml`` (``status`` 1 success / 0 failure, ``messages`` of ``type`` 1/2/3 and
``message``, ``resultXml`` as JSON). SOAP faults come with HTTP 500 (``soap.children`` 0 gives Syracuse's
"No Web services accepted"). For the fault settings ``save`` counts as ``POST`` and every other operation as ``GET``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from lxml import etree

from ._http import Request, Response, apply_post_commit_faults, apply_pre_faults

if TYPE_CHECKING:
    from .sagex3 import SageX3Sim

SOAP_PATH = "/soap-generic/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC"
WSDL_PATH = "/soap-wsdl/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC"
WSS = "http://www.adonix.com/WSS"
XML_TYPE = "text/xml; charset=utf-8"
# The connector's own copy: the simulator serves what a Syracuse server is expected to publish.
WSDL_FILE = (
    Path(__file__).resolve().parent.parent / "integrations" / "sagex3" / "wsdl" / "CAdxWebServiceXmlCC.wsdl"
)

DEFAULT_SOAP: dict[str, Any] = {
    "pools": None,  # alias -> folder; None: every folder is also a pool alias of the same name
    "children": 1,  # Syracuse's "Number of Web services children"; 0: HTTP 500 "No Web services accepted"
    "publications": {
        "GAS": {
            "header_group": "GAS0_1",
            "lines_group": "GAS1_1",
            "field_groups": {},  # header field -> group, for fields outside header_group
            "query_fields": ["TYP", "NUM", "REFINT", "ACCDAT", "JOU", "FCY"],  # the query list
            "criteria": ["TYP", "NUM", "REFINT", "JOU", "FCY"],  # filters honoured; any other key is ignored
            "keys": ["TYP", "NUM"],
            "extra_fields": ["NUM", "CPY", "CAT"],  # published header fields besides the mapped ones
        }
    },
}


def merge_soap(base: dict[str, Any], changes: Any) -> dict[str, Any]:
    if not isinstance(changes, dict):
        raise ValueError("soap must be an object")
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if key not in DEFAULT_SOAP:
            raise ValueError(f"unknown soap config key {key!r}")
        if key == "publications":
            publications = merged["publications"]
            for name, publication in (value or {}).items():
                if publication is None:
                    publications.pop(name, None)
                else:
                    default = publications.get(name) or DEFAULT_SOAP["publications"]["GAS"]
                    publications[name] = {**copy.deepcopy(default), **copy.deepcopy(publication)}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ----------------------------------------------------------------------------------------------------- envelopes


def _envelope(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:wss="{WSS}" xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"
    ).encode()


def result(operation: str, status: int, messages: list[tuple[int, str]], result_xml: str = "") -> Response:
    items = "".join(
        f"<messages><message>{escape(text)}</message><type>{kind}</type></messages>"
        for kind, text in messages
    )
    body = (
        f"<wss:{operation}Response><{operation}Return>"
        f'<messages soapenc:arrayType="wss:CAdxMessage[{len(messages)}]">{items}</messages>'
        f"<resultXml>{escape(result_xml)}</resultXml><status>{status}</status>"
        f'<technicalInfos xsi:nil="true"/></{operation}Return></wss:{operation}Response>'
    )
    return Response(200, _envelope(body), content_type=XML_TYPE)


def fault(status: int, message: str) -> Response:
    body = f"<soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>{escape(message)}</faultstring></soapenv:Fault>"
    return Response(status, _envelope(body), content_type=XML_TYPE)


def injected_error(status: int) -> Response:
    return fault(status, f"Simulated server error {status}")


# ---------------------------------------------------------------------------------------------------- handlers


def wsdl(sim: SageX3Sim, req: Request) -> Response:
    text = WSDL_FILE.read_text(encoding="utf-8")
    text = text.replace("http://localhost:8124" + SOAP_PATH, sim._base(req) + SOAP_PATH)
    return Response(200, text.encode(), content_type=XML_TYPE)


@dataclasses.dataclass
class Call:
    operation: str
    context: dict[str, str]
    params: dict[str, Any]


def _parse_call(body: bytes) -> Call | str:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError as exc:
        return f"Invalid XML: {exc}"
    soap_body = next((c for c in root if etree.QName(c).localname == "Body"), None)
    if soap_body is None or not len(soap_body):
        return "No SOAP body"
    call = soap_body[0]
    operation = etree.QName(call).localname
    context: dict[str, str] = {}
    params: dict[str, Any] = {}
    for part in call:
        name = etree.QName(part).localname
        if name == "callContext":
            context = {etree.QName(c).localname: (c.text or "") for c in part}
        elif name == "objectKeys":
            keys = []
            for item in part.iter():
                fields = {etree.QName(c).localname: (c.text or "") for c in item}
                if "key" in fields:
                    keys.append((fields["key"], fields.get("value", "")))
            params[name] = keys
        else:
            params[name] = part.text or ""
    return Call(operation, context, params)


def handle(sim: SageX3Sim, req: Request) -> Response:
    """``POST`` to the SOAP endpoint: authenticate, read the operation, inject faults, answer."""
    sim._authenticate(req)
    call = _parse_call(req.body or b"")
    if isinstance(call, str):
        return fault(500, call)
    with sim.lock:
        stats = sim.stats["soap"]
        stats["requests"] += 1
        stats[call.operation] = stats.get(call.operation, 0) + 1
        soap = sim.config["soap"]
    as_method = dataclasses.replace(req, method="POST" if call.operation == "save" else "GET")
    injected = apply_pre_faults(as_method, sim.faults, injected_error)
    if injected is not None:
        return injected
    if int(soap["children"] or 0) <= 0:
        return fault(500, "No Web services accepted")
    handler = OPERATIONS.get(call.operation)
    if handler is None:
        return fault(500, f"Operation {call.operation} is not supported")
    alias = call.context.get("poolAlias") or ""
    pools = soap["pools"] or {f: f for f in sim.config["folders"]}
    folder = pools.get(alias)
    if folder is None or folder not in sim.config["folders"]:
        return result(call.operation, 0, [(3, f"Pool {alias or '(none)'} does not exist or is not started")])
    public_name = call.params.get("publicName") or ""
    if public_name == sim.config["account_class"] and call.operation == "query":
        return query_accounts(sim, call)
    publication = soap["publications"].get(public_name)
    if publication is None:
        return result(call.operation, 0, [(3, f"Web service {public_name or '(none)'} is not published")])
    return handler(sim, as_method, call, folder, public_name, publication)


def _publication_groups(sim: SageX3Sim, publication: dict[str, Any]) -> tuple[dict[str, str], set[str]]:
    """(header field -> group, line fields) as this publication lays them out."""
    fields = sim.config["fields"]
    header_names = [n for n in fields["header"].values() if n] + list(publication["extra_fields"])
    groups = {n: publication["field_groups"].get(n, publication["header_group"]) for n in header_names}
    return groups, {n for n in fields["line"].values() if n}


def save(
    sim: SageX3Sim, req: Request, call: Call, folder: str, public_name: str, pub: dict[str, Any]
) -> Response:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        param = etree.fromstring((call.params.get("objectXml") or "").encode("utf-8"), parser=parser)
    except etree.XMLSyntaxError as exc:
        return result("save", 0, [(3, f"objectXml: invalid XML: {exc}")])
    header_groups, line_fields = _publication_groups(sim, pub)
    lines_key = sim.config["fields"]["lines_key"]
    body: dict[str, Any] = {}
    problems: list[str] = []
    for grp in param.iter("GRP"):
        group_id = grp.get("ID") or ""
        for fld in grp.iter("FLD"):
            name = fld.get("NAME") or ""
            if header_groups.get(name) != group_id:
                problems.append(f"Field {name} does not exist in group {group_id}")
                continue
            body[name] = fld.text or ""
    lines: list[dict[str, Any]] = []
    for tab in param.iter("TAB"):
        if tab.get("ID") != pub["lines_group"]:
            problems.append(f"Table {tab.get('ID')} does not exist")
            continue
        for lin in tab.iter("LIN"):
            row: dict[str, Any] = {}
            for fld in lin.iter("FLD"):
                name = fld.get("NAME") or ""
                if name not in line_fields:
                    problems.append(f"Field {name} does not exist in table {tab.get('ID')}")
                    continue
                row[name] = fld.text or ""
            for lst in lin.iter("LST"):  # a dimensioned field: <LST NAME="CCE"><ITM>WEB</ITM>…</LST>
                name = lst.get("NAME") or ""
                if name not in line_fields:
                    problems.append(f"Field {name} does not exist in table {tab.get('ID')}")
                    continue
                row[name] = [itm.text or "" for itm in lst.iter("ITM")]
            lines.append(row)
    body[lines_key] = lines
    with sim.lock:
        errors, normalized = ([], []) if problems else sim._validate(body)
        errors = problems + errors
        if errors:
            sim.stats["rejected"] += 1
            sim.stats["soap"]["rejected"] += 1
            return result("save", 0, [(3, e) for e in errors])
        entry = sim._store(folder, sim.config["class"], body, normalized, api="soap")
        sim.stats["created"] += 1
        sim.stats["soap"]["created"] += 1
        answer = _grouped(sim, entry, pub)
    injected = apply_post_commit_faults(req, sim.faults, injected_error)
    if injected is not None:
        return injected
    num = entry[sim.config["fields"]["document_number"]]
    return result("save", 1, [(1, f"Journal entry {num} created")], json.dumps(answer))


def query(
    sim: SageX3Sim, req: Request, call: Call, folder: str, public_name: str, pub: dict[str, Any]
) -> Response:
    filters = [(k, v) for k, v in call.params.get("objectKeys", []) if k in pub["criteria"]]
    try:
        size = int(call.params.get("listSize") or 20)
    except ValueError:
        size = 20
    with sim.lock:
        rows = [
            e
            for e in sim.entries
            if e["_folder"] == folder
            and e["_class"] == sim.config["class"]
            and all(str(e.get(k, "")) == v for k, v in filters)
        ][:size]
        records = [{f: _plain(e.get(f)) for f in pub["query_fields"] if f in e} for e in rows]
    return result("query", 1, [], json.dumps(records))


def query_accounts(sim: SageX3Sim, call: Call) -> Response:
    """``query`` on the account publication: the chart (criteria on ACC honoured), at most ``listSize`` rows."""
    filters = [(k, v) for k, v in call.params.get("objectKeys", []) if k == "ACC"]
    try:
        size = int(call.params.get("listSize") or 20)
    except ValueError:
        size = 20
    with sim.lock:
        rows = [r for r in sim.account_records() if all(r[k] == v for k, v in filters)][:size]
    return result("query", 1, [], json.dumps(rows))


def read(
    sim: SageX3Sim, req: Request, call: Call, folder: str, public_name: str, pub: dict[str, Any]
) -> Response:
    keys = dict(call.params.get("objectKeys", []))
    if not keys or set(keys) - set(pub["keys"]):
        return result("read", 0, [(3, f"Key fields of {public_name} are {', '.join(pub['keys'])}")])
    with sim.lock:
        for entry in sim.entries:
            if entry["_folder"] == folder and all(str(entry.get(k, "")) == v for k, v in keys.items()):
                return result("read", 1, [], json.dumps(_grouped(sim, entry, pub)))
    shown = "~".join(keys.values())
    return result("read", 0, [(3, f"Record {shown} does not exist")])


def get_description(
    sim: SageX3Sim, req: Request, call: Call, folder: str, public_name: str, pub: dict[str, Any]
) -> Response:
    header_groups, line_fields = _publication_groups(sim, pub)
    by_group: dict[str, list[str]] = {}
    for name, group in header_groups.items():
        by_group.setdefault(group, []).append(name)
    parts = [f'<ADXDESC><ADXPUB NAME="{escape(public_name)}" TYPE="OBJECT" OBJECT="GAS"/>']
    for group, names in by_group.items():
        parts.append(f'<GRP ID="{escape(group)}">')
        parts.extend(f'<FLD NAME="{escape(n)}" TYPE="Char"/>' for n in names)
        parts.append("</GRP>")
    parts.append(f'<TAB ID="{escape(pub["lines_group"])}" DIM="9999">')
    parts.extend(f'<FLD NAME="{escape(n)}" TYPE="Char"/>' for n in sorted(line_fields))
    parts.append("</TAB></ADXDESC>")
    return result("getDescription", 1, [], "".join(parts))


OPERATIONS = {"save": save, "query": query, "read": read, "getDescription": get_description}


def _grouped(sim: SageX3Sim, entry: dict[str, Any], pub: dict[str, Any]) -> dict[str, Any]:
    """An entry as the JSON resultXml of save/read: header groups, then the lines table."""
    fields = sim.config["fields"]
    lines_key = fields["lines_key"]
    out: dict[str, Any] = {}
    header_groups, _ = _publication_groups(sim, pub)
    for name, value in entry.items():
        if name.startswith(("_", "$")) or name == lines_key:
            continue
        group = header_groups.get(name, pub["header_group"])
        out.setdefault(group, {})[name] = _plain(value)
    out[pub["lines_group"]] = [
        {k: (v if isinstance(v, list) else _plain(v)) for k, v in line.items() if not k.startswith("$")}
        for line in entry.get(lines_key, [])
    ]
    return out


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
