"""Analytical dimensions of a channel mapping: their validation and their resolution onto journal lines. Pure.

A mapping's ``dimensions`` is ``{role: {dimension type: value}}``, e.g. ``{"revenue": {"CCT": "WEB", "BRA":
"{channel_id}"}}``: every line of that role carries those dimensions to X3. Types and values are short X3 codes;
``{channel_id}`` in a value is replaced by the order's BigCommerce channel. See docs/accounting.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from .journal import NATURAL_SIDE, Line

ROLES: tuple[str, ...] = tuple(NATURAL_SIDE)
PLACEHOLDERS = ("{channel_id}",)
# X3 dimension types (DIE) are short codes, dimensions (CCE) at most 15 characters: letters, digits, _ and -.
_TYPE_RE = re.compile(r"^[A-Za-z0-9_]{1,10}$")
_VALUE_RE = re.compile(r"^[A-Za-z0-9_\-]{1,15}$")
MAX_TYPES_PER_ROLE = 20  # X3 analytics hold up to 20 dimension types


def dimension_problems(value: Any) -> list[str]:
    """Plain-words problems with a mapping's dimensions; [] when usable."""
    if value in (None, ""):
        return []
    if not isinstance(value, Mapping):
        return [
            'Dimensions must be a JSON object of role -> {dimension type: value}, e.g. {"revenue": {"CCT": "WEB"}}'
        ]
    problems: list[str] = []
    for role, types in value.items():
        if role not in ROLES:
            problems.append(f"Unknown line role {role!r}: use one of {', '.join(ROLES)}")
            continue
        if not isinstance(types, Mapping):
            problems.append(f"Dimensions of {role} must be an object of dimension type -> value")
            continue
        if len(types) > MAX_TYPES_PER_ROLE:
            problems.append(f"{role} has {len(types)} dimension types; X3 holds at most {MAX_TYPES_PER_ROLE}")
        for dim_type, dim_value in types.items():
            if not isinstance(dim_type, str) or not _TYPE_RE.match(dim_type):
                problems.append(
                    f"{role}: dimension type {dim_type!r} must be an X3 code (letters, digits, _; up to 10)"
                )
            if not isinstance(dim_value, str) or not _value_ok(dim_value):
                problems.append(
                    f"{role}.{dim_type}: value {dim_value!r} must be an X3 dimension code (letters, digits, _ or -,"
                    f" up to 15) or {PLACEHOLDERS[0]}"
                )
    return problems


def _value_ok(value: str) -> bool:
    for placeholder in PLACEHOLDERS:
        value = value.replace(placeholder, "1")
    return bool(_VALUE_RE.match(value))


# A role whose account falls back to another role's (blank account on the mapping) takes that role's dimensions
# too, unless it has its own: wrapping and fee lines on the revenue account carry the revenue dimensions. Refund
# lines (the tenant's refunds account, or revenue) take the revenue dimensions unless "refund" has its own.
FALLBACKS = {"handling": "shipping", "wrapping": "revenue", "fee": "revenue", "refund": "revenue"}


def with_fallbacks(
    dimensions: Mapping[str, Mapping[str, str]] | None, blank_roles: Iterable[str]
) -> dict[str, dict[str, str]]:
    """The dimensions by role with :data:`FALLBACKS` applied to ``blank_roles`` (roles whose account is blank)."""
    dims = {role: dict(types) for role, types in (dimensions or {}).items() if isinstance(types, Mapping)}
    for role in blank_roles:
        source = FALLBACKS.get(role)
        if source and role not in dims and source in dims:
            dims[role] = dict(dims[source])
    return dims


def blank_roles(mapping: Any) -> list[str]:
    """Roles of a channel mapping whose own account is blank (and so falls back); "refund" always does."""
    return [r for r in FALLBACKS if not getattr(mapping, f"{r}_account", "")]


def resolve(
    dimensions: Mapping[str, Mapping[str, str]] | None, *, channel_id: int | None
) -> dict[str, dict[str, str]]:
    """The mapping's dimensions with their placeholders filled in for one order (ordered as given)."""
    channel = "" if channel_id is None else str(channel_id)
    return {
        role: {dim_type: str(v).replace("{channel_id}", channel) for dim_type, v in types.items()}
        for role, types in (dimensions or {}).items()
        if types
    }


def with_dimensions(
    lines: Iterable[Line], dimensions: Mapping[str, Mapping[str, str]] | None
) -> tuple[Line, ...]:
    """The lines with the (resolved) dimensions of their role, sorted by dimension type (JSON objects keep no order
    in PostgreSQL: sorting sends the same lists whatever the database); a role without any keeps none."""
    dims = dimensions or {}
    return tuple(replace(line, dimensions=tuple(sorted(dims.get(line.role, {}).items()))) for line in lines)
