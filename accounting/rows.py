"""Row-level helpers where the ORM would spend extra statements."""

from __future__ import annotations

from django.db import connections, router
from django.db.models import Model
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery


def insert_unless_exists(obj: Model) -> bool:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id`` (PostgreSQL; ``INSERT OR IGNORE`` on SQLite): insert the
    row unless one with the same unique key exists. Returns whether it was inserted (``obj.pk`` is then set).

    Saves the SAVEPOINT and RELEASE that ``save()`` inside ``transaction.atomic()`` with an IntegrityError handler
    needs (three statements become one), and a lost race leaves the caller's transaction usable.
    """
    model = type(obj)
    meta = model._meta
    fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
    query = InsertQuery(model, on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, [obj])
    connection = connections[router.db_for_write(model)]
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [meta.pk]
    with connection.cursor() as cursor:
        for sql, params in compiler.as_sql():
            cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True
