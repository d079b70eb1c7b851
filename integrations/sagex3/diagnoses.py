"""Sage X3 diagnoses: the messages X3 attaches to a response (``$diagnoses: [{"$severity", "$message"}]``).

The exact api1 error shape is NOT CONFIRMED by a Sage page (docs/reference/sagex3.md §2.5, §11), so parsing is
defensive:

* ``$diagnoses`` arrays are collected wherever they appear: at the top level, inside ``$resources`` and inside
  child collections such as the entry lines (X3 reports "account unknown" on the line that has it).
* A top-level object that is itself a diagnosis (the GraphQL gateway style
  ``{"$severity": "error", "$dataCode": "InternalServerError", "$message": "", "$source": "Gateway"}``) counts too.
* Severity is closed by default: only the documented non-error severities (``success``, ``info``, ``warning``) are
  harmless; anything else, including a missing severity inside a ``$diagnoses`` array, is treated as an error.

Shared by the REST client and any future GraphQL client; no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NON_ERROR_SEVERITIES = frozenset({"success", "info", "warning"})

# Defensive limits: a pathological or hostile body must not make us recurse forever or build a huge message.
_MAX_DEPTH = 32
_MAX_MESSAGE_CHARS = 500

PathPart = str | int


@dataclass(frozen=True)
class Diagnosis:
    severity: str  # lower-cased; "" when X3 sent none
    message: str
    path: tuple[PathPart, ...] = ()  # where it was found, e.g. ("GACCENTRYD", 1) for the second line

    @property
    def is_error(self) -> bool:
        return self.severity not in NON_ERROR_SEVERITIES

    def describe(self) -> str:
        """The message, prefixed with the child row it belongs to when it is nested (``GACCENTRYD #2: ...``)."""
        location = _row_label(self.path)
        return f"{location}: {self.message}" if location else self.message


def collect_diagnoses(payload: Any) -> list[Diagnosis]:
    """Every diagnosis in a decoded JSON body, in document order. Never raises on odd shapes."""
    found: list[Diagnosis] = []
    if isinstance(payload, Mapping) and ("$severity" in payload or "severity" in payload):
        # Gateway style: the whole body is one diagnosis.
        diagnosis = _diagnosis(payload, ())
        if diagnosis is not None:
            found.append(diagnosis)
    _walk(payload, (), 0, found)
    return found


def error_diagnoses(diagnoses: Iterable[Diagnosis]) -> list[Diagnosis]:
    return [d for d in diagnoses if d.is_error]


def join_messages(diagnoses: Iterable[Diagnosis], *, limit: int = 10) -> str:
    """X3's own messages joined with ``"; "``, duplicates removed, at most ``limit`` of them."""
    messages: list[str] = []
    for diagnosis in diagnoses:
        text = diagnosis.describe()
        if text not in messages:
            messages.append(text)
    if len(messages) > limit:
        return "; ".join(messages[:limit]) + f"; and {len(messages) - limit} more"
    return "; ".join(messages)


def _walk(node: Any, path: tuple[PathPart, ...], depth: int, found: list[Diagnosis]) -> None:
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "$diagnoses" and isinstance(value, list):
                for item in value:
                    if isinstance(item, Mapping):
                        diagnosis = _diagnosis(item, path, in_array=True)
                        if diagnosis is not None:
                            found.append(diagnosis)
            elif isinstance(value, Mapping | list):
                _walk(value, (*path, str(key)), depth + 1, found)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if isinstance(item, Mapping | list):
                _walk(item, (*path, index), depth + 1, found)


def _diagnosis(
    item: Mapping[str, Any], path: tuple[PathPart, ...], *, in_array: bool = False
) -> Diagnosis | None:
    severity = _text(item.get("$severity", item.get("severity")))
    message = _text(item.get("$message", item.get("message")))
    if not message:
        # The gateway sends "$message": "" on a 500; its $dataCode is the only clue.
        message = _text(item.get("$dataCode", item.get("$sdataCode"))) or "(no message)"
    if not severity and not in_array:
        return None
    return Diagnosis(severity=severity.lower(), message=message[:_MAX_MESSAGE_CHARS], path=path)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return " ".join(str(value).split())


def _row_label(path: tuple[PathPart, ...]) -> str:
    """``("GACCENTRYD", 1)`` -> ``"GACCENTRYD #2"``; ``("$resources", 0)`` and the top level -> ``""``."""
    for position in range(len(path) - 1, 0, -1):
        index, key = path[position], path[position - 1]
        if isinstance(index, int) and isinstance(key, str):
            return "" if key == "$resources" else f"{key} #{index + 1}"
    return ""
