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
  few whose values are plain data and go into the shape: ``extra(select=)``
  (with the type of each parameter, as ``1``, ``1.0`` and ``True`` are
  equal but are sent differently), ``select_related()``, ``only()`` and
  ``defer()``, and ordering by field names. So the ``WHERE`` clause is empty,
  and there are no annotations, joins, slices, ``distinct()``, unions or
  ``select_for_update()``;
- caches Django derives from the rest (``_annotation_select_cache``,
  ``_extra_select_cache``, ``base_table``) are left out.

Comparing the attributes costs about a microsecond; building and compiling
the query that it saves, a hundred or more.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.db.models.sql import Query

__all__ = ["queryset_shape"]

_MISSING = object()
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
_DERIVED = frozenset({"_annotation_select_cache", "_extra_select_cache", "base_table"})
_OWN = frozenset({"_query", "_db"})

# model -> (a new QuerySet's attributes, a new Query's attributes)
_pristine: dict[type[Any], tuple[dict[str, Any], dict[str, Any]]] = {}


def _names(value: Any) -> Any:
    if type(value) in (tuple, list) and all(type(name) is str for name in value):
        return tuple(value)
    return _MISSING


def _extra(value: Any) -> Any:
    frozen = []
    for name, entry in value.items():
        if type(entry) is not tuple or len(entry) != 2 or type(entry[0]) is not str:
            return _MISSING
        params = entry[1]
        if type(params) not in (tuple, list) or any(type(p) not in _PLAIN_TYPES for p in params):
            return _MISSING
        frozen.append((name, entry[0], tuple((type(p), p) for p in params)))
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


def _pristine_of(model: type[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    pristine = _pristine.get(model)
    if pristine is None:
        queryset: QuerySet[Any, Any] = QuerySet(model)
        pristine = _pristine[model] = (dict(queryset.__dict__), dict(Query(model).__dict__))
    return pristine


def queryset_shape(queryset: QuerySet[Any, Any]) -> tuple[Any, ...] | None:
    """The shape of ``queryset`` (Note [Queryset shapes]), or None if it has none."""
    if type(queryset) is not QuerySet:
        return None
    own = queryset.__dict__
    query = own.get("_query")
    if type(query) is not Query or query.model is not queryset.model:
        return None
    new_queryset, new_query = _pristine_of(queryset.model)
    for name, value in own.items():
        if name in _OWN:
            continue
        new = new_queryset.get(name, _MISSING)
        if value is not new and value != new:
            return None
    shape: list[Any] = []
    for name, value in query.__dict__.items():
        if name in _DERIVED:
            continue
        new = new_query.get(name, _MISSING)
        if new is _MISSING:
            new = getattr(Query, name, _MISSING)
        if value is new or (new is not _MISSING and value == new):
            continue
        freeze = _SHAPED.get(name)
        frozen = _MISSING if freeze is None else freeze(value)
        if frozen is _MISSING:
            return None
        shape.append((name, frozen))
    return tuple(shape)
