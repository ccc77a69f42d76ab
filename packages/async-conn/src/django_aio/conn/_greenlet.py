"""The bridge: run sync code in a greenlet, await its I/O on the event loop.

Note [How the bridge works]
~~~~~~~~~~~~~~~~~~~~~~~~~~~
``drive()`` runs the sync callable in a child greenlet of the calling
task's greenlet. Whenever the sync code needs I/O it calls ``await_()``,
which switches back to the task with the awaitable; the task awaits it on the
loop (other tasks run meanwhile) and switches back into the greenlet with the
result, or throws the exception into it. Django's ORM code therefore runs
unchanged, one greenlet per unit of work at a time, all in the loop's thread.

Note [Parked greenlets]
~~~~~~~~~~~~~~~~~~~~~~~
A new greenlet per unit costs a stack allocation (an mmap and a page fault)
on every ORM call. A bridge greenlet instead runs a loop: it takes a job,
runs it, switches back with a ``_Done`` and waits for the next job, parked
in a per-thread list. A unit that never finishes (its task destroyed while
the greenlet waits for I/O) is simply never parked again.

Note [Shared context]
~~~~~~~~~~~~~~~~~~~~~
A new greenlet starts in an empty ``contextvars`` context. We hand it the
task's own context object instead, so context variables the sync code sets
(translation, our own scopes) are seen by the task afterwards, as they are
after ``sync_to_async``. The greenlet and the task never run at the same time,
so sharing the object is safe.

Note [Fast path]
~~~~~~~~~~~~~~~~
Many psycopg coroutines never wait: fetching from a client-side cursor,
returning a connection to an uncontended pool, closing a closed cursor.
``start()`` runs a coroutine up to its first suspension and only hands the
rest to the loop if there is a rest; that saves a switch to the task and a
loop iteration, and lets shielded code (which needs a task of its own to be
shielded) make that task only when it really waits.

A unit's checkout from the pool and its return go one step further: they
are plain functions (``AsyncConnection.hold_now()``/``unhold_now()``, the
pool's ``acquire_now()``/``release_now()``) that do the work when no wait
is needed, which is nearly always, and report that they did nothing
otherwise, so that the coroutine is made only then: about 15,000
instructions less per checkout and return than even ``start()``.

Note [Inline shield]
~~~~~~~~~~~~~~~~~~~~
The exit of a transaction must finish even if its task is cancelled
meanwhile (Note [Uncancellable exit] in django_aio.atomic). ``asyncio.shield``
needs a task of its own for the shielded work: a Task object, two more loop
iterations and a wake-up chain through two futures, on every COMMIT. When the
exit runs in its owner task, ``Shield`` does the same in that task instead:
``drive()`` awaits each awaitable the sync code hands over through
``Shield.protect()``, which yields a stand-in future in place of each future
the awaitable waits on. ``Task.cancel()`` cancels the future its task waits
on, so it cancels the stand-in, never psycopg's own future (which would make
psycopg cancel the COMMIT on the server); the cancellation is recorded and
the same future is waited on again. The unit's owner raises
``CancelledError`` once the work is over. The price is one loop iteration
per wait (the stand-in is settled by a callback of the real future).

The wait for a query's reply (``ReadWait``, Note [Waking the task at once]
in _read_wait.py) needs no stand-in, so a COMMIT costs no more loop
iterations than any statement: while shielded it refuses ``cancel()``, and
``Task.cancel()``, refused by the future its task waits on, delivers the
cancellation at the task's next step instead, which is the reply's wake-up.
The ``CancelledError`` arrives with the reply there, is recorded, and the
awaitable reads its reply as if nothing had happened.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from functools import partial
from typing import Any, ParamSpec, TypeVar, cast

from django.core.exceptions import ImproperlyConfigured
from greenlet import getcurrent, greenlet

from ._errors import BridgeRequired
from ._settings import SLOW_BRIDGE_MINIMUM, slow_bridge_threshold

__all__ = [
    "BridgeGreenlet",
    "Shield",
    "await_",
    "await_coroutine",
    "drive",
    "in_bridge",
    "start",
    "uncancellable",
]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("django_aio.conn")

# A stretch of sync code longer than this without any awaited I/O blocks every
# other task on the loop; below it we do not even look at the settings, which
# is why a smaller DJANGO_AIO_SLOW_BRIDGE_WARNING is refused (_settings.py).
_SLOW_FLOOR = SLOW_BRIDGE_MINIMUM


class BridgeGreenlet(greenlet):
    """A greenlet running sync code for units of work of asyncio tasks, one at a time.

    Parked between units and reused (Note [Parked greenlets]).
    """

    def __init__(self) -> None:
        super().__init__(self._serve)
        # What the routing of ``django.db.connections`` reads: see _routing.py.
        self.django_aio_unit: object = None

    def _serve(self, job: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]) -> None:
        while True:
            fn, args, kwargs = job
            try:
                done = _Done(True, fn(*args, **kwargs))
            except BaseException as exc:  # handed to the task, which raises it
                done = _Done(False, exc)
            del fn, args, kwargs
            self.django_aio_unit = None
            job = self.parent.switch(done)  # pyright: ignore[reportOptionalMemberAccess]


class _Done:
    """What a bridge greenlet switches to its task with when its unit is over."""

    __slots__ = ("ok", "value")

    def __init__(self, ok: bool, value: Any) -> None:
        self.ok = ok
        self.value = value


class _Parked(threading.local):
    def __init__(self) -> None:
        self.greenlets: list[BridgeGreenlet] = []


_parked = _Parked()
_MAX_PARKED = 32


def in_bridge() -> bool:
    """Whether the caller runs inside ``run_sync()`` (so ``await_`` works)."""
    return isinstance(getcurrent(), BridgeGreenlet)


def await_(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` on the event loop from sync code started by ``run_sync``.

    The calling greenlet is suspended while the task awaits; the result is
    returned, or the exception raised, here.
    """
    current = getcurrent()
    if not isinstance(current, BridgeGreenlet):
        # Close a coroutine we will never run, so Python does not warn about it.
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
        raise BridgeRequired(
            "await_() can only be called from sync code started by "
            "django_aio.conn.run_sync(); in async code, use `await` directly."
        )
    return cast(T, current.parent.switch(awaitable))  # pyright: ignore[reportOptionalMemberAccess]


