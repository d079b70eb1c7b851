"""Sage X3 REST "api1" client: create a GL journal entry, find one by our reference, test the connection.

Everything about the remote side that is NOT CONFIRMED (docs/reference/sagex3.md §2, §11) is configurable
through the tenant's field mapping: which class/representation is published for journal entries, the field names,
whether lines carry debit/credit columns or a sign and an amount. ``validate_mapping`` checks a mapping when it is
saved, and the client refuses to call X3 with an invalid one.

Contract: every method returns typed data or raises an :class:`~integrations.errors.IntegrationError` (see
``classify_response``). Every HTTP call, successful or not, is appended to ``call_log`` for the audit trail. The
password and the ``Authorization`` header never appear in messages or in ``call_log``.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import requests
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
from integrations.http import Exchange, Transport, new_session, retry_after, snippet

from .accounts import (
    MAX_ACCOUNTS,
    MAX_PAGES,
    Account,
    accounts_from_records,
    chart_query_problems,
    dig,
    effective_chart_query,
)
from .calls import FIND_PAGE_SIZE, RecordsCalls
from .diagnoses import collect_diagnoses, error_diagnoses, join_messages
from .types import DEFAULT_REST_MAPPING, Entry, EntryLine, PostedEntry

RESPONSE_LOG_LIMIT = 10_000  # characters of each response body kept in call_log
AMOUNT_STYLES = ("debit_credit", "sign_amount")

# Logical fields an entry header can be mapped from: the scalar fields of ``Entry``.
HEADER_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Entry) if f.name != "lines")
LINE_FIELDS: tuple[str, ...] = (
    "line_number",
    "account",
    "description",
    "debit",
    "credit",
    "sign",
    "amount",
    "dimension_type",
    "dimension_value",
)
# Header fields left out of the body when the entry has no value for them (X3 derives the company from the site).
# Header keys sent only when the entry has a value (a channel's company; the rate of an entry in another currency
# than the store's). A blank company is left to X3, which derives it from the site.
OPTIONAL_HEADER_FIELDS = frozenset({"company", "exchange_rate"})
_REQUIRED_LINE_FIELDS = {
    "debit_credit": ("account", "debit", "credit"),
    "sign_amount": ("account", "sign", "amount"),
}
# X3 class, representation and field names are code-like (GACCENTRY, REFINT, ...). Anything else in a mapping is a
# typo, or would break the URL / the where clause we build from it. Dots allow nested properties (volume.code).
_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FIELD_RE = re.compile(r"^[A-Za-z$][A-Za-z0-9_$]*(\.[A-Za-z][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class RestConfig:
    """One X3 connection. ``base_url`` is the Syracuse server with its port, e.g. ``https://x3.example.com:8124``."""

    base_url: str
    folder: str  # the Syracuse endpoint / X3 folder, e.g. SEED
    username: str
    password: str = field(repr=False)
    mapping: Mapping[str, Any] = field(default_factory=dict)  # tenant overrides of DEFAULT_REST_MAPPING
    timeout: tuple[float, float] = (5.0, 60.0)  # (connect, read) seconds; X3 writes can be slow
    verify: bool | str = True  # or the path of a CA bundle for a self-signed server

    def __post_init__(self) -> None:
        check_base_url(self.base_url)
        if not self.folder.strip():
            raise ValueError("X3 folder (endpoint) is required")


def check_base_url(url: str) -> None:
    """A Syracuse server URL (scheme, host, port) as the api1 and SOAP clients take it; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("X3 base URL must look like https://x3.example.com:8124")
    if parts.username is not None or parts.password is not None:
        # Never echo the URL here: it holds a credential.
        raise ValueError("X3 base URL must not contain a user name or password; use the credential fields")
    if parts.query or parts.fragment:
        raise ValueError("X3 base URL must not contain a query string or fragment")


class MappingError(PermanentError):
    """The tenant's field mapping is invalid; nothing was sent to X3."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid Sage X3 field mapping: " + "; ".join(problems))
        self.problems = problems


# --- mapping ------------------------------------------------------------------------------------------------------


