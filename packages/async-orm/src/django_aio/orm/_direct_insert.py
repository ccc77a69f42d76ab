"""``save()`` of a new row runs its INSERT from the SQL Django wrote for that shape.

Note [Direct inserts]
~~~~~~~~~~~~~~~~~~~~~
``Model.save()`` of a new object (``create()`` included) ends in
``Model._do_insert()``: the base manager makes a queryset, the queryset an
``InsertQuery`` (two ``Query`` objects built from scratch), the query a
compiler, and the compiler writes and runs the statement and converts what
it returns. The ENGINE's INSERT compiler keeps the SQL of each single-row
shape already (Note [Compiled inserts] in django_aio.conn); building the
objects around it is still about a sixth of a ``create()``. Drop-in's
``_do_insert()`` runs the kept statement directly when the result is
Django's by construction:

- the insert is not ``raw`` (fixtures), the connection compiles with the
  ENGINE's compiler, and the SQL of this model, columns, returned fields
  and alias is kept (the first insert of a shape goes Django's way and
  teaches it);
- the manager is a plain ``Manager`` whose queryset is a ``QuerySet``, so
  its ``_insert()`` is Django's;
- no value on the object is an expression, and each field's ``pre_save()``
  is Django's plain one (the attribute) or the date fields' (``auto_now``):
  then the values are Django's, computed once as its compiler does,
  ``pre_save(obj, add=True)`` then ``get_db_prep_save()``, field by field;
  a prepared value that is itself SQL (``as_sql``) goes Django's way with
  the values already computed, so no method runs twice;
- the returned columns have no converters.

The statement runs on Django's cursor (query log, execute wrappers, error
translation) and its row is fetched with the backend's own method, as the
compiler does. Everything around ``_do_insert()`` (``save()``,
``save_base()``, signals, parents, ``mark_for_rollback_on_error``) is
Django's. Anything else, and everything with ``DJANGO_AIO_QUERY_CACHE =
False``, is Django's ``_do_insert()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import Manager, QuerySet, sql
from django.db.models.fields import DateField, DateTimeField, Field, TimeField
from django.db.models.manager import BaseManager

from django_aio.conn.layers import kept_insert

__all__ = ["direct_do_insert"]

# pre_save() implementations that read the attribute, or set it to now().
_PLAIN_PRE_SAVE = frozenset(
    {Field.pre_save, DateField.pre_save, DateTimeField.pre_save, TimeField.pre_save}
)
_DJANGO_INSERT = Manager._insert  # type: ignore[attr-defined]
_MAX_ENTRIES = 1024
# (connection alias, model, returning fields) -> whether their columns need no converter
_unconverted: dict[tuple[Any, ...], bool] = {}


def _plain_manager(manager: Any) -> bool:
    kind = type(manager)
    return (
        getattr(kind, "_insert", None) is _DJANGO_INSERT
        and kind.get_queryset is BaseManager.get_queryset
        and manager._queryset_class is QuerySet
    )


def _needs_no_converter(connection: Any, model: Any, returning_fields: Any) -> bool:
    key = (connection.alias, model, model._meta.db_table, tuple(returning_fields))
    known = _unconverted.get(key)
    if known is None:
        # What the compiler's get_converters() would find for these columns.
        columns = [field.get_col(model._meta.db_table) for field in returning_fields]
        known = not any(
            connection.ops.get_db_converters(column) or column.get_db_converters(connection)
            for column in columns
        )
        if len(_unconverted) >= _MAX_ENTRIES:
            _unconverted.clear()
        _unconverted[key] = known
    return known


def direct_do_insert(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Model._do_insert`` that runs kept single-row INSERTs directly (Note [Direct inserts])."""

    def _do_insert(
        self: Any, manager: Any, using: str, fields: list[Any], returning_fields: Any, raw: bool
    ) -> Any:
        if raw or not fields or not _plain_manager(manager):
            return original(self, manager, using, fields, returning_fields, raw)
        connection = connections[using]
        model = manager.model
        kept = kept_insert(connection, model, fields, returning_fields)
        if (
            kept is None
            or not connection.features.can_return_columns_from_insert
            or (returning_fields and not _needs_no_converter(connection, model, returning_fields))
        ):
            return original(self, manager, using, fields, returning_fields, raw)
        for field in fields:
            if type(field).pre_save not in _PLAIN_PRE_SAVE or hasattr(
                getattr(self, field.attname), "resolve_expression"
            ):
                return original(self, manager, using, fields, returning_fields, raw)
        raws, values = [], []
        for field in fields:  # field by field, as Django's compiler does
            value = field.pre_save(self, True)
            raws.append(value)
            values.append(field.get_db_prep_save(value, connection=connection))
        if any(hasattr(value, "as_sql") for value in values):
            return _as_django(self, model, using, fields, returning_fields, raws, values)
        statement, trailing = kept
        with connection.cursor() as cursor:
            cursor.execute(statement, (*values, *trailing))
            if not returning_fields:
                return []
            operations = connection.ops
            fetch_rows = getattr(operations, "fetch_returned_rows", None)  # Django 6.0+
            if fetch_rows is not None:
                return list(fetch_rows(cursor, trailing))
            return [operations.fetch_returned_insert_columns(cursor, trailing)]

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
    raws: list[Any],
    values: list[Any],
) -> Any:
    # QuerySet._insert() with the values computed already: pre_save() and
    # get_db_prep_save() must not run twice.
    query = sql.InsertQuery(model)
    query.insert_values(fields, [obj], raw=False)
    compiler: Any = query.get_compiler(using=using)
    computed = {id(field): value for field, value in zip(fields, raws, strict=True)}
    prepared = {id(field): value for field, value in zip(fields, values, strict=True)}
    compiler.pre_save_val = lambda field, obj: computed[id(field)]
    compiler.prepare_value = lambda field, value: prepared[id(field)]
    return compiler.execute_sql(returning_fields)
