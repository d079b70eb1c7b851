"""Sage X3 classic SOAP web services (``CAdxWebServiceXmlCC``): create a GL journal entry with ``save`` on a
published object (GAS by default), find one by our reference with ``query`` (confirmed with ``read``), and check the
publication with ``getDescription``. Facts, and what is confirmed by Sage, are in docs/x3-soap.md.

Division of labour:

* ``zeep`` reads the WSDL (shipped in ``wsdl/``; a customer's own WSDL URL can replace it) and builds each request
  envelope from it, so the call context, keys and arrays are exactly what the WSDL declares.
* Our own transport (:func:`integrations.http.send`) sends it: one timeout on every call, Basic auth, the shared
  mapping of connection failures onto the error hierarchy, a :class:`CallRecord` per call.
* The answer is read by element *local names* (``status``, ``messages``/``message``/``type``, ``resultXml``),
  which accepts both the SOAP-encoded array form and plain repeated elements: how Syracuse encodes the
  ``messages`` array is NOT CONFIRMED.

X3's answer: ``status`` 1 is success; ``messages`` carry ``type`` 1 (information), 2 (warning) or 3 (error). A
status other than 1, or any error message, is a refusal: a :class:`PermanentError` with X3's own text. HTTP
failures: 401/403 authentication, 429 rate limit, 5xx retryable (SOAP faults such as "No Web services accepted"
arrive as HTTP 500); on ``save`` a 5xx, a timeout or a reset leaves the outcome unknown, and the posting service
then looks the entry up by reference with :meth:`SageX3SoapClient.find_entry` before anything is re-sent.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import xml.etree.ElementTree as ET  # noqa: S405 - building XML only; parsing goes through the hardened lxml parser
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from lxml import etree
from requests.auth import HTTPBasicAuth

from integrations.currency import amount_at_precision
from integrations.errors import (
    AuthenticationError,
    BadResponseError,
    IntegrationError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from integrations.http import CallRecord, Exchange, Transport, new_session, retry_after, snippet

from .accounts import Account, accounts_from_records, chart_query_problems, effective_chart_query
from .calls import FIND_PAGE_SIZE, RecordsCalls
from .rest import (
    AMOUNT_STYLES,
    HEADER_FIELDS,
    LINE_FIELDS,
    OPTIONAL_HEADER_FIELDS,
    check_base_url,
    check_field_map,
    check_static,
    date_format_works,
    dimension_fields,
    merge_mapping,
    optional_names,
)
from .types import Entry, EntryLine, PostedEntry

WSS_NS = "http://www.adonix.com/WSS"
SOAPENC_NS = "http://schemas.xmlsoap.org/soap/encoding/"
WSDL_DIR = Path(__file__).with_name("wsdl")
BUNDLED_WSDL = WSDL_DIR / "CAdxWebServiceXmlCC.wsdl"
# Syracuse's SOAP endpoint (V7+; the V6 path /adxwsvc/services/... "still validates but calls silently fail").
SOAP_PATH = "/soap-generic/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC"
WSDL_PATH = "/soap-wsdl/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC?wsdl"
RESPONSE_LOG_LIMIT = 10_000
DEFAULT_REQUEST_CONFIG = "adxwss.optreturn=JSON&adxwss.beautify=false"

MESSAGE_INFO, MESSAGE_WARNING, MESSAGE_ERROR = "1", "2", "3"
# X3 texts that mean "try again later", not "this entry is wrong" (record locks; French and English folders).
_TRANSIENT_MESSAGE = re.compile(r"\block(ed)?\b|verrouill|en cours d'utilisation", re.IGNORECASE)
_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_PUBLIC_NAME_RE = re.compile(
    r"^[A-Za-z][A-Za-z0-9_]{0,9}$"
)  # GESAWE publication codes: at most 10 characters

# The default object-XML mapping for a GAS publication. The logical field names are the api1 mapping's; the X3 field
# names follow GACCENTRY/GACCENTRYD. The group IDs (screen_block) depend on the entry transaction the publication
# was made with and are NOT CONFIRMED: "Test connection" reads the publication (getDescription) and says which
# group each mapped field is really in.
DEFAULT_SOAP_MAPPING: dict[str, Any] = {
    "header_group": "GAS0_1",
    "field_groups": {},  # X3 header field -> group ID, for header fields outside header_group
    "header": {
        "entry_type": "TYP",
        "journal": "JOU",
        "site": "FCY",
        "accounting_date": "ACCDAT",
        "currency": "CUR",
        "description": "DESVCR",
        "reference": "REFINT",
        "source_document": "BPRVCR",
        "company": "CPY",  # sent only when the channel mapping names a company
    },
    "header_static": {},
    "lines_group": "GAS1_1",  # the TAB holding the lines
    "line": {
        "line_number": None,  # <LIN NUM="n"> always numbers the lines; map a field here to send it as well
        "account": "ACC",
        "description": "DES",
        "debit": "DEB",
        "credit": "CDT",
        "sign": "SNS",
        "amount": "AMTCUR",
        # Analytical dimensions, each an X3 list (<LST NAME="DIE"><ITM>CCT</ITM>…</LST>) in the line: NOT CONFIRMED
        # names (GACCENTRYA's DIE/CCE); check them against getDescription. null leaves dimensions out.
        "dimension_type": "DIE",
        "dimension_value": "CCE",
    },
    "line_static": {},
    "amount_style": "debit_credit",
    "date_format": "%Y%m%d",  # X3 SOAP dates are YYYYMMDD
    "document_number_field": "NUM",
    # The object's key fields for ``read``, taken from the query row (GAS: TYP + NUM, key HAE0).
    "read_keys": ["TYP", "NUM"],
}


class SoapMappingError(PermanentError):
    """The tenant's SOAP field mapping is invalid; nothing was sent to X3."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid Sage X3 SOAP field mapping: " + "; ".join(problems))
        self.problems = problems