class _Yield:
    """Re-yields one value a coroutine gave its task, and returns what the task sends back."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.value)


async def _resume(coro: Coroutine[Any, Any, T], yielded: Any) -> T:
    # Drives a coroutine whose first step already ran elsewhere, exactly as
    # its task would have: futures it yields go up to our task and results
    # come back down.
    while True:
        try:
            sent = await _Yield(yielded)
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return cast(T, stop.value)
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return cast(T, stop.value)


def start(coro: Coroutine[Any, Any, T]) -> tuple[bool, Any]:
    """Run ``coro`` up to its first suspension.

    Returns ``(True, result)`` if it finished without waiting, else
    ``(False, awaitable)`` whose awaiting finishes it (Note [Fast path]).
    """
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, _resume(coro, yielded)


async def uncancellable(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` to its end even if the caller is cancelled meanwhile.

    A cancellation received while waiting is raised once it has finished
    (its own exception, if any, wins). Costs one task, made only here.
    """
    future = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


class Shield:
    """Keeps cancellations of the running task away from the awaits of one unit.

    Set as ``unit.shield`` before ``drive(unit, ...)``; see Note [Inline shield].
    """

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        #: Whether the task was cancelled while a protected await waited.
        self.cancelled = False

    def protect(self, awaitable: Awaitable[T]) -> Awaitable[T]:
        """``awaitable``, awaited in the current task, immune to its cancellation."""
        return _Protected(self, awaitable)


def _settle(stand_in: asyncio.Future[None], _: object) -> None:
    if not stand_in.done():
        stand_in.set_result(None)


