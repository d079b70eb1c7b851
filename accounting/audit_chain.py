"""Tamper-evident audit: every history record and X3-call record of a tenant is linked into one SHA-256 chain.

Each :class:`~accounting.models.PostingLog` and :class:`~accounting.models.PostingAttempt` carries its position in
its tenant's chain (``seq``), the hash of the record before it (``prev_hash``) and its own ``hash``::

    hash = sha256(prev_hash + canonical JSON of the record's fields)

A row changed, deleted or slipped in afterwards (with raw SQL: the models refuse it) no longer fits, and
:func:`verify_tenant` (``manage.py verify_audit``) names the first record where the chain breaks. See
docs/decisions/0013-tamper-evident-audit.md.

Every write of these records goes through :func:`append_records` (or :func:`append_log` and
:func:`append_attempts`). Appending locks the
tenant's :class:`~accounting.models.AuditChainHead` row (``SELECT … FOR UPDATE``) in the caller's transaction, so
two workers appending for one tenant at once take turns and never fork the chain; the lock is held until that
transaction commits. Inside a larger transaction the posting's row is locked first (lock order: posting, then
head). On SQLite the IMMEDIATE transaction mode serialises writers anyway.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from connector.models import Tenant

from .models import AuditChainHead, AuditCheck, Posting, PostingAttempt, PostingLog
from .rows import insert_params, insert_statement, select

GENESIS = "0" * 64  # prev_hash of a tenant's first record
VERSION = 1  # part of every hashed payload: a future change of the fields hashed gets a new number


# --- What is hashed ------------------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def log_payload(record: Any) -> dict[str, Any]:
    return {
        "v": VERSION,
        "type": "log",
        "tenant": record.tenant_id,
        "seq": record.seq,
        "posting": record.posting_id,
        "created_at": _iso(record.created_at),
        "from_status": record.from_status,
        "to_status": record.to_status,
        "trigger": record.trigger,
        "user": record.user_id,
        "message": record.message,
    }


def attempt_payload(record: Any) -> dict[str, Any]:
    return {
        "v": VERSION,
        "type": "attempt",
        "tenant": record.tenant_id,
        "seq": record.seq,
        "posting": record.posting_id,
        "created_at": _iso(record.created_at),
        "attempt": record.attempt,
        "operation": record.operation,
        "method": record.method,
        "url": record.url,
        "request_body": record.request_body,
        "status_code": record.status_code,
        "response_body": record.response_body,
        "duration_ms": record.duration_ms,
        "outcome": record.outcome,
        "error": record.error,
    }


def link_hash(prev_hash: str, payload: dict[str, Any]) -> str:
    """SHA-256 (hex) of the previous hash followed by the payload as canonical JSON (sorted keys, no spaces,
    ASCII only, so any text — even a lone surrogate — has exactly one encoding)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((prev_hash + canonical).encode("ascii")).hexdigest()


# The chained tables and their payloads; on equal positions (a forged duplicate) the X3 call is read first.
_MODELS = ((PostingAttempt, attempt_payload), (PostingLog, log_payload))
_PAYLOADS = dict(_MODELS)


# --- Appending -----------------------------------------------------------------------------------------------------


def append_log(*, posting_locked: bool = False, **fields: Any) -> PostingLog:
    """Create one history record (same keyword arguments as ``PostingLog.objects.create``), chained.

    ``posting_locked``: the caller's transaction already holds the posting's row lock (it inserted or updated the
    row, or selected it ``FOR UPDATE``), so the lock-order statement is skipped.
    """
    record = PostingLog(**fields)
    append_records([record], posting_locked=posting_locked)
    return record


def append_attempts(
    records: Iterable[PostingAttempt], *, posting_locked: bool = False
) -> list[PostingAttempt]:
    """Create X3-call records of one posting in the order given (like ``bulk_create``), chained."""
    records = list(records)
    append_records(records, posting_locked=posting_locked)
    return records


