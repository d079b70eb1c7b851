"""The tenant's chart of accounts as Sage X3 publishes it: what ``list_accounts`` returns and how it is asked for.

X3 keeps the GL accounts in table GACCOUNT (function GESGAC). That the same name is the api1 class and
representation, the SOAP publication name, and the field names below (ACC, DES, ENAFLG) is **NOT CONFIRMED** on a
standard folder, and neither are the GraphQL node's property names (``x3FinanceData.account`` itself is listed by
Sage, docs/reference/sagex3.md §6.2). So every name is a per-tenant setting (the connection's *chart query*,
docs/chart-of-accounts.md) over the defaults here, one set per X3 method.

No Django here: the connector stores the result (accounting.GlAccount) and checks mappings against it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, parse
from graphql.language import OperationDefinitionNode, OperationType

MAX_ACCOUNTS = 100_000  # a chart is a few hundred to a few thousand accounts; more means a filter was ignored
MAX_PAGES = 1_000
_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FIELD_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# X3 local menu 1 ("No/Yes") answers 1 = No, 2 = Yes; JSON booleans come as true/false.
DEFAULT_POSTABLE_VALUES = ["2", "true", "yes"]


@dataclass(frozen=True)
class Account:
    """One GL account. ``postable``: X3 accepts entries on it (active, not closed or blocked)."""

    code: str
    name: str
    postable: bool = True
    dimensions: tuple[str, ...] = ()  # dimension types X3 requires on lines of this account, when it says


# Keys shared by the three methods: where each fact is in one account record.
_COMMON: dict[str, Any] = {
    "code_field": "ACC",
    "name_field": "DES",
    # Blank: every account returned is postable. ENAFLG ("Active") is the usual X3 flag name: NOT CONFIRMED.
    "postable_field": "ENAFLG",
    "postable_values": DEFAULT_POSTABLE_VALUES,
    # Blank: no dimension requirements read. A list, or a text of codes separated by commas or spaces. DIE (the
    # dimension types of the account) is NOT CONFIRMED; a record without the field has no requirements.
    "dimensions_field": "DIE",
}

DEFAULT_ACCOUNT_QUERY = """\
query ChartOfAccounts($first: Int, $after: String) {
  x3FinanceData {
    account {
      query(first: $first, after: $after) {
        edges { node { code description isActive dimensionTypes } }
        pageInfo { endCursor hasNextPage }
      }
    }
  }
}
"""

DEFAULT_CHART_QUERY: dict[str, dict[str, Any]] = {
    "api1": {**_COMMON, "class": "GACCOUNT", "representation": "GACCOUNT", "page_size": 200, "where": ""},
    # criteria: key fields -> values for the query (e.g. {"COA": "PCG"}); none is sent as a nil objectKeys, which
    # asks for every record (NOT CONFIRMED on a real X3: set a criterion if the server refuses it).
    "soap": {**_COMMON, "public_name": "GACCOUNT", "list_size": 5000, "criteria": {}},
    "graphql": {
        **_COMMON,
        "code_field": "code",
        "name_field": "description",
        "postable_field": "isActive",
        "dimensions_field": "dimensionTypes",
        "query": DEFAULT_ACCOUNT_QUERY,
        "nodes_path": "x3FinanceData.account.query.edges",
        "page_info_path": "x3FinanceData.account.query.pageInfo",
        "page_size": 200,
    },
}


def effective_chart_query(kind: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The defaults of method ``kind`` ("api1", "soap", "graphql") with the tenant's overrides (keys of other
    methods are ignored, so one stored setting survives a change of method)."""
    merged = copy.deepcopy(DEFAULT_CHART_QUERY[kind])
    for key, value in (overrides or {}).items():
        if key in merged and value is not None:
            merged[key] = copy.deepcopy(value)
    return merged


