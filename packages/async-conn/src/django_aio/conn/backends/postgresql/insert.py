"""Django's INSERT compiler, reusing the SQL of single-row inserts.

Note [Compiled inserts]
~~~~~~~~~~~~~~~~~~~~~~~
``Model.save()`` of a new row and ``create()`` insert one object; Django
writes the same ``INSERT INTO t (a, b) VALUES (%s, %s) RETURNING t.id`` for a
model every time, and writing it is about a fifth of Django's CPU time for
the insert. The compiler keeps it per model, columns, returned fields and
alias, and reuses it when each value is a plain value:

- the values are computed exactly as Django's compiler computes them, field
  by field, by its own ``pre_save_val()`` and ``prepare_value()``, and only
  once (a custom ``pre_save()`` or ``get_db_prep_save()`` runs as often as
  in Django);
- shapes Django writes differently are never cached: several objects,
  ``ON CONFLICT``, a field with a database default or a placeholder of its
  own (``get_placeholder``), no field at all;
- a value that is an expression (``obj.field = F(...)`` or ``Now()``) is
  compiled by Django, handed the values computed already;
- Django's SQL is stored only when its parameters are exactly our values
  (then the returned fields' own), in one statement;
- the key holds the table's and the columns' names, which code may change.

``DJANGO_AIO_QUERY_CACHE = False`` turns it off with the SELECT cache.
``kept_insert()`` hands a kept statement to django_aio.orm, whose drop-in
``Model._do_insert()`` runs it without building the query and compiler
(Note [Direct inserts] there).
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql.compiler import (  # pyright: ignore[reportMissingImports]
    SQLInsertCompiler as PostgreSQLInsertCompiler,
)

from django_aio.conn._settings import query_cache_enabled
from django_aio.conn._unwrapped import DjangoDefined

__all__ = ["SQLInsertCompiler", "kept_insert"]

_MAX_ENTRIES = 1024
_COMPILER_MODULE = "django_aio.conn.backends.postgresql.compiler"
_UNSEEN = object()
# shape -> (sql, returning params), or None: Django writes this shape
_inserts: dict[tuple[Any, ...], tuple[str, tuple[Any, ...]] | None] = {}


def _key(model: Any, fields: Any, returning_fields: Any, alias: str) -> tuple[Any, ...]:
    # Names too: code may rename a table or a column at run time.
    return (
        model,
        model._meta.db_table,
        tuple([(field, field.column) for field in fields]),
        tuple([(field, field.column) for field in returning_fields]),
        alias,
    )


def kept_insert(
    connection: Any, model: Any, fields: Any, returning_fields: Any
) -> tuple[str, tuple[Any, ...]] | None:
    """The SQL and trailing parameters kept for this single-row INSERT, or ``None``.

    ``None`` unless ``connection`` uses the ENGINE's compilers, whose
    ``execute_sql``, ``pre_save_val`` and ``prepare_value`` are Django's own
    (nothing wrapped them), the cache is on, and a plain insert of the same
    model, columns and returned fields on this alias was compiled by Django
    already and kept (Note [Compiled inserts]). The statement's parameters
    are then the values of ``fields`` in order, as Django's compiler
    prepares them, followed by the trailing parameters.
    """
    if (
        type(connection.ops).compiler_module != _COMPILER_MODULE
        or not query_cache_enabled()
        or not _djangos_execution([getattr(SQLInsertCompiler, name) for name in _EXECUTION])
    ):
        return None
    return _inserts.get(_key(model, fields, returning_fields or (), connection.alias))


# The compiler's methods that run a single-row insert.
_EXECUTION = ("execute_sql", "pre_save_val", "prepare_value")
_djangos_execution = DjangoDefined(*["db/models/sql/compiler.py"] * len(_EXECUTION))


def _cacheable_fields(fields: list[Any]) -> bool:
    return bool(fields) and not any(
        field.has_db_default()
        or hasattr(field, "get_placeholder")
        or hasattr(field, "get_placeholder_sql")
        for field in fields
    )


def _remember(
    key: tuple[Any, ...], entry: tuple[str, tuple[Any, ...]] | None
) -> tuple[str, tuple[Any, ...]] | None:
    # Bounded: models and tables made at run time must not grow it forever.
    if len(_inserts) >= _MAX_ENTRIES:
        _inserts.clear()
    _inserts[key] = entry
    return entry


class SQLInsertCompiler(PostgreSQLInsertCompiler):
    """Django's PostgreSQL INSERT compiler, its single-row SQL reused (Note [Compiled inserts])."""

    def as_sql(self) -> Any:
        query = self.query
        if (
            type(self) is not SQLInsertCompiler
            or len(query.objs) != 1
            or query.on_conflict
            or not query_cache_enabled()
        ):
            return super().as_sql()
        fields = list(query.fields)
        key = _key(query.model, fields, self.returning_fields or (), self.connection.alias)
        entry: Any = _inserts.get(key, _UNSEEN)
        if entry is _UNSEEN and not _cacheable_fields(fields):
            entry = _remember(key, None)
        if entry is None:
            return super().as_sql()
        obj = query.objs[0]
        pre_save: Any = self.pre_save_val
        prepare: Any = self.prepare_value
        raw, values = [], []
        for field in fields:  # field by field, as Django does
            value = pre_save(field, obj)
            raw.append(value)
            values.append(prepare(field, value))
        if any(hasattr(value, "as_sql") for value in values):
            return self._as_django(fields, raw, values)
        if entry is not _UNSEEN:
            sql, self.returning_params = entry
            return [(sql, (*values, *self.returning_params))]
        statements = self._as_django(fields, raw, values)
        cached: tuple[str, tuple[Any, ...]] | None = None
        if len(statements) == 1:
            sql, params = statements[0]
            returning_params = tuple(self.returning_params)
            if tuple(params) == (*values, *returning_params):
                cached = (sql, returning_params)
        _remember(key, cached)
        return statements

    def _as_django(self, fields: list[Any], raw: list[Any], values: list[Any]) -> Any:
        # Django's as_sql() with the values computed already: pre_save() and
        # get_db_prep_save() must not run twice.
        raws = {id(field): value for field, value in zip(fields, raw, strict=True)}
        prepared = {id(field): value for field, value in zip(fields, values, strict=True)}
        self.pre_save_val = lambda field, obj: raws[id(field)]
        self.prepare_value = lambda field, value: prepared[id(field)]
        try:
            return super().as_sql()
        finally:
            del self.pre_save_val, self.prepare_value