def append_records(records: list, *, posting_locked: bool = False) -> list:
    """Chain history and X3-call records of one posting, in the order given, under one lock of the chain head:
    one ``SELECT … FOR UPDATE`` of the head, one INSERT per table, one UPDATE of the head — whatever the number of
    records (a delivery appends its X3 calls and the "posted" line together)."""
    if not records:
        return records
    posting = records[0].posting
    tenant_id = posting.tenant_id
    connection = transaction.get_connection()
    inside_transaction = connection.in_atomic_block
    with transaction.atomic(savepoint=False):
        if inside_transaction and not posting_locked and connection.features.has_select_for_update:
            # Lock order: the posting's row, then the chain head. Planning holds the posting row when it appends;
            # a worker that took the head first and then updated the posting would deadlock with it.
            list(Posting.objects.select_for_update().filter(pk=posting.pk).values_list("pk", flat=True))
        # Locked until the caller's transaction commits: the next appender for this tenant waits here.
        found = select(
            AuditChainHead, '"tenant_id" = %s', (tenant_id,), lock=True
        )  # the common case, compiled once
        head, created = (
            (found[0], False)
            if found
            else AuditChainHead.objects.select_for_update().get_or_create(tenant_id=tenant_id)
        )
        seq, prev = head.seq, head.hash
        if created:  # the tenant's first record — or the head row was lost: continue after the last record
            seq, prev = _last_link(tenant_id) or (seq, prev)
        for record in records:
            seq += 1
            record.tenant_id, record.seq, record.prev_hash = tenant_id, seq, prev
            record.hash = prev = link_hash(prev, _PAYLOADS[type(record)](record))
        groups: list[tuple[Any, list[Any]]] = [
            (model, of_model)
            for model in (PostingAttempt, PostingLog)
            if (of_model := [record for record in records if type(record) is model])
        ]
        if connection.vendor == "postgresql":
            _insert_and_move_head(connection, groups, head.pk, seq, prev)
        else:
            for model, of_model in groups:
                model.objects.bulk_create(of_model)
            AuditChainHead.objects.filter(pk=head.pk).update(seq=seq, hash=prev, updated_at=timezone.now())
    return records


def _insert_and_move_head(connection, groups, head_pk: int, seq: int, hash_: str) -> None:
    """PostgreSQL: the records' INSERTs and the head's UPDATE as one statement (data-modifying CTEs), which saves
    one statement per table on every append — two or three of the dozen a new order costs. The INSERTs are the
    ORM's own SQL (built once per row count, accounting/rows.py); the ids come back in insertion order, as with ``bulk_create``."""
    ctes, selects, params = [], [], []
    for i, (model, of_model) in enumerate(groups):
        sql, fields, columns = insert_statement(model, connection.alias, len(of_model))
        ctes.append(f"r{i} AS ({sql})")
        selects.append(f"ARRAY(SELECT id FROM r{i} ORDER BY id)")  # noqa: S608 - no input in it
        params.extend(insert_params(of_model, fields, connection, columns=columns))
    table = AuditChainHead._meta.db_table
    sql = (
        f"WITH {', '.join(ctes)} "  # noqa: S608 - table names from the models' metadata, values as parameters
        f'UPDATE "{table}" SET "seq" = %s, "hash" = %s, "updated_at" = %s WHERE "id" = %s '
        f"RETURNING {', '.join(selects)}"
    )
    params.extend([seq, hash_, timezone.now(), head_pk])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = cursor.fetchone()
    for (_model, of_model), pks in zip(groups, ids, strict=True):
        for record, pk in zip(of_model, pks, strict=True):
            record.pk = pk
            record._state.adding = False
            record._state.db = connection.alias


def _last_link(tenant_id: int) -> tuple[int, str] | None:
    last = [
        row
        for model, _ in _MODELS
        for row in model.objects.filter(tenant_id=tenant_id).order_by("-seq").values_list("seq", "hash")[:1]
    ]
    return max(last) if last else None


