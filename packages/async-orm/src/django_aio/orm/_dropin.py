"""Drop-in mode: Django's own async ORM API, run through the bridge.

Note [How drop-in patches Django]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Nearly every async ORM method of Django is ``await sync_to_async(self.method)(...)``
with ``sync_to_async`` looked up in its module's globals at call time: the
querysets' ``a*`` methods and ``__aiter__`` (``django.db.models.query``), the
models' ``asave/adelete/arefresh_from_db`` (``base``), the related managers'
``a*`` methods, built inside factory functions (``related_descriptors`` and
``django.contrib.contenttypes.fields``), and ``aprefetch_related_objects``.
Replacing that one global name in those modules routes all of them, on every
supported Django version and for every model (third-party and contrib ones
included), through ``run_sync``; aliases whose ENGINE is not django_aio's keep
the thread. ``aget_object_or_404`` and friends call these methods.

``aiterator()`` is the exception: its chunks must share one connection (the
server-side cursor lives on it), so ``QuerySet.aiterator`` and
``BaseIterable._async_generator`` are replaced by versions over
``iterate_chunks`` (Note [Chunked iteration]). The database
session backend and (Django 6+) ``AsyncPaginator`` use ``sync_to_async`` the
same way for ORM work and are patched too.

So are ``django.contrib.auth``'s backends, where ``sync_to_async`` wraps a
backend's sync ``get_user``, ``get_user_permissions``,
``get_group_permissions`` and ``configure_user`` (``RemoteUserBackend``):
ORM work by contract, which in a thread would use another connection than
the caller's transaction (a user created in the block would not be found, or
``configure_user``'s ``save()`` would wait on the block's lock). Only
``authenticate`` keeps the thread: a sync-only backend is where projects talk
to outside services (LDAP, RADIUS) with blocking network I/O, which must not
stall the loop. Django's own ``ModelBackend`` and ``RemoteUserBackend``
implement ``aauthenticate`` natively (their queries are ORM ``a*`` calls,
bridged); password hashing stays where Django runs it (inline in 5.2, in a
worker thread with ``thread_sensitive=False`` from 6.0).

``Signal.asend`` and ``asend_robust`` (``django.dispatch.dispatcher``) run
the *sync* receivers through ``sync_to_async`` too, in Django's sync thread.
That thread is right for most of them (``request_started`` and
``request_finished`` must close *that thread's* connections, and a receiver may
block), but inside a transaction it is a different connection: the receiver's
writes would commit even if the block rolls back. So drop-in runs each
dispatch in a lending window of django_aio.conn (Note [Transactions and child
tasks]), which exists only while the calling task has a transaction open, and
sends the sync receivers to the bridge when there is one, to Django's thread
otherwise. The window also lets the ``async def`` receivers use the block's
connection: Django 5.2 gathers them (and the sync batch) as child tasks, and
Django 6 runs them in a task group.
Django's own receivers of ``request_started`` and ``request_finished``, and
the ASGI handler's ``response.close()``, run on the loop when they have
nothing to close: no thread per request (Note [Request housekeeping] in
_housekeeping.py).

The descriptors of lazy relations and deferred fields and ``QuerySet._fetch_all``
are wrapped too, only to reword ``SynchronousOnlyOperation`` (see _guards.py).
``Manager.aget`` and ``QuerySet.aget`` run a compiled query where that gives
Django's result (Note [Compiled gets] in _fast_get.py), ``Model.from_db``
fills a plain model's instance without ``__init__`` (Note [Model building]
in _model_building.py), ``Model._do_insert`` runs a kept INSERT directly
(Note [Direct inserts] in _direct_insert.py), and ``QuerySet.create`` of a
plain model inserts without walking ``save()`` (Note [Direct creates] in
_direct_create.py).

Every patch keeps the original, so turning drop-in off restores Django exactly.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

from asgiref import sync as asgiref_sync
from django.apps import apps

from django_aio.conn import run_sync
from django_aio.conn.layers import lending, lending_var

from ._direct_create import direct_create
from ._direct_insert import direct_do_insert
from ._dispatch import maybe_bridged
from ._fast_get import compiled_manager_aget, compiled_queryset_aget
from ._guards import (
    deferred_message,
    generic_manager_message,
    guard_descriptor,
    guard_method,
    queryset_message,
    relation_message,
)
from ._housekeeping import housekeeping_only, response_sync_to_async
from ._iteration import aiterator as iterate_queryset
from ._iteration import iterate_chunks
from ._model_building import fast_from_db, forget_on_change

__all__ = ["disable_drop_in", "drop_in", "drop_in_enabled", "enable_drop_in"]

_SYNC_TO_ASYNC_MODULES = (
    "django.db.models.query",
    "django.db.models.base",
    "django.db.models.fields.related_descriptors",
)
# Modules of contrib apps (patched when the app is installed) and of Django
# versions that have them.
_OPTIONAL_MODULES = (
    ("django.contrib.contenttypes.fields", "django.contrib.contenttypes"),
    ("django.contrib.sessions.backends.db", "django.contrib.sessions"),
    ("django.core.paginator", None),
    ("django.contrib.auth.backends", "django.contrib.auth"),
)
# Methods whose sync_to_async keeps Django's thread in the modules above.
_THREADED_METHODS = {"django.contrib.auth.backends": frozenset({"authenticate"})}

# (owner, attribute name, original value), in the order they were applied.
_applied: list[tuple[Any, str, Any]] = []


def bridged_sync_to_async(
    func: Callable[..., Any] | None = None,
    *,
    thread_sensitive: bool = True,
    executor: Any = None,
) -> Any:
    """Stands in for ``asgiref.sync.sync_to_async`` in Django's ORM modules."""
    if func is None:
        return functools.partial(
            bridged_sync_to_async, thread_sensitive=thread_sensitive, executor=executor
        )

    def fallback() -> Callable[..., Any]:
        return asgiref_sync.sync_to_async(
            func, thread_sensitive=thread_sensitive, executor=executor
        )

    return maybe_bridged(func, fallback)


