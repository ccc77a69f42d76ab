"""psycopg's async connection, waiting for the server's replies with less work per wait.

Note [Waiting for a reply]
~~~~~~~~~~~~~~~~~~~~~~~~~~
psycopg drives each protocol exchange with a generator that says what the
socket must become ready for, and ``AsyncConnection.wait()`` waits for that on
the loop. Its general-purpose waiter also arms a timer for every wait (a
``TimerHandle`` pushed on the loop's heap, then cancelled, so that each wait
costs the loop a heap entry to skip later) and goes through a closure per wait.
The timer serves a synchronous program's Ctrl-C and ``wait(timeout=...)``;
under asyncio a signal wakes the loop by itself, and the bridge never passes
a timeout. Nearly every wait of ours is the same: a query was sent, its reply
is awaited.

So ``wait()`` here handles exactly that case, waiting for the socket to be
readable with one reader callback and one awaitable (Note [Waking the task
at once]), and hands everything else
to psycopg's own ``wait()``, unchanged:

- a wait with a timeout (psycopg's cancellation of a query uses one);
- waiting to write (a query larger than the socket's buffer);
- an interruption (the task cancelled while it waits): psycopg's handler
  cancels the query on the server and reads the rest of the reply, so the
  connection stays usable; it gets the interruption as if its own waiter had
  seen it (``_Handover``).

psycopg's timer also ends a wait when the connection is closed meanwhile
(from another task): the loop stops reporting a closed descriptor, so a wait
on it would never end. ``close()`` here ends such a wait itself, with
psycopg's ``OperationalError("connection socket closed")``, after removing
its reader and before the descriptor is closed (whose number a new
connection may get at once).

Like psycopg's waiter, a generator that completes without waiting (a
``copy()`` round with data already buffered) yields to the loop once every
few milliseconds, so a long stream does not starve the other tasks.

On asyncio's own selector loops the reader goes straight into the loop's
selector, as the loop's ``add_reader()`` would put it (a ``Handle`` as the
key's reader, no writer), and comes out with ``unregister()``. The public
methods first check that no asyncio transport owns the descriptor (a lookup
in a weak dictionary that fails with ``KeyError`` every time), then ask the
selector whether the descriptor is registered, which raises and formats two
``KeyError``; together about 30K instructions per round trip, a tenth of a
round trip's whole client work. libpq's socket never belongs to a transport.
The reader also removes itself when it fires: the descriptor stays readable
until the task, woken in the next loop iteration, reads the reply, and a
reader still registered then is reported and called once more for nothing.
If the descriptor is in the selector already (a writer someone else added),
the loop's own methods are used. A loop class that overrides the public
methods or the loop's handling of events, or has no selector (uvloop), gets
the public ones.

Note [Waking the task at once]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Had the wait awaited an ``asyncio.Future``, the reader would set its result,
the future would schedule the task's wake-up with ``call_soon``, and the loop
would run it in its next iteration: one more ``select`` system call and one
more pass of the loop's bookkeeping for every round trip. The task awaits a
``_Read`` instead, which implements the part of the Future protocol that
``asyncio.Task`` uses with any Future-compatible awaitable (asyncio supports
those: ``_asyncio_future_blocking``, ``get_loop``, ``add_done_callback``,
``cancel``, ``result``), plus what the inline shield of django_aio.conn and
tools that inspect a task's wait call (``done``, ``cancelled``,
``exception``, ``remove_done_callback``). When the reader fires it calls the
task's wake-up itself, in the task's context, in the loop iteration that saw
the reply. That is safe there: a reader's callback runs from the loop with no
task running, which is where a scheduled wake-up would run too. Anything else
that ends a wait (the task cancelled, the connection closed, maybe from
another task) schedules the wake-up as a Future would, never inline; so do
further callbacks (the inline shield's), and so does the reader in asyncio's
debug mode, whose warning about a slow callback then names the task's step
rather than the reader.
"""

from __future__ import annotations

import asyncio
import selectors
from asyncio import selector_events
from asyncio.events import Handle
from collections.abc import Callable, Generator
from contextvars import Context
from time import monotonic
from typing import Any, cast

import psycopg
from psycopg import errors
from psycopg.rows import Row
from psycopg.waiting import Ready, Wait

__all__ = ["WaitingConnection"]

_READ = Wait.R
_READABLE = Ready.R
_EVENT_READ = selectors.EVENT_READ
# How long a run of waits that complete at once may keep the loop (psycopg's
# own waiter uses the same bound).
_MAX_BUSY = 0.005
_last_yield = 0.0

