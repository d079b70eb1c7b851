"""Sage X3 GraphQL ("Xtrem") for the Sage X3 simulator: the journal-entry schema, the cloud gateway's OAuth2
authorization-code service, and connected-application JWT checks. Standard library plus graphql-core and PyJWT.

Used by :class:`simulators.sagex3.SageX3Sim`, which owns the routes, the storage, the accounting rules, the faults
and the statistics; this module only knows the protocols. Facts: docs/reference/sagex3.md §6 and §7.

GraphQL. X3 ships no standard create mutation for journal entries, so the schema here is the one the connector's
DEFAULT template expects (integrations/sagex3/graphql_mapping.py, docs/x3-graphql.md)::

    mutation($data: JournalEntry_Input!) { x3Finance { journalEntry { create(data: $data) { journalEntryNumber } } } }
    query($filter: String) { x3Finance { journalEntry { query(filter: $filter, first: 10) {
        edges { node { journalEntryType journalEntryNumber internalReference } } } } } }

Documents are parsed, validated against the schema and executed with graphql-core, so an unknown field or a
wrongly typed variable gets the same kind of ``errors[]`` a real server gives (HTTP 400, nothing executed). Business
errors of the create (unbalanced, unknown account, closed period, ...) are HTTP 200 with ``data...create = null``
and an error whose ``extensions.diagnoses`` carry X3's messages. Filters are X3's Mongo-like strings
(``{internalReference: 'BC-x'}``, ``{journalEntryNumber: {_in: ['A', 'B']}}``, ``_and``/``_or``/``_not``; the
operators may be written ``_op`` or ``$op``).

OAuth2 (cloud gateway). ``GET /v1/token/authorise`` auto-approves (or refuses) and redirects to the registered
redirect URI with ``authorizationCode``, ``state`` and optionally ``endpoint``; ``POST /v1/token`` (JSON or form)
exchanges the code (``grant_type=authorization_code``) or a refresh token (``grant_type=refresh_token``). Access
tokens (5 minutes) and refresh tokens (30 days) are HS256 JWTs signed with a key only the simulator knows; each
refresh returns a new pair and burns the refresh token it was given (rotation). Token errors follow the gateway's
error table: 400 ``Missing required request parameters`` / ``Invalid grant type``, 403 ``Pairing request not found``
/ ``The request has expired.`` / ``The application registered on Sage Business Cloud is disabled``, 401 for bad client
credentials. GraphQL through the gateway answers 401 ``{"message":"Unauthorised"}`` to a missing, unknown,
expired or revoked access token.

Connected applications (on-premise ``/xtrem/api``). The client signs an HS256 JWT itself: ``iss`` = client ID,
``sub`` = the allowed user, ``aud`` = the registered URL byte for byte, ``exp`` in the future, ``iat`` not in the
future (beyond ``jwt_leeway_s``). A refused token gets a plain-text 401 ``Error NN: Invalid token``; the codes are
those the reference quotes (NOT CONFIRMED by Sage): 21 issued in the future, 41 ``iss``, 42 ``sub``, 45 ``aud``,
50 signature, expiry or malformed token.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import jwt
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    build_schema,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
)
from graphql.language import FloatValueNode, IntValueNode, StringValueNode, ValueNode

from ._http import Request, Response, json_response

if TYPE_CHECKING:  # pragma: no cover
    from .sagex3 import SageX3Sim

ENDPOINT_HEADER = "x-xtrem-endpoint"
TEXT_TYPE = "text/plain; charset=utf-8"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000

# ---------------------------------------------------------------------------------------------------------- config

OAUTH_DEFAULTS: dict[str, Any] = {
    # client_id -> {"secret": str, "redirect_uris": [str] (empty: any), "enabled": bool}
    "clients": {},
    "access_token_lifetime_s": 300,  # 5 minutes
    "refresh_token_lifetime_s": 30 * 86400,  # 30 days
    "code_lifetime_s": 600,
    "approve": "auto",  # "auto": redirect with a code; "deny": redirect with error=access_denied
    "callback_endpoint": None,  # None: no endpoint parameter; "self": this gateway ({base}/v1); or a URL
    "approved_folders": None,  # folders the customer approves; None: every configured folder
    "rotated_refresh_keeps_expiry": False,  # True: a rotated refresh token keeps its predecessor's expiry
    "refresh_reuse_revokes": False,  # True: re-using a spent refresh token revokes the whole authorization
    "one_pair_per_customer": True,  # a new pairing of the same client and customer revokes the previous one
    "token_fields": "snake",  # "snake": access_token, expires_in ...; "camel": accessToken, expiresIn ...
    "include_expires_in": True,  # False: the client must read the tokens' own exp claims
    "region": "eu",
}
CONNECTED_APP_KEYS = {"secret", "user", "url", "enabled", "max_lifetime_s"}
OAUTH_CLIENT_KEYS = {"secret", "redirect_uris", "enabled"}


def merge_oauth(base: Mapping[str, Any], changes: Any) -> dict[str, Any]:
    if not isinstance(changes, Mapping):
        raise ValueError("oauth must be an object")
    unknown = sorted(set(changes) - set(OAUTH_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown oauth setting(s): {', '.join(unknown)}")
    merged = copy.deepcopy(dict(base))
    merged.update(copy.deepcopy(dict(changes)))
    return merged


def check_auth_config(config: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for an unusable ``oauth`` / ``connected_apps`` configuration."""
    oauth = config["oauth"]
    clients = oauth.get("clients")
    if not isinstance(clients, Mapping):
        raise ValueError("oauth.clients must be an object: client_id -> {secret, redirect_uris, enabled}")
    for client_id, client in clients.items():
        if not isinstance(client, Mapping) or not client.get("secret"):
            raise ValueError(f"oauth.clients.{client_id}: a secret is required")
        if set(client) - OAUTH_CLIENT_KEYS:
            raise ValueError(
                f"oauth.clients.{client_id}: unknown key(s) {sorted(set(client) - OAUTH_CLIENT_KEYS)}"
            )
        if not isinstance(client.get("redirect_uris") or [], list):
            raise ValueError(f"oauth.clients.{client_id}.redirect_uris must be a list")
    if oauth["approve"] not in ("auto", "deny"):
        raise ValueError("oauth.approve must be auto or deny")
    if oauth["token_fields"] not in ("snake", "camel"):
        raise ValueError("oauth.token_fields must be snake or camel")
    for key in ("access_token_lifetime_s", "refresh_token_lifetime_s", "code_lifetime_s"):
        value = oauth[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"oauth.{key} must be a positive number of seconds")
    apps = config["connected_apps"]
    if not isinstance(apps, Mapping):
        raise ValueError("connected_apps must be an object: client_id -> {secret, user, url}")
    for client_id, app in apps.items():
        if not isinstance(app, Mapping) or not app.get("secret") or not app.get("user"):
            raise ValueError(f"connected_apps.{client_id}: secret and user are required")
        if set(app) - CONNECTED_APP_KEYS:
            raise ValueError(
                f"connected_apps.{client_id}: unknown key(s) {sorted(set(app) - CONNECTED_APP_KEYS)}"
            )


