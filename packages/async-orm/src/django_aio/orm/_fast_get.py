"""``Model.objects.aget(name=value, ...)`` in drop-in mode, as a compiled query.

Note [Compiled gets]
~~~~~~~~~~~~~~~~~~~~
The most frequent ORM call of an async view is ``aget()`` on a model's plain
manager with keyword arguments: ``await Item.objects.aget(pk=pk)``. Drop-in
runs it as a ``CompiledQuery`` (Note [Compiled queries]): per model, manager
database and sequence of argument names, the queryset
``manager.get_queryset().filter(name=Param("name"), ...)`` is built and
compiled once, and each call binds its values and runs ``get()``'s variant.

``DJANGO_AIO_QUERY_CACHE = False`` turns it off with the compiled query cache.
It is taken only where the result is Django's by construction, and every
other call runs Django's ``aget()`` unchanged:

- the manager is Django's own: it does not override ``get_queryset()``, its
  querysets are plain ``QuerySet`` objects, and it has no routing hints (so
  ``get_queryset()`` is ``QuerySet(model, using=manager._db)``);
- no positional arguments (``Q`` objects);
- every value is a plain value: not ``None`` (Django turns it into
  ``IS NULL``), not an expression or a queryset (a subquery), not a model
  instance (Django checks its model while building the filter);
- every argument name is one a ``Param`` can stand for; for names Django
  refuses (an unknown field) or a ``Param`` cannot take (``__in``, a
  transform, a boolean field), the sequence of names is remembered and always
  runs Django's way, which raises Django's own error where there is one.

A value Django cannot prepare raises the same exception either way: both
prepare it by building the same lookup on the same column.

``QuerySet.aget(name=value, ...)`` is compiled the same way, per queryset
shape instead of per manager: ``Item.objects.select_related("author")``,
``.extra(select=...)``, ``.only(...)`` and the like, built anew on each call,
share one compiled query per shape and sequence of argument names (Note
[Queryset shapes] in _queryset_shape.py says which querysets have a shape:
those with filters, annotations, slices or a custom class do not, and run
Django's ``aget()``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from django.db.models import QuerySet
from django.db.models.manager import BaseManager

from django_aio.conn.layers import query_cache_enabled

from ._compiled import CompiledQuery, Param
from ._queryset_shape import queryset_shape

__all__ = ["compiled_manager_aget", "compiled_queryset_aget"]

_MAX_SHAPES = 1024
_UNCOMPILABLE = object()
# (model, manager database, argument names) or (model, queryset database,
# shape, argument names) -> CompiledQuery or _UNCOMPILABLE
_shapes: dict[tuple[Any, ...], Any] = {}

_get_queryset = BaseManager.get_queryset


def _plain(value: Any) -> bool:
    return (
        value is not None
        and not hasattr(value, "resolve_expression")
        and not hasattr(value, "_meta")
    )


def _compile(queryset: QuerySet[Any, Any], names: tuple[str, ...]) -> Any:
    try:
        return CompiledQuery(queryset.filter(**{name: Param(name) for name in names}))
    except Exception:  # Django's way raises its own error, or handles what we cannot
        return _UNCOMPILABLE


def _compiled_for(
    key: tuple[Any, ...], queryset: Callable[[], QuerySet[Any, Any]], values: dict[str, Any]
) -> Any:
    """The compiled query of ``key``, or None where Django's ``aget()`` must run."""
    compiled = _shapes.get(key)
    if compiled is None:  # built only on a miss: most calls never make the queryset
        compiled = _compile(queryset(), key[-1])
        if len(_shapes) >= _MAX_SHAPES:
            _shapes.clear()
        _shapes[key] = compiled
    if compiled is _UNCOMPILABLE or not all(_plain(value) for value in values.values()):
        return None
    return compiled


def _named_as(
    original: Callable[..., Coroutine[Any, Any, Any]],
    aget: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    aget.__doc__ = original.__doc__
    aget.__name__ = "aget"
    aget.__qualname__ = getattr(original, "__qualname__", "aget")
    return aget


def compiled_manager_aget(
    original: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """``Manager.aget``, compiled where that gives Django's result (Note [Compiled gets])."""

    async def aget(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (
            args
            or not query_cache_enabled()
            or type(self).get_queryset is not _get_queryset
            or self._queryset_class is not QuerySet
            or self._hints
        ):
            return await original(self, *args, **kwargs)
        # Django sorts keyword arguments into the WHERE clause: so can we.
        key = (self.model, self._db, tuple(sorted(kwargs)))
        compiled = _compiled_for(key, self.get_queryset, kwargs)
        if compiled is None:
            return await original(self, *args, **kwargs)
        return await compiled.aget(**kwargs)

    return _named_as(original, aget)


def compiled_queryset_aget(
    original: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """``QuerySet.aget``, compiled per queryset shape where that gives Django's result."""

    async def aget(self: Any, *args: Any, **kwargs: Any) -> Any:
        shape = None if args or not query_cache_enabled() else queryset_shape(self)
        if shape is None:
            return await original(self, *args, **kwargs)
        key = (self.model, self._db, shape, tuple(sorted(kwargs)))
        compiled = _compiled_for(key, self._chain, kwargs)
        if compiled is None:
            return await original(self, *args, **kwargs)
        return await compiled.aget(**kwargs)

    return _named_as(original, aget)