# Whatever psycopg's generators yield and are sent; the module's own alias
# (psycopg.abc.PQGen) is not public.
_Gen = Generator[Any, Any, Any]


# What psycopg's own wait() turns into a cancel on the server.
_INTERRUPTIONS = (asyncio.CancelledError, KeyboardInterrupt, SystemExit)


_Reader = Callable[..., Any]
_Callback = Callable[[Any], Any]
_BASE = selector_events.BaseSelectorEventLoop


class _Readers:
    """How to add and remove a reader on one loop (Note [Waiting for a reply])."""

    __slots__ = ("add", "loop", "remove", "selector")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.add: _Reader = loop.add_reader
        self.remove: _Reader = loop.remove_reader
        #: The loop's selector, to register in directly; None: use add/remove.
        self.selector: selectors.BaseSelector | None = None
        kind = type(loop)
        if (
            isinstance(loop, _BASE)
            and kind.add_reader is _BASE.add_reader
            and kind.remove_reader is _BASE.remove_reader
            # Not in typeshed: the method that reads the keys we register.
            and getattr(kind, "_process_events", None) is getattr(_BASE, "_process_events", ())
        ):
            selector = getattr(loop, "_selector", None)
            if isinstance(selector, selectors.BaseSelector):
                self.selector = selector


def _fire(read: _Read) -> None:
    # Once: see Note [Waiting for a reply] on level-triggered readiness.
    read.stop()
    if read.finished:
        return
    read.finished = True
    wakeup = read.wakeup
    if wakeup is None:
        return
    if read.loop.get_debug():
        # Note [Waking the task at once]: debug mode names the slow step's task.
        read.schedule()
        return
    try:
        # Note [Waking the task at once]: no task runs in a reader's callback.
        context = read.context
        if context is None:
            wakeup(read)
        else:
            context.run(wakeup, read)
    finally:
        read.schedule_more()


class _Read:
    """One wait for the socket to be readable: its reader, and what its task awaits.

    The awaitable is not an ``asyncio.Future`` but implements the part of its
    protocol that an ``asyncio.Task`` uses (Note [Waking the task at once]).
    """

    __slots__ = (
        "_asyncio_future_blocking",
        "context",
        "error",
        "fileno",
        "finished",
        "loop",
        "more",
        "readers",
        "registered",
        "selector",
        "wakeup",
    )

    def __init__(self, readers: _Readers, fileno: int) -> None:
        self.fileno = fileno
        loop = self.loop = readers.loop
        self._asyncio_future_blocking = False
        self.finished = False
        self.error: BaseException | None = None
        self.wakeup: _Callback | None = None
        self.context: Context | None = None
        # Callbacks after the first (the task's): an inline shield adds some.
        self.more: list[tuple[_Callback, Context | None]] | None = None
        self.readers = readers
        selector = readers.selector
        if selector is not None:
            try:
                # The key's data as the loop's own add_reader() makes it.
                selector.register(fileno, _EVENT_READ, (Handle(_fire, (self,), loop), None))
            except KeyError:  # registered already: let the loop combine them
                selector = None
        if selector is None:
            readers.add(fileno, _fire, self)
        self.selector = selector
        self.registered = True

    def stop(self) -> None:
        if not self.registered:
            return
        self.registered = False
        selector = self.selector
        if selector is None:
            self.readers.remove(self.fileno)
            return
        key = selector.unregister(self.fileno)
        if key.events != _EVENT_READ:  # a writer was added meanwhile: keep it
            selector.register(self.fileno, key.events & ~_EVENT_READ, (None, key.data[1]))

    def fail(self, error: BaseException) -> bool:
        """End the wait with ``error``; False if it had ended already."""
        self.stop()
        if self.finished:
            return False
        self.finished = True
        self.error = error
        # Called from other code, maybe in another task: never inline.
        self.schedule()
        return True

    def schedule(self) -> None:
        """Schedule the done callbacks, as a Future does."""
        if self.wakeup is not None:
            self.loop.call_soon(self.wakeup, self, context=self.context)
        self.schedule_more()

    def schedule_more(self) -> None:
        """Schedule the callbacks after the first."""
        for callback, context in self.more or ():
            self.loop.call_soon(callback, self, context=context)

    # -- what an asyncio.Task calls on the awaitable it waits for ------------

    def __await__(self) -> Generator[Any, None, None]:
        if not self.finished:
            self._asyncio_future_blocking = True
            yield self
        self.result()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def add_done_callback(self, fn: _Callback, *, context: Context | None = None) -> None:
        if self.finished:
            self.loop.call_soon(fn, self, context=context)
        elif self.wakeup is None:
            self.wakeup = fn
            self.context = context
        elif self.more is None:
            self.more = [(fn, context)]
        else:
            self.more.append((fn, context))

    def remove_done_callback(self, fn: _Callback) -> int:
        # Not asyncio's; tools that interrupt a task's wait call it.
        removed = 0
        if self.wakeup is not None and self.wakeup == fn:
            self.wakeup = self.context = None
            removed = 1
        if self.more:
            kept = [(callback, context) for callback, context in self.more if callback != fn]
            removed += len(self.more) - len(kept)
            self.more = kept
        if self.wakeup is None and self.more:
            self.wakeup, self.context = self.more.pop(0)
        return removed

    def cancel(self, msg: Any = None) -> bool:
        return self.fail(asyncio.CancelledError() if msg is None else asyncio.CancelledError(msg))

    def cancelled(self) -> bool:
        return isinstance(self.error, asyncio.CancelledError)

    def done(self) -> bool:
        return self.finished

    def result(self) -> None:
        if self.error is not None:
            raise self.error
        if not self.finished:
            raise asyncio.InvalidStateError("the reply has not arrived yet")

    def exception(self) -> BaseException | None:
        if isinstance(self.error, asyncio.CancelledError):
            raise self.error
        if not self.finished:
            raise asyncio.InvalidStateError("the reply has not arrived yet")
        return self.error

    def __repr__(self) -> str:
        state = "finished" if self.finished else "pending"
        return f"<wait for a reply on socket {self.fileno}: {state}>"


