"""Better errors for sync database access from async code.

Outside the bridge, Django refuses a query from a thread running an event loop
with ``SynchronousOnlyOperation`` ("use a thread or sync_to_async"). When that
happens while loading a lazy relation, a deferred field or an unevaluated
queryset, we re-raise it naming the async way to do the same thing. Only the
message changes: the check itself stays Django's (``DJANGO_ALLOW_ASYNC_UNSAFE``
still applies).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import SynchronousOnlyOperation

from django_aio.conn import in_bridge

__all__ = [
    "deferred_message",
    "generic_manager_message",
    "guard_descriptor",
    "guard_method",
    "queryset_message",
    "relation_message",
]


def _model_name(model: Any) -> str:
    return getattr(model, "__name__", type(model).__name__)


def relation_message(model: Any, name: str, *, joinable: bool = True) -> str:
    """The error for a lazy relation ``model.name`` loaded in async code."""
    load = (
        f"select_related({name!r}) or prefetch_related({name!r})"
        if joinable
        else f"prefetch_related({name!r})"
    )
    return (
        f"{_model_name(model)}.{name} is not loaded, and loading it would run a "
        f"database query synchronously in async code. Load it with the query "
        f"({load}), or fetch it with `await obj.a{name}` (models with "
        f"django_aio.orm.AsyncMixin)."
    )


def deferred_message(model: Any, name: str) -> str:
    """The error for a deferred field ``model.name`` loaded in async code."""
    return (
        f"{_model_name(model)}.{name} was deferred (only()/defer()), and loading it "
        f"would run a database query synchronously in async code. Include it in the "
        f"query, or load it with `await obj.arefresh_from_db(fields=[{name!r}])`."
    )


def generic_manager_message(model: Any, name: str) -> str:
    """The error for a generic relation manager built with a cold ContentType cache."""
    model_name = _model_name(model)
    return (
        f"{model_name}.{name} needs the ContentType of {model_name}, which is not "
        f"cached yet, and loading it would run a database query synchronously in "
        f"async code. Load it once first with `await run_sync(ContentType.objects."
        f"get_for_model, {model_name})` (django_aio.conn.run_sync), or use "
        f"`obj.a{name}` (models with django_aio.orm.AsyncMixin)."
    )


def queryset_message(model: Any) -> str:
    """The error for an unevaluated queryset evaluated synchronously in async code."""
    return (
        f"a QuerySet of {_model_name(model)} was evaluated synchronously in async code "
        f"(iteration, len(), bool(), list() or indexing), which would run a database "
        f"query. Use `async for obj in qs`, `await qs.alist()` (django_aio.orm."
        f"AsyncQuerySet) or `[obj async for obj in qs]`; for related objects, load "
        f"them with the query using prefetch_related()."
    )


def guard_descriptor(
    original: Callable[..., Any], message: Callable[[Any, Any], str]
) -> Callable[..., Any]:
    """Wrap a descriptor ``__get__`` so its ``SynchronousOnlyOperation`` says ``message``."""

    @functools.wraps(original)
    def __get__(self: Any, instance: Any, cls: Any = None) -> Any:
        try:
            return original(self, instance, cls)
        except SynchronousOnlyOperation as exc:
            if in_bridge():
                raise
            raise SynchronousOnlyOperation(message(self, instance)) from exc

    __get__.django_aio_original = original  # type: ignore[attr-defined]
    return __get__


def guard_method(original: Callable[..., Any], message: Callable[[Any], str]) -> Callable[..., Any]:
    """Wrap a method so its ``SynchronousOnlyOperation`` says ``message(self)``."""

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except SynchronousOnlyOperation as exc:
            if in_bridge():
                raise
            raise SynchronousOnlyOperation(message(self)) from exc

    method.django_aio_original = original  # type: ignore[attr-defined]
    return method