def chart_query_problems(overrides: Any) -> list[str]:
    """Plain-words problems with a stored chart query (any method's keys); empty when usable."""
    if overrides in (None, ""):
        return []
    if not isinstance(overrides, Mapping):
        return ["the chart of accounts query must be a JSON object"]
    known = {k for d in DEFAULT_CHART_QUERY.values() for k in d}
    problems = [f"unknown key {k!r} (known: {', '.join(sorted(known))})" for k in overrides if k not in known]
    for kind in DEFAULT_CHART_QUERY:
        settings = effective_chart_query(kind, overrides)
        for key in ("code_field", "name_field"):
            if not isinstance(settings[key], str) or not _FIELD_RE.match(settings[key]):
                problems.append(f"'{key}' must be a field name, got {settings[key]!r}")
        for key in ("postable_field", "dimensions_field"):
            if settings[key] and (not isinstance(settings[key], str) or not _FIELD_RE.match(settings[key])):
                problems.append(f"'{key}' must be a field name or blank, got {settings[key]!r}")
        values = settings["postable_values"]
        if not isinstance(values, list) or not values or not all(isinstance(v, str | int) for v in values):
            problems.append("'postable_values' must be a non-empty list of values meaning 'accepts postings'")
        for key in ("class", "representation", "public_name"):
            if key in settings and (not isinstance(settings[key], str) or not _CODE_RE.match(settings[key])):
                problems.append(f"'{key}' must be an X3 code such as GACCOUNT, got {settings[key]!r}")
        for key in ("page_size", "list_size"):
            value = settings.get(key)
            if key in settings and (
                not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_000
            ):
                problems.append(f"'{key}' must be a whole number from 1 to 10000, got {value!r}")
        criteria = settings.get("criteria", {})
        if not isinstance(criteria, Mapping) or not all(
            isinstance(k, str) and _CODE_RE.match(k) and isinstance(v, str) for k, v in criteria.items()
        ):
            problems.append("'criteria' must be an object of X3 key field -> text value")
        if "where" in settings and not isinstance(settings["where"], str):
            problems.append("'where' must be a text (an api1 where clause) or blank")
        if kind == "graphql":
            problems.extend(_graphql_query_problems(settings))
    return list(dict.fromkeys(problems))  # the same problem found for two methods is said once


def _graphql_query_problems(settings: Mapping[str, Any]) -> list[str]:
    document = settings["query"]
    if not isinstance(document, str):
        return ["'query' must be a GraphQL query document"]
    try:
        parsed = parse(document)
    except GraphQLError as exc:
        return [f"'query' is not valid GraphQL: {exc.message}"]
    problems = []
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        problems.append("'query' must hold exactly one query (not a mutation)")
    for variable in ("$first", "$after"):
        if variable not in document:
            problems.append(f"'query' must declare and use {variable} (page size and cursor)")
    for key in ("nodes_path", "page_info_path"):
        if not isinstance(settings[key], str) or not _FIELD_RE.match(settings[key]):
            problems.append(f"'{key}' must be a dotted path such as x3FinanceData.account.query.edges")
    return problems


def dig(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _text(value: Any) -> str:
    if value is None or isinstance(value, Mapping | list):
        return ""
    return str(value).strip()


def account_from_record(record: Mapping[str, Any], settings: Mapping[str, Any]) -> Account | None:
    """One record as an :class:`Account`; ``None`` when it has no code (a summary row, a blank line)."""
    code = _text(dig(record, settings["code_field"]))
    if not code:
        return None
    name = _text(dig(record, settings["name_field"]))
    postable = True
    if settings["postable_field"]:
        flag = dig(record, settings["postable_field"])
        if flag is not None:
            allowed = {str(v).strip().casefold() for v in settings["postable_values"]}
            postable = str(flag).strip().casefold() in allowed
    dimensions: tuple[str, ...] = ()
    if settings["dimensions_field"]:
        raw = dig(record, settings["dimensions_field"])
        items = raw if isinstance(raw, list) else re.split(r"[,;\s]+", _text(raw))
        dimensions = tuple(dict.fromkeys(_text(i) for i in items if _text(i)))
    return Account(code=code, name=name, postable=postable, dimensions=dimensions)


def accounts_from_records(records: Iterable[Mapping[str, Any]], settings: Mapping[str, Any]) -> list[Account]:
    """Records as accounts, first occurrence of a code kept, sorted by code."""
    found: dict[str, Account] = {}
    for record in records:
        account = account_from_record(record, settings)
        if account is not None:
            found.setdefault(account.code, account)
    return sorted(found.values(), key=lambda a: a.code)