class WaitingConnection(psycopg.AsyncConnection[Row]):
    """psycopg's ``AsyncConnection``, its waits for a reply cheaper (Note [Waiting for a reply])."""

    _django_aio_read: _Read | None = None
    # Those of the loop of the last wait: a connection stays on one loop.
    _django_aio_readers: _Readers | None = None

    async def wait(
        self,
        gen: _Gen,
        interval: float = 0.1,
        timeout: float | None = None,  # noqa: ASYNC109 (psycopg's signature)
    ) -> Any:
        """Consume ``gen``: psycopg's ``wait()``, with the common case done here."""
        global _last_yield
        if timeout is not None:
            return await super().wait(gen, interval, timeout)
        try:
            state = next(gen)
        except StopIteration as done:
            if monotonic() - _last_yield >= _MAX_BUSY:
                await asyncio.sleep(0)
                _last_yield = monotonic()
            return done.value
        loop = asyncio.get_running_loop()
        readers = self._django_aio_readers
        if readers is None or readers.loop is not loop:
            readers = self._django_aio_readers = _Readers(loop)
        fileno = self.pgconn.socket
        try:
            while True:
                if state != _READ:
                    return await super().wait(cast(_Gen, _Handover(gen, state=state)), interval)
                read = self._django_aio_read = _Read(readers, fileno)
                try:
                    await read
                except BaseException as exc:
                    read.stop()
                    self._django_aio_read = None
                    if isinstance(exc, _INTERRUPTIONS):
                        handover = _Handover(gen, error=exc)
                        return await super().wait(cast(_Gen, handover), interval)
                    raise
                # Whatever finished the wait took its reader out already.
                self._django_aio_read = None
                _last_yield = monotonic()
                state = gen.send(_READABLE)
        except StopIteration as done:
            return done.value
        except OSError as exc:  # as psycopg's waiter: the socket went away
            raise errors.OperationalError("connection socket closed") from exc

    async def close(self) -> None:
        """psycopg's ``close()``; a wait in progress ends with ``OperationalError``."""
        read = self._django_aio_read
        if read is not None:
            # Before the descriptor is closed: its number can be reused at
            # once, and the loop must not keep watching it for us.
            self._django_aio_read = None
            read.fail(errors.OperationalError("connection socket closed"))
        await super().close()


class _Handover:
    """``gen`` for psycopg's own ``wait()``, which starts with ``next(gen)``.

    That first step returns ``state`` (what ``gen`` already asked to wait for)
    or raises ``error`` (what interrupted our wait) instead of resuming
    ``gen``; from then on it is ``gen`` itself.
    """

    __slots__ = ("error", "gen", "state")

    def __init__(self, gen: _Gen, *, state: Any = None, error: BaseException | None = None) -> None:
        self.gen = gen
        self.state = state
        self.error = error

    def __iter__(self) -> _Handover:
        return self

    def __next__(self) -> Any:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        if self.state is not None:
            state, self.state = self.state, None
            return state
        return next(self.gen)

    def send(self, value: Any) -> Any:
        return self.gen.send(value)
