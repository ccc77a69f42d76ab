"""One wait for a connection's socket to be readable: its reader, and what its task awaits.

``WaitingConnection.wait()`` (Note [Waiting for a reply] in _socket_wait.py)
makes a ``ReadWait`` for each reply it waits for.

Note [The reader in the selector]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
On asyncio's own selector loops the reader goes straight into the loop's
selector, as the loop's ``add_reader()`` would put it (a ``Handle`` as the
key's reader, no writer), and comes out with ``unregister()``. The public
methods first check that no asyncio transport owns the descriptor (a lookup
in a weak dictionary that fails with ``KeyError`` every time), then ask the
selector whether the descriptor is registered, which raises and formats two
``KeyError``; together about 30K instructions per round trip, a tenth of a
round trip's whole client work. libpq's socket never belongs to a transport.
The reader also removes itself when it fires: the descriptor stays readable
until the task reads the reply, which on a loop where its wake-up is
scheduled is in the next iteration, and a reader still registered then
would be reported and called once more for nothing.
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
``ReadWait`` instead, which implements the part of the Future protocol that
``asyncio.Task`` uses with any Future-compatible awaitable (asyncio supports
those: ``_asyncio_future_blocking``, ``get_loop``, ``add_done_callback``,
``cancel``, ``result``), plus what the inline shield of django_aio.conn and
tools that inspect a task's wait call (``done``, ``cancelled``,
``exception``, ``remove_done_callback``). When the reader fires it calls the
task's wake-up itself, in the task's context, in the loop iteration that saw
the reply. That is safe on asyncio's own selector loops: their readers'
callbacks run from the same queue of ready callbacks as a scheduled wake-up,
with no task running and nothing but the interpreter's own frames below.

Not on other loops. uvloop calls a reader from inside libuv's poll phase,
and libuv keeps a pointer to a structure in that phase's C stack frame. The
woken task may switch into a bridge greenlet (Note [How the bridge works] in
_greenlet.py) that was started higher up the stack, in a callback from the
ready queue: while it runs, greenlet lays its stack over the loop's frames,
and the next ``add_reader()`` it makes reads libuv's structure through that
pointer, finding the greenlet's data there. uvloop segfaulted that way
under faults/test_asgi_uvicorn.py and in tests/test_waiting.py. So on any loop but
asyncio's own (``Readers.inline``) the wake-up is scheduled, as a Future
would do it, and runs from the ready queue. So is anything else that ends a
wait (the task cancelled, the connection closed, maybe from another task),
further callbacks (the inline shield's), and the reader's wake-up in
asyncio's debug mode, whose warning about a slow callback then names the
task's step rather than the reader.
"""

from __future__ import annotations

import asyncio
import selectors
from asyncio import selector_events
from asyncio.events import Handle
from collections.abc import Callable, Generator
from contextvars import Context
from typing import Any

__all__ = ["ReadWait", "Readers"]

_EVENT_READ = selectors.EVENT_READ
_Reader = Callable[..., Any]
_Callback = Callable[[Any], Any]
_BASE = selector_events.BaseSelectorEventLoop


class Readers:
    """How to add and remove a reader on one loop (Note [The reader in the selector])."""

    __slots__ = ("add", "inline", "loop", "remove", "selector")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.add: _Reader = loop.add_reader
        self.remove: _Reader = loop.remove_reader
        #: The loop's selector, to register in directly; None: use add/remove.
        self.selector: selectors.BaseSelector | None = None
        #: Whether a reader may wake its task itself (Note [Waking the task at once]).
        self.inline = False
        kind = type(loop)
        if (
            isinstance(loop, _BASE)
            and kind.add_reader is _BASE.add_reader
            and kind.remove_reader is _BASE.remove_reader
            # Not in typeshed: the method that reads the keys we register.
            and getattr(kind, "_process_events", None) is getattr(_BASE, "_process_events", ())
        ):
            self.inline = True
            selector = getattr(loop, "_selector", None)
            if isinstance(selector, selectors.BaseSelector):
                self.selector = selector


def _fire(read: ReadWait) -> None:
    # Once: see Note [The reader in the selector] on level-triggered readiness.
    read.stop()
    if read.finished:
        return
    read.finished = True
    wakeup = read.wakeup
    if wakeup is None:
        return
    if not read.readers.inline or read.loop.get_debug():
        # Note [Waking the task at once]: not inside another loop's C code, and
        # debug mode names the slow step's task.
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


class ReadWait:
    """One wait for the socket to be readable: its reader, and what its task awaits.

    The awaitable is not an ``asyncio.Future`` but implements the part of its
    protocol that an ``asyncio.Task`` uses (Note [Waking the task at once]).
    """

    __slots__ = (
        "_asyncio_future_blocking",
        "context",
        "django_aio_shielded",
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

    def __init__(self, readers: Readers, fileno: int) -> None:
        self.fileno = fileno
        loop = self.loop = readers.loop
        self._asyncio_future_blocking = False
        self.finished = False
        #: Set by the inline shield while it waits on us (Note [Inline shield]).
        self.django_aio_shielded = False
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
        if self.django_aio_shielded:
            # Refused: Task.cancel() then delivers the cancellation with the
            # reply (Note [Inline shield] in _greenlet.py).
            return False
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