def effective_mapping(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``DEFAULT_REST_MAPPING`` with the tenant's overrides applied, one level deep.

    A dict value (``header``, ``line``, ``header_static``, ``line_static``) is merged key by key, so
    ``{"header": {"source_document": None}}`` only unmaps the source document; any other value replaces the default.
    The result is a fresh deep copy: mutating it never touches the defaults.
    """
    return merge_mapping(DEFAULT_REST_MAPPING, overrides)


def merge_mapping(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A fresh deep copy of ``defaults`` with ``overrides`` applied, dict values merged one level deep."""
    merged = copy.deepcopy(dict(defaults))
    for key, value in (overrides or {}).items():
        if isinstance(merged.get(key), dict) and isinstance(value, Mapping):
            merged[key] = {**merged[key], **copy.deepcopy(dict(value))}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def optional_names(mapping: Mapping[str, Any]) -> set[str]:
    """X3 names of optional header fields: a static value may fill them when the entry has none (e.g. a tenant-wide
    CPY in ``header_static``, used unless the channel mapping names a company)."""
    header = mapping.get("header")
    if not isinstance(header, Mapping):
        return set()
    return {str(header[f]) for f in OPTIONAL_HEADER_FIELDS if header.get(f)}


def dimension_fields(line: EntryLine, names: Mapping[str, Any]) -> dict[str, list[str]]:
    """A line's dimensions as two parallel lists (types, values), under the mapped field names; {} when the line
    has none or the mapping leaves them out. Both fields must be mapped for dimensions to be sent."""
    type_field, value_field = names.get("dimension_type"), names.get("dimension_value")
    if not (line.dimensions and type_field and value_field):
        return {}
    return {type_field: [t for t, _ in line.dimensions], value_field: [v for _, v in line.dimensions]}


def validate_mapping(mapping: Mapping[str, Any]) -> list[str]:
    """Human-readable problems with a (full, effective) mapping; an empty list means it is usable.

    Pass ``effective_mapping(overrides)`` to validate a tenant's overrides.
    """
    if not isinstance(mapping, Mapping):
        return ["the mapping must be a JSON object"]
    problems: list[str] = []
    unknown = sorted(str(k) for k in mapping if k not in DEFAULT_REST_MAPPING)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(DEFAULT_REST_MAPPING)})")

    for key in ("class", "representation"):
        value = mapping.get(key)
        if not isinstance(value, str) or not _CODE_RE.match(value):
            problems.append(f"'{key}' must be an X3 code such as GACCENTRY, got {value!r}")
    for key in ("lines_key", "document_number_field"):
        value = mapping.get(key)
        if not isinstance(value, str) or not _FIELD_RE.match(value):
            problems.append(f"'{key}' must be an X3 field name, got {value!r}")

    style = mapping.get("amount_style")
    if style not in AMOUNT_STYLES:
        problems.append(f"unknown amount_style {style!r}: use one of {', '.join(AMOUNT_STYLES)}")

    date_format = mapping.get("date_format")
    if not isinstance(date_format, str) or not date_format_works(date_format):
        problems.append(
            f"'date_format' {date_format!r} must be a strftime format that includes the date, e.g. %Y-%m-%d"
        )

    header_names = check_field_map(mapping.get("header"), "header", HEADER_FIELDS, ("reference",), problems)
    required_line = _REQUIRED_LINE_FIELDS.get(style, ("account",)) if style in AMOUNT_STYLES else ("account",)
    line_names = check_field_map(mapping.get("line"), "line", LINE_FIELDS, required_line, problems)
    check_static(
        mapping.get("header_static"), "header_static", header_names - optional_names(mapping), problems
    )
    check_static(mapping.get("line_static"), "line_static", line_names, problems)
    lines_key = mapping.get("lines_key")
    if isinstance(lines_key, str) and lines_key in header_names:
        problems.append(f"'lines_key' {lines_key} is also used as a header field")
    return problems


