"""Sage X3 GraphQL ("Xtrem", ``/xtrem/api``) client: create a GL journal entry through the tenant's own mutation, find
one by our reference, test the connection. Same interface as the api1 client (:mod:`integrations.sagex3.rest`).

Why so much is configurable: X3 ships no standard create mutation for journal entries (``x3Finance.journalEntry`` is
read-only; a partner builds one with X3 Builder "API operations", docs/reference/sagex3.md §6.2), and the
standard node has no property holding our reference. So the mutation document, the mapping from our :class:`Entry` to
its variables, the lookup query and where the answers carry the document number form a per-tenant *GraphQL mapping*.
``DEFAULT_GRAPHQL_MAPPING`` is the documented starting point (docs/x3-graphql.md); :func:`graphql_mapping_problems`
checks a mapping with graphql-core when it is saved, and the client refuses to call X3 with an invalid one.

Variables templates are JSON. A string that is exactly ``"${name}"`` becomes the typed value (amounts are JSON numbers
with their exact digits, line numbers and signs integers); ``"${name:text}"`` forces text; placeholders inside a
longer string are substituted as text. ``{"$lines": {...row...}, "$amount_style": "sign_amount"}`` expands to one row
per line (``debit_credit``) or per non-zero side (``sign_amount``), as the api1 mapping does.

Authentication is a :class:`TokenSource`: OAuth2 access tokens from the cloud gateway (stored and refreshed by
connector/x3auth.py) or connected-app JWTs signed here (:mod:`.connected_app`). On a 401 the client asks its source for
a new token once and retries the call once; a second 401 is an :class:`AuthenticationError`. A 401 means the gateway
or X3 refused the request before running it, so retrying even the create mutation cannot duplicate an entry.

Contract: every method returns typed data or raises an :class:`~integrations.errors.IntegrationError`
(:func:`classify_graphql_response`); every HTTP call, token calls included, is appended to ``call_log``; tokens and
secrets never appear in messages or in ``call_log``.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from graphql import GraphQLError, parse
from graphql.language import (
    DocumentNode,
    FieldNode,
    InlineFragmentNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    Visitor,
    visit,
)

from integrations.errors import (
    AuthenticationError,
    BadResponseError,
    IntegrationError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from integrations.http import CallRecord, new_session, send

from .accounts import (
    MAX_ACCOUNTS,
    MAX_PAGES,
    Account,
    accounts_from_records,
    chart_query_problems,
    effective_chart_query,
)
from .calls import RecordsCalls
from .diagnoses import collect_diagnoses, error_diagnoses, join_messages
from .rest import AMOUNT_STYLES, _retry_after, _snippet, dumps, json_amount
from .types import Entry, EntryLine, PostedEntry

RESPONSE_LOG_LIMIT = 10_000
ENDPOINT_HEADER = "x-xtrem-endpoint"
LINES_KEY = "$lines"
STYLE_KEY = "$amount_style"
# A reference that find_entry puts into a filter string must not be able to change the filter's meaning.
SAFE_REFERENCE_RE = re.compile(r"^[A-Za-z0-9_.:/ -]{1,60}$")
TEST_REFERENCE = "CONNECTION-TEST"

HEADER_PLACEHOLDERS = (
    "entry_type",
    "journal",
    "site",
    "accounting_date",
    "currency",
    "description",
    "reference",
    "source_document",
)
LINE_PLACEHOLDERS = ("line_number", "account", "line_description", "debit", "credit", "sign", "amount")
_STYLE_ONLY = {"debit_credit": {"debit", "credit"}, "sign_amount": {"sign", "amount"}}
LOOKUP_PLACEHOLDERS = ("reference",)
CONVERSIONS = ("text",)
_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}")
_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# The default mapping. Every name in it is NOT CONFIRMED: X3 has no standard create mutation, so the operation, its
# input type and field names are whatever the partner's X3 Builder operation exposes. The line field names follow the
# read-only journalEntryLine node (lineNumber, account, sign, transactionAmount, lineDescription); internalReference
# and sourceDocument stand for GACCENTRY.REFINT and BPRVCR. Adapt them to the customer's schema.
DEFAULT_MUTATION = """\
mutation CreateJournalEntry($data: JournalEntry_Input!) {
  x3Finance {
    journalEntry {
      create(data: $data) {
        journalEntryType
        journalEntryNumber
      }
    }
  }
}
"""
DEFAULT_VARIABLES: dict[str, Any] = {
    "data": {
        "journalEntryType": "${entry_type}",
        "site": "${site}",
        "journal": "${journal}",
        "accountingDate": "${accounting_date}",
        "transactionCurrency": "${currency}",
        "description": "${description}",
        "internalReference": "${reference}",
        "sourceDocument": "${source_document}",
        "journalEntryLines": {
            LINES_KEY: {
                "lineNumber": "${line_number}",
                "account": "${account}",
                "lineDescription": "${line_description}",
                "sign": "${sign}",
                "transactionAmount": "${amount}",
            },
            STYLE_KEY: "sign_amount",
        },
    }
}
# Filters in X3 GraphQL are Mongo-like JSON strings (filter: "{code:'AE003'}", docs/reference/sagex3.md §6.3).
DEFAULT_LOOKUP_QUERY = """\
query FindJournalEntry($filter: String) {
  x3Finance {
    journalEntry {
      query(filter: $filter, first: 10) {
        edges {
          node {
            journalEntryType
            journalEntryNumber
            internalReference
          }
        }
      }
    }
  }
}
"""
DEFAULT_GRAPHQL_MAPPING: dict[str, Any] = {
    "mutation": DEFAULT_MUTATION,
    "variables": DEFAULT_VARIABLES,
    # Dotted path under "data" to the document number X3 assigned, in the mutation's answer.
    "document_number_path": "x3Finance.journalEntry.create.journalEntryNumber",
    "lookup_query": DEFAULT_LOOKUP_QUERY,
    "lookup_variables": {"filter": "{internalReference: '${reference}'}"},
    # Dotted path under "data" to the list of found entries (Relay edges are unwrapped: edge.node).
    "lookup_nodes_path": "x3Finance.journalEntry.query.edges",
    "lookup_document_number_field": "journalEntryNumber",
    # The node property holding our reference, to prove the filter was applied. Blank: not checked.
    "lookup_reference_field": "internalReference",
    "date_format": "%Y-%m-%d",
}


class GraphQLMappingError(PermanentError):
    """The tenant's GraphQL mapping is invalid; nothing was sent to X3."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid Sage X3 GraphQL mapping: " + "; ".join(problems))
        self.problems = problems