# --- Verifying -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first link of a chain that does not hold."""

    record_type: str  # "PostingLog", "PostingAttempt" or "AuditChainHead"
    record_id: int | None
    seq: int | None
    reason: str
    expected: str = ""
    stored: str = ""

    def __str__(self) -> str:
        where = f"{self.record_type} #{self.record_id}" if self.record_id is not None else self.record_type
        text = f"broken at {where}" + (f" (chain position {self.seq})" if self.seq is not None else "")
        text += f": {self.reason}"
        if self.expected or self.stored:
            text += f" (expected {self.expected or '—'}, stored {self.stored or '—'})"
        return text


@dataclass(frozen=True)
class Verification:
    tenant: Tenant
    records: int  # records verified (up to the first break)
    broken: Break | None
    head_hash: str = GENESIS  # hash of the last record verified: keep it outside the database as an anchor

    @property
    def intact(self) -> bool:
        return self.broken is None

    def __str__(self) -> str:
        if self.intact:
            return (
                f"{self.tenant.slug}: intact ({self.records} records; head {self.records}:{self.head_hash})"
            )
        return f"{self.tenant.slug}: {self.broken} — {self.records} records verified before it"


def _chain(tenant_id: int, upto: int) -> Iterator[tuple[int, str, Any, Any]]:
    """The tenant's records up to position ``upto``, in chain order, both tables merged."""

    def stream(model, payload):
        rows = model.objects.filter(tenant_id=tenant_id, seq__lte=upto).order_by("seq", "id")
        for row in rows.iterator(chunk_size=2000):
            yield row.seq, model.__name__, row, payload

    return heapq.merge(*(stream(m, p) for m, p in _MODELS), key=lambda item: item[0])


def verify_tenant(tenant: Tenant, anchor: tuple[int, str] | None = None) -> Verification:
    """Walk the tenant's chain from the first record and report the first link that does not hold.

    ``anchor``: a ``(position, hash)`` printed by an earlier run and kept outside the database; the record at that
    position must still have that hash (a chain rewritten consistently from there on is caught only this way).

    Safe while workers append: the walk stops at the head read first (records and head commit together), and a
    record beyond the head counts as forged only if it is still beyond the head read after looking for it.
    """
    head = AuditChainHead.objects.filter(tenant=tenant).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    prev, expected_seq, count = GENESIS, 1, 0
    for seq, record_type, row, payload in _chain(tenant.pk, head_seq):
        if seq > expected_seq:
            missing = f"#{expected_seq}" if seq == expected_seq + 1 else f"#{expected_seq}–#{seq - 1}"
            reason = f"the record(s) at chain position {missing} before it are missing (deleted)"
            return Verification(tenant, count, Break(record_type, row.pk, seq, reason))
        if seq < expected_seq:
            reason = f"a second record claims chain position {seq} (inserted)"
            return Verification(tenant, count, Break(record_type, row.pk, seq, reason))
        if row.prev_hash != prev:
            reason = "it does not link to the record before it (this link or that record was rewritten)"
            return Verification(
                tenant, count, Break(record_type, row.pk, seq, reason, expected=prev, stored=row.prev_hash)
            )
        computed = link_hash(prev, payload(row))
        if computed != row.hash:
            reason = "its content or hash was changed after it was written"
            return Verification(
                tenant, count, Break(record_type, row.pk, seq, reason, expected=computed, stored=row.hash)
            )
        if anchor is not None and seq == anchor[0] and row.hash != anchor[1]:
            reason = "its hash is not the anchor recorded earlier: the chain was rewritten at or before this position"
            return Verification(
                tenant, count, Break(record_type, row.pk, seq, reason, expected=anchor[1], stored=row.hash)
            )
        prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
    if head is not None and count != head_seq:
        reason = f"the chain ends at position {count} but its head says {head_seq}: the last record(s) were deleted"
        return Verification(tenant, count, Break("AuditChainHead", head.pk, head_seq, reason))
    if prev != head_hash:
        reason = "the head's hash does not match the last record"
        return Verification(
            tenant,
            count,
            Break("AuditChainHead", head.pk if head else None, head_seq, reason, prev, head_hash),
        )
    if anchor is not None and anchor[0] > count:
        reason = (
            f"the chain ends at position {count}, before the anchor recorded earlier (position {anchor[0]})"
        )
        return Verification(
            tenant, count, Break("AuditChainHead", head.pk if head else None, head_seq, reason)
        )
    forged = _beyond_head(tenant, head_seq)
    if forged is not None:
        record_type, pk, seq = forged
        reason = (
            "the chain head is missing while records exist"
            if head is None
            else f"it lies beyond the chain head (position {head_seq}): it was not appended by the connector"
        )
        return Verification(tenant, count, Break(record_type, pk, seq, reason))
    return Verification(tenant, count, None, prev)