def check_field_map(
    value: Any, name: str, known: tuple[str, ...], required: tuple[str, ...], problems: list[str]
) -> set[str]:
    """Check a logical-field -> X3-field dict; return the X3 field names actually used."""
    if not isinstance(value, Mapping):
        problems.append(f"'{name}' must be an object mapping logical fields to X3 field names")
        return set()
    used: dict[str, str] = {}
    for logical, x3_name in value.items():
        if logical not in known:
            hint = (
                " (use header_static / line_static for constant fields)" if name in ("header", "line") else ""
            )
            problems.append(f"'{name}' has unknown field {logical!r}; known: {', '.join(known)}{hint}")
            continue
        if x3_name in (None, ""):
            continue
        if not isinstance(x3_name, str) or not _FIELD_RE.match(x3_name):
            problems.append(f"'{name}.{logical}' must be an X3 field name, got {x3_name!r}")
            continue
        if x3_name in used:
            problems.append(f"'{name}': {logical} and {used[x3_name]} are both mapped to {x3_name}")
        used[x3_name] = logical
    for logical in required:
        if value.get(logical) in (None, ""):
            problems.append(f"'{name}.{logical}' is required")
    return set(used)


def check_static(value: Any, name: str, mapped_names: set[str], problems: list[str]) -> None:
    if not isinstance(value, Mapping):
        problems.append(f"'{name}' must be an object of X3 field name -> constant value")
        return
    for key, constant in value.items():
        if not isinstance(key, str) or not _FIELD_RE.match(key):
            problems.append(f"'{name}' key {key!r} is not an X3 field name")
        elif key in mapped_names:
            problems.append(f"'{name}' sets {key}, which is already filled from the entry")
        if not isinstance(constant, str | int | float | bool) and constant is not None:
            problems.append(f"'{name}.{key}' must be a text, number, boolean or null")


def date_format_works(date_format: str) -> bool:
    """Does ``date_format`` write a date (two different dates give two different texts)?"""
    try:
        first, second = date(2024, 1, 31).strftime(date_format), date(2025, 12, 1).strftime(date_format)
    except ValueError:
        return False
    # A format without directives would send the same constant for every entry.
    return bool(first) and first != second


# --- JSON with exact decimals -------------------------------------------------------------------------------------


def json_amount(value: Decimal, currency: str) -> Decimal:
    """An amount as we send it: exactly the currency's decimals (``69.8400`` USD -> ``69.84``, ``12.5`` -> ``12.50``,
    JPY ``1500``), the same for every X3 method (see :func:`integrations.currency.amount_at_precision`).

    Rounding is the accounting layer's decision, never the transport's: significant digits beyond the currency's
    precision raise a :class:`PermanentError`. Negative amounts (storno entries) stay negative; no ``-0.00``.
    """
    return amount_at_precision(value, currency)