def _threading_some(module: str) -> Callable[..., Any]:
    """``bridged_sync_to_async`` that leaves the methods of ``_THREADED_METHODS`` to asgiref."""
    threaded = _THREADED_METHODS[module]

    def sync_to_async(
        func: Callable[..., Any] | None = None,
        *,
        thread_sensitive: bool = True,
        executor: Any = None,
    ) -> Any:
        if func is None:
            return functools.partial(
                sync_to_async, thread_sensitive=thread_sensitive, executor=executor
            )
        if getattr(func, "__name__", None) in threaded:
            return asgiref_sync.sync_to_async(
                func, thread_sensitive=thread_sensitive, executor=executor
            )
        return bridged_sync_to_async(func, thread_sensitive=thread_sensitive, executor=executor)

    return sync_to_async


def receivers_sync_to_async(
    func: Callable[..., Any] | None = None,
    *,
    thread_sensitive: bool = True,
    executor: Any = None,
) -> Any:
    """Stands in for ``sync_to_async`` in ``django.dispatch.dispatcher``.

    Sync receivers dispatched inside the caller's transaction run in the
    bridge, on its connection; anywhere else in Django's thread, as without
    drop-in (Note [How drop-in patches Django]).
    """
    if func is None:
        return functools.partial(
            receivers_sync_to_async, thread_sensitive=thread_sensitive, executor=executor
        )

    async def call(*args: Any, **kwargs: Any) -> Any:
        window = lending_var.get()
        if window is not None and window.active:
            return await run_sync(func, *args, **kwargs)
        threaded = asgiref_sync.sync_to_async(
            func, thread_sensitive=thread_sensitive, executor=executor
        )
        return await threaded(*args, **kwargs)

    return call


def _async_generator(self: Any) -> Any:
    from django_aio.conn import bridgeable

    if bridgeable(self.queryset.db):
        return iterate_chunks(self)
    return _threaded_chunks(self)


async def _threaded_chunks(iterable: Any) -> AsyncGenerator[Any, None]:
    # Django's own loop (BaseIterable._async_generator) with asgiref's
    # sync_to_async named explicitly: its module global is ours now.
    generator = iter(iterable)
    size = iterable.chunk_size

    def next_slice() -> list[Any]:
        return list(islice(generator, size))

    while True:
        chunk = await asgiref_sync.sync_to_async(next_slice)()
        for item in chunk:
            yield item
        if len(chunk) < size:
            break


_MISSING = object()


def _patch(owner: Any, name: str, value: Any) -> None:
    original = owner.__dict__.get(name, _MISSING)
    _applied.append((owner, name, original))
    setattr(owner, name, value)


def drop_in_enabled() -> bool:
    """Whether Django's async ORM API currently runs through the bridge."""
    return bool(_applied)