# --- mapping ------------------------------------------------------------------------------------------------------


def effective_soap_mapping(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``DEFAULT_SOAP_MAPPING`` with the tenant's overrides, dicts merged one level deep (as for api1)."""
    return merge_mapping(DEFAULT_SOAP_MAPPING, overrides)


def validate_soap_mapping(mapping: Mapping[str, Any]) -> list[str]:
    """Human-readable problems with a (full, effective) SOAP mapping; empty means usable."""
    if not isinstance(mapping, Mapping):
        return ["the mapping must be a JSON object"]
    problems: list[str] = []
    unknown = sorted(str(k) for k in mapping if k not in DEFAULT_SOAP_MAPPING)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(DEFAULT_SOAP_MAPPING)})")
    for key in ("header_group", "lines_group", "document_number_field"):
        value = mapping.get(key)
        if not isinstance(value, str) or not _ID_RE.match(value):
            problems.append(f"'{key}' must be an X3 identifier such as GAS0_1 or NUM, got {value!r}")
    if mapping.get("header_group") == mapping.get("lines_group"):
        problems.append("'header_group' and 'lines_group' must differ")
    style = mapping.get("amount_style")
    if style not in AMOUNT_STYLES:
        problems.append(f"unknown amount_style {style!r}: use one of {', '.join(AMOUNT_STYLES)}")
    date_format = mapping.get("date_format")
    if not isinstance(date_format, str) or not date_format_works(date_format):
        problems.append(
            f"'date_format' {date_format!r} must be a strftime format that includes the date, e.g. %Y%m%d"
        )
    header_names = check_field_map(mapping.get("header"), "header", HEADER_FIELDS, ("reference",), problems)
    required_line: dict[str, tuple[str, ...]] = {
        "debit_credit": ("account", "debit", "credit"),
        "sign_amount": ("account", "sign", "amount"),
    }
    line_names = check_field_map(
        mapping.get("line"), "line", LINE_FIELDS, required_line.get(str(style), ("account",)), problems
    )
    check_static(
        mapping.get("header_static"), "header_static", header_names - optional_names(mapping), problems
    )
    check_static(mapping.get("line_static"), "line_static", line_names, problems)
    groups = mapping.get("field_groups")
    if not isinstance(groups, Mapping):
        problems.append("'field_groups' must be an object of X3 header field -> group ID")
    else:
        header_static = mapping.get("header_static")
        static = header_static if isinstance(header_static, Mapping) else {}
        for name, group in groups.items():
            if name not in header_names and name not in static:
                problems.append(f"'field_groups' places {name}, which is not a mapped or static header field")
            if not isinstance(group, str) or not _ID_RE.match(group):
                problems.append(f"'field_groups.{name}' must be a group ID such as GAS0_2, got {group!r}")
    keys = mapping.get("read_keys")
    if (
        not isinstance(keys, list)
        or not keys
        or not all(isinstance(k, str) and _ID_RE.match(k) for k in keys)
    ):
        problems.append(
            f'\'read_keys\' must be a list of X3 field names such as ["TYP", "NUM"], got {keys!r}'
        )
    return problems


# --- configuration ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoapConfig:
    """One X3 SOAP connection. ``base_url`` is the Syracuse server with its port, e.g. ``https://x3.example.com:8124``."""

    base_url: str
    pool_alias: str  # the classic SOAP pool (Administration > Web services > Classic SOAP pools), e.g. SEED
    username: str
    password: str = field(repr=False)
    public_name: str = "GAS"  # the GESAWE publication of the journal-entry object
    code_lang: str = "ENG"
    pool_id: str = ""
    request_config: str = DEFAULT_REQUEST_CONFIG
    mapping: Mapping[str, Any] = field(default_factory=dict)  # overrides of DEFAULT_SOAP_MAPPING
    wsdl_url: str = ""  # blank: the WSDL shipped with the connector
    timeout: tuple[float, float] = (5.0, 60.0)  # (connect, read) seconds
    verify: bool | str = True

    def __post_init__(self) -> None:
        check_base_url(self.base_url)
        if not self.pool_alias.strip():
            raise ValueError("the SOAP pool alias is required (e.g. SEED)")
        if not _PUBLIC_NAME_RE.match(self.public_name):
            raise ValueError(
                f"the web service public name {self.public_name!r} must be an X3 code of at most 10 characters"
            )
        if self.wsdl_url and urlsplit(self.wsdl_url).scheme not in ("http", "https"):
            raise ValueError("the WSDL URL must be an http(s) URL")

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + SOAP_PATH


