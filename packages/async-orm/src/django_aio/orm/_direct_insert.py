"""``save()`` of a new row runs its INSERT from the SQL Django wrote for that shape.

Note [Direct inserts]
~~~~~~~~~~~~~~~~~~~~~
``Model.save()`` of a new object (``create()`` included) ends in
``Model._do_insert()``: the base manager makes a queryset, the queryset an
``InsertQuery`` (two ``Query`` objects built from scratch), the query a
compiler, and the compiler writes and runs the statement and converts what
it returns. The ENGINE's INSERT compiler keeps the SQL of each single-row
shape already (Note [Compiled inserts] in django_aio.conn); building the
objects around it still costs about a sixth of an ``acreate()``'s
instructions, and running the statement directly saves half of that, the
checks below paid (8% per ``acreate()``). Drop-in's
``_do_insert()`` runs the kept statement itself when the result is Django's
by construction, doing what Django's chain does, in the same order:

- the insert is not ``raw`` (fixtures), the connection compiles with the
  ENGINE's compilers, and the SQL of this model, columns, returned fields
  and alias is kept (the first insert of a shape goes Django's way and
  teaches it);
- Django's chain is Django's: the manager is a plain ``Manager`` whose
  queryset is a ``QuerySet``, and ``QuerySet._insert``, ``InsertQuery``
  and the compiler's ``execute_sql``, ``pre_save_val`` and
  ``prepare_value`` are the ones Django defines (a profiler or test that
  wraps one of them sees every insert, as with Django);
- each field's ``pre_save`` is Django's plain one (the attribute) or the
  date fields' (``auto_now``), on the class, not replaced on the field.

Then, as ``execute_sql()`` does: open Django's cursor; per field,
``pre_save(obj, add=True)`` then ``get_db_prep_save()``; run the statement
(query log, execute wrappers, error translation are the cursor's); fetch the
row with the backend's method of this Django version, and hand it back when
no returned column has a converter (looked up on every insert, as Django
does). A value that ``pre_save()`` returns as an expression, or that
``get_db_prep_save()`` returns as SQL (``as_sql``), goes to Django's
compiler with what was computed already, so nothing runs twice (the
fields after an expression have run ``pre_save()`` before Django prepares
the expression, which no field of Django's can tell); so does a row whose
returned columns have converters. Around ``_do_insert()``, ``save()``,
``save_base()``, signals, parents and ``mark_for_rollback_on_error`` are
Django's, except in drop-in's ``create()`` of a plain model, which takes
their one branch itself and then runs ``insert_row()`` the same way (Note
[Direct creates] in _direct_create.py). Anything else, and everything with
``DJANGO_AIO_QUERY_CACHE = False``, is Django's ``_do_insert()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import QuerySet, sql
from django.db.models.fields import DateField, DateTimeField, Field, TimeField
from django.db.models.manager import BaseManager

from django_aio.conn.layers import DjangoDefined, kept_insert

__all__ = ["direct_do_insert", "direct_inserts_run", "insert_row", "kept_for"]

# pre_save() implementations that read the attribute, or set it to now().
_PLAIN_PRE_SAVE = frozenset(
    {Field.pre_save, DateField.pre_save, DateTimeField.pre_save, TimeField.pre_save}
)
# Django 6.0 fetches the returned rows with fetch_returned_rows().
_FETCH_ROWS = hasattr(BaseDatabaseOperations, "fetch_returned_rows")
# Where Django defines the links of its insert chain that this replaces.
_djangos_chain = DjangoDefined(
    "db/models/manager.py",  # Manager._insert, made from the queryset's
    "db/models/query.py",  # QuerySet._insert
    "db/models/sql/subqueries.py",  # InsertQuery.__init__
    "db/models/sql/subqueries.py",  # InsertQuery.insert_values
)
_runs = 0


def direct_inserts_run() -> int:
    """How many inserts ran directly since the process started (for tests)."""
    return _runs


def _django_chain(manager: Any) -> bool:
    kind = type(manager)
    if (
        kind.get_queryset is not BaseManager.get_queryset
        or getattr(manager, "_queryset_class", None) is not QuerySet
    ):
        return False
    insert_query = sql.InsertQuery
    return _djangos_chain(
        (
            getattr(kind, "_insert", None),
            QuerySet._insert,  # type: ignore[attr-defined]
            insert_query.__init__,
            insert_query.insert_values,
        )
    )


def _plain_pre_save(fields: list[Any]) -> bool:
    # Bound methods of the class's own: not a pre_save set on the field itself.
    return all(getattr(field.pre_save, "__func__", None) in _PLAIN_PRE_SAVE for field in fields)


def _converted(connection: Any, model: Any, returning_fields: Any) -> bool:
    # What the compiler's get_converters() would find for these columns.
    table = model._meta.db_table
    for field in returning_fields:
        column = field.get_col(table)
        if connection.ops.get_db_converters(column) or column.get_db_converters(connection):
            return True
    return False


def kept_for(manager: Any, connection: Any, fields: list[Any], returning_fields: Any) -> Any:
    """The kept ``(statement, trailing parameters)`` of this insert, or None: Django's way."""
    if not fields or not _django_chain(manager) or not _plain_pre_save(fields):
        return None
    kept = kept_insert(connection, manager.model, fields, returning_fields)
    if kept is None or not connection.features.can_return_columns_from_insert:
        return None
    return kept