def enable_drop_in() -> None:
    """Route Django's own async ORM API through the bridge (idempotent).

    Called at start-up by the ``django_aio.orm`` app unless
    ``DJANGO_AIO_DROP_IN = False``.
    """
    if _applied:
        return
    from django.db.models import manager, query, query_utils
    from django.db.models.fields import related_descriptors as rd

    modules = [importlib.import_module(name) for name in _SYNC_TO_ASYNC_MODULES]
    for name, app in _OPTIONAL_MODULES:
        if app is None or apps.is_installed(app):
            modules.append(importlib.import_module(name))
    for module in modules:
        if hasattr(module, "sync_to_async"):
            if module.__name__ in _THREADED_METHODS:
                _patch(module, "sync_to_async", _threading_some(module.__name__))
            else:
                _patch(module, "sync_to_async", bridged_sync_to_async)

    from django.core.handlers import asgi as asgi_handlers
    from django.dispatch import Signal, dispatcher

    _patch(dispatcher, "sync_to_async", receivers_sync_to_async)
    for name, sync_name in (("asend", "send"), ("asend_robust", "send_robust")):
        _patch(Signal, name, _lending_dispatch(Signal.__dict__[name], Signal.__dict__[sync_name]))
    # Note [Request housekeeping]
    _patch(asgi_handlers, "sync_to_async", response_sync_to_async)

    _patch(query.BaseIterable, "_async_generator", _async_generator)
    # Note [Model building]
    from django.db.models import Model
    from django.db.models.base import ModelBase

    set_attribute, del_attribute = forget_on_change()
    _patch(ModelBase, "__setattr__", set_attribute)
    _patch(ModelBase, "__delattr__", del_attribute)
    _patch(Model, "from_db", fast_from_db(Model.__dict__["from_db"]))
    # Note [Direct inserts]
    _patch(Model, "_do_insert", direct_do_insert(Model.__dict__["_do_insert"]))
    # Note [Direct creates]
    create = direct_create(query.QuerySet.__dict__["create"], Model.__dict__["_do_insert"])
    _patch(query.QuerySet, "create", create)
    # Note [Compiled gets]
    _patch(manager.Manager, "aget", compiled_manager_aget(manager.Manager.aget))
    _patch(query.QuerySet, "aget", compiled_queryset_aget(query.QuerySet.__dict__["aget"]))
    original_aiterator = query.QuerySet.__dict__["aiterator"]

    def aiterator(self: Any, chunk_size: int = 2000) -> Any:
        return iterate_queryset(self, chunk_size, original_aiterator)

    functools.update_wrapper(aiterator, original_aiterator)
    _patch(query.QuerySet, "aiterator", aiterator)

    for klass, joinable in (
        (rd.ForwardManyToOneDescriptor, True),
        (rd.ReverseOneToOneDescriptor, True),
    ):
        _patch(
            klass,
            "__get__",
            guard_descriptor(
                klass.__dict__["__get__"],
                _relation_error(joinable),
            ),
        )
    _patch(
        query_utils.DeferredAttribute,
        "__get__",
        guard_descriptor(
            query_utils.DeferredAttribute.__dict__["__get__"],
            lambda descriptor, instance: deferred_message(type(instance), descriptor.field.name),
        ),
    )
    if apps.is_installed("django.contrib.contenttypes"):
        from django.contrib.contenttypes.fields import (
            GenericForeignKey,
            ReverseGenericManyToOneDescriptor,
        )

        _patch(
            ReverseGenericManyToOneDescriptor,
            "__get__",
            guard_descriptor(
                rd.ReverseManyToOneDescriptor.__dict__["__get__"],
                lambda descriptor, instance: generic_manager_message(
                    type(instance), descriptor.field.name
                ),
            ),
        )

        # Django 6.0 moved the accessor to GenericForeignKeyDescriptor.
        from django.contrib.contenttypes import fields as ct_fields

        gfk_accessor = getattr(ct_fields, "GenericForeignKeyDescriptor", GenericForeignKey)
        _patch(
            gfk_accessor,
            "__get__",
            guard_descriptor(
                gfk_accessor.__dict__["__get__"],
                lambda descriptor, instance: relation_message(
                    type(instance), getattr(descriptor, "field", descriptor).name, joinable=False
                ),
            ),
        )
    for queryset_class in (query.QuerySet, query.RawQuerySet):
        _patch(
            queryset_class,
            "_fetch_all",
            guard_method(
                queryset_class.__dict__["_fetch_all"], lambda qs: queryset_message(qs.model)
            ),
        )


def _lending_dispatch(
    original: Callable[..., Any], sync_original: Callable[..., Any]
) -> Callable[..., Any]:
    """``Signal.asend``/``asend_robust`` whose receivers may use the caller's transaction.

    Django's own request housekeeping runs on the loop, with ``send()`` or
    ``send_robust()``, when it has nothing to do (Note [Request housekeeping]).
    """

    async def dispatch(self: Any, sender: Any, **named: Any) -> Any:
        if housekeeping_only(self, sender):
            return sync_original(self, sender, **named)
        return await lending(original(self, sender, **named))

    functools.update_wrapper(dispatch, original)
    return dispatch


def _relation_error(joinable: bool) -> Callable[[Any, Any], str]:
    def message(descriptor: Any, instance: Any) -> str:
        field = getattr(descriptor, "field", None)
        name = field.name if field is not None else descriptor.related.get_accessor_name()
        return relation_message(type(instance), name, joinable=joinable)

    return message


def disable_drop_in() -> None:
    """Restore Django's own async ORM implementation (``sync_to_async``, threads)."""
    while _applied:
        owner, name, original = _applied.pop()
        if original is _MISSING:
            delattr(owner, name)  # it was inherited
        else:
            setattr(owner, name, original)


@contextmanager
def drop_in(enabled: bool = True) -> Iterator[None]:
    """Turn drop-in mode on or off for a block (benchmarks and tests)."""
    was = drop_in_enabled()
    if enabled:
        enable_drop_in()
    else:
        disable_drop_in()
    try:
        yield
    finally:
        if was:
            enable_drop_in()
        else:
            disable_drop_in()