CallLog = Callable[[CallRecord], None]


class TokenSource(Protocol):
    """Where bearer tokens come from. ``log`` receives a :class:`CallRecord` for any HTTP call the source makes."""

    description: str

    def token(self, *, log: CallLog | None = None) -> str:
        """A token believed to be valid (the source may renew an expired one first)."""
        ...

    def renew(self, rejected: str, *, log: CallLog | None = None) -> str:
        """X3 answered 401 to ``rejected``: return a newer token or raise (e.g. ``ReauthorizationRequired``)."""
        ...


# --- mapping ------------------------------------------------------------------------------------------------------


def effective_graphql_mapping(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``DEFAULT_GRAPHQL_MAPPING`` with the tenant's overrides; ``None``, ``""`` and ``{}`` keep the default."""
    merged = copy.deepcopy(DEFAULT_GRAPHQL_MAPPING)
    for key, value in (overrides or {}).items():
        if value is None or (isinstance(value, str | dict) and not value and key != "lookup_reference_field"):
            continue
        merged[key] = copy.deepcopy(value)
    return merged


def validate_graphql_mapping(mapping: Mapping[str, Any]) -> list[str]:
    """Human-readable problems with a full (effective) mapping; empty means usable."""
    return [
        f"{key}: {message}"
        for key, messages in graphql_mapping_problems(mapping).items()
        for message in messages
    ]


def graphql_mapping_problems(mapping: Mapping[str, Any]) -> dict[str, list[str]]:
    """Problems keyed by mapping key (``mutation``, ``variables``, …), so a form can show each next to its field."""
    problems: dict[str, list[str]] = {}

    def add(key: str, message: str) -> None:
        problems.setdefault(key, []).append(message)

    if not isinstance(mapping, Mapping):
        return {"mapping": ["the mapping must be a JSON object"]}
    for key in sorted(str(k) for k in mapping if k not in DEFAULT_GRAPHQL_MAPPING):
        add("mapping", f"unknown key {key!r} (known: {', '.join(DEFAULT_GRAPHQL_MAPPING)})")

    mutation = _operation(mapping.get("mutation"), OperationType.MUTATION, "mutation", add)
    if mutation is not None:
        _check_template_against(mutation, mapping.get("variables"), "variables", add)
        path = mapping.get("document_number_path")
        if isinstance(path, str) and _PATH_RE.match(path) and not _selects(mutation, path.split(".")):
            add("document_number_path", f"the mutation does not select {path}")
    _check_variables_template(mapping.get("variables"), add)

    lookup = _operation(mapping.get("lookup_query"), OperationType.QUERY, "lookup_query", add)
    lookup_vars = mapping.get("lookup_variables")
    if lookup is not None:
        _check_template_against(lookup, lookup_vars, "lookup_variables", add)
    if not isinstance(lookup_vars, Mapping):
        add("lookup_variables", "must be a JSON object of variable name -> value template")
    else:
        names = _template_placeholders(lookup_vars)
        for name in sorted(names - set(LOOKUP_PLACEHOLDERS)):
            add("lookup_variables", f"unknown placeholder ${{{name}}}: the lookup only knows ${{reference}}")
        if "reference" not in names:
            add("lookup_variables", "must use ${reference}, or the lookup would not filter by our reference")
        if _contains_key(lookup_vars, LINES_KEY):
            add("lookup_variables", f"{LINES_KEY} is only allowed in the mutation variables")

    for key, optional in (
        ("document_number_path", False),
        ("lookup_nodes_path", False),
        ("lookup_document_number_field", False),
        ("lookup_reference_field", True),
    ):
        value = mapping.get(key)
        if optional and value in ("", None):
            continue
        if not isinstance(value, str) or not _PATH_RE.match(value):
            add(key, f"must be a dotted field path such as a.b.c, got {value!r}")
    if lookup is not None and all(
        isinstance(mapping.get(k), str) and _PATH_RE.match(mapping[k])
        for k in ("lookup_nodes_path", "lookup_document_number_field")
    ):
        node_path = _node_path(mapping["lookup_nodes_path"]) + mapping["lookup_document_number_field"].split(
            "."
        )
        if not _selects(lookup, node_path):
            add("lookup_query", f"the lookup query does not select {'.'.join(node_path)}")

    date_format = mapping.get("date_format")
    if not isinstance(date_format, str) or not _date_format_works(date_format):
        add("date_format", f"{date_format!r} must be a strftime format that includes the date, e.g. %Y-%m-%d")
    return problems


def _operation(
    source: Any, kind: OperationType, key: str, add: Callable[[str, str], None]
) -> OperationDefinitionNode | None:
    if not isinstance(source, str) or not source.strip():
        add(key, "a GraphQL document is required")
        return None
    try:
        document: DocumentNode = parse(source)
    except GraphQLError as exc:
        add(key, f"GraphQL syntax error: {exc.message} ({_location(exc)})")
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        add(key, f"must contain exactly one operation, found {len(operations)}")
        return None
    operation = operations[0]
    if operation.operation != kind:
        add(key, f"must be a {kind.value}, not a {operation.operation.value}")
        return None
    if len(document.definitions) != 1:
        add(key, "fragments are not supported: inline the fields")
        return None
    return operation


def _location(exc: GraphQLError) -> str:
    if exc.locations:
        loc = exc.locations[0]
        return f"line {loc.line}, column {loc.column}"
    return "unknown position"


class _VariableUses(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.used: set[str] = set()

    def enter_variable_definition(self, *_args: Any) -> Any:
        return Visitor.SKIP  # the definition's own $name is not a use

    def enter_variable(self, node: VariableNode, *_args: Any) -> None:
        self.used.add(node.name.value)


def _check_template_against(
    operation: OperationDefinitionNode, template: Any, key: str, add: Callable[[str, str], None]
) -> None:
    """The operation's variables and the template must agree: no undefined use, no missing required value."""
    defined = {d.variable.name.value: d for d in operation.variable_definitions or ()}
    uses = _VariableUses()
    visit(operation, uses)
    doc_key = "mutation" if key == "variables" else "lookup_query"
    for name in sorted(uses.used - set(defined)):
        add(doc_key, f"uses ${name}, which the operation does not declare")
    if not isinstance(template, Mapping):
        return
    for name in sorted(set(template) - set(defined)):
        add(key, f"sets {name!r}, which the operation does not declare")
    for name, definition in defined.items():
        required = isinstance(definition.type, NonNullTypeNode) and definition.default_value is None
        if required and name not in template:
            add(key, f"must set the required variable {name!r}")


def _check_variables_template(template: Any, add: Callable[[str, str], None]) -> None:
    if not isinstance(template, Mapping):
        add("variables", "must be a JSON object of variable name -> value template")
        return
    directives: list[Mapping[str, Any]] = []

    def walk(node: Any, in_lines: bool, style: str | None) -> None:
        if isinstance(node, str):
            for name, conversion in _PLACEHOLDER_RE.findall(node):
                allowed = set(HEADER_PLACEHOLDERS) | (set(LINE_PLACEHOLDERS) if in_lines else set())
                if name not in allowed:
                    where = "a line" if in_lines else "the entry header (line fields only inside $lines)"
                    add("variables", f"unknown placeholder ${{{name}}} in {where}")
                elif in_lines and style in _STYLE_ONLY:
                    other = next(s for s in AMOUNT_STYLES if s != style)
                    if name in _STYLE_ONLY[other]:
                        add("variables", f"${{{name}}} belongs to amount style {other}, not {style}")
                if conversion and conversion not in CONVERSIONS:
                    add("variables", f"unknown conversion :{conversion} (known: {', '.join(CONVERSIONS)})")
        elif isinstance(node, Mapping):
            if LINES_KEY in node:
                if in_lines:
                    add("variables", f"{LINES_KEY} cannot be nested")
                    return
                directives.append(node)
                extra = sorted(str(k) for k in node if k not in (LINES_KEY, STYLE_KEY))
                if extra:
                    add(
                        "variables",
                        f"a {LINES_KEY} object takes only {LINES_KEY} and {STYLE_KEY}, not {extra}",
                    )
                line_style = node.get(STYLE_KEY, "debit_credit")
                if line_style not in AMOUNT_STYLES:
                    add("variables", f"{STYLE_KEY} {line_style!r}: use one of {', '.join(AMOUNT_STYLES)}")
                    line_style = None
                row = node[LINES_KEY]
                if not isinstance(row, Mapping):
                    add("variables", f"{LINES_KEY} must be an object: the template of one line")
                    return
                walk(row, True, line_style)
                return
            for key, value in node.items():
                if str(key).startswith("$") and key != LINES_KEY:
                    add("variables", f"unknown directive {key!r}")
                walk(value, in_lines, style)
        elif isinstance(node, list):
            for item in node:
                walk(item, in_lines, style)

    walk(template, False, None)
    if len(directives) != 1:
        add(
            "variables",
            f"must contain exactly one {LINES_KEY} object (the entry lines), found {len(directives)}",
        )


def _template_placeholders(template: Any) -> set[str]:
    if isinstance(template, str):
        return {name for name, _ in _PLACEHOLDER_RE.findall(template)}
    if isinstance(template, Mapping):
        return set().union(*(_template_placeholders(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(_template_placeholders(v) for v in template)) if template else set()
    return set()


def _contains_key(node: Any, key: str) -> bool:
    if isinstance(node, Mapping):
        return key in node or any(_contains_key(v, key) for v in node.values())
    if isinstance(node, list):
        return any(_contains_key(v, key) for v in node)
    return False


def _selects(operation: OperationDefinitionNode, path: list[str]) -> bool:
    """Does the operation's selection set contain ``path`` (response keys: alias or field name)?"""
    selection: SelectionSetNode | None = operation.selection_set
    for segment in path:
        if selection is None:
            return False
        found = _find_field(selection, segment)
        if found is None:
            return False
        selection = found.selection_set
    return True


def _find_field(selection_set: SelectionSetNode, key: str) -> FieldNode | None:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            response_key = selection.alias.value if selection.alias else selection.name.value
            if response_key == key:
                return selection
        elif isinstance(selection, InlineFragmentNode):
            found = _find_field(selection.selection_set, key)
            if found is not None:
                return found
    return None


def _node_path(nodes_path: str) -> list[str]:
    parts = nodes_path.split(".")
    return [*parts, "node"] if parts[-1] == "edges" else parts


def _date_format_works(date_format: str) -> bool:
    try:
        first, second = date(2024, 1, 31).strftime(date_format), date(2025, 12, 1).strftime(date_format)
    except ValueError:
        return False
    return bool(first) and first != second


# --- rendering ----------------------------------------------------------------------------------------------------


def render_template(
    template: Any, values: Mapping[str, Any], *, lines: Iterable[Mapping[str, Any]] = ()
) -> Any:
    """Fill a variables template. ``lines`` are the rows' own values (``line_number``, ``account``, …)."""
    if isinstance(template, str):
        return _render_string(template, values)
    if isinstance(template, Mapping):
        if LINES_KEY in template:
            return [render_template(template[LINES_KEY], {**values, **row}) for row in lines]
        return {key: render_template(value, values, lines=lines) for key, value in template.items()}
    if isinstance(template, list):
        return [render_template(item, values, lines=lines) for item in template]
    return template


def _render_string(text: str, values: Mapping[str, Any]) -> Any:
    whole = _PLACEHOLDER_RE.fullmatch(text)
    if whole:
        value = values[whole.group(1)]
        return _as_text(value) if whole.group(2) == "text" else value
    return _PLACEHOLDER_RE.sub(lambda m: _as_text(values[m.group(1)]), text)


def _as_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    return "" if value is None else str(value)


def _line_rows(lines: Iterable[EntryLine], style: str, currency: str) -> list[dict[str, Any]]:
    """Line values per row, numbered in order. ``sign_amount``: a row per non-zero side, the amount exactly as given
    (a storno amount stays negative on its own side, never flipped to the other sign)."""
    rows: list[dict[str, Any]] = []
    for line in lines:
        base = {"account": line.account, "line_description": line.description}
        if style == "debit_credit":
            rows.append(
                {
                    **base,
                    "debit": json_amount(line.debit, currency),
                    "credit": json_amount(line.credit, currency),
                }
            )
            continue
        for sign, amount in ((1, line.debit), (-1, line.credit)):
            if not amount.is_zero():
                rows.append({**base, "sign": sign, "amount": json_amount(amount, currency)})
    return [{"line_number": number, **row} for number, row in enumerate(rows, start=1)]


def _lines_style(template: Any) -> str:
    if isinstance(template, Mapping):
        if LINES_KEY in template:
            return str(template.get(STYLE_KEY, "debit_credit"))
        for value in template.values():
            style = _lines_style(value)
            if style:
                return style
    elif isinstance(template, list):
        for value in template:
            style = _lines_style(value)
            if style:
                return style
    return ""


def _dig(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


# --- error classification -----------------------------------------------------------------------------------------


def graphql_error_messages(payload: Any) -> list[str]:
    """The messages of ``errors[]``, with their path, plus any business diagnoses X3 put in ``extensions``."""
    errors = payload.get("errors") if isinstance(payload, Mapping) else None
    if not isinstance(errors, list):
        return []
    messages: list[str] = []
    for error in errors:
        if not isinstance(error, Mapping):
            messages.append(_snippet(str(error)))
            continue
        text = " ".join(str(error.get("message") or "(no message)").split())
        path = error.get("path")
        if isinstance(path, list) and path:
            text += f" (at {'.'.join(str(p) for p in path)})"
        extensions = error.get("extensions")
        if isinstance(extensions, Mapping):
            for diag in extensions.get("diagnoses") or []:
                if isinstance(diag, Mapping) and diag.get("message"):
                    text += f"; {' '.join(str(diag['message']).split())}"
        if text not in messages:
            messages.append(text[:500])
    return messages


def classify_graphql_response(
    status: int,
    payload: Any,
    *,
    text: str,
    is_write: bool,
    where: str,
    headers: Mapping[str, str] | None = None,
) -> IntegrationError | None:
    """Map a GraphQL answer onto our error hierarchy; ``None`` means "success, read ``data``".

    * 2xx with ``errors[]`` (with or without partial ``data``): :class:`PermanentError` carrying X3's messages. On
      the create mutation the outcome is unknown (X3 may have saved part of it), so the posting asks X3 for our
      reference before any re-post.
    * 2xx without ``data``: :class:`BadResponseError` (retryable; unknown outcome on a write).
    * 401 ``{"message": "Unauthorised"}`` or a connected-app ``Error NN: Invalid token``, and 403:
      :class:`AuthenticationError` (the client has already renewed the token once on a 401).
    * 400 with ``errors[]`` (the document or variables were refused before execution): :class:`PermanentError`.
    * 500 with ``$severity``/``$message`` (the gateway style), other 5xx and 408: :class:`RetryableError` with X3's
      message; 429: :class:`RateLimitedError`. On a write the outcome is unknown.
    * 404: :class:`PermanentError` (wrong GraphQL URL or endpoint). Anything else: :class:`PermanentError`.

    Closed by default: only the statuses listed as transient are retried.
    """
    graphql_errors = graphql_error_messages(payload)
    diagnoses = collect_diagnoses(payload) if isinstance(payload, Mapping) and "errors" not in payload else []
    x3_says = "; ".join(graphql_errors) or join_messages(error_diagnoses(diagnoses) or diagnoses)
    if not x3_says and isinstance(payload, Mapping) and isinstance(payload.get("message"), str):
        x3_says = payload["message"]
    detail = f": {x3_says}" if x3_says else (f": {_snippet(text)}" if text.strip() else "")
    common: dict[str, Any] = {"status_code": status, "response_body": text[:2000]}

    if 200 <= status < 300:
        if not isinstance(payload, Mapping):
            return BadResponseError(
                f"X3 answered HTTP {status} without a GraphQL JSON object ({where}): {_snippet(text)!r}",
                outcome_unknown=is_write,
                **common,
            )
        if graphql_errors:
            partial = " (with partial data)" if payload.get("data") else ""
            return PermanentError(
                f"X3 GraphQL errors{partial} ({where}): {'; '.join(graphql_errors)}",
                outcome_unknown=is_write,
                **common,
            )
        if not isinstance(payload.get("data"), Mapping):
            return BadResponseError(
                f"X3 answered HTTP {status} without GraphQL data ({where}): {_snippet(text)!r}",
                outcome_unknown=is_write,
                **common,
            )
        return None
    if status in (401, 403):
        what = "rejected the token" if status == 401 else "refused access (check the user's rights)"
        return AuthenticationError(f"X3 {what} (HTTP {status}, {where}){detail}", **common)
    if status == 404:
        return PermanentError(
            f"X3 answered 404 Not Found ({where}): check the GraphQL URL and endpoint{detail}", **common
        )
    if status == 429:
        return RateLimitedError(
            f"X3 rate limit (HTTP 429, {where}){detail}",
            outcome_unknown=is_write,
            retry_after=_retry_after(headers),
            **common,
        )
    if status == 408 or 500 <= status < 600:
        return RetryableError(
            f"X3 server error (HTTP {status}, {where}){detail}",
            outcome_unknown=is_write,
            retry_after=_retry_after(headers),
            unavailable=True,
            **common,
        )
    if status == 400 and graphql_errors:
        return PermanentError(
            f"X3 refused the GraphQL request ({where}): {'; '.join(graphql_errors)}", **common
        )
    return PermanentError(f"X3 answered HTTP {status} ({where}){detail}", **common)


# --- the client ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphQLConfig:
    """One X3 GraphQL connection: the URL to POST to and the endpoint (folder) named in ``x-xtrem-endpoint``."""

    url: str
    endpoint: str
    mapping: Mapping[str, Any] = field(default_factory=dict)  # tenant overrides of DEFAULT_GRAPHQL_MAPPING
    timeout: tuple[float, float] = (5.0, 60.0)
    verify: bool | str = True

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("X3 GraphQL URL must look like https://x3.example.com:8124/xtrem/api")
        if parts.username is not None or parts.password is not None:
            raise ValueError("X3 GraphQL URL must not contain a user name or password")
        if not self.endpoint.strip():
            raise ValueError("X3 endpoint (folder) is required")


class SageX3GraphQLClient(RecordsCalls):
    """GraphQL client for one X3 endpoint. Not thread-safe (``call_log`` is a plain list): one client per posting."""

    def __init__(
        self, config: GraphQLConfig, tokens: TokenSource, *, session: requests.Session | None = None
    ) -> None:
        self.config = config
        self.tokens = tokens
        self.mapping = effective_graphql_mapping(config.mapping)
        self.mapping_problems = validate_graphql_mapping(self.mapping)
        self.call_log: list[CallRecord] = []
        self._session = session if session is not None else new_session(verify=config.verify)
        self._secrets: set[str] = set()

    # -- public operations --

    def build_variables(self, entry: Entry) -> dict[str, Any]:
        """The mutation's variables for ``entry`` (amounts as ``Decimal``, written as exact JSON numbers)."""
        self._require_valid_mapping()
        values: dict[str, Any] = {
            "entry_type": entry.entry_type,
            "journal": entry.journal,
            "site": entry.site,
            "accounting_date": entry.accounting_date.strftime(self.mapping["date_format"]),
            "currency": entry.currency,
            "description": entry.description,
            "reference": entry.reference,
            "source_document": entry.source_document,
        }
        rows = _line_rows(entry.lines, _lines_style(self.mapping["variables"]), entry.currency)
        if not rows:
            raise PermanentError(f"entry {entry.reference} has no non-zero lines to post")
        return render_template(self.mapping["variables"], values, lines=rows)

    def preview(self, entry: Entry) -> str:
        return dumps({"query": self.mapping["mutation"], "variables": self.build_variables(entry)})

    def create_entry(self, entry: Entry) -> PostedEntry:
        """Run the tenant's create mutation; return the document number X3 assigned.

        Raises ``BadResponseError(outcome_unknown=True)`` when X3 answers without a document number at the configured
        path: the entry may exist, so the caller must look it up with :meth:`find_entry` before trying again.
        """
        variables = self.build_variables(entry)
        data = self._call(self.mapping["mutation"], variables, is_write=True)
        path = self.mapping["document_number_path"]
        number = _dig(data, path)
        if not isinstance(number, str | int) or isinstance(number, bool) or not str(number).strip():
            raise self._failed(
                BadResponseError(
                    f"X3 ran the create mutation for {entry.reference} but data.{path} holds no document number: "
                    "it may have been created; look it up by reference before posting again",
                    outcome_unknown=True,
                )
            )
        return PostedEntry(document_number=str(number).strip(), reference=entry.reference, raw=dict(data))

    def find_entry(self, reference: str) -> PostedEntry | None:
        """The X3 entry carrying our ``reference``, or ``None``.

        Raises :class:`DuplicateEntryError` when several entries carry it, and a :class:`PermanentError` when X3
        returns an entry with another reference (the filter was ignored, so the lookup cannot be trusted).
        """
        nodes = self._lookup(reference)
        number_field = self.mapping["lookup_document_number_field"]
        ref_field = self.mapping["lookup_reference_field"]
        found: list[PostedEntry] = []
        for node in nodes:
            number = _dig(node, number_field)
            if number is None or not str(number).strip():
                raise self._failed(
                    BadResponseError(f"X3 lookup for {reference} returned an entry without {number_field}")
                )
            if ref_field:
                returned = _dig(node, ref_field)
                if returned is not None and str(returned).strip().casefold() != reference.strip().casefold():
                    raise self._failed(
                        PermanentError(
                            f"X3 lookup for {ref_field} = {reference} returned entry {number} with {ref_field} = "
                            f"{returned}: the filter was not applied, so the duplicate check cannot be trusted"
                        )
                    )
            uid = node.get("_id") if isinstance(node, Mapping) else None
            found.append(
                PostedEntry(
                    document_number=str(number).strip(),
                    reference=reference,
                    uuid=str(uid) if uid else None,
                    raw=dict(node),
                )
            )
        return self._one_or_none(found, f"reference {reference}")

    def test_connection(self) -> str:
        """A harmless authenticated read: the lookup query for a reference no order has. Returns a description."""
        nodes = self._lookup(TEST_REFERENCE)
        host = urlsplit(self.config.url).netloc
        return (
            f"Connected to {host} ({self.tokens.description}), endpoint {self.config.endpoint}: "
            f"the lookup query answered ({len(nodes)} entr{'y' if len(nodes) == 1 else 'ies'} for a test reference)."
        )

    # -- internals --

    def _lookup(self, reference: str) -> list[Mapping[str, Any]]:
        self._require_valid_mapping()
        if not SAFE_REFERENCE_RE.match(reference):
            raise PermanentError(
                f"reference {reference!r} has characters that cannot be put into an X3 filter safely"
            )
        variables = render_template(self.mapping["lookup_variables"], {"reference": reference})
        data = self._call(self.mapping["lookup_query"], variables, is_write=False)
        path = self.mapping["lookup_nodes_path"]
        nodes = _dig(data, path)
        if not isinstance(nodes, list):
            raise self._failed(BadResponseError(f"X3 lookup for {reference}: data.{path} is not a list"))
        unwrapped = [n.get("node") if isinstance(n, Mapping) and "node" in n else n for n in nodes]
        objects = [n for n in unwrapped if isinstance(n, Mapping)]
        if len(objects) != len(unwrapped):
            raise self._failed(BadResponseError(f"X3 lookup for {reference}: data.{path} holds non-objects"))
        return objects

    def _require_valid_mapping(self) -> None:
        if self.mapping_problems:
            raise GraphQLMappingError(self.mapping_problems)

    def _where(self) -> str:
        return f"GraphQL {urlsplit(self.config.url).netloc}, endpoint {self.config.endpoint}"

    def _note(self, record: CallRecord) -> None:
        """Token sources log their calls here; ``call_log`` may have been replaced by the caller meanwhile."""
        self.call_log.append(record)

    def _call(self, document: str, variables: Mapping[str, Any], *, is_write: bool) -> Mapping[str, Any]:
        """POST one operation; on a 401 renew the token once and retry once. Returns ``data``."""
        body = dumps({"query": document, "variables": variables})
        token = self.tokens.token(log=self._note)
        self._secrets.add(token)
        response, record = self._post(body, token, is_write=is_write)
        if response.status_code == 401:
            record.error = self._redact(
                f"HTTP 401 ({_snippet(response.text, 120) or 'no body'}): renewing the token and retrying once"
            )
            token = self.tokens.renew(token, log=self._note)
            self._secrets.add(token)
            response, record = self._post(body, token, is_write=is_write)
            if response.status_code == 401:
                text = self._redact(response.text)
                raise self._recorded(
                    record,
                    AuthenticationError(
                        f"X3 rejected the renewed token too (HTTP 401 twice, {self._where()}): "
                        f"{_message(text) or 'no message'}",
                        status_code=401,
                        response_body=text[:2000],
                    ),
                )

        # Parse the answer as received; only what is kept (messages, call_log) is scrubbed of tokens.
        text = response.text
        try:
            payload: Any = json.loads(text) if text.strip() else None
        except ValueError:
            payload = None
        error = classify_graphql_response(
            response.status_code,
            payload,
            text=text,
            is_write=is_write,
            where=self._where(),
            headers=response.headers,
        )
        if error is not None:
            raise self._recorded(record, error)
        return payload["data"]

    def _post(self, body: str, token: str, *, is_write: bool) -> tuple[requests.Response, CallRecord]:
        record = CallRecord(method="POST", url=self.config.url, request_body=self._redact(body))
        self.call_log.append(record)
        headers = {
            "Authorization": f"Bearer {token}",
            ENDPOINT_HEADER: self.config.endpoint,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        started = time.monotonic()
        try:
            response, duration_ms = send(
                self._session,
                "POST",
                self.config.url,
                timeout=self.config.timeout,
                is_write=is_write,
                api="x3",
                headers=headers,
                data=body.encode("utf-8"),
                verify=self.config.verify,
            )
        except IntegrationError as exc:
            record.duration_ms = int((time.monotonic() - started) * 1000)
            raise self._recorded(record, exc) from None
        record.status_code = response.status_code
        record.response_body = self._redact(response.text)[:RESPONSE_LOG_LIMIT]
        record.duration_ms = duration_ms
        return response, record

    # -- chart of accounts (docs/chart-of-accounts.md) --

    def list_accounts(
        self, settings: Mapping[str, Any] | None = None, *, limit: int | None = None
    ) -> list[Account]:
        """The GL accounts: the configured query (default ``x3FinanceData.account``), Relay pages ``first/after``."""
        chart = effective_chart_query("graphql", settings)
        problems = chart_query_problems(settings)
        if problems:
            raise PermanentError("Invalid chart of accounts query: " + "; ".join(problems))
        size = min(chart["page_size"], limit) if limit else chart["page_size"]
        records: list[Mapping[str, Any]] = []
        after: str | None = None
        for _page in range(MAX_PAGES):
            data = self._call(chart["query"], {"first": size, "after": after}, is_write=False)
            edges = _dig(data, chart["nodes_path"])
            if not isinstance(edges, list):
                raise self._failed(
                    BadResponseError(f"X3 chart of accounts: data.{chart['nodes_path']} is not a list")
                )
            nodes = [e.get("node") if isinstance(e, Mapping) and "node" in e else e for e in edges]
            records.extend(n for n in nodes if isinstance(n, Mapping))
            if (limit and len(records) >= limit) or len(records) > MAX_ACCOUNTS:
                break
            info = _dig(data, chart["page_info_path"])
            if not isinstance(info, Mapping) or not info.get("hasNextPage"):
                break
            cursor = info.get("endCursor")
            if not isinstance(cursor, str) or not cursor or cursor == after:
                raise self._failed(
                    BadResponseError("X3 chart of accounts: hasNextPage without a new endCursor")
                )
            after = cursor
        else:
            raise self._failed(PermanentError(f"X3 chart of accounts: more than {MAX_PAGES} pages, stopped"))
        if len(records) > MAX_ACCOUNTS:
            raise self._failed(PermanentError(f"X3 chart of accounts: more than {MAX_ACCOUNTS} accounts"))
        accounts = accounts_from_records(records, chart)
        return accounts[:limit] if limit else accounts


def _message(text: str) -> str:
    """X3's own words from a 401 body: ``{"message": "Unauthorised"}`` or plain ``Error 41: Invalid token``."""
    try:
        payload = json.loads(text)
    except ValueError:
        return _snippet(text)
    if isinstance(payload, Mapping):
        for key in ("message", "$message", "error_description", "error"):
            if isinstance(payload.get(key), str) and payload[key].strip():
                return payload[key].strip()
    return _snippet(text)
