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
readable with one reader callback and one awaitable (``ReadWait``), and hands
everything else to psycopg's own ``wait()``, unchanged:

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

The reader itself and the awaitable are in _read_wait.py (Note [The
reader in the selector], Note [Waking the task at once]).
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from time import monotonic
from typing import Any, cast

import psycopg
from psycopg import errors
from psycopg.rows import Row
from psycopg.waiting import Ready, Wait

from ._read_wait import Readers, ReadWait

__all__ = ["WaitingConnection"]

_READ = Wait.R
_READABLE = Ready.R
# How long a run of waits that complete at once may keep the loop (psycopg's
# own waiter uses the same bound).
_MAX_BUSY = 0.005
_last_yield = 0.0

# Whatever psycopg's generators yield and are sent; the module's own alias
# (psycopg.abc.PQGen) is not public.
_Gen = Generator[Any, Any, Any]


# What psycopg's own wait() turns into a cancel on the server.
_INTERRUPTIONS = (asyncio.CancelledError, KeyboardInterrupt, SystemExit)


class WaitingConnection(psycopg.AsyncConnection[Row]):
    """psycopg's ``AsyncConnection``, its waits for a reply cheaper (Note [Waiting for a reply])."""

    _django_aio_read: ReadWait | None = None
    # Those of the loop of the last wait: a connection stays on one loop.
    _django_aio_readers: Readers | None = None

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
            readers = self._django_aio_readers = Readers(loop)
        fileno = self.pgconn.socket
        try:
            while True:
                if state != _READ:
                    return await super().wait(cast(_Gen, _Handover(gen, state=state)), interval)
                read = self._django_aio_read = ReadWait(readers, fileno)
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