# ---------------------------------------------------------------------------------------------------------- errors


def gateway_error(status: int, message: str = "", data_code: str = "") -> Response:
    """The gateway's error body: ``{"$severity":"error","$dataCode":...,"$message":...,"$source":"Gateway"}``."""
    code = data_code or ("InternalServerError" if status >= 500 else "Error")
    return json_response(
        status, {"$severity": "error", "$dataCode": code, "$message": message, "$source": "Gateway"}
    )


def injected_error(status: int) -> Response:
    return gateway_error(status, f"Internal server error ({status}, simulated)")


def unauthorised() -> Response:
    return json_response(401, {"message": "Unauthorised"})


def invalid_token(code: int) -> Response:
    return Response(401, f"Error {code}: Invalid token".encode(), {}, TEXT_TYPE)


def request_errors(status: int, *messages: str) -> Response:
    """Errors found before execution (syntax, validation, variables): nothing was run."""
    return json_response(status, {"errors": [{"message": m} for m in messages], "extensions": {}})


def bearer(req: Request) -> str:
    scheme, _, value = (req.headers.get("Authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


# -------------------------------------------------------------------------------------------------------- schema

SDL = """
"Exact decimal numbers: read from JSON numbers or strings, written as strings."
scalar Decimal

"A calendar date, YYYY-MM-DD."
scalar Date

type Query {
  x3Finance: X3FinanceQuery
  x3FinanceData: X3FinanceDataQuery
}

type X3FinanceDataQuery {
  account: AccountQueries
}

type AccountQueries {
  query(filter: String, first: Int, after: String): AccountConnection
}

type AccountConnection {
  edges: [AccountEdge!]!
  pageInfo: PageInfo!
  totalCount: Int!
}

type AccountEdge {
  node: Account!
  cursor: String!
}

"A GL account (x3FinanceData.account). Property names other than code are NOT CONFIRMED."
type Account {
  _id: String!
  code: String!
  description: String
  isActive: Boolean
  dimensionTypes: [String!]
}

type Mutation {
  x3Finance: X3FinanceMutation
}

type X3FinanceQuery {
  journalEntry: JournalEntryQueries
}

type X3FinanceMutation {
  journalEntry: JournalEntryMutations
}

type JournalEntryQueries {
  query(filter: String, orderBy: String, first: Int, after: String): JournalEntryConnection
  read(_id: String!): JournalEntry
}

type JournalEntryMutations {
  "The partner-built create operation the connector's default template calls."
  create(data: JournalEntry_Input!): JournalEntry
}

type PageInfo {
  startCursor: String
  endCursor: String
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
}

type JournalEntryConnection {
  edges: [JournalEntryEdge!]!
  pageInfo: PageInfo!
  totalCount: Int!
}

type JournalEntryEdge {
  node: JournalEntry!
  cursor: String!
}

type JournalEntry {
  _id: String!
  journalEntryType: String
  journalEntryNumber: String
  company: String
  site: String
  journal: String
  accountingDate: Date
  journalEntryStatus: String
  transactionCurrency: String
  description: String
  internalReference: String
  sourceDocument: String
  journalEntryLines: JournalEntryLineCollection
}

type JournalEntryLineCollection {
  query(first: Int, after: String): JournalEntryLineConnection
}

type JournalEntryLineConnection {
  edges: [JournalEntryLineEdge!]!
  pageInfo: PageInfo!
  totalCount: Int!
}

type JournalEntryLineEdge {
  node: JournalEntryLine!
  cursor: String!
}

type JournalEntryLine {
  _id: String!
  lineNumber: Int
  account: String
  lineDescription: String
  sign: Int
  transactionAmount: Decimal
  debit: Decimal
  credit: Decimal
  dimensions: [JournalEntryLineDimension!]
}

type JournalEntryLineDimension {
  dimensionType: String!
  dimension: String!
}

input JournalEntry_Input {
  journalEntryType: String!
  site: String!
  journal: String!
  accountingDate: Date!
  transactionCurrency: String!
  description: String
  internalReference: String
  sourceDocument: String
  company: String
  journalEntryLines: [JournalEntryLine_Input!]!
}

input JournalEntryLineDimension_Input {
  dimensionType: String!
  dimension: String!
}

input JournalEntryLine_Input {
  lineNumber: Int
  account: String!
  lineDescription: String
  sign: Int
  transactionAmount: Decimal
  debit: Decimal
  credit: Decimal
  dimensions: [JournalEntryLineDimension_Input!]
}
"""


def _decimal_value(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise GraphQLError(f"Decimal cannot represent a boolean: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise GraphQLError(f"Decimal cannot represent {value!r}") from None
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        raise GraphQLError(f"Decimal cannot represent {value!r}")
    if not result.is_finite():
        raise GraphQLError(f"Decimal cannot represent {value!r}")
    return result


def _decimal_literal(node: ValueNode, _variables: Any = None) -> Decimal:
    if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
        return _decimal_value(node.value)
    raise GraphQLError("Decimal literals are numbers or strings")


def _serialize_decimal(value: Any) -> str:
    return format(_decimal_value(value), "f")


def _date_value(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise GraphQLError(f"Date must be a string YYYY-MM-DD, not {value!r}")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise GraphQLError(f"Invalid date {value!r}") from None
    return value


def _date_literal(node: ValueNode, _variables: Any = None) -> str:
    if isinstance(node, StringValueNode):
        return _date_value(node.value)
    raise GraphQLError("Date literals are strings YYYY-MM-DD")


def _build_schema():  # noqa: ANN202 - graphql-core's schema type
    schema = build_schema(SDL)
    # graphql-core 3.2 calls serialize/parse_value, 3.3 coerce_output_value/coerce_input_value: set both.
    for name, output, value_in, literal_in in (
        ("Decimal", _serialize_decimal, _decimal_value, _decimal_literal),
        ("Date", str, _date_value, _date_literal),
    ):
        scalar = schema.type_map[name]
        scalar.serialize = scalar.coerce_output_value = output  # type: ignore[attr-defined,method-assign]
        scalar.parse_value = scalar.coerce_input_value = value_in  # type: ignore[attr-defined,method-assign]
        scalar.parse_literal = literal_in  # type: ignore[attr-defined,method-assign]
    return schema


SCHEMA = _build_schema()

# GraphQL input / node property -> our name in the simulator's field mapping (config "fields")
HEADER_PROPERTIES = {
    "journalEntryType": "entry_type",
    "site": "site",
    "journal": "journal",
    "accountingDate": "accounting_date",
    "transactionCurrency": "currency",
    "description": "description",
    "internalReference": "reference",
    "sourceDocument": "source_document",
    "company": "company",
}
NODE_PROPERTIES = frozenset({*HEADER_PROPERTIES, "_id", "journalEntryNumber", "journalEntryStatus"})
LINE_PROPERTIES = {
    "lineNumber": "line_number",
    "account": "account",
    "lineDescription": "description",
    "sign": "sign",
    "transactionAmount": "amount",
    "debit": "debit",
    "credit": "credit",
}


# -------------------------------------------------------------------------------------------------- filter strings


class FilterError(ValueError):
    pass


_FILTER_TOKEN = re.compile(
    r"""\s*(?:
        (?P<punct>[{}\[\]:,])
      | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<word>[A-Za-z_$][\w$]*)
    )""",
    re.VERBOSE,
)


def parse_filter(text: str) -> Any:
    """X3's Mongo-like filter string (``{code: 'AE003'}``, ``{amount: {_gt: 10}}``) as Python values."""
    tokens: list[tuple[str, Any]] = []
    pos = 0
    text = text or ""
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        match = _FILTER_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FilterError(f"unexpected character {text[pos]!r} at position {pos + 1}")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "str":
            tokens.append(("value", re.sub(r"\\(.)", r"\1", raw[1:-1])))
        elif kind == "num":
            tokens.append(("value", Decimal(raw)))
        elif kind == "word":
            keywords = {"true": True, "false": False, "null": None}
            tokens.append(("value", keywords[raw]) if raw in keywords else ("word", raw))
        else:
            tokens.append((raw, raw))
        pos = match.end()
    if not tokens:
        return {}
    index = 0

    def take(expected: str | None = None) -> tuple[str, Any]:
        nonlocal index
        if index >= len(tokens):
            raise FilterError("unexpected end of filter")
        token = tokens[index]
        if expected is not None and token[0] != expected:
            raise FilterError(f"expected {expected!r}, found {token[1]!r}")
        index += 1
        return token

    def value() -> Any:
        kind, raw = take()
        if kind == "value":
            return raw
        if kind == "{":
            result: dict[str, Any] = {}
            if index < len(tokens) and tokens[index][0] == "}":
                take("}")
                return result
            while True:
                key_kind, key = take()
                if key_kind not in ("word", "value") or not isinstance(key, str):
                    raise FilterError(f"expected a property name, found {key!r}")
                take(":")
                result[key] = value()
                sep, _ = take()
                if sep == "}":
                    return result
                if sep != ",":
                    raise FilterError(f"expected ',' or '}}', found {sep!r}")
                if index < len(tokens) and tokens[index][0] == "}":
                    take("}")
                    return result
        if kind == "[":
            items: list[Any] = []
            if index < len(tokens) and tokens[index][0] == "]":
                take("]")
                return items
            while True:
                items.append(value())
                sep, _ = take()
                if sep == "]":
                    return items
                if sep != ",":
                    raise FilterError(f"expected ',' or ']', found {sep!r}")
        raise FilterError(f"unexpected {raw!r}")

    result = value()
    if index != len(tokens):
        raise FilterError(f"unexpected {tokens[index][1]!r} after the filter")
    if not isinstance(result, dict):
        raise FilterError("a filter must be an object")
    return result


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
        return left, right
    try:
        return Decimal(str(left)), Decimal(str(right))
    except InvalidOperation:
        return str(left), str(right)


def _op(name: str, actual: Any, expected: Any, options: str = "") -> bool:
    if name == "eq":
        a, b = _comparable(actual, expected)
        return a == b
    if name == "ne":
        return not _op("eq", actual, expected)
    if name in ("in", "nin"):
        if not isinstance(expected, list):
            raise FilterError(f"_{name} takes a list")
        found = any(_op("eq", actual, item) for item in expected)
        return found if name == "in" else not found
    if name in ("gt", "gte", "lt", "lte"):
        if actual is None or expected is None:
            return False
        a, b = _comparable(actual, expected)
        try:
            return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[name]
        except TypeError:
            return False
    if name == "regex":
        flags = re.IGNORECASE if "i" in options else 0
        try:
            return actual is not None and re.search(str(expected), str(actual), flags) is not None
        except re.error as exc:
            raise FilterError(f"invalid _regex: {exc}") from None
    raise FilterError(f"unknown operator _{name}")


def _is_operator(key: str) -> bool:
    return key[:1] in ("_", "$") and key != "_id"


def check_filter(flt: Any, properties: frozenset[str] | set[str]) -> None:
    """Raise :class:`FilterError` for a filter naming an unknown property or operator, whatever the data."""
    if not isinstance(flt, Mapping):
        raise FilterError("a filter must be an object")
    for key, condition in flt.items():
        if not _is_operator(key):
            if key not in properties:
                raise FilterError(f"unknown property {key}")
            if isinstance(condition, Mapping) and condition and all(_is_operator(k) for k in condition):
                for op in condition:
                    if op[1:] not in (
                        "eq",
                        "ne",
                        "in",
                        "nin",
                        "gt",
                        "gte",
                        "lt",
                        "lte",
                        "regex",
                        "options",
                        "not",
                    ):
                        raise FilterError(f"unknown operator {op}")
        elif key[1:] in ("and", "or"):
            if not isinstance(condition, list):
                raise FilterError(f"{key} takes a list of filters")
            for item in condition:
                check_filter(item, properties)
        elif key[1:] == "not":
            check_filter(condition, properties)
        else:
            raise FilterError(f"unknown operator {key} at the top of a filter")


def filter_matches(props: Mapping[str, Any], flt: Any) -> bool:
    if not isinstance(flt, Mapping):
        raise FilterError("a filter must be an object")
    for key, condition in flt.items():
        name = key[1:] if _is_operator(key) else ""
        if name in ("and", "or"):
            if not isinstance(condition, list):
                raise FilterError(f"{key} takes a list of filters")
            results = [filter_matches(props, item) for item in condition]
            if not (all(results) if name == "and" else any(results)):
                return False
        elif name == "not":
            if filter_matches(props, condition):
                return False
        elif name:
            raise FilterError(f"unknown operator {key} at the top of a filter")
        else:
            if key not in props:
                raise FilterError(f"unknown property {key}")
            if not _condition(props[key], condition):
                return False
    return True


def _condition(actual: Any, condition: Any) -> bool:
    if isinstance(condition, Mapping) and condition and all(_is_operator(k) for k in condition):
        options = str(condition.get("_options") or condition.get("$options") or "")
        for key, expected in condition.items():
            name = key[1:]
            if name == "options":
                continue
            if name == "not":
                if _condition(actual, expected):
                    return False
            elif not _op(name, actual, expected, options):
                return False
        return True
    return _op("eq", actual, condition)


def parse_order_by(text: str | None) -> list[tuple[str, bool]]:
    """``{ journalEntryNumber: -1 }`` -> [("journalEntryNumber", descending=True)]."""
    if not text:
        return []
    parsed = parse_filter(text)
    order = []
    for key, direction in parsed.items():
        if direction not in (Decimal(1), Decimal(-1)):
            raise FilterError(f"orderBy {key}: use 1 (ascending) or -1 (descending)")
        order.append((key, direction == Decimal(-1)))
    return order


# --------------------------------------------------------------------------------------------------------- execution


def _cursor(index: int, key: str) -> str:
    return f"{json.dumps([key])}#{index}"


def _cursor_index(cursor: str) -> int:
    _, sep, tail = (cursor or "").rpartition("#")
    if not sep or not tail.isdigit():
        raise FilterError(f"invalid cursor {cursor!r}")
    return int(tail)


def connection(nodes: list[dict[str, Any]], first: int | None, after: str | None) -> dict[str, Any]:
    start = _cursor_index(after) + 1 if after else 0
    size = DEFAULT_PAGE_SIZE if first is None else first
    if size < 0 or size > MAX_PAGE_SIZE:
        raise FilterError(f"first must be between 0 and {MAX_PAGE_SIZE}")
    page = nodes[start : start + size]
    edges = [{"node": n, "cursor": _cursor(start + i, str(n["_id"]))} for i, n in enumerate(page)]
    return {
        "edges": edges,
        "pageInfo": {
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
            "hasNextPage": start + len(page) < len(nodes),
            "hasPreviousPage": start > 0,
        },
        "totalCount": len(nodes),
    }


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def entry_node(entry: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored entry (api1 field names) as a ``JournalEntry`` node."""
    header = config["fields"]["header"]
    node: dict[str, Any] = {
        prop: entry.get(header[ours]) for prop, ours in HEADER_PROPERTIES.items() if ours in header
    }
    node["_id"] = entry["$uuid"]
    node["journalEntryNumber"] = entry.get(config["fields"]["document_number"])
    node["company"] = entry.get("CPY")
    node["journalEntryStatus"] = "temporary"
    lines = []
    for index, line in enumerate(entry["_lines"], start=1):
        debit, credit = line["debit"], line["credit"]
        lines.append(
            {
                "_id": f"{entry['$uuid']}|{index}",
                "lineNumber": _int_or_none(line["line"]),
                "account": line["account"],
                "lineDescription": line["description"],
                "sign": 1 if debit or not credit else -1,
                "transactionAmount": debit if debit or not credit else credit,
                "debit": debit,
                "credit": credit,
                "dimensions": [
                    {"dimensionType": t, "dimension": v} for t, v in (line.get("dimensions") or {}).items()
                ],
            }
        )
    node["journalEntryLines"] = {
        "query": lambda _info, first=None, after=None: _line_connection(lines, first, after)
    }
    return node


def _line_connection(lines: list[dict[str, Any]], first: int | None, after: str | None) -> dict[str, Any]:
    try:
        return connection(lines, first, after)
    except FilterError as exc:
        raise GraphQLError(str(exc)) from None


def _filterable(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if not callable(v) and not isinstance(v, Mapping)}


def input_to_body(data: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """``JournalEntry_Input`` as an api1 body (the simulator's field names), so both APIs share one set of rules."""
    fields = config["fields"]
    header, line_fields = fields["header"], fields["line"]

    def plain(value: Any) -> Any:
        return format(value, "f") if isinstance(value, Decimal) else value

    body = {
        header[ours]: plain(data[prop])
        for prop, ours in HEADER_PROPERTIES.items()
        if data.get(prop) is not None and ours in header
    }
    body[fields["lines_key"]] = [
        {
            **{
                line_fields[ours]: plain(line[prop])
                for prop, ours in LINE_PROPERTIES.items()
                if line.get(prop) is not None and ours in line_fields
            },
            **_dimension_fields(line.get("dimensions"), line_fields),
        }
        for line in data.get("journalEntryLines") or []
    ]
    return body


def _dimension_fields(dimensions: Any, line_fields: Mapping[str, str]) -> dict[str, list[str]]:
    """``[{dimensionType, dimension}]`` as the api1 line's parallel lists (DIE, CCE)."""
    type_field, value_field = line_fields.get("dimension_type"), line_fields.get("dimension_value")
    if not dimensions or not type_field or not value_field:
        return {}
    return {
        type_field: [d["dimensionType"] for d in dimensions],
        value_field: [d["dimension"] for d in dimensions],
    }


def _create(info: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    context = info.context
    sim: SageX3Sim = context["sim"]
    body = input_to_body(data, sim.config)
    with sim.lock:
        errors, normalized = sim._validate(body)
        if errors:
            sim.stats["rejected"] += 1
            sim.stats["graphql"]["rejected"] += 1
            raise GraphQLError(
                "The record was not created.",
                extensions={
                    "code": "business-rule-error",
                    "diagnoses": [{"severity": 3, "path": [], "message": m} for m in errors],
                },
            )
        entry = sim._store(context["folder"], sim.config["class"], body, normalized, api="graphql")
        sim.stats["created"] += 1
        sim.stats["graphql"]["created"] += 1
        context["committed"] = True
        return entry_node(entry, sim.config)


def _entries_for(info: Any) -> list[dict[str, Any]]:
    sim: SageX3Sim = info.context["sim"]
    folder = info.context["folder"]
    with sim.lock:
        return [
            entry_node(e, sim.config)
            for e in sim.entries
            if e["_folder"] == folder and e["_class"] == sim.config["class"]
        ]


def _query(
    info: Any,
    filter: str | None = None,  # noqa: A002 - the GraphQL argument's name
    orderBy: str | None = None,  # noqa: N803
    first: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    try:
        flt = parse_filter(filter) if filter else {}
        check_filter(flt, NODE_PROPERTIES)
        order = parse_order_by(orderBy)
        for key, _ in order:
            if key not in NODE_PROPERTIES:
                raise FilterError(f"orderBy: unknown property {key}")
        nodes = [n for n in _entries_for(info) if filter_matches(_filterable(n), flt)]
        for key, descending in reversed(order):
            nodes.sort(key=lambda n, k=key: str(n.get(k) or ""), reverse=descending)
        return connection(nodes, first, after)
    except FilterError as exc:
        raise GraphQLError(f"Invalid filter: {exc}") from None


def _read(info: Any, _id: str) -> dict[str, Any] | None:
    return next((n for n in _entries_for(info) if n["_id"] == _id), None)


def _accounts(
    info: Any,
    filter: str | None = None,  # noqa: A002 - the GraphQL argument's name
    first: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    sim: SageX3Sim = info.context["sim"]
    with sim.lock:
        nodes = [
            {
                "_id": r["ACC"],
                "code": r["ACC"],
                "description": r["DES"],
                "isActive": r["ENAFLG"] == 2,
                "dimensionTypes": [d for d in r["DIE"].split(",") if d],
            }
            for r in sim.account_records()
        ]
    try:
        flt = parse_filter(filter) if filter else {}
        check_filter(flt, {"code", "description", "isActive"})
        nodes = [n for n in nodes if filter_matches(n, flt)]
        return connection(nodes, first, after)
    except FilterError as exc:
        raise GraphQLError(f"Invalid filter: {exc}") from None


ROOT: dict[str, Any] = {
    "x3Finance": {"journalEntry": {"query": _query, "read": _read, "create": _create}},
    "x3FinanceData": {"account": {"query": _accounts}},
}


@dataclass
class Operation:
    document: DocumentNode
    kind: str  # "query" or "mutation"
    variables: dict[str, Any] | None
    operation_name: str | None


def read_operation(req: Request) -> Operation | Response:
    """The GraphQL request of a POST (JSON body) or GET (``query``, ``variables``, ``operationName``)."""
    if req.method == "GET":
        query = req.arg("query")
        raw_variables = req.arg("variables")
        operation_name = req.arg("operationName")
        try:
            variables = json.loads(raw_variables, parse_float=Decimal) if raw_variables else None
        except ValueError:
            return request_errors(400, "Variables are invalid JSON.")
    else:
        try:
            body = json.loads(req.body or b"null", parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            return request_errors(400, f"POST body sent invalid JSON: {exc}")
        if not isinstance(body, dict):
            return request_errors(400, "POST body must be a JSON object with query and variables.")
        query, variables, operation_name = body.get("query"), body.get("variables"), body.get("operationName")
    if not isinstance(query, str) or not query.strip():
        return request_errors(400, "Must provide query string.")
    if variables is not None and not isinstance(variables, dict):
        return request_errors(400, "Variables must be provided as an object.")
    if operation_name is not None and not isinstance(operation_name, str):
        return request_errors(400, "operationName must be a string.")
    try:
        document = parse(query)
    except GraphQLError as exc:
        return json_response(400, {"errors": [exc.formatted], "extensions": {}})
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        message = (
            f"Unknown operation named '{operation_name}'."
            if operation_name
            else "Must provide operation name if query contains multiple operations."
        )
        return request_errors(400, message)
    kind = operation.operation.value
    if req.method == "GET" and kind != "query":
        return request_errors(405, f"Can only perform a {kind} operation from a POST request.")
    return Operation(document, kind, variables, operation_name)


def run_operation(sim: SageX3Sim, operation: Operation, folder: str) -> tuple[Response, bool]:
    """Validate and execute; returns the answer and whether an entry was committed."""
    problems = validate(SCHEMA, operation.document)
    if problems:
        return json_response(400, {"errors": [e.formatted for e in problems], "extensions": {}}), False
    context: dict[str, Any] = {"sim": sim, "folder": folder, "committed": False}
    result = execute_sync(
        SCHEMA,
        operation.document,
        root_value=ROOT,
        context_value=context,
        variable_values=operation.variables,
        operation_name=operation.operation_name,
    )
    assert isinstance(result, ExecutionResult)  # noqa: S101 - no async resolvers
    if result.data is None and result.errors:  # variables refused before execution
        return json_response(400, {"errors": [e.formatted for e in result.errors], "extensions": {}}), False
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [e.formatted for e in result.errors]
    return json_response(200, payload), bool(context["committed"])


# ------------------------------------------------------------------------------------------- connected applications


class InvalidToken(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def check_connected_app_token(
    token: str, apps: Mapping[str, Any], *, now: float, leeway: float, default_url: str
) -> tuple[str, dict[str, Any]]:
    """Check a client-signed JWT; returns ``(client_id, claims)`` or raises :class:`InvalidToken`."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidToken(50, "not a JWT") from None
    if header.get("alg") != "HS256":
        raise InvalidToken(50, f"algorithm {header.get('alg')!r} is not HS256")
    client_id = unverified.get("iss")
    app = apps.get(client_id) if isinstance(client_id, str) else None
    if app is None or not app.get("enabled", True):
        raise InvalidToken(41, f"unknown or disabled connected application {client_id!r}")
    if not _hs256_signature_ok(token, str(app["secret"])):
        raise InvalidToken(50, "bad signature")
    claims = unverified
    if claims.get("sub") != app["user"]:
        raise InvalidToken(42, "sub is not the allowed user")
    expected_aud = app.get("url") or default_url
    if not isinstance(claims.get("aud"), str) or claims["aud"] != expected_aud:
        raise InvalidToken(45, "aud is not the registered URL")
    exp, iat = claims.get("exp"), claims.get("iat")
    for name, value in (("exp", exp), ("iat", iat)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidToken(50, f"{name} is missing or not a number")
    if iat > now + leeway:
        raise InvalidToken(21, "issued in the future")
    if exp <= now:
        raise InvalidToken(50, "expired")
    max_lifetime = app.get("max_lifetime_s")
    if max_lifetime and exp - iat > max_lifetime:
        raise InvalidToken(50, "lifetime exceeds the tokens validity")
    return client_id, claims


def _hs256_signature_ok(token: str, secret: str) -> bool:
    """HMAC-SHA256 over ``header.payload`` (checked by hand: PyJWT warns about the short secrets customers use)."""
    head, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    expected = hmac.new(
        secret.encode("utf-8"), f"{head}.{payload}".encode("ascii", "replace"), hashlib.sha256
    )
    try:
        given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(expected.digest(), given)


# ------------------------------------------------------------------------------------------------- OAuth2 gateway


def _message(status: int, message: str) -> Response:
    return json_response(status, {"message": message})


MISSING_PARAMETERS = "Missing required request parameters"
NOT_FOUND = "Pairing request not found"
EXPIRED = "The request has expired."
DISABLED = "The application registered on Sage Business Cloud is disabled"
NOT_ACCEPTED = "The pairing request has not been accepted."


def token_params(req: Request) -> dict[str, str] | Response:
    """The token request's parameters from a JSON or form body; client credentials may also come as HTTP Basic."""
    content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    text = (req.body or b"").decode("utf-8", "replace")
    params: dict[str, Any] = {}
    if content_type == "application/json" or (not content_type and text.lstrip().startswith("{")):
        try:
            loaded = json.loads(text) if text.strip() else {}
        except ValueError:
            return _message(400, MISSING_PARAMETERS)
        if not isinstance(loaded, dict):
            return _message(400, MISSING_PARAMETERS)
        params = loaded
    else:
        params = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    scheme, _, value = (req.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return _message(401, "Unauthorised")
        params.setdefault("client_id", user)
        params.setdefault("client_secret", password)
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in params.items() if v is not None}


class OAuthGateway:
    """Authorizations, codes and tokens of the simulated cloud gateway. Not locked: the simulator holds its lock."""

    def __init__(self) -> None:
        self.key = secrets.token_urlsafe(32)
        self.codes: dict[str, dict[str, Any]] = {}
        self.authorizations: dict[str, dict[str, Any]] = {}
        self.access: dict[str, dict[str, Any]] = {}  # jti -> {"authorization", "exp"}
        self.refresh: dict[str, dict[str, Any]] = {}  # jti -> {"authorization", "exp", "spent"}

    def clear(self) -> None:
        self.codes.clear()
        self.authorizations.clear()
        self.access.clear()
        self.refresh.clear()

    # -- pairing

    def authorise(
        self,
        params: Mapping[str, str],
        cfg: Mapping[str, Any],
        *,
        now: float,
        gateway: str,
        folders: list[str],
    ) -> Response:
        client_id, redirect_uri = params.get("client_id") or "", params.get("redirect_uri") or ""
        if not client_id or not redirect_uri or not params.get("state"):
            return _message(400, MISSING_PARAMETERS)
        client = cfg["clients"].get(client_id)
        if client is None:
            return _message(404, "Could not associate the requested url with an customer application")
        if not client.get("enabled", True):
            return _message(403, DISABLED)
        allowed = client.get("redirect_uris") or []
        if allowed and redirect_uri not in allowed:
            return _message(400, "The redirect_uri is not registered for this application")
        answer: dict[str, str] = {}
        if cfg["approve"] == "deny":
            answer = {"error": "access_denied", "error_description": NOT_ACCEPTED, "state": params["state"]}
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": params.get("scope") or "",
                "customer": params.get("customer") or "",
                "folders": list(cfg["approved_folders"] or folders),
                "expires": now + float(cfg["code_lifetime_s"]),
            }
            answer = {"authorizationCode": code, "state": params["state"]}
            endpoint = cfg["callback_endpoint"]
            if endpoint:
                answer["endpoint"] = gateway if endpoint == "self" else str(endpoint)
        separator = "&" if "?" in redirect_uri else "?"
        location = f"{redirect_uri}{separator}{urlencode(answer)}"
        return Response(
            302,
            f'<html><body>Redirecting to <a href="{location}">{redirect_uri}</a></body></html>'.encode(),
            {"Location": location, "Cache-Control": "no-store"},
            "text/html; charset=utf-8",
        )

    # -- token endpoint

    def token(
        self, params: Mapping[str, str], cfg: Mapping[str, Any], *, now: float, gateway: str
    ) -> Response:
        grant = params.get("grant_type") or ""
        if grant not in ("authorization_code", "refresh_token"):
            return _message(400, "Invalid grant type")
        required = ("code", "redirect_uri") if grant == "authorization_code" else ("refresh_token",)
        if any(not params.get(k) for k in ("client_id", "client_secret", *required)):
            return _message(400, MISSING_PARAMETERS)
        client = cfg["clients"].get(params["client_id"])
        if client is None or not secrets.compare_digest(str(client["secret"]), params["client_secret"]):
            return _message(401, "Unauthorised")
        if not client.get("enabled", True):
            return _message(403, DISABLED)
        if grant == "authorization_code":
            return self._exchange(params, cfg, now=now, gateway=gateway)
        return self._refresh(params, cfg, now=now, gateway=gateway)

    def _exchange(
        self, params: Mapping[str, str], cfg: Mapping[str, Any], *, now: float, gateway: str
    ) -> Response:
        code = self.codes.get(params["code"])
        if code is None or code["client_id"] != params["client_id"]:
            return _message(403, NOT_FOUND)
        del self.codes[params["code"]]  # single use, whatever happens next
        if code["expires"] <= now:
            return _message(403, EXPIRED)
        if code["redirect_uri"] != params["redirect_uri"]:
            return _message(400, "The redirect_uri does not match the authorization request")
        if cfg["one_pair_per_customer"]:
            for old in self.authorizations.values():
                if (
                    not old["revoked"]
                    and old["client_id"] == code["client_id"]
                    and old["customer"] == code["customer"]
                ):
                    old["revoked"] = True
        authorization = {
            "id": f"auth-{uuid.uuid4().hex[:12]}",
            "client_id": code["client_id"],
            "customer": code["customer"],
            "scope": code["scope"],
            "folders": code["folders"],
            "created_at": now,
            "revoked": False,
            "refreshes": 0,
        }
        self.authorizations[authorization["id"]] = authorization
        refresh_exp = now + float(cfg["refresh_token_lifetime_s"])
        return self._pair(authorization, cfg, now=now, gateway=gateway, refresh_exp=refresh_exp)

    def _refresh(
        self, params: Mapping[str, str], cfg: Mapping[str, Any], *, now: float, gateway: str
    ) -> Response:
        claims = self._claims(params["refresh_token"], "refresh")
        record = self.refresh.get(claims.get("jti", "")) if claims else None
        authorization = self.authorizations.get(record["authorization"]) if record else None
        if record is None or authorization is None or authorization["client_id"] != params["client_id"]:
            return _message(403, NOT_FOUND)
        if authorization["revoked"]:
            return _message(403, NOT_FOUND)
        if record["spent"]:
            if cfg["refresh_reuse_revokes"]:
                authorization["revoked"] = True
            return _message(403, NOT_FOUND)
        if record["exp"] <= now:
            return _message(403, EXPIRED)
        record["spent"] = True  # rotation: this refresh token never works again
        authorization["refreshes"] += 1
        refresh_exp = (
            record["exp"]
            if cfg["rotated_refresh_keeps_expiry"]
            else now + float(cfg["refresh_token_lifetime_s"])
        )
        return self._pair(authorization, cfg, now=now, gateway=gateway, refresh_exp=refresh_exp)

    def _pair(
        self,
        authorization: dict[str, Any],
        cfg: Mapping[str, Any],
        *,
        now: float,
        gateway: str,
        refresh_exp: float,
    ) -> Response:
        access_life = float(cfg["access_token_lifetime_s"])
        access_exp = now + access_life
        access_jti, refresh_jti = uuid.uuid4().hex, uuid.uuid4().hex
        common = {
            "iss": gateway,
            "aud": gateway,
            "sub": authorization["id"],
            "azp": authorization["client_id"],
            "region": cfg["region"],
            "scopes": authorization["scope"],
            "iat": int(now),
        }
        access = jwt.encode(
            {**common, "exp": int(access_exp), "jti": access_jti, "typ": "access"},
            self.key,
            algorithm="HS256",
        )
        refresh = jwt.encode(
            {**common, "exp": int(refresh_exp), "jti": refresh_jti, "typ": "refresh"},
            self.key,
            algorithm="HS256",
        )
        self.access[access_jti] = {"authorization": authorization["id"], "exp": access_exp}
        self.refresh[refresh_jti] = {"authorization": authorization["id"], "exp": refresh_exp, "spent": False}
        refresh_life = max(0.0, refresh_exp - now)
        if cfg["token_fields"] == "camel":  # noqa: S105 - a setting, not a secret
            body: dict[str, Any] = {"accessToken": access, "refreshToken": refresh, "tokenType": "Bearer"}
            if cfg["include_expires_in"]:
                body.update(expiresIn=_seconds(access_life), refreshTokenExpiresIn=_seconds(refresh_life))
        else:
            body = {"access_token": access, "refresh_token": refresh, "token_type": "Bearer"}
            if cfg["include_expires_in"]:
                body.update(expires_in=_seconds(access_life), refresh_token_expires_in=_seconds(refresh_life))
        body["scope"] = authorization["scope"]
        return json_response(200, body, {"Cache-Control": "no-store"})

    def _claims(self, token: str, kind: str) -> dict[str, Any] | None:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_aud": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            return None
        return claims if claims.get("typ") == kind else None

    # -- resource access

    def check_access(self, token: str, *, now: float) -> dict[str, Any] | None:
        """The authorization behind a usable access token, or None (unknown, expired, revoked)."""
        claims = self._claims(token, "access") if token else None
        record = self.access.get(claims.get("jti", "")) if claims else None
        if record is None or record["exp"] <= now:
            return None
        authorization = self.authorizations.get(record["authorization"])
        if authorization is None or authorization["revoked"]:
            return None
        return authorization

    # -- control

    def _selected(self, selector: Mapping[str, Any]) -> list[dict[str, Any]]:
        unknown = set(selector) - {"authorization", "client_id", "customer"}
        if unknown:
            raise ValueError(f"unknown selector(s): {', '.join(sorted(unknown))}")
        return [
            a
            for a in self.authorizations.values()
            if all(a[{"authorization": "id"}.get(k, k)] == v for k, v in selector.items() if v is not None)
        ]

    def revoke(self, selector: Mapping[str, Any]) -> int:
        chosen = [a for a in self._selected(selector) if not a["revoked"]]
        for authorization in chosen:
            authorization["revoked"] = True
        return len(chosen)

    def expire(self, selector: Mapping[str, Any], *, access: bool, refresh: bool, now: float) -> int:
        """Make the selected authorizations' live tokens expired (server side; their ``exp`` claims stay)."""
        ids = {a["id"] for a in self._selected(selector)}
        count = 0
        for table, wanted in ((self.access, access), (self.refresh, refresh)):
            if not wanted:
                continue
            for record in table.values():
                if record["authorization"] in ids and record["exp"] > now:
                    record["exp"] = now - 1
                    count += 1
        return count

    def summary(self, *, now: float) -> list[dict[str, Any]]:
        out = []
        for a in self.authorizations.values():
            live_access = [
                r for r in self.access.values() if r["authorization"] == a["id"] and r["exp"] > now
            ]
            live_refresh = [
                r
                for r in self.refresh.values()
                if r["authorization"] == a["id"] and r["exp"] > now and not r["spent"]
            ]
            out.append(
                {
                    "id": a["id"],
                    "client_id": a["client_id"],
                    "customer": a["customer"],
                    "scope": a["scope"],
                    "folders": a["folders"],
                    "revoked": a["revoked"],
                    "refreshes": a["refreshes"],
                    "live_access_tokens": len(live_access),
                    "live_refresh_tokens": len(live_refresh),
                    "refresh_expires_in_s": (
                        round(max(r["exp"] for r in live_refresh) - now, 3) if live_refresh else None
                    ),
                }
            )
        return out


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 3)


__all__ = [
    "ENDPOINT_HEADER",
    "OAUTH_DEFAULTS",
    "SCHEMA",
    "FilterError",
    "InvalidToken",
    "OAuthGateway",
    "Operation",
    "bearer",
    "check_auth_config",
    "check_connected_app_token",
    "connection",
    "entry_node",
    "filter_matches",
    "gateway_error",
    "injected_error",
    "input_to_body",
    "invalid_token",
    "merge_oauth",
    "parse_filter",
    "read_operation",
    "request_errors",
    "run_operation",
    "token_params",
    "unauthorised",
]