def _beyond_head(tenant: Tenant, head_seq: int) -> tuple[str, int, int] | None:
    beyond = [
        (model.__name__, pk, seq)
        for model, _ in _MODELS
        for pk, seq in model.objects.filter(tenant=tenant, seq__gt=head_seq).values_list("pk", "seq")
    ]
    if not beyond:
        return None
    # Appended meanwhile by a worker? Then the head has moved past them by now.
    now_at = AuditChainHead.objects.filter(tenant=tenant).values_list("seq", flat=True).first() or 0
    forged = [item for item in beyond if item[2] > now_at]
    return min(forged, key=lambda item: (item[2], item[0], item[1])) if forged else None


def verify_all(
    tenants: Iterable[Tenant] | None = None, anchor: tuple[int, str] | None = None
) -> list[Verification]:
    """Verify each tenant's chain and keep the result for the admin (:class:`AuditCheck`)."""
    results = []
    for tenant in Tenant.objects.order_by("slug") if tenants is None else tenants:
        result = verify_tenant(tenant, anchor)
        AuditCheck.objects.update_or_create(
            tenant=tenant,
            defaults={
                "checked_at": timezone.now(),
                "intact": result.intact,
                "records": result.records,
                "message": "" if result.intact else str(result.broken),
            },
        )
        results.append(result)
    return results


# --- Chaining rows written before the chain existed (data migration) -----------------------------------------------


def rechain_existing(log_model, attempt_model, head_model, posting_model, *, batch: int = 1000) -> int:
    """Chain every record of every tenant, in id order within each table, the two tables merged by creation time.

    Takes the models as arguments so the data migration can pass its historical ones. Returns the records chained.
    """
    total = 0
    tenant_ids = sorted(set(posting_model.objects.values_list("tenant_id", flat=True)))
    for tenant_id in tenant_ids:
        streams = [
            [
                (created_at, model, pk, payload)
                for pk, created_at in model.objects.filter(posting__tenant_id=tenant_id)
                .order_by("id")
                .values_list("id", "created_at")
            ]
            for model, payload in ((attempt_model, attempt_payload), (log_model, log_payload))
        ]
        order = list(heapq.merge(*streams, key=lambda item: item[0]))
        seq, prev = 0, GENESIS
        for start in range(0, len(order), batch):
            chunk = order[start : start + batch]
            rows = {
                model: model.objects.in_bulk([pk for _, m, pk, _ in chunk if m is model])
                for model in (attempt_model, log_model)
            }
            for _, model, pk, payload in chunk:
                row = rows[model][pk]
                seq += 1
                row.tenant_id, row.seq, row.prev_hash = tenant_id, seq, prev
                row.hash = prev = link_hash(prev, payload(row))
            for model, by_pk in rows.items():
                model.objects.bulk_update(list(by_pk.values()), ["tenant", "seq", "prev_hash", "hash"])
        head_model.objects.update_or_create(tenant_id=tenant_id, defaults={"seq": seq, "hash": prev})
        total += seq
    return total
