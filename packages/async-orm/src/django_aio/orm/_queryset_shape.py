"""The shape of a plain queryset: everything its SQL depends on, as a key.

Note [Queryset shapes]
~~~~~~~~~~~~~~~~~~~~~~
``await Item.objects.extra(select=...).aget(pk=pk)`` and
``await Item.objects.select_related("author").aget(pk=pk)`` build a new
queryset on every call, so a compiled query cannot be kept on the queryset.
It can be kept on the queryset's *shape*: a hashable value that is equal for
two querysets only if the same ``filter(...)`` makes the same SQL of both.

A shape is taken only where that holds by construction; anywhere else there
is none, and Django runs the call its own way:

- the queryset and its query are of Django's own classes (a subclass may
  change how either builds or runs the query);
- every attribute of the queryset but its database equals the one of a new
  ``QuerySet(model)``: no routing hints, no cached results, no ``values()``,
  no prefetching, no pending filter of a related manager;
- every attribute of the query equals the one of a new ``Query(model)``
  (the instance's, or the class default Django leaves in place), except a
  few whose values are plain data and go into the shape whenever they are
  set: ``extra(select=)`` without ``select_params``, ``select_related()``,
  ``only()`` and ``defer()``, and ordering by field names. So the ``WHERE``
  clause is empty, and there are no annotations, joins, slices,
  ``distinct()``, unions or ``select_for_update()``;
- ``select_params`` are refused, not keyed: a key would have to hold their
  values (``0.0`` and ``-0.0``, ``1`` and ``True`` compare equal yet are sent
  differently), and values that change from call to call would miss every
  time and push the other compiled gets out of the cache;
- caches Django derives from the rest (``_annotation_select_cache``,
  ``_extra_select_cache``, ``base_table``) are left out.

Comparing the attributes (mostly two dictionary comparisons in C) costs
three to four microseconds; building and compiling the query that it saves,
a hundred or more.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.db.models.sql import Query

__all__ = ["queryset_shape"]

_MISSING = object()
_DERIVED = frozenset({"_annotation_select_cache", "_extra_select_cache", "base_table"})
_OWN = frozenset({"_query", "_db"})


def _names(value: Any) -> Any:
    if type(value) in (tuple, list) and all(type(name) is str for name in value):
        return tuple(value)
    return _MISSING


def _extra(value: Any) -> Any:
    frozen = []
    for name, entry in value.items():
        if type(entry) is not tuple or len(entry) != 2:
            return _MISSING
        sql, params = entry
        if type(sql) is not str or params:
            return _MISSING
        frozen.append((name, sql))
    return tuple(frozen)


def _select_related(value: Any) -> Any:
    if type(value) is bool:
        return value
    if type(value) is not dict:
        return _MISSING
    frozen = []
    for name, inner in value.items():
        inner_frozen = _select_related(inner)
        if type(name) is not str or inner_frozen is _MISSING:
            return _MISSING
        frozen.append((name, inner_frozen))
    return tuple(frozen)


def _deferred(value: Any) -> Any:
    # only() and defer() leave a set of field names and whether it is the
    # set to load (only) or to leave out (defer).
    if (
        type(value) is tuple
        and len(value) == 2
        and type(value[0]) in (set, frozenset)
        and type(value[1]) is bool
        and all(type(name) is str for name in value[0])
    ):
        return (frozenset(value[0]), value[1])
    return _MISSING


def _mask(value: Any) -> Any:
    if value is None:
        return None
    if type(value) in (set, frozenset) and all(type(name) is str for name in value):
        return frozenset(value)
    return _MISSING


def _flag(value: Any) -> Any:
    return value if type(value) is bool else _MISSING


# The query's attributes that may differ from a new query's, each with the
# function that turns its value into part of the shape (_MISSING: no shape).
_SHAPED = {
    "extra": _extra,
    "extra_select_mask": _mask,
    "select_related": _select_related,
    "deferred_loading": _deferred,
    "order_by": _names,
    "extra_order_by": _names,
    "default_ordering": _flag,
    "standard_ordering": _flag,
}
_SHAPED_NAMES = frozenset(_SHAPED)


class _Pristine:
    """What a model's new querysets hold, to compare others with."""

    __slots__ = ("chained_query", "new_query", "queryset")

    def __init__(self, model: type[Any]) -> None:
        left_out = _DERIVED | _SHAPED.keys()
        queryset: QuerySet[Any, Any] = QuerySet(model)
        #: A new queryset's attributes but its query and database.
        self.queryset = {k: v for k, v in queryset.__dict__.items() if k not in _OWN}
        #: A new query's attributes but the shaped ones; and as it is after a
        #: chain() (all(), filter(), ...), which sets a few to their defaults.
        self.new_query = {k: v for k, v in Query(model).__dict__.items() if k not in left_out}
        chained = queryset.all().query.__dict__
        self.chained_query = {k: v for k, v in chained.items() if k not in left_out}


_pristine: dict[type[Any], _Pristine] = {}


def _pristine_of(model: type[Any]) -> _Pristine:
    pristine = _pristine.get(model)
    if pristine is None:
        pristine = _pristine[model] = _Pristine(model)
    return pristine


def queryset_shape(queryset: QuerySet[Any, Any]) -> tuple[Any, ...] | None:
    """The shape of ``queryset`` (Note [Queryset shapes]), or None if it has none."""
    if type(queryset) is not QuerySet:
        return None
    rest = dict(queryset.__dict__)
    query = rest.pop("_query", None)
    rest.pop("_db", None)
    if type(query) is not Query or query.model is not queryset.model:
        return None
    pristine = _pristine_of(queryset.model)
    if rest != pristine.queryset:
        return None
    attributes = dict(query.__dict__)
    shape: list[Any] = []
    for name in sorted(_SHAPED_NAMES.intersection(attributes)):  # one key per shape
        frozen = _SHAPED[name](attributes.pop(name))
        if frozen is _MISSING:
            return None
        shape.append((name, frozen))
    for name in _DERIVED.intersection(attributes):
        del attributes[name]
    if attributes != pristine.chained_query and attributes != pristine.new_query:
        # Django may also have set other attributes to their class defaults.
        new_query = pristine.new_query
        for name, value in attributes.items():
            new = new_query.get(name, _MISSING)
            if new is _MISSING:
                new = getattr(Query, name, _MISSING)
            if new is _MISSING or (value is not new and value != new):
                return None
    return tuple(shape)
