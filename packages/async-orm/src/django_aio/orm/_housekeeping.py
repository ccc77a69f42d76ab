"""Django's per-request connection housekeeping, on the loop when it has nothing to do.

Note [Request housekeeping]
~~~~~~~~~~~~~~~~~~~~~~~~~~~
Django's ASGI handler sends ``request_started`` with ``Signal.asend``, whose
sync receivers run through a thread-sensitive ``sync_to_async``, and ends
with ``await sync_to_async(response.close)()``, which sends
``request_finished``. Inside the handler's per-request
``ThreadSensitiveContext`` the first such call starts a thread for the
request, and leaving the context starts another one to join it: two threads
per request, most of the server's CPU for a short async view.

Django connects four receivers of its own. ``reset_queries`` and
``close_old_connections`` act on the calling thread's database connections
(Django keeps them thread-local, ``thread_critical``); ``reset_urlconf`` and
``close_caches`` on the context's URLconf and caches, which asgiref hands to
the thread. In a thread that does not exist yet there are no database
connections: the first two have nothing to do there. Drop-in runs the ORM's
async API on the loop, so with an async view (and middleware that do not
hop to the thread) nothing else starts that thread. So a dispatch runs on the
loop, with Django's own ``send()`` (or ``send_robust()``, or
``response.close()``), exactly when:

- the signal is a plain ``Signal`` whose live receivers for the sender are
  only these four (any other receiver, sync or async, keeps the thread: it
  may block);
- asgiref would run it in a thread it has yet to start for the current
  ``ThreadSensitiveContext`` (once sync code ran in the request's thread, a
  sync view or a ``MiddlewareMixin``, its connections are closed there);
- the loop's own Django connections, which the first two would see on the
  loop instead, have no connection open and no query logged: running them
  there changes nothing either;
- every cache the context used closes with ``BaseCache.close()``, which does
  nothing (a memcached or Redis client keeps the thread);
- for ``response.close()``: the response uses ``HttpResponseBase.close`` and
  has nothing to close but the request the handler attached (its body, which
  the handler closes on the loop right after; a request with uploaded files,
  or streamed content with a ``close()``, keeps the thread).

Anything else is Django's own path, unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref import sync as asgiref_sync
from asgiref.sync import AsyncToSync, SyncToAsync
from django.core import signals
from django.core.cache import caches, close_caches
from django.core.cache.backends.base import BaseCache
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.base import reset_urlconf
from django.db import close_old_connections, connections, reset_queries
from django.dispatch import Signal
from django.http import HttpResponseBase

__all__ = ["housekeeping_only", "response_sync_to_async"]

_HOUSEKEEPING = (reset_queries, close_old_connections, reset_urlconf, close_caches)


def _new_thread() -> bool:
    """Whether thread-sensitive code would run in a thread asgiref has yet to start."""
    if getattr(AsyncToSync.executors, "current", None) is not None:
        return False  # a sync thread waits above: asgiref runs it there
    context = SyncToAsync.thread_sensitive_context.get(None)
    return context is not None and context not in SyncToAsync.context_to_thread_executor


def _loop_connections_idle() -> bool:
    return all(
        conn.connection is None and not conn.queries_log
        for conn in connections.all(initialized_only=True)
    )


def _caches_close_nothing() -> bool:
    return all(type(cache).close is BaseCache.close for cache in caches.all(initialized_only=True))


def housekeeping_only(signal: Signal, sender: Any) -> bool:
    """Whether ``signal`` sent by ``sender`` may run on the loop (Note [Request housekeeping])."""
    if type(signal) is not Signal:
        return False
    sync_receivers, async_receivers = signal._live_receivers(sender)
    return (
        not async_receivers
        and all(receiver in _HOUSEKEEPING for receiver in sync_receivers)
        and _new_thread()
        and _loop_connections_idle()
        and _caches_close_nothing()
    )


def _closes_inline(response: HttpResponseBase) -> bool:
    closers = response._resource_closers  # type: ignore[attr-defined]
    return all(_request_close(closer) for closer in closers) and housekeeping_only(
        signals.request_finished,
        response._handler_class,  # type: ignore[attr-defined]
    )


def _request_close(closer: Any) -> bool:
    # The handler adds the request's close(): its body, which the handler
    # itself closes on the loop next, and its uploaded files, if any.
    return getattr(closer, "__func__", None) is ASGIRequest.close and not getattr(
        closer.__self__, "_files", None
    )


def response_sync_to_async(
    func: Callable[..., Any] | None = None,
    *,
    thread_sensitive: bool = True,
    executor: Any = None,
) -> Any:
    """Stands in for ``sync_to_async`` in ``django.core.handlers.asgi``.

    ``response.close`` runs on the loop when that is all it does (Note
    [Request housekeeping]); everything else goes to asgiref.
    """
    if func is None:
        return functools.partial(
            response_sync_to_async, thread_sensitive=thread_sensitive, executor=executor
        )
    response = getattr(func, "__self__", None)
    if (
        not thread_sensitive
        or executor is not None
        or not isinstance(response, HttpResponseBase)
        or getattr(func, "__func__", None) is not HttpResponseBase.close
    ):
        return asgiref_sync.sync_to_async(
            func, thread_sensitive=thread_sensitive, executor=executor
        )

    async def close() -> None:
        # Decided when the response is closed: receivers may come and go.
        if _closes_inline(response):
            func()
        else:
            await asgiref_sync.sync_to_async(func)()

    return close