# --- the WSDL (zeep) ----------------------------------------------------------------------------------------------


_wsdl_lock = threading.Lock()
_wsdl_clients: dict[str, Any] = {}  # WSDL location -> zeep.Client (used only to build envelopes)


class _LocalSchemas:
    """Serves the SOAP encoding schema from the package, so zeep never fetches it from the internet."""

    @staticmethod
    def load(url: str) -> bytes | None:
        if url.rstrip("/") == SOAPENC_NS.rstrip("/"):
            return (WSDL_DIR / "soap-encoding.xsd").read_bytes()
        return None


def _zeep_client(config: SoapConfig) -> Any:
    """The zeep client for the connection's WSDL, parsed once per process and location.

    The shipped WSDL is read from disk. A WSDL URL is fetched once, with the connection's credentials, TLS settings
    and timeout, on a session of its own (the posting session never carries the password outside ``send``).
    """
    import zeep
    from zeep.transports import Transport

    location = config.wsdl_url or str(BUNDLED_WSDL)
    with _wsdl_lock:
        client = _wsdl_clients.get(location)
        if client is not None:
            return client

        class _Transport(Transport):
            def load(self, url: str) -> bytes:
                local = _LocalSchemas.load(url)
                return local if local is not None else super().load(url)

        session = new_session(verify=config.verify)
        if config.wsdl_url:
            session.auth = HTTPBasicAuth(config.username, config.password)
        transport = _Transport(
            session=session, timeout=config.timeout[1], operation_timeout=config.timeout[1]
        )
        try:
            client = zeep.Client(location, transport=transport)
            client.service  # noqa: B018 - raises ValueError when the document declares no service
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            error = AuthenticationError if status in (401, 403) else RetryableError
            raise error(f"Could not load the Sage X3 WSDL from {config.wsdl_url}: HTTP {status}") from exc
        except requests.RequestException as exc:
            raise RetryableError(
                f"Could not load the Sage X3 WSDL from {config.wsdl_url}: {type(exc).__name__}"
            ) from exc
        except (zeep.exceptions.Error, etree.XMLSyntaxError, ValueError) as exc:
            raise PermanentError(f"The Sage X3 WSDL at {location} cannot be used: {exc}") from exc
        finally:
            session.close()
        _wsdl_clients[location] = client
        return client


# --- reading answers ----------------------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    # No entities, no DTDs from the network, no huge trees: the answer comes from a server we do not control.
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True)


def _local(element: Any) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _text(element: Any) -> str:
    return (element.text or "").strip() if element is not None else ""


@dataclass(frozen=True)
class SoapMessage:
    type: str  # "1" information, "2" warning, "3" error
    message: str

    @property
    def is_error(self) -> bool:
        return self.type == MESSAGE_ERROR

    def describe(self) -> str:
        label = {"1": "info", "2": "warning", "3": "error"}.get(self.type, f"type {self.type or '?'}")
        return f"{label}: {self.message}"


@dataclass(frozen=True)
class SoapResult:
    """``CAdxResultXml``: X3's answer to one operation."""

    status: int | None
    messages: tuple[SoapMessage, ...]
    result_xml: str

    @property
    def errors(self) -> list[SoapMessage]:
        return [m for m in self.messages if m.is_error]


def parse_envelope(body: bytes) -> tuple[SoapResult | None, str]:
    """(result, fault string) from a SOAP answer; raises ``ValueError`` when it is not a SOAP envelope."""
    try:
        root = etree.fromstring(body, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not XML: {exc}") from exc
    if _local(root) != "Envelope":
        raise ValueError(f"not a SOAP envelope (root element {_local(root) or '?'})")
    soap_body = next((c for c in root if _local(c) == "Body"), None)
    if soap_body is None or not len(soap_body):
        raise ValueError("the SOAP envelope has no body")
    answer = soap_body[0]
    if _local(answer) == "Fault":
        fault = next((c for c in answer if _local(c) in ("faultstring", "Reason")), None)
        text = " ".join("".join(fault.itertext()).split()) if fault is not None else ""
        return None, text or "SOAP fault without a fault string"
    # <wss:saveResponse><saveReturn>...</saveReturn></wss:saveResponse>: the return element is the one holding
    # "status"; tolerate the fields sitting directly under the response element too.
    holder = next((c for c in answer.iter() if any(_local(g) == "status" for g in c)), None)
    if holder is None:
        raise ValueError(f"no status in the {_local(answer)} answer")
    status_text = _text(next(g for g in holder if _local(g) == "status"))
    try:
        status: int | None = int(status_text)
    except ValueError:
        status = None
    messages: list[SoapMessage] = []
    for element in holder.iter():
        children = {_local(c): c for c in element}
        if "message" in children and "type" in children and element is not holder:
            messages.append(SoapMessage(type=_text(children["type"]), message=_text(children["message"])))
    result = next((g for g in holder if _local(g) == "resultXml"), None)
    result_xml = (result.text or "") if result is not None else ""
    return SoapResult(status=status, messages=tuple(messages), result_xml=result_xml), ""


def parse_result_rows(result_xml: str) -> list[dict[str, Any]]:
    """The records of a ``query``/``read``/``save`` result, each as {field name: value}, whatever the format.

    JSON (``adxwss.optreturn=JSON``): a list of records, or an object of groups ({"GAS0_1": {...}, "GAS1_1": [...]})
    flattened into one record (a table's rows go under the table's ID). XML: each ``LIN`` is a record, else the
    ``FLD`` of every ``GRP`` form one record.
    """
    text = result_xml.strip()
    if not text:
        return []
    if text[0] in "[{":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"resultXml is not valid JSON: {exc}") from exc
        if isinstance(data, list):
            return [_flatten_json(r) for r in data if isinstance(r, Mapping)]
        if isinstance(data, Mapping):
            # A single key holding a list of records is a wrapper ({"RESULT": [...]}); anything else is one record.
            (only,) = data.values() if len(data) == 1 else (None,)
            if isinstance(only, list) and all(isinstance(r, Mapping) for r in only):
                return [_flatten_json(r) for r in only]
            return [_flatten_json(data)]
        return []
    try:
        root = etree.fromstring(text.encode("utf-8"), parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"resultXml is neither JSON nor XML: {exc}") from exc
    lines = [e for e in root.iter() if _local(e) == "LIN"]
    is_query = not any(_local(e) == "GRP" for e in root.iter())
    if lines and is_query:
        return [
            {f.get("NAME"): _text(f) for f in lin if _local(f) == "FLD" and f.get("NAME")} for lin in lines
        ]
    record: dict[str, Any] = {}
    for grp in (e for e in root.iter() if _local(e) == "GRP"):
        for fld in grp:
            if _local(fld) == "FLD" and fld.get("NAME"):
                record.setdefault(fld.get("NAME"), _text(fld))
    return [record] if record else []