def insert_row(
    obj: Any,
    connection: Any,
    model: Any,
    using: str,
    fields: list[Any],
    returning_fields: Any,
    kept: Any,
) -> Any:
    """Insert ``obj``'s row with ``kept``; returns what ``_do_insert()`` returns."""
    global _runs
    # As execute_sql(): the cursor first, then each field's value.
    with connection.cursor() as cursor:
        raws: dict[int, Any] = {}
        prepared: dict[int, Any] = {}
        expression = False  # from the first one on, Django prepares them
        for field in fields:  # field by field, as Django's compiler does
            value = raws[id(field)] = field.pre_save(obj, True)
            expression = expression or hasattr(value, "resolve_expression")
            if not expression:
                prepared[id(field)] = field.get_db_prep_save(value, connection=connection)
        values = list(prepared.values())
        if (
            not expression
            and not any(hasattr(value, "as_sql") for value in values)
            and not (returning_fields and _converted(connection, model, returning_fields))
        ):
            statement, trailing = kept
            cursor.execute(statement, (*values, *trailing))
            _runs += 1
            if not returning_fields:
                return []
            operations: Any = connection.ops
            if _FETCH_ROWS:
                return list(operations.fetch_returned_rows(cursor, trailing))
            return [operations.fetch_returned_insert_columns(cursor, trailing)]
    return _as_django(obj, model, using, fields, returning_fields, raws, prepared)


def direct_do_insert(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Model._do_insert`` that runs kept single-row INSERTs directly (Note [Direct inserts])."""

    def _do_insert(
        self: Any, manager: Any, using: str, fields: list[Any], returning_fields: Any, raw: bool
    ) -> Any:
        if raw:  # fixtures
            return original(self, manager, using, fields, returning_fields, raw)
        connection = connections[using]
        kept = kept_for(manager, connection, fields, returning_fields)
        if kept is None:
            return original(self, manager, using, fields, returning_fields, raw)
        return insert_row(self, connection, manager.model, using, fields, returning_fields, kept)

    _do_insert.__doc__ = original.__doc__
    _do_insert.__name__ = original.__name__
    _do_insert.__qualname__ = original.__qualname__
    return _do_insert


def _as_django(
    obj: Any,
    model: Any,
    using: str,
    fields: list[Any],
    returning_fields: Any,
    raws: dict[int, Any],
    prepared: dict[int, Any],
) -> Any:
    # QuerySet._insert() with what was computed already, so that pre_save()
    # and get_db_prep_save() never run twice: Django's prepare_value() takes
    # the fields from the first expression on (it resolves expressions), and
    # its compiler writes the SQL and applies converters.
    query = sql.InsertQuery(model)
    query.insert_values(fields, [obj], raw=False)
    compiler: Any = query.get_compiler(using=using)
    prepare = compiler.prepare_value
    compiler.pre_save_val = lambda field, obj: raws[id(field)]
    compiler.prepare_value = lambda field, value: (
        prepared[id(field)] if id(field) in prepared else prepare(field, value)
    )
    return compiler.execute_sql(returning_fields)