class _Protected:
    __slots__ = ("awaitable", "shield")

    def __init__(self, shield: Shield, awaitable: Awaitable[Any]) -> None:
        self.shield = shield
        self.awaitable = awaitable

    def __await__(self) -> Generator[Any, Any, Any]:
        # Drives the awaitable as its task would, except for what the task
        # waits on (Note [Inline shield]).
        inner = self.awaitable.__await__()
        sent: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = inner.send(sent) if error is None else inner.throw(error)
            except StopIteration as stop:
                return stop.value
            sent = error = None
            if getattr(yielded, "django_aio_shielded", None) is not None:
                # A reply's wait that refuses to be cancelled while shielded:
                # the task waits on it directly (Note [Inline shield]).
                yielded.django_aio_shielded = True
                try:
                    while True:
                        try:
                            yield yielded
                        except asyncio.CancelledError:
                            self.shield.cancelled = True
                        except Exception as exc:
                            # The wait failed (its connection closed from
                            # another task): resumed, the awaitable reads the
                            # same error from the wait, where psycopg cleans
                            # up (its lock). Anything else goes in as it came.
                            if not yielded.done():
                                error = exc
                                break
                        if yielded.done():
                            break
                        yielded._asyncio_future_blocking = True  # wait on it again
                finally:
                    yielded.django_aio_shielded = False
            elif getattr(yielded, "_asyncio_future_blocking", None):
                future: asyncio.Future[Any] = yielded
                future._asyncio_future_blocking = False  # as Task does
                while not future.done():
                    stand_in = future.get_loop().create_future()
                    future.add_done_callback(partial(_settle, stand_in))
                    try:
                        yield from stand_in
                    except asyncio.CancelledError:
                        self.shield.cancelled = True
                # The future is done: resuming the awaitable reads its result.
            else:  # a bare yield (asyncio.sleep(0)): hand it to the task as is
                try:
                    sent = yield yielded
                except asyncio.CancelledError:
                    self.shield.cancelled = True
                except BaseException as exc:
                    error = exc


def await_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """``await_`` for a coroutine, with the fast path of ``start()``."""
    if not isinstance(getcurrent(), BridgeGreenlet):
        return await_(coro)  # raises BridgeRequired, closing the coroutine
    done, value = start(coro)
    if done:
        return cast(T, value)
    return cast(T, await_(value))


async def drive(unit: object, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn(*args, **kwargs)`` in a bridge greenlet; see Note [How the bridge works]."""
    current = getcurrent()
    parked = _parked.greenlets
    child = parked.pop() if parked else BridgeGreenlet()
    child.parent = current
    child.gr_context = current.gr_context  # Note [Shared context]
    child.django_aio_unit = unit
    shield: Shield | None = getattr(unit, "shield", None)
    started = time.perf_counter()
    value = child.switch((fn, args, kwargs))
    _check_slow(started, fn)
    while type(value) is not _Done:
        try:
            result = await (value if shield is None else shield.protect(value))
        except BaseException as exc:  # cancellation included: the sync code cleans up
            started = time.perf_counter()
            value = child.throw(exc)
        else:
            started = time.perf_counter()
            value = child.switch(result)
        _check_slow(started, fn)
    if len(parked) < _MAX_PARKED:
        child.gr_context = None
        parked.append(child)
    if value.ok:
        return cast(T, value.value)
    error: BaseException = value.value
    del value
    try:
        raise error
    finally:
        del error


def _check_slow(started: float, fn: Callable[..., Any]) -> None:
    elapsed = time.perf_counter() - started
    if elapsed < _SLOW_FLOOR:
        return
    try:
        threshold = slow_bridge_threshold()
    except ImproperlyConfigured as exc:
        # The unit is mid-flight here: report, never break it. The system
        # check (apps.py) refuses the setting at start-up.
        logger.error("%s", exc)
        return
    if threshold is not None and elapsed >= threshold:
        logger.warning(
            "run_sync(%s) ran %.3f sec without awaiting database I/O, blocking the "
            "event loop for every other task. Blocking non-database I/O (a slow signal "
            "receiver, a sync cache or HTTP client) must not run inside the bridge: "
            "make it async, or move it out with sync_to_async.",
            _describe(fn),
            elapsed,
        )


def _describe(fn: Callable[..., Any]) -> str:
    # Never repr() the callable: a bound method's repr includes its object's,
    # and a QuerySet's repr runs a query, here, outside any unit of work.
    target = getattr(fn, "func", fn)  # functools.partial
    name = getattr(target, "__qualname__", None)
    return name if isinstance(name, str) else type(target).__qualname__
