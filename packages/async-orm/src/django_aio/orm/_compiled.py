"""Compiled queries: a queryset turned into SQL once, then run with new values.

Note [Compiled queries]
~~~~~~~~~~~~~~~~~~~~~~~
Most of an ``aget()`` by primary key is Django building the query (cloning
the queryset, resolving ``pk=...`` into a lookup, joins and aliases) and
compiling it, before anything is sent; the compiled query cache of the
ENGINE saves only the compiling. ``CompiledQuery`` saves both: the queryset
is built once, with ``Param("name")`` in place of each value, and compiled
once per database alias; each run binds the values and hands the SQL to
Django's own result iterators (``ModelIterable``, ``ValuesIterable``, ...),
which build the objects exactly as for the queryset. The converters of the
selected columns (``from_db_value()`` and the like), which Django looks up
on every run, are looked up on a template's first run and kept. The
statement goes through Django's cursor, so query logging,
``execute_wrapper()``, ``CaptureQueriesContext`` and transactions see it
like any other.

Each value is prepared as Django prepares the same value written in the
queryset: a lookup of the same class is built on the same column with the
value, and its right-hand side is compiled (``get_prep_value``,
``get_db_prep_value``, a model instance turned into its key). So a ``Param``
may be the value of a comparison lookup (``exact``, ``gt``, ``gte``, ``lt``,
``lte``) on a column, anywhere in ``filter()``, ``exclude()`` or ``Q``;
elsewhere its SQL could depend on the value, and it is refused.

``None`` is refused: Django compiles ``field=None`` to ``IS NULL``, a
different statement.

A few values do change the statement even there: an integer outside its
column's range (Django drops the condition, or the whole WHERE clause), a
list for an array column (one parameter per item). Binding notices (the
lookup's right-hand side is not one ``%s``, or raises ``EmptyResultSet`` /
``FullResultSet``), and that run is Django's own: the queryset with those
lookups built from the values, compiled as usual. So is every run of a
``select_for_update()`` queryset, whose compilation checks that a
transaction is open. Templates are kept per alias; when Django writes the
current time zone into the SQL (date functions), per zone too: the first
compilation is repeated in another zone to see whether the SQL changes.

``aget()`` and ``afirst()`` run the queryset that Django's ``get()`` and
``first()`` would build from it (ordering dropped and at most 21 rows; by
primary key unless ordered, one row), compiled the same way.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from operator import is_
from typing import Any, Generic, TypeVar

import django
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet
from django.db.models.lookups import Lookup
from django.db.models.query import MAX_GET_RESULTS
from django.utils import timezone

from ._dispatch import run_on
from ._param import (
    Param,
    Unbindable,
    compiling,
    no_params_in,
    params_in,
    prepared,
    stray,
    substituted,
)

__all__ = ["CompiledQuery", "Param"]

Row = TypeVar("Row")

# Django 6.0's first() leaves a queryset unordered after order_by() cleared it.
_FIRST_KEEPS_CLEARED_ORDER = django.VERSION >= (6, 0)


class _Template:
    """One variant compiled for one database alias."""

    __slots__ = ("compiler_class", "compiler_state", "params", "slots", "sql")

    def __init__(self, queryset: QuerySet[Any, Any], alias: str) -> None:
        query = queryset.query.chain()  # compiling changes a query: our own copy
        lookups: dict[int, Lookup[Any]] = {}
        params_in(query.where, lookups)
        compiler = query.get_compiler(using=alias)
        token = compiling.set(True)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            sql, params = None, []
        finally:
            compiling.reset(token)
        self.sql: str | None = sql
        self.params: list[Any] = list(params)
        self.slots: list[tuple[int, str, Lookup[Any]]] = []
        for index, value in enumerate(self.params):
            if isinstance(value, Param):
                lookup = lookups.get(id(value))
                if lookup is None:
                    raise stray(value)
                self.slots.append((index, value.name, lookup))
        self.compiler_class = _bound_class(type(compiler))
        self.compiler_state = dict(compiler.__dict__)
        # What results_iter() asks converters for; they are found on the
        # first run and kept (in a list the runs' compilers share).
        selected = (compiler.select or [])[: getattr(compiler, "col_count", 0)]
        columns = tuple(column[0] for column in selected)
        self.compiler_state["django_aio_columns"] = columns
        self.compiler_state["django_aio_converters"] = []

    def compiler(self, connection: Any, values: dict[str, Any]) -> Any:
        """A compiler of this SQL with ``values`` bound, on ``connection``."""
        compiler = object.__new__(self.compiler_class)
        compiler.__dict__.update(self.compiler_state)
        compiler.connection = connection
        params = list(self.params)
        for index, name, lookup in self.slots:
            params[index] = prepared(lookup, name, values[name], compiler, connection)
        compiler.django_aio_sql = self.sql, tuple(params)
        return compiler


_bound_classes: dict[type[Any], type[Any]] = {}


def _bound_class(compiler_class: type[Any]) -> type[Any]:
    bound = _bound_classes.get(compiler_class)
    if bound is None:

        def as_sql(self: Any, *args: Any, **kwargs: Any) -> tuple[str, tuple[Any, ...]]:
            sql, params = self.django_aio_sql
            if sql is None:
                raise EmptyResultSet
            return sql, params

        find_converters = compiler_class.get_converters

        def get_converters(self: Any, expressions: list[Any]) -> dict[int, Any]:
            columns = self.django_aio_columns
            if len(expressions) != len(columns) or not all(map(is_, expressions, columns)):
                return find_converters(self, expressions)  # type: ignore[no-any-return]
            known: list[dict[int, Any]] = self.django_aio_converters
            if not known:
                known.append(find_converters(self, expressions))
            return known[0]

        namespace = {"as_sql": as_sql, "get_converters": get_converters}
        bound = type(f"Bound{compiler_class.__name__}", (compiler_class,), namespace)
        _bound_classes[compiler_class] = bound
    return bound


class _Variant:
    """A queryset as run by one method (all rows, get(), first()), compiled per alias."""

    __slots__ = ("queryset", "templates")

    def __init__(self, queryset: QuerySet[Any, Any]) -> None:
        self.queryset = queryset
        # By alias and USE_TZ: one template, or (when the SQL has the current
        # time zone in it: AT TIME ZONE %s of date functions) one per zone.
        self.templates: dict[tuple[str, bool], _Template | dict[str, _Template]] = {}

    def _template(self, alias: str) -> _Template:
        key = (alias, settings.USE_TZ)
        templates = self.templates.get(key)
        if type(templates) is _Template:
            return templates
        zone = timezone.get_current_timezone_name()
        if templates is None:
            template = _Template(self.queryset, alias)
            if not key[1] or _same_in_other_zone(template, self.queryset, alias):
                self.templates[key] = template
                return template
            templates = self.templates[key] = {zone: template}
        assert isinstance(templates, dict)
        in_zone = templates.get(zone)
        if in_zone is None:
            in_zone = templates[zone] = _Template(self.queryset, alias)
        return in_zone

    def rows(self, values: dict[str, Any]) -> list[Any]:
        queryset = self.queryset
        if queryset.query.select_for_update:
            # Its compilation checks that a transaction is open: every time.
            return self.django_rows(values)
        alias = queryset.db
        template = self._template(alias)
        try:
            compiler = template.compiler(connections[alias], values)
        except Unbindable:
            return self.django_rows(values)
        running: Any = _Running(queryset, alias, compiler)
        iterable: Iterable[Any] = queryset._iterable_class(running)  # type: ignore[assignment]
        return list(iterable)

    def django_rows(self, values: dict[str, Any]) -> list[Any]:
        """The rows as Django gets them: the queryset with the values in, compiled now."""
        clone = self.queryset._chain()  # type: ignore[attr-defined]
        substituted(clone.query.where, values, clone.query)
        return list(clone)


def _same_in_other_zone(template: _Template, queryset: QuerySet[Any, Any], alias: str) -> bool:
    # Whether the SQL does not depend on the current time zone: compiled again
    # in a zone of another name and offset, it must come out the same.
    other = "UTC" if timezone.get_current_timezone_name() != "UTC" else "Pacific/Chatham"
    with timezone.override(other):
        again = _Template(queryset, alias)
    return (again.sql, again.params) == (template.sql, template.params)


class _Running:
    """What Django's result iterators read of a queryset, with our compiler."""

    __slots__ = ("_queryset", "db", "query")

    def __init__(self, queryset: QuerySet[Any, Any], alias: str, compiler: Any) -> None:
        self._queryset = queryset
        self.db = alias
        self.query = _RunningQuery(compiler.query, compiler)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queryset, name)


