"""Django's PostgreSQL SQL compilers, with SELECT compilation reused across calls.

Note [Compiled query cache]
~~~~~~~~~~~~~~~~~~~~~~~~~~~
Turning a ``Query`` into SQL (``SQLCompiler.as_sql``) costs more CPU than
sending the query and reading its rows: about a third of an ``aget()`` by
primary key. Yet an application runs the same few query shapes over and over
with different values. So the SELECT compiler keeps the SQL it produced,
keyed by everything it was produced from except the values:

- the WHERE clause is compiled on every call (it is where the values are, and
  compiling it alone is cheap); its SQL text is part of the key, its
  parameters are the parameters of the result;
- every other attribute of the query, frozen to plain values (containers
  copied, since Django mutates some in place), must be equal to the ones the
  cached SQL was built from; so must the model's table and ordering, the
  database alias and the arguments of ``as_sql``;
- a query is only cached when all its parameters come from the WHERE clause,
  and when every attribute is made of plain values (strings, numbers, model
  classes, tables, joins, columns, in tuples, lists, sets and dicts): so
  ``extra(select=...)`` without parameters is cached, with parameters it is
  not. Annotations, combinators, select_for_update (whose check depends on the
  connection's state at the time), subquery-bearing attributes and anything
  else unknown are compiled by Django every time.

On a hit the compiler gets the state a full compilation leaves behind and
that the result iterators read (``select``, ``klass_info``,
``annotation_col_map``, ``col_count``, ``has_extra_select``, ``where``), so
model instances, ``select_related`` and converters work as before. The query
itself is left as compiling it would leave it: compiling adds aliases to it
(the base table, the joins of ``select_related`` and of ordering), which code
may inspect afterwards, so the attributes a compilation changed are recorded
with the entry and set again, as copies, on each hit. Django's
whole test suite runs with the cache on. ``DJANGO_AIO_QUERY_CACHE = False``
turns it off.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db.backends.postgresql.compiler import (  # pyright: ignore[reportMissingImports]
    SQLAggregateCompiler,
    SQLDeleteCompiler,
    SQLUpdateCompiler,
)
from django.db.backends.postgresql.compiler import (  # pyright: ignore[reportMissingImports]
    SQLCompiler as PostgreSQLCompiler,
)
from django.db.models.expressions import Col
from django.db.models.sql.datastructures import BaseTable, Join

from django_aio.conn._settings import query_cache_enabled

from .insert import SQLInsertCompiler

__all__ = [
    "QueryCacheInfo",
    "SQLAggregateCompiler",
    "SQLCompiler",
    "SQLDeleteCompiler",
    "SQLInsertCompiler",
    "SQLUpdateCompiler",
    "clear_query_cache",
    "query_cache_info",
]

# Compared by equality as they are: immutable, and equal only when they
# compile to the same SQL.
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
_MAX_ENTRIES = 2048


class _Unfreezable(Exception):
    """A value the cache does not know how to compare: compile as Django does."""


def _freeze(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is tuple or kind is list:
        return (
            kind,
            tuple([item if type(item) in _PLAIN_TYPES else _freeze(item) for item in value]),
        )
    if kind is dict:
        return (
            dict,
            tuple(
                [
                    (key, item if type(item) in _PLAIN_TYPES else _freeze(item))
                    for key, item in value.items()
                ]
            ),
        )
    if kind is set or kind is frozenset:
        for item in value:
            if type(item) not in _PLAIN_TYPES:
                raise _Unfreezable
        return (kind, frozenset(value))
    if kind is BaseTable:
        return (BaseTable, value.identity)
    if kind is Join:
        if value.filtered_relation is not None:
            raise _Unfreezable
        return (Join, value.identity)
    if kind is Col:
        return (Col, value.identity)
    if isinstance(value, type):  # a model class (its metaclass is not ``type``)
        return value
    raise _Unfreezable


def _query_state(query: Any) -> tuple[Any, ...]:
    return tuple(
        [
            (key, value if type(value) in _PLAIN_TYPES else _freeze(value))
            for key, value in query.__dict__.items()
            if key != "where"
        ]
    )


# What a compilation leaves on the compiler for the result iterators to read.
_COMPILER_STATE = (
    "select",
    "klass_info",
    "annotation_col_map",
    "col_count",
    "has_extra_select",
    "_meta_ordering",
)


class _Entry:
    """One compiled shape; ``sql`` None: not cacheable, let Django compile it."""

    __slots__ = ("compiler_state", "replay", "sql")

    def __init__(self, compiler: Any, sql: str | None, replay: list[tuple[str, Any]]) -> None:
        self.sql = sql
        self.replay = replay
        self.compiler_state = tuple([getattr(compiler, name) for name in _COMPILER_STATE])


class QueryCacheInfo(NamedTuple):
    """Counters of the compiled query cache since start or ``clear_query_cache()``."""

    hits: int
    misses: int
    uncacheable: int
    size: int


_cache: dict[tuple[Any, ...], _Entry] = {}
_counts = {"hits": 0, "misses": 0, "uncacheable": 0}


def clear_query_cache() -> None:
    """Forget every cached SELECT and reset the counters (Note [Compiled query cache])."""
    _cache.clear()
    for name in _counts:
        _counts[name] = 0


def query_cache_info() -> QueryCacheInfo:
    """How often SELECTs were served from the cache (Note [Compiled query cache])."""
    return QueryCacheInfo(_counts["hits"], _counts["misses"], _counts["uncacheable"], len(_cache))


def _copied(value: Any) -> Any:
    # Django shares and mutates in place the lists of ``table_map`` between
    # clones; a replayed value must be the query's own.
    kind = type(value)
    if kind is dict:
        return {key: list(item) if type(item) is list else item for key, item in value.items()}
    if kind is list or kind is set:
        return kind(value)
    return value


def _changes(query: Any, before: tuple[tuple[str, Any], ...]) -> list[tuple[str, Any]] | None:
    """What compiling did to the query's attributes (new aliases, refcounts), to replay on hits.

    ``None`` if the query can no longer be compared (then it is not cached).
    """
    try:
        after = _query_state(query)
    except _Unfreezable:
        return None
    earlier = dict(before)
    missing = object()
    if len(after) < len(earlier):
        return None  # an attribute went away: not something we replay
    return [
        (key, _copied(query.__dict__[key]))
        for key, frozen in after
        if earlier.get(key, missing) != frozen
    ]


def _compiles_to(compiler: Any, where_sql: str, where_params: tuple[Any, ...]) -> bool:
    # The WHERE clause compiled after Django's set-up must be the one we
    # compiled before it: only then is our key the whole story.
    try:
        sql, params = compiler.compile(compiler.where)
    except FullResultSet:
        return where_sql == "" and not where_params
    except EmptyResultSet:
        return False
    return bool(sql == where_sql and tuple(params) == where_params)


class SQLCompiler(PostgreSQLCompiler):
    """Django's PostgreSQL SELECT compiler that reuses its SQL (Note [Compiled query cache])."""

    def as_sql(self, with_limits: bool = True, with_col_aliases: bool = False) -> Any:
        query = self.query
        if (
            type(self) is not SQLCompiler
            or query.combinator
            or query.select_for_update
            or query.annotations
            or not query_cache_enabled()
        ):
            return super().as_sql(with_limits, with_col_aliases)
        opts = query.model._meta
        try:
            shape = (
                query.model,
                opts.db_table,
                _freeze(opts.ordering),
                self.connection.alias,
                self.elide_empty,
                with_limits,
                with_col_aliases,
                state := _query_state(query),
            )
        except _Unfreezable:
            _counts["uncacheable"] += 1
            return super().as_sql(with_limits, with_col_aliases)
        try:
            where_sql, where_params = self.compile(query.where)
        except FullResultSet:
            where_sql, where_params = "", ()
        except EmptyResultSet:
            _counts["uncacheable"] += 1
            return super().as_sql(with_limits, with_col_aliases)
        where_params = tuple(where_params)
        key = (where_sql, shape)
        try:
            entry = _cache.get(key)
        except TypeError:  # an attribute that cannot be hashed after all
            _counts["uncacheable"] += 1
            return super().as_sql(with_limits, with_col_aliases)
        if entry is not None:
            if entry.sql is None:
                _counts["uncacheable"] += 1
                return super().as_sql(with_limits, with_col_aliases)
            _counts["hits"] += 1
            for name, value in zip(_COMPILER_STATE, entry.compiler_state, strict=True):
                setattr(self, name, value)
            self.where, self.having, self.qualify = query.where, None, None
            # Leave the query as a compilation would (Note [Compiled query cache]).
            for name, value in entry.replay:
                query.__dict__[name] = _copied(value)
            return entry.sql, where_params
        _counts["misses"] += 1
        sql, params = super().as_sql(with_limits, with_col_aliases)
        replay = _changes(query, state)
        cacheable = (
            replay is not None
            and tuple(params) == where_params
            and self.having is None
            and self.qualify is None
            and self.where is query.where
            and _compiles_to(self, where_sql, where_params)
        )
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[key] = _Entry(self, sql if cacheable else None, replay or [])
        return sql, params