def _flatten_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """Group objects merged into one record (first value of a name wins); scalar fields kept as they are."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            for name, inner in value.items():
                if not isinstance(inner, Mapping | list):
                    flat.setdefault(name, inner)
        elif isinstance(value, list):
            flat.setdefault(key, value)
        else:
            flat.setdefault(key, value)
    return flat


@dataclass(frozen=True)
class PublishedField:
    name: str
    group: str
    in_table: bool


def parse_description(result_xml: str) -> dict[str, PublishedField]:
    """Fields of a publication from ``getDescription``: {field name: (group ID, in a table?)}.

    The description's exact layout is NOT CONFIRMED; we read any ``GRP``/``TAB`` element (ID or NAME attribute) and
    the ``FLD`` elements (NAME attribute) under it, in XML, or the same keys in JSON.
    """
    text = result_xml.strip()
    fields: dict[str, PublishedField] = {}
    if not text:
        return fields
    if text[0] in "[{":
        _describe_json(json.loads(text), fields)
        return fields
    root = etree.fromstring(text.encode("utf-8"), parser=_parser())
    for group in root.iter():
        kind = _local(group)
        if kind not in ("GRP", "TAB"):
            continue
        group_id = group.get("ID") or group.get("NAME") or ""
        for fld in group.iter():
            if _local(fld) == "FLD" and fld.get("NAME"):
                fields.setdefault(fld.get("NAME"), PublishedField(fld.get("NAME"), group_id, kind == "TAB"))
    return fields


def _describe_json(
    node: Any, fields: dict[str, PublishedField], group: str = "", in_table: bool = False
) -> None:
    if isinstance(node, list):
        for item in node:
            _describe_json(item, fields, group, in_table)
    elif isinstance(node, Mapping):
        for key in ("GRP", "TAB"):
            for child in node.get(key) or []:
                if isinstance(child, Mapping):
                    child_id = str(child.get("ID") or child.get("NAME") or "")
                    _describe_json(child, fields, child_id, key == "TAB")
        for fld in node.get("FLD") or []:
            if isinstance(fld, Mapping) and fld.get("NAME"):
                name = str(fld["NAME"])
                fields.setdefault(name, PublishedField(name, group, in_table))


# --- the client ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionStep:
    """One step of "Test connection", in words an X3 administrator understands."""

    name: str
    ok: bool
    detail: str


class SageX3SoapClient(RecordsCalls):
    """SOAP client for one X3 pool and publication. Not thread-safe (``call_log``): one client per posting."""

    def __init__(self, config: SoapConfig, *, session: requests.Session | None = None) -> None:
        self.config = config
        self.mapping = effective_soap_mapping(config.mapping)
        self.mapping_problems = validate_soap_mapping(self.mapping)
        self._session = session if session is not None else new_session(verify=config.verify)
        self._transport = Transport(
            self._session,
            api="x3",
            timeout=config.timeout,
            secrets=_secret_forms(config.username, config.password),
            body_limit=RESPONSE_LOG_LIMIT,
            auth=HTTPBasicAuth(config.username, config.password),
            verify=config.verify,
        )

    def _recorded(self, record: CallRecord, error: IntegrationError) -> IntegrationError:
        return self._transport.failed(error, record)

    # -- public operations --

    def build_object_xml(self, entry: Entry) -> str:
        """The ``objectXml`` of ``save``: ``<PARAM>`` with the header ``GRP``(s) and the lines ``TAB``."""
        self._require_valid_mapping()
        m = self.mapping
        header_values: dict[str, tuple[str, str]] = {
            "entry_type": (entry.entry_type, "Char"),
            "journal": (entry.journal, "Char"),
            "site": (entry.site, "Char"),
            "accounting_date": (entry.accounting_date.strftime(m["date_format"]), "Date"),
            "currency": (entry.currency, "Char"),
            "description": (entry.description, "Char"),
            "reference": (entry.reference, "Char"),
            "source_document": (entry.source_document, "Char"),
            "company": (entry.company, "Char"),
            "exchange_rate": (str(entry.exchange_rate or ""), "Decimal"),  # optional key; blank: not sent
        }
        param = ET.Element("PARAM")
        groups: dict[str, ET.Element] = {}

        def group(group_id: str) -> ET.Element:
            if group_id not in groups:
                groups[group_id] = ET.SubElement(param, "GRP", ID=group_id)
            return groups[group_id]

        group(m["header_group"])
        written = set()
        for logical, x3_name in m["header"].items():
            if x3_name and (header_values[logical][0] or logical not in OPTIONAL_HEADER_FIELDS):
                value, kind = header_values[logical]
                _fld(group(m["field_groups"].get(x3_name, m["header_group"])), x3_name, value, kind)
                written.add(x3_name)
        for x3_name, constant in m["header_static"].items():
            if x3_name in written:  # an optional field the entry filled (a channel's company)
                continue
            _fld(group(m["field_groups"].get(x3_name, m["header_group"])), x3_name, *_typed(constant))

        rows = [row for line in entry.lines for row in self._line_rows(line, entry.currency)]
        if not rows:
            raise PermanentError(f"entry {entry.reference} has no non-zero lines to post")
        table = ET.SubElement(param, "TAB", ID=m["lines_group"], SIZE=str(len(rows)))
        number_field = m["line"].get("line_number")
        for number, row in enumerate(rows, start=1):
            lin = ET.SubElement(table, "LIN", NUM=str(number))
            if number_field:
                _fld(lin, number_field, str(number), "Integer")
            for name, value, kind in row:
                if kind == LIST:
                    _lst(lin, name, value)
                else:
                    _fld(lin, name, value, kind)
            for name, constant in m["line_static"].items():
                _fld(lin, name, *_typed(constant))
        return ET.tostring(param, encoding="unicode")

    def preview(self, entry: Entry) -> str:
        return self.build_object_xml(entry)

    def create_entry(self, entry: Entry) -> PostedEntry:
        """``save`` the entry on the publication; return the document number X3 assigned.

        Raises ``BadResponseError(outcome_unknown=True)`` when X3 answers success without a document number: the
        entry may exist, so the caller looks it up with :meth:`find_entry` before trying again.
        """
        object_xml = self.build_object_xml(entry)
        result = self._call("save", self.config.public_name, object_xml, is_write=True)
        number = self._first_value(result, self.mapping["document_number_field"])
        if number is None:
            raise self._failed(
                BadResponseError(
                    f"X3 saved entry {entry.reference} but returned no {self.mapping['document_number_field']}: it "
                    "may have been created; look it up by reference before posting again",
                    outcome_unknown=True,
                )
            )
        return PostedEntry(
            document_number=number,
            reference=entry.reference,
            raw={"status": result.status, "resultXml": result.result_xml[:RESPONSE_LOG_LIMIT]},
        )

    def find_entry(self, reference: str) -> PostedEntry | None:
        """The X3 entry carrying our ``reference``: ``query`` filtered on the reference field, each hit confirmed.

        A hit whose row shows another reference means X3 ignored the filter (the field is not a query criterion of
        the publication): a :class:`PermanentError`, since the duplicate check cannot be trusted. A hit whose row
        does not show the reference is confirmed with ``read``. Several entries: :class:`DuplicateEntryError`.
        """
        self._require_valid_mapping()
        ref_field = self.mapping["header"]["reference"]
        num_field = self.mapping["document_number_field"]
        result = self._call(
            "query", self.config.public_name, self._keys({ref_field: reference}), FIND_PAGE_SIZE
        )
        try:
            rows = parse_result_rows(result.result_xml)
        except ValueError as exc:
            raise self._failed(BadResponseError(f"X3 query for reference {reference}: {exc}")) from exc
        found: list[PostedEntry] = []
        for row in rows:
            number = _scalar(row.get(num_field))
            if number is None:
                raise self._failed(
                    BadResponseError(
                        f"X3 query for reference {reference} returned an entry without {num_field}: add {num_field} "
                        f"to the query list of publication {self.config.public_name}"
                    )
                )
            returned = _scalar(row.get(ref_field))
            if returned is None:  # the query list does not show the reference: read the entry to confirm it
                returned = self._read_reference(row, ref_field)
                if returned is None:
                    raise self._failed(
                        BadResponseError(
                            f"X3 query for {ref_field} = {reference} returned entry {number}, but reading it did not "
                            f"show its {ref_field}: add {ref_field} to the query list of publication "
                            f"{self.config.public_name} (or {', '.join(self.mapping['read_keys'])} for read)"
                        )
                    )
            if returned.casefold() != reference.strip().casefold():
                raise self._failed(
                    PermanentError(
                        f"X3 query for {ref_field} = {reference} returned entry {number} with {ref_field} = "
                        f"{returned}: the filter was not applied (is {ref_field} a query criterion of "
                        f"publication {self.config.public_name}?), so the duplicate check cannot be trusted"
                    )
                )
            found.append(PostedEntry(document_number=number, reference=returned, raw=dict(row)))
        return self._one_or_none(found, f"{ref_field} = {reference}")

    def read_entry(self, keys: Mapping[str, str]) -> dict[str, Any] | None:
        """``read`` one entry by its key fields (GAS: TYP and NUM); its fields by name, or None if X3 has none."""
        result = self._call("read", self.config.public_name, self._keys(keys), allow_refusal=True)
        if result.status != 1:
            return None
        try:
            rows = parse_result_rows(result.result_xml)
        except ValueError as exc:
            raise self._failed(BadResponseError(f"X3 read of {dict(keys)}: {exc}")) from exc
        return rows[0] if rows else None

    def describe(self) -> dict[str, PublishedField]:
        """``getDescription`` of the publication: its fields and the group each is in."""
        result = self._call("getDescription", self.config.public_name)
        try:
            return parse_description(result.result_xml)
        except (ValueError, etree.XMLSyntaxError) as exc:
            raise self._failed(
                BadResponseError(f"X3 description of {self.config.public_name} cannot be read: {exc}")
            ) from exc

    def mapping_against(self, published: Mapping[str, PublishedField]) -> list[str]:
        """Plain-words problems between the field mapping and what the publication really contains."""
        m = self.mapping
        problems: list[str] = []
        header = [n for n in m["header"].values() if n] + list(m["header_static"])
        for name in header:
            expected = m["field_groups"].get(name, m["header_group"])
            found = published.get(name)
            if found is None:
                problems.append(f"header field {name} is not in publication {self.config.public_name}")
            elif found.in_table:
                problems.append(
                    f"header field {name} is published in the table {found.group}, not in a header group"
                )
            elif found.group != expected:
                problems.append(
                    f"header field {name} is published in group {found.group}, the mapping sends it in {expected} "
                    f'(set field_groups {{"{name}": "{found.group}"}} or header_group)'
                )
        style_fields = ("debit", "credit") if m["amount_style"] == "debit_credit" else ("sign", "amount")
        line_fields = [m["line"].get(k) for k in ("line_number", "account", "description", *style_fields)]
        for name in [n for n in line_fields if n] + list(m["line_static"]):
            found = published.get(name)
            if found is None:
                problems.append(f"line field {name} is not in publication {self.config.public_name}")
            elif not found.in_table or found.group != m["lines_group"]:
                problems.append(
                    f"line field {name} is published in {found.group}, not in the lines table {m['lines_group']} "
                    "(set lines_group)"
                )
        return problems

    def connection_steps(self) -> list[ConnectionStep]:
        """Test connection, step by step: server and credentials, pool, publication, field mapping.

        Stops at the first failing step (the later ones cannot be checked); never raises for an X3 answer.
        """
        host = urlsplit(self.config.base_url).netloc
        steps: list[ConnectionStep] = []
        if self.mapping_problems:
            return [ConnectionStep("Field mapping", False, "; ".join(self.mapping_problems))]
        if self.config.wsdl_url:
            try:
                _zeep_client(self.config)
            except IntegrationError as exc:
                return [ConnectionStep("WSDL loaded", False, exc.message)]
            steps.append(ConnectionStep("WSDL loaded", True, self.config.wsdl_url))
        try:
            result = self._call("getDescription", self.config.public_name, allow_refusal=True)
        except AuthenticationError as exc:
            steps.append(ConnectionStep("Server reachable", True, f"{host} answered"))
            steps.append(ConnectionStep("Credentials accepted", False, exc.message))
            return steps
        except IntegrationError as exc:
            steps.append(ConnectionStep("Server reachable", False, exc.message))
            return steps
        steps.append(ConnectionStep("Server reachable", True, f"{host} answered the SOAP web service"))
        steps.append(ConnectionStep("Credentials accepted", True, f"user {self.config.username}"))
        if result.status != 1:
            said = "; ".join(m.message for m in result.messages) or f"status {result.status}"
            steps.append(
                ConnectionStep(
                    f"Pool {self.config.pool_alias} and publication {self.config.public_name}",
                    False,
                    f"X3 said: {said}",
                )
            )
            return steps
        steps.append(ConnectionStep(f"Pool {self.config.pool_alias}", True, "the pool answered"))
        try:
            published = parse_description(result.result_xml)
        except (ValueError, etree.XMLSyntaxError) as exc:
            steps.append(
                ConnectionStep(f"Publication {self.config.public_name}", False, f"unreadable: {exc}")
            )
            return steps
        if not published:
            steps.append(
                ConnectionStep(
                    f"Publication {self.config.public_name}", False, "X3 described no fields for it"
                )
            )
            return steps
        steps.append(
            ConnectionStep(
                f"Publication {self.config.public_name}", True, f"{len(published)} fields published"
            )
        )
        problems = self.mapping_against(published)
        steps.append(
            ConnectionStep(
                "Field mapping",
                not problems,
                "; ".join(problems)
                if problems
                else "every mapped field is published where the mapping sends it",
            )
        )
        return steps

    def test_connection(self) -> str:
        """All :meth:`connection_steps`; a short success description, or a PermanentError naming the failing step."""
        steps = self.connection_steps()
        failed = next((s for s in steps if not s.ok), None)
        if failed is not None:
            raise PermanentError(f"{failed.name}: {failed.detail}")
        host = urlsplit(self.config.base_url).netloc
        return (
            f"Connected to {host}, pool {self.config.pool_alias}, as {self.config.username}: publication "
            f"{self.config.public_name} is published and the field mapping matches it."
        )

    # -- internals --

    def _line_rows(self, line: EntryLine, currency: str) -> list[list[tuple[str, Any, str]]]:
        names = self.mapping["line"]
        base: list[tuple[str, Any, str]] = [(names["account"], line.account, "Char")]
        if names.get("description"):
            base.append((names["description"], line.description, "Char"))
        base.extend((name, values, LIST) for name, values in dimension_fields(line, names).items())
        if self.mapping["amount_style"] == "debit_credit":
            return [
                [
                    *base,
                    (names["debit"], format(amount_at_precision(line.debit, currency), "f"), "Decimal"),
                    (names["credit"], format(amount_at_precision(line.credit, currency), "f"), "Decimal"),
                ]
            ]
        rows = []
        for sign, amount in (("1", line.debit), ("-1", line.credit)):
            if not amount.is_zero():
                value = format(amount_at_precision(amount, currency), "f")
                rows.append([*base, (names["sign"], sign, "Integer"), (names["amount"], value, "Decimal")])
        return rows

    def _read_reference(self, row: Mapping[str, Any], ref_field: str) -> str | None:
        scalars = {k: _scalar(row.get(k)) for k in self.mapping["read_keys"]}
        keys = {k: v for k, v in scalars.items() if v is not None}
        if not keys:
            return None
        record = self.read_entry(keys)
        return _scalar(record.get(ref_field)) if record else None

    def _first_value(self, result: SoapResult, name: str) -> str | None:
        try:
            rows = parse_result_rows(result.result_xml)
        except ValueError:
            return None
        for row in rows:
            value = _scalar(row.get(name))
            if value is not None:
                return value
        return None

    def _keys(self, keys: Mapping[str, str]) -> Any:
        client = _zeep_client(self.config)
        values = [{"key": k, "value": v} for k, v in keys.items()]
        try:
            array_type = client.get_type(f"{{{WSS_NS}}}ArrayOfCAdxParamKeyValue")
            item_type = client.get_type(f"{{{WSS_NS}}}CAdxParamKeyValue")
        except LookupError:
            return values  # a WSDL with plain repeated elements takes a list
        return array_type([item_type(**v) for v in values])

    def _context(self) -> dict[str, str]:
        return {
            "codeLang": self.config.code_lang,
            "poolAlias": self.config.pool_alias,
            "poolId": self.config.pool_id,
            "requestConfig": self.config.request_config,
        }

    def _where(self) -> str:
        return f"publication {self.config.public_name}, pool {self.config.pool_alias}"

    def _require_valid_mapping(self) -> None:
        if self.mapping_problems:
            raise SoapMappingError(self.mapping_problems)

    def _call(
        self, operation: str, *args: Any, is_write: bool = False, allow_refusal: bool = False
    ) -> SoapResult:
        """Build the envelope with zeep, send it, record it, classify the answer."""
        import zeep

        client = _zeep_client(self.config)
        try:
            envelope = client.create_message(client.service, operation, self._context(), *args)
        except (zeep.exceptions.Error, TypeError, AttributeError) as exc:
            raise PermanentError(
                f"The Sage X3 WSDL does not offer {operation} as the connector calls it: {exc}"
            ) from exc
        body = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
        url = self.config.endpoint
        answer = self._transport.exchange(
            "POST",
            url,
            body=body.decode("utf-8"),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""', "Accept": "text/xml"},
            is_write=is_write,
        )
        answer.record.extra["soap_operation"] = operation
        return self._answer(operation, answer, is_write=is_write, allow_refusal=allow_refusal)

    def _answer(self, operation: str, answer: Exchange, *, is_write: bool, allow_refusal: bool) -> SoapResult:
        """Classify one SOAP answer: HTTP status, SOAP fault, then X3's own status and messages."""
        response, record, text = answer.response, answer.record, answer.text
        url = self.config.endpoint
        common: dict[str, Any] = {"status_code": response.status_code, "response_body": text[:2000]}
        status = response.status_code
        where = f"{operation} on {self._where()}"

        try:
            result, fault = parse_envelope(response.content)
            parse_problem = ""
        except ValueError as exc:
            result, fault, parse_problem = None, "", str(exc)
        detail = f": {fault}" if fault else (f": {snippet(text)}" if text.strip() and not result else "")

        if status in (401, 403):
            what = "rejected the credentials" if status == 401 else "refused access (check the user's rights)"
            raise self._recorded(
                record, AuthenticationError(f"X3 {what} (HTTP {status}, {where}){detail}", **common)
            )
        if status == 429:
            raise self._recorded(
                record,
                RateLimitedError(
                    f"X3 rate limit (HTTP 429, {where}){detail}",
                    outcome_unknown=is_write,
                    retry_after=retry_after(response.headers),
                    **common,
                ),
            )
        if status == 408 or 500 <= status < 600 or (status == 200 and fault):
            raise self._recorded(
                record,
                RetryableError(
                    f"X3 SOAP server error (HTTP {status}, {where}){detail}",
                    outcome_unknown=is_write,
                    retry_after=retry_after(response.headers),
                    unavailable=status != 200,  # a SOAP fault in a 200 is X3 answering
                    **common,
                ),
            )
        if status == 404:
            raise self._recorded(
                record,
                PermanentError(
                    f"X3 answered 404 Not Found for the SOAP web service at {url}: check the server URL",
                    **common,
                ),
            )
        if status != 200:
            raise self._recorded(
                record, PermanentError(f"X3 answered HTTP {status} ({where}){detail}", **common)
            )
        if result is None:
            raise self._recorded(
                record,
                BadResponseError(
                    f"X3 answered {operation} with something that is not a SOAP answer ({parse_problem})",
                    outcome_unknown=is_write,
                    **common,
                ),
            )
        return self._verdict(
            operation, result, record, common, is_write=is_write, allow_refusal=allow_refusal
        )

    def _verdict(
        self,
        operation: str,
        result: SoapResult,
        record: CallRecord,
        common: dict[str, Any],
        *,
        is_write: bool,
        allow_refusal: bool,
    ) -> SoapResult:
        """X3's own answer to a call that reached it: status 1 without an error message, or a refusal."""
        where = f"{operation} on {self._where()}"
        notes = [m.describe() for m in result.messages]
        if notes:
            record.extra["messages"] = notes
        if allow_refusal:
            return result
        if result.status != 1 or result.errors:
            said = "; ".join(m.message for m in (result.errors or result.messages) if m.message)
            said = said or f"status {result.status} without a message"
            if any(_TRANSIENT_MESSAGE.search(m.message) for m in result.errors):
                raise self._recorded(
                    record, RetryableError(f"X3 record locked or busy ({where}): {said}", **common)
                )
            raise self._recorded(
                record,
                PermanentError(
                    f"X3 refused {operation} ({self._where()}): {said}",
                    # Status 1 with an error message: X3 may have saved it all the same, so look before re-sending.
                    outcome_unknown=is_write and result.status == 1,
                    **common,
                ),
            )
        return result

    # -- chart of accounts (docs/chart-of-accounts.md) --

    def list_accounts(
        self, settings: Mapping[str, Any] | None = None, *, limit: int | None = None
    ) -> list[Account]:
        """The GL accounts: ``query`` without criteria on the configured account publication.

        SOAP ``query`` has no paging, only ``listSize``: a full list means the chart may be cut short, which would
        make real accounts look unknown, so that is an error asking for a larger ``list_size``.
        """
        chart = effective_chart_query("soap", settings)
        problems = chart_query_problems(settings)
        if problems:
            raise PermanentError("Invalid chart of accounts query: " + "; ".join(problems))
        size = min(chart["list_size"], limit) if limit else chart["list_size"]
        import zeep

        keys = self._keys(chart["criteria"]) if chart["criteria"] else zeep.xsd.Nil
        result = self._call("query", chart["public_name"], keys, size)
        try:
            rows = parse_result_rows(result.result_xml)
        except ValueError as exc:
            raise self._failed(
                BadResponseError(f"X3 chart of accounts ({chart['public_name']}): {exc}")
            ) from exc
        if not limit and len(rows) >= size:
            raise self._failed(
                PermanentError(
                    f"X3 returned {len(rows)} accounts from {chart['public_name']}, the list size: the chart may be "
                    "incomplete. Raise list_size in the chart of accounts query."
                )
            )
        accounts = accounts_from_records(rows, chart)
        return accounts[:limit] if limit else accounts


LIST = "List"  # a row item written as an X3 list (<LST>) instead of a field


def _lst(parent: ET.Element, name: str, values: list[str]) -> None:
    element = ET.SubElement(parent, "LST", NAME=name, SIZE=str(len(values)), TYPE="Char")
    for value in values:
        ET.SubElement(element, "ITM").text = value


def _fld(parent: ET.Element, name: str, value: str, kind: str) -> None:
    element = ET.SubElement(parent, "FLD", NAME=name, TYPE=kind)
    element.text = value


def _typed(constant: Any) -> tuple[str, str]:
    if isinstance(constant, bool):
        return ("2" if constant else "1"), "Integer"  # X3 local menu 1 = No, 2 = Yes
    if isinstance(constant, int):
        return str(constant), "Integer"
    if isinstance(constant, float):
        return repr(constant), "Decimal"
    return ("" if constant is None else str(constant)), "Char"


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, Mapping | list):
        return None
    text = str(value).strip()
    return text or None


def _secret_forms(username: str, password: str) -> list[str]:
    if not password:
        return []
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    forms = {password, quote(password, safe=""), token}
    return sorted((f for f in forms if f), key=len, reverse=True)
