"""Sage X3 GraphQL ("Xtrem", ``/xtrem/api``) client: create a GL journal entry through the tenant's own mutation, find
one by our reference, test the connection. Same interface as the api1 client (:mod:`integrations.sagex3.rest`).

Why so much is configurable: X3 ships no standard create mutation for journal entries (``x3Finance.journalEntry`` is
read-only; a partner builds one with X3 Builder "API operations", docs/reference/sagex3.md §6.2), and the
standard node has no property holding our reference. So the mutation document, the mapping from our :class:`Entry` to
its variables, the lookup query and where the answers carry the document number form a per-tenant *GraphQL mapping*:
its defaults, validation and template rendering live in :mod:`.graphql_mapping` (documented in docs/x3-graphql.md),
and the client refuses to call X3 with an invalid one.

Authentication is a :class:`TokenSource`: OAuth2 access tokens from the cloud gateway (stored and refreshed by
connector/x3auth.py) or connected-app JWTs signed here (:mod:`.connected_app`). On a 401 the client asks its source for
a new token once and retries the call once; a second 401 is an :class:`AuthenticationError`. A 401 means the gateway
or X3 refused the request before running it, so retrying even the create mutation cannot duplicate an entry.

Contract: every method returns typed data or raises an :class:`~integrations.errors.IntegrationError`
(:func:`classify_graphql_response`); every HTTP call, token calls included, is appended to ``call_log``; tokens and
secrets never appear in messages or in ``call_log``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from integrations.errors import (
    AuthenticationError,
    BadResponseError,
    IntegrationError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from integrations.http import CallRecord, Exchange, Transport, new_session, retry_after, snippet

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
from .graphql_mapping import (
    GraphQLMappingError,
    effective_graphql_mapping,
    line_rows,
    lines_style,
    render_template,
    validate_graphql_mapping,
)
from .rest import dumps
from .types import Entry, PostedEntry

RESPONSE_LOG_LIMIT = 10_000
ENDPOINT_HEADER = "x-xtrem-endpoint"
# A reference that find_entry puts into a filter string must not be able to change the filter's meaning.
SAFE_REFERENCE_RE = re.compile(r"^[A-Za-z0-9_.:/ -]{1,60}$")
TEST_REFERENCE = "CONNECTION-TEST"

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
            messages.append(snippet(str(error)))
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
    detail = f": {x3_says}" if x3_says else (f": {snippet(text)}" if text.strip() else "")
    common: dict[str, Any] = {"status_code": status, "response_body": text[:2000]}

    if 200 <= status < 300:
        if not isinstance(payload, Mapping):
            return BadResponseError(
                f"X3 answered HTTP {status} without a GraphQL JSON object ({where}): {snippet(text)!r}",
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
                f"X3 answered HTTP {status} without GraphQL data ({where}): {snippet(text)!r}",
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
        self._transport = Transport(
            session if session is not None else new_session(verify=config.verify),
            api="x3",
            timeout=config.timeout,
            body_limit=RESPONSE_LOG_LIMIT,
            verify=config.verify,
        )

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
            "company": entry.company or None,  # null: X3 derives the company from the site
            "exchange_rate": entry.exchange_rate,
        }
        rows = line_rows(
            entry.lines,
            lines_style(self.mapping["variables"]),
            entry.currency,
            self.mapping["dimension_keys"],
        )
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
        answer = self._post(body, token, is_write=is_write)
        if answer.response.status_code == 401:
            answer.record.error = self._transport.redact(
                f"HTTP 401 ({snippet(answer.text, 120) or 'no body'}): renewing the token and retrying once"
            )
            token = self.tokens.renew(token, log=self._note)
            answer = self._post(body, token, is_write=is_write)
            if answer.response.status_code == 401:
                raise self._transport.failed(
                    AuthenticationError(
                        f"X3 rejected the renewed token too (HTTP 401 twice, {self._where()}): "
                        f"{_message(answer.text) or 'no message'}",
                        status_code=401,
                        response_body=answer.text[:2000],
                    ),
                    answer.record,
                )

        # Parse the answer as received; only what is kept (messages, call_log) is scrubbed of tokens.
        text = answer.response.text
        try:
            payload: Any = json.loads(text) if text.strip() else None
        except ValueError:
            payload = None
        error = classify_graphql_response(
            answer.response.status_code,
            payload,
            text=answer.text,
            is_write=is_write,
            where=self._where(),
            headers=answer.response.headers,
        )
        if error is not None:
            raise self._transport.failed(error, answer.record)
        return payload["data"]

    def _post(self, body: str, token: str, *, is_write: bool) -> Exchange:
        self._transport.add_secret(token)
        headers = {
            "Authorization": f"Bearer {token}",
            ENDPOINT_HEADER: self.config.endpoint,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        return self._transport.exchange(
            "POST", self.config.url, body=body, headers=headers, is_write=is_write
        )

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
        return snippet(text)
    if isinstance(payload, Mapping):
        for key in ("message", "$message", "error_description", "error"):
            if isinstance(payload.get(key), str) and payload[key].strip():
                return payload[key].strip()
    return snippet(text)