class _RunningQuery:
    __slots__ = ("_compiler", "_query")

    def __init__(self, query: Any, compiler: Any) -> None:
        self._query = query
        self._compiler = compiler

    def get_compiler(self, *args: Any, **kwargs: Any) -> Any:
        return self._compiler

    def __getattr__(self, name: str) -> Any:
        return getattr(self._query, name)


class CompiledQuery(Generic[Row]):
    """A queryset compiled once, run with new ``Param`` values each time.

    ``by_author = CompiledQuery(Book.objects.filter(author=Param("author")))``
    then ``await by_author.alist(author=ann)``. See Note [Compiled queries]
    for what it saves and what a ``Param`` may stand for.
    """

    __slots__ = ("_all", "_first", "_get", "names", "queryset")

    def __init__(self, queryset: QuerySet[Any, Row]) -> None:
        if not isinstance(queryset, QuerySet):
            raise TypeError(
                f"CompiledQuery() takes a QuerySet, such as "
                f"CompiledQuery(Book.objects.filter(pk=Param('pk'))); got {queryset!r}."
            )
        if queryset._prefetch_related_lookups:  # type: ignore[attr-defined]
            raise TypeError(
                "CompiledQuery() does not run prefetch_related(): compile the queryset "
                "without it, then prefetch on the results with "
                "aprefetch_related_objects()."
            )
        lookups: dict[int, Lookup[Any]] = {}
        params_in(queryset.query.where, lookups)
        for annotation in queryset.query.annotations.values():
            no_params_in(annotation)
        #: The names of the values each run takes.
        self.names = frozenset(lookup.rhs.name for lookup in lookups.values())
        self.queryset = queryset
        self._all = _Variant(queryset)
        self._get: _Variant | None = None
        self._first: _Variant | None = None

    def __repr__(self) -> str:
        return f"<CompiledQuery of {self.queryset.model.__name__}: {sorted(self.names)}>"

    def _checked(self, values: dict[str, Any]) -> dict[str, Any]:
        if values.keys() != self.names:
            missing = sorted(self.names - values.keys())
            unknown = sorted(values.keys() - self.names)
            raise TypeError(
                f"{self!r} takes exactly the values {sorted(self.names)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
                + "."
            )
        return values

    # -- sync: for code already in the bridge, or in Django's thread ----------

    def list(self, **values: Any) -> list[Row]:
        """All rows, as iterating the queryset gives them."""
        return self._all.rows(self._checked(values))

    def get(self, **values: Any) -> Row:
        """The one matching row, as ``QuerySet.get()``; same exceptions, same messages."""
        if self._get is None:
            self._get = _Variant(_for_get(self.queryset))
        rows = self._get.rows(self._checked(values))
        if len(rows) == 1:
            return rows[0]  # type: ignore[no-any-return]
        model = self.queryset.model
        if not rows:
            raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
        count = len(rows) if len(rows) < MAX_GET_RESULTS else f"more than {MAX_GET_RESULTS - 1}"
        raise model.MultipleObjectsReturned(
            f"get() returned more than one {model._meta.object_name} -- it returned {count}!"
        )

    def first(self, **values: Any) -> Row | None:
        """The first row or None, as ``QuerySet.first()``."""
        if self._first is None:
            self._first = _Variant(_for_first(self.queryset))
        rows = self._first.rows(self._checked(values))
        return rows[0] if rows else None

    # -- async: through the bridge ----------------------------------------------

    async def alist(self, **values: Any) -> builtins.list[Row]:
        """``list()`` from async code."""
        return await run_on(self.queryset.db, self.list, **values)

    async def aget(self, **values: Any) -> Row:
        """``get()`` from async code."""
        return await run_on(self.queryset.db, self.get, **values)

    async def afirst(self, **values: Any) -> Row | None:
        """``first()`` from async code."""
        return await run_on(self.queryset.db, self.first, **values)

    def __iter__(self) -> Iterator[Row]:
        raise TypeError(
            f"{self!r} is not iterable: call .list(...) or await .alist(...) with its values."
        )


def _for_get(queryset: QuerySet[Any, Any]) -> QuerySet[Any, Any]:
    # What QuerySet.get() runs, built by the same steps.
    clone = queryset._chain() if queryset.query.combinator else queryset.filter()  # type: ignore[attr-defined]
    if queryset.query.can_filter() and not queryset.query.distinct_fields:
        clone = clone.order_by()
    if (
        not clone.query.select_for_update
        or connections[clone.db].features.supports_select_for_update_with_limit
    ):
        clone.query.set_limits(high=MAX_GET_RESULTS)
    return clone


def _for_first(queryset: QuerySet[Any, Any]) -> QuerySet[Any, Any]:
    # What QuerySet.first() runs, built by the same steps.
    if queryset.ordered or (_FIRST_KEEPS_CLEARED_ORDER and not queryset.query.default_ordering):
        return queryset[:1]
    queryset._check_ordering_first_last_queryset_aggregation(method="first")  # type: ignore[attr-defined]
    return queryset.order_by("pk")[:1]
