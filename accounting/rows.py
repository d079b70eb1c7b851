"""Row-level helpers where the ORM would spend extra statements (or, on the webhook path, extra CPU)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import connections, router
from django.db.models import Model
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery

M = TypeVar("M", bound=Model)


def insert_unless_exists(obj: Model) -> bool:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id`` (PostgreSQL; ``INSERT OR IGNORE`` on SQLite): insert the
    row unless one with the same unique key exists. Returns whether it was inserted (``obj.pk`` is then set).

    Saves the SAVEPOINT and RELEASE that ``save()`` inside ``transaction.atomic()`` with an IntegrityError handler
    needs (three statements become one), and a lost race leaves the caller's transaction usable. The statement's
    text is built once per model and database (the ORM compiles it on every save: about a third of the webhook
    path's CPU); the values go through each field's own preparation, as ``save()`` does.
    """
    model = type(obj)
    connection = connections[router.db_for_write(model)]
    sql, fields, _columns = insert_statement(model, connection.alias, 1, ignore_conflicts=True)
    params = insert_params([obj], fields, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True


def select(
    model: type[M],
    where: str,
    params: Sequence[Any],
    *,
    order_by: str = "",
    first: bool = False,
    lock: bool = False,
) -> list[M]:
    """Instances of ``model`` read with plain SQL: ``SELECT <every column> FROM <its table> WHERE <where>`` (``where``
    and ``order_by`` name columns; every value is a parameter), ``first``: the first row only, ``lock``: ``FOR
    UPDATE`` where the database has it. For the worker's hot reads: the ORM compiles a query of every column on
    each call (a millisecond or more for a posting); this text is built once per call site."""
    connection = connections[router.db_for_read(model)]
    lock = lock and connection.features.has_select_for_update
    return list(model._default_manager.raw(_select_sql(model, where, order_by, first, lock), params))


@cache
def _select_sql(model: type[Model], where: str, order_by: str, first: bool, lock: bool) -> str:
    columns = ", ".join(f'"{f.column}"' for f in model._meta.concrete_fields)
    sql = f'SELECT {columns} FROM "{model._meta.db_table}" WHERE {where}'  # noqa: S608 - names from the model
    if order_by:
        sql += f" ORDER BY {order_by}"
    if first:
        sql += " LIMIT 1"
    return sql + (" FOR UPDATE" if lock else "")


def insert_all(objs: Sequence[Model]) -> None:
    """``bulk_create`` for the worker's hot path (an entry's lines): the statement's text is built once per model and
    row count, where the ORM compiles it on every call (a tenth of a worker's CPU). Sets each object's ``pk``."""
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    sql, fields, columns = insert_statement(model, connection.alias, len(objs))
    with connection.cursor() as cursor:
        cursor.execute(sql, insert_params(objs, fields, connection, columns=columns))
        ids = [
            row[0] for row in cursor.fetchall()
        ]  # in the order of the VALUES, as bulk_create relies on too
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias


def insert_params(
    objs: Sequence[Model], fields: Sequence[Any], connection, *, columns: bool = False
) -> list[Any]:
    """The values of ``objs`` for :func:`insert_statement`, through each field's own preparation as ``save()`` does;
    ``columns``: one array per column (the statement inserts from ``UNNEST``)."""
    rows = [
        [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields] for obj in objs
    ]
    return (
        [list(column) for column in zip(*rows, strict=True)]
        if columns
        else [value for row in rows for value in row]
    )


@cache
def insert_statement(
    model: type[Model], alias: str, rows: int, *, ignore_conflicts: bool = False
) -> tuple[str, list, bool]:
    """``INSERT`` of ``rows`` rows of ``model`` (every column but the id) ``RETURNING id``, as the ORM writes it, the
    fields in the order of the placeholders, and whether the values go as one array per column (PostgreSQL inserts
    several rows from ``UNNEST`` of arrays, one per column)."""
    meta = model._meta
    fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
    query = InsertQuery(model, on_conflict=OnConflict.IGNORE if ignore_conflicts else None)
    query.insert_values(fields, [model() for _ in range(rows)])
    compiler = query.get_compiler(using=alias)
    compiler.returning_fields = [meta.pk]
    [(sql, params)] = compiler.as_sql()
    return sql, fields, len(params) != rows * len(fields)
