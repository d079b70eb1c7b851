"""The per-tenant GraphQL mapping of the X3 GraphQL client (:mod:`integrations.sagex3.graphql`): the documented
defaults, their validation with graphql-core (:func:`graphql_mapping_problems`) and the rendering of the variables
templates.

Variables templates are JSON. A string that is exactly ``"${name}"`` becomes the typed value (amounts are JSON numbers
with their exact digits, line numbers and signs integers); ``"${name:text}"`` forces text; placeholders inside a
longer string are substituted as text. ``{"$lines": {...row...}, "$amount_style": "sign_amount"}`` expands to one row
per line (``debit_credit``) or per non-zero side (``sign_amount``), as the api1 mapping does.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

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

from integrations.errors import PermanentError

from .rest import AMOUNT_STYLES, date_format_works, json_amount
from .types import EntryLine

LINES_KEY = "$lines"
STYLE_KEY = "$amount_style"
HEADER_PLACEHOLDERS = (
    "entry_type",
    "journal",
    "site",
    "accounting_date",
    "currency",
    "description",
    "reference",
    "source_document",
    "company",
    "exchange_rate",  # optional: BigCommerce's rate when the entry is not in the store's currency, else null
)
LINE_PLACEHOLDERS = (
    "line_number",
    "account",
    "line_description",
    "debit",
    "credit",
    "sign",
    "amount",
    "dimensions",
)
_STYLE_ONLY = {"debit_credit": {"debit", "credit"}, "sign_amount": {"sign", "amount"}}
LOOKUP_PLACEHOLDERS = ("reference",)
CONVERSIONS = ("text",)
_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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
        "company": "${company}",
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
                "dimensions": "${dimensions}",
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
    # The keys of one ${dimensions} item: [{"dimensionType": "CCT", "dimension": "WEB"}, …]. NOT CONFIRMED names
    # (after the read-only journalEntryAnalyticalLineDimensions node): adapt them to the customer's schema.
    "dimension_keys": {"type": "dimensionType", "value": "dimension"},
}


class GraphQLMappingError(PermanentError):
    """The tenant's GraphQL mapping is invalid; nothing was sent to X3."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid Sage X3 GraphQL mapping: " + "; ".join(problems))
        self.problems = problems


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
    if not isinstance(date_format, str) or not date_format_works(date_format):
        add("date_format", f"{date_format!r} must be a strftime format that includes the date, e.g. %Y-%m-%d")
    keys = mapping.get("dimension_keys")
    if (
        not isinstance(keys, Mapping)
        or set(keys) != {"type", "value"}
        or not all(isinstance(v, str) and _NAME_RE.match(v) for v in keys.values())
        or keys["type"] == keys["value"]
    ):
        add(
            "dimension_keys", f'must be {{"type": <field name>, "value": <another field name>}}, got {keys!r}'
        )
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


def line_rows(
    lines: Iterable[EntryLine],
    style: str,
    currency: str,
    dimension_keys: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Line values per row, numbered in order. ``sign_amount``: a row per non-zero side, the amount exactly as given
    (a storno amount stays negative on its own side, never flipped to the other sign). ``dimensions`` is a list of
    ``{type key: dimension type, value key: dimension}`` objects (empty when the line has none)."""
    keys = dimension_keys or DEFAULT_GRAPHQL_MAPPING["dimension_keys"]
    rows: list[dict[str, Any]] = []
    for line in lines:
        base = {
            "account": line.account,
            "line_description": line.description,
            "dimensions": [{keys["type"]: t, keys["value"]: v} for t, v in line.dimensions],
        }
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


def lines_style(template: Any) -> str:
    if isinstance(template, Mapping):
        if LINES_KEY in template:
            return str(template.get(STYLE_KEY, "debit_credit"))
        for value in template.values():
            style = lines_style(value)
            if style:
                return style
    elif isinstance(template, list):
        for value in template:
            style = lines_style(value)
            if style:
                return style
    return ""