def dumps(value: Any) -> str:
    """Compact JSON in which a ``Decimal`` is written as a JSON *number* with its exact digits (``100.00``).

    Why not ``float``: ``float(Decimal("0.10"))`` serialises as ``0.1`` and large amounts can pick up binary noise;
    why not a string: X3 numeric properties expect a number. The standard encoder cannot emit raw number text, so
    this small recursive writer does (the decoder on the X3 side reads ``100.00`` as the number 100).
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send {value} to X3")
        return format(value, "f")
    if isinstance(value, float | int | str | bool) or value is None:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    if isinstance(value, Mapping):
        return (
            "{"
            + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{dumps(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


# --- error classification -----------------------------------------------------------------------------------------


def classify_response(
    status: int,
    payload: Any,
    *,
    text: str,
    is_write: bool,
    where: str,
    headers: Mapping[str, str] | None = None,
) -> IntegrationError | None:
    """Map an X3 HTTP answer onto our error hierarchy; ``None`` means "success, go on parsing".

    ``payload`` is the decoded JSON body or ``None`` when it is not JSON; ``where`` names the class/representation
    and folder for messages; ``is_write`` says whether X3 may have committed something (the create call).

    * 2xx: success, unless the body carries error-severity diagnoses (warnings and infos alone are fine): then a
      :class:`PermanentError` with X3's messages, ``outcome_unknown`` on a write (X3 may still have saved it).
    * 401/403: :class:`AuthenticationError`.
    * 404: :class:`PermanentError` (the class/representation is not published in the folder, or the folder is
      wrong). Deliberately not ``NotFoundError``: a missing *collection* must never read as "no such entry".
    * 409/423: :class:`RetryableError` (record locked by a user or another process; nothing was saved).
    * 408, 5xx: :class:`RetryableError`; 429: :class:`RateLimitedError` with ``retry_after``. On a write the
      outcome is unknown (X3 may have committed before failing or timing out).
    * Anything else (400, 422, other 4xx, 3xx, 1xx): :class:`PermanentError` with X3's diagnoses when it sent any,
      e.g. a closed period, an unknown account or an unbalanced entry.

    Closed by default: a status not listed as transient is permanent, so a new failure mode stops at "needs
    attention" instead of retrying forever.
    """
    diagnoses = collect_diagnoses(payload)
    errors = error_diagnoses(diagnoses)
    x3_says = join_messages(errors or diagnoses)
    detail = f": {x3_says}" if x3_says else (f": {snippet(text)}" if text.strip() else "")
    common: dict[str, Any] = {"status_code": status, "response_body": text[:2000]}

    if 200 <= status < 300:
        if errors:
            return PermanentError(
                f"X3 reported errors ({where}): {join_messages(errors)}", outcome_unknown=is_write, **common
            )
        return None
    if status in (401, 403):
        what = "rejected the credentials" if status == 401 else "refused access (check the user's rights)"
        return AuthenticationError(f"X3 {what} (HTTP {status}, {where}){detail}", **common)
    if status == 404:
        return PermanentError(
            f"X3 answered 404 Not Found for {where}: check the folder name and that the class and representation "
            f"are published{detail}",
            **common,
        )
    if status in (409, 423):
        return RetryableError(f"X3 record locked or busy (HTTP {status}, {where}){detail}", **common)
    if status == 429:
        return RateLimitedError(
            f"X3 rate limit (HTTP 429, {where}){detail}",
            outcome_unknown=is_write,
            retry_after=retry_after(headers),
            **common,
        )
    if status == 408 or 500 <= status < 600:
        return RetryableError(
            f"X3 server error (HTTP {status}, {where}){detail}",
            outcome_unknown=is_write,
            retry_after=retry_after(headers),
            unavailable=True,
            **common,
        )
    if status in (400, 422) and errors:
        return PermanentError(f"X3 refused the request ({where}): {join_messages(errors)}", **common)
    if 300 <= status < 400:
        location = urlsplit((headers or {}).get("Location", ""))
        target = f" to {location.scheme}://{location.netloc}{location.path}" if location.netloc else ""
        return PermanentError(f"X3 redirected (HTTP {status}){target}: check the base URL", **common)
    return PermanentError(f"X3 answered HTTP {status} ({where}){detail}", **common)


# --- the client ---------------------------------------------------------------------------------------------------


class SageX3RestClient(RecordsCalls):
    """api1 client for one X3 folder. Not thread-safe (``call_log`` is a plain list): one client per posting."""

    def __init__(self, config: RestConfig, *, session: requests.Session | None = None) -> None:
        self.config = config
        self.mapping = effective_mapping(config.mapping)
        self.mapping_problems = validate_mapping(self.mapping)
        self._transport = Transport(
            session if session is not None else new_session(verify=config.verify),
            api="x3",
            timeout=config.timeout,
            secrets=_secret_forms(config.username, config.password),
            body_limit=RESPONSE_LOG_LIMIT,
            auth=HTTPBasicAuth(config.username, config.password),
            verify=config.verify,
        )

    # -- public operations --

    def build_payload(self, entry: Entry) -> dict[str, Any]:
        """The api1 JSON body for ``entry`` (amounts as ``Decimal``; :func:`dumps` writes them as exact numbers)."""
        self._require_valid_mapping()
        m = self.mapping
        header_values: dict[str, Any] = {
            "entry_type": entry.entry_type,
            "journal": entry.journal,
            "site": entry.site,
            "accounting_date": entry.accounting_date.strftime(m["date_format"]),
            "currency": entry.currency,
            "description": entry.description,
            "reference": entry.reference,
            "source_document": entry.source_document,
            "company": entry.company,
            "exchange_rate": entry.exchange_rate,  # optional key, not in the defaults; None: not sent
        }
        payload: dict[str, Any] = {
            x3_name: header_values[logical]
            for logical, x3_name in m["header"].items()
            if x3_name and (header_values[logical] or logical not in OPTIONAL_HEADER_FIELDS)
        }
        # Static fields fill what the entry does not (validate_mapping rejects a static field that collides).
        for x3_name, constant in m["header_static"].items():
            payload.setdefault(x3_name, constant)

        rows = [row for line in entry.lines for row in self._line_rows(line, entry.currency)]
        if not rows:
            raise PermanentError(f"entry {entry.reference} has no non-zero lines to post")
        number_field = m["line"].get("line_number")
        if number_field:
            rows = [{number_field: number, **row} for number, row in enumerate(rows, start=1)]
        for row in rows:
            for x3_name, constant in m["line_static"].items():
                row.setdefault(x3_name, constant)
        payload[m["lines_key"]] = rows
        return payload

    def preview(self, entry: Entry) -> str:
        return dumps(self.build_payload(entry))

    def create_entry(self, entry: Entry) -> PostedEntry:
        """POST the entry to ``{CLASS}?representation={REP}.$create``; return X3's document number.

        Raises ``BadResponseError(outcome_unknown=True)`` when X3 answers success without a document number: the
        entry may exist, so the caller must look it up with :meth:`find_entry` before trying again.
        """
        payload = self.build_payload(entry)
        body = dumps(payload)
        data = self._call("POST", self._collection_url("$create"), body=body, is_write=True)
        number, uuid = self._document_number(data)
        if number is None:
            raise self._failed(
                BadResponseError(
                    f"X3 accepted entry {entry.reference} but returned no {self.mapping['document_number_field']}: "
                    "it may have been created; look it up by reference before posting again",
                    outcome_unknown=True,
                )
            )
        return PostedEntry(document_number=number, reference=entry.reference, uuid=uuid, raw=data)

    def find_entry(self, reference: str) -> PostedEntry | None:
        """The X3 entry carrying our ``reference``, or ``None``.

        Raises :class:`DuplicateEntryError` when several entries carry it, and a :class:`PermanentError` when X3
        returns entries with a different reference (the where filter was ignored, so the lookup cannot be trusted).
        """
        self._require_valid_mapping()
        ref_field = self.mapping["header"]["reference"]
        # X3 where syntax follows SData: string literals in single quotes. Doubling an embedded quote is the SData
        # convention; that X3 accepts it is NOT CONFIRMED (our references never contain quotes anyway).
        literal = reference.replace("'", "''")
        where = f"({ref_field} eq '{literal}')"
        # Percent-encode everything (spaces as %20, not "+": Syracuse is a Node.js server and may decode the query
        # with decodeURIComponent, which leaves "+" alone).
        url = self._collection_url("$query") + f"&where={quote(where, safe='')}&count={FIND_PAGE_SIZE}"
        data = self._call("GET", url)
        resources = data.get("$resources")
        if not isinstance(resources, list) or not all(isinstance(r, Mapping) for r in resources):
            raise self._failed(
                BadResponseError(f"X3 query for reference {reference}: expected a $resources list")
            )

        found: list[PostedEntry] = []
        for resource in resources:
            number, uuid = self._document_number(resource)
            if number is None:
                raise self._failed(
                    BadResponseError(
                        f"X3 query for reference {reference} returned an entry without "
                        f"{self.mapping['document_number_field']}: add it to the $query facet of the representation"
                    )
                )
            returned_ref = resource.get(ref_field)
            if (
                returned_ref is not None
                and str(returned_ref).strip().casefold() != reference.strip().casefold()
            ):
                raise self._failed(
                    PermanentError(
                        f"X3 query for {ref_field} = {reference} returned entry {number} with {ref_field} = "
                        f"{returned_ref}: the where filter was not applied, so the duplicate check cannot be trusted"
                    )
                )
            found.append(
                PostedEntry(
                    document_number=number,
                    reference=str(returned_ref) if returned_ref is not None else reference,
                    uuid=uuid,
                    raw=dict(resource),
                )
            )
        return self._one_or_none(found, f"{ref_field} = {reference}")

    def test_connection(self) -> str:
        """A harmless authenticated read (the ``$query`` facet, one record). Returns a short success description."""
        self._require_valid_mapping()
        data = self._call("GET", self._collection_url("$query") + "&count=1")
        resources = data.get("$resources")
        seen = (
            f"{len(resources)} record(s) on the first page"
            if isinstance(resources, list)
            else "no $resources"
        )
        host = urlsplit(self.config.base_url).netloc
        return (
            f"Connected to {host}, folder {self.config.folder}, as {self.config.username}: "
            f"{self._where()} answered ({seen})."
        )

    # -- internals --

    def _line_rows(self, line: EntryLine, currency: str) -> list[dict[str, Any]]:
        m = self.mapping
        names = m["line"]
        base: dict[str, Any] = {names["account"]: line.account}
        if names.get("description"):
            base[names["description"]] = line.description
        base.update(dimension_fields(line, names))
        if m["amount_style"] == "debit_credit":
            return [
                {
                    **base,
                    names["debit"]: json_amount(line.debit, currency),
                    names["credit"]: json_amount(line.credit, currency),
                }
            ]
        # sign_amount: one row per non-zero side. The amount goes out exactly as given; a storno (negative) amount
        # stays negative on its own side, never flipped to the other sign.
        rows: list[dict[str, Any]] = []
        for sign, amount in ((1, line.debit), (-1, line.credit)):
            if not amount.is_zero():
                rows.append({**base, names["sign"]: sign, names["amount"]: json_amount(amount, currency)})
        return rows

    def _document_number(self, data: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """(document number, $uuid) from the top level, else from ``$resources[0]``."""
        key = self.mapping["document_number_field"]
        candidates: list[Mapping[str, Any]] = [data]
        resources = data.get("$resources")
        if isinstance(resources, list) and resources and isinstance(resources[0], Mapping):
            candidates.append(resources[0])
        for candidate in candidates:
            number = candidate.get(key)
            if isinstance(number, str | int) and not isinstance(number, bool) and str(number).strip():
                uuid = candidate.get("$uuid")
                return str(number).strip(), (str(uuid) if uuid else None)
        return None, None

    def _collection_url(self, facet: str) -> str:
        base = self.config.base_url.rstrip("/")
        folder = quote(self.config.folder.strip(), safe="")
        return f"{base}/api1/x3/erp/{folder}/{self.mapping['class']}?representation={self.mapping['representation']}.{facet}"

    def _where(self) -> str:
        return f"class {self.mapping['class']}, representation {self.mapping['representation']}, folder {self.config.folder}"

    def _require_valid_mapping(self) -> None:
        if self.mapping_problems:
            raise MappingError(self.mapping_problems)

    def _call(
        self, method: str, url: str, *, body: str | None = None, is_write: bool = False
    ) -> dict[str, Any]:
        """Send one request, record it in ``call_log``, classify the answer; return the decoded JSON object."""
        answer = self._transport.exchange(
            method,
            url,
            body=body,
            headers={"Accept": "application/json", "Content-Type": "application/json"},
            is_write=is_write,
        )
        payload = _json_or_none(answer.text)
        error = self._classify(answer, payload, is_write=is_write)
        if error is not None:
            raise self._transport.failed(error, answer.record)
        # A JSON object from here on: _classify refuses anything else.
        warnings = [d.describe() for d in collect_diagnoses(payload)]
        if warnings:
            answer.record.extra["diagnoses"] = warnings
        return payload

    def _classify(self, answer: Exchange, payload: Any, *, is_write: bool) -> IntegrationError | None:
        """:func:`classify_response`, then "a success must be a JSON object"."""
        response, text = answer.response, answer.text
        error = classify_response(
            response.status_code,
            payload,
            text=text,
            is_write=is_write,
            where=self._where(),
            headers=response.headers,
        )
        if error is not None or isinstance(payload, dict):
            return error
        shape = "no JSON" if payload is None else f"JSON {type(payload).__name__}"
        content_type = response.headers.get("Content-Type", "no content type")
        return BadResponseError(
            f"X3 answered HTTP {response.status_code} with {shape} ({content_type}), expected a JSON object: "
            f"{snippet(text)!r}",
            outcome_unknown=is_write,
            status_code=response.status_code,
            response_body=text[:2000],
        )

    # -- chart of accounts (docs/chart-of-accounts.md) --

    def list_accounts(
        self, settings: Mapping[str, Any] | None = None, *, limit: int | None = None
    ) -> list[Account]:
        """The GL accounts of the folder: ``$query`` on the configured account class, page by page.

        Follows ``$links.$next.$url`` when X3 gives one (its name is NOT CONFIRMED), else key-based paging
        (``key=gt.<last code>``, docs/reference/sagex3.md §2.2) while pages come back full. ``limit`` stops early
        (test connection reads one account).
        """
        chart = effective_chart_query("api1", settings)
        problems = chart_query_problems(settings)
        if problems:
            raise PermanentError("Invalid chart of accounts query: " + "; ".join(problems))
        size = min(chart["page_size"], limit) if limit else chart["page_size"]
        base = self.config.base_url.rstrip("/")
        folder = quote(self.config.folder.strip(), safe="")
        first = (
            f"{base}/api1/x3/erp/{folder}/{chart['class']}?representation={chart['representation']}.$query"
        )
        first += f"&count={size}&orderBy={quote(chart['code_field'] + ' asc', safe='')}"
        if chart["where"]:
            first += f"&where={quote(chart['where'], safe='')}"
        records: list[Mapping[str, Any]] = []
        url: str | None = first
        last_code: str | None = None
        for _page in range(MAX_PAGES):
            if url is None:
                break
            data = self._call("GET", url)
            resources = data.get("$resources")
            if not isinstance(resources, list) or not all(isinstance(r, Mapping) for r in resources):
                raise self._failed(BadResponseError("X3 chart of accounts query: expected a $resources list"))
            records.extend(resources)
            if (limit and len(records) >= limit) or len(records) > MAX_ACCOUNTS:
                break
            codes = [str(dig(r, chart["code_field"]) or "") for r in resources]
            url = self._next_account_page(data, first, size, codes, last_code)
            last_code = codes[-1] if codes else last_code
        else:
            raise self._failed(PermanentError(f"X3 chart of accounts: more than {MAX_PAGES} pages, stopped"))
        if len(records) > MAX_ACCOUNTS:
            raise self._failed(
                PermanentError(
                    f"X3 chart of accounts: more than {MAX_ACCOUNTS} accounts (is the where filter applied?)"
                )
            )
        accounts = accounts_from_records(records, chart)
        return accounts[:limit] if limit else accounts

    def _next_account_page(
        self, data: Mapping[str, Any], first: str, size: int, codes: list[str], last_code: str | None
    ) -> str | None:
        links = data.get("$links")
        nxt = links.get("$next") if isinstance(links, Mapping) else None
        href = nxt.get("$url") if isinstance(nxt, Mapping) else None
        if isinstance(href, str) and href:
            ours, theirs = urlsplit(self.config.base_url), urlsplit(href)
            if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
                raise self._failed(
                    PermanentError(
                        f"X3 chart of accounts: the next page is on another server ({theirs.netloc})"
                    )
                )
            return href
        if len(codes) < size or not codes or not codes[-1]:
            return None
        if codes[-1] == last_code:  # the key filter was ignored: the same page again
            raise self._failed(
                PermanentError("X3 chart of accounts: paging by key returned the same page twice")
            )
        return first + f"&key={quote('gt.' + codes[-1], safe='')}"


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def _secret_forms(username: str, password: str) -> list[str]:
    """The password as it could leak: raw, URL-encoded, and inside the Basic token. Longest first."""
    if not password:
        return []
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    forms = {password, quote(password, safe=""), token}
    return sorted((f for f in forms if f), key=len, reverse=True)
