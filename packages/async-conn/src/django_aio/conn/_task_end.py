"""How a task's connection goes back to the pool when the task ends holding it.

Note [Task end]
~~~~~~~~~~~~~~~
A connection has one owner at a time (a task's ``AsyncConnection``) and one
way back to the pool: the last ``unhold()``, which returns it when clean and
closes it otherwise (Note [Clean returns] in _pool.py). Every way a holding
block can end leads there, once:

- normal exit, an exception, a cancellation: the block's own ``finally``;
- an async generator abandoned inside a block (``break`` out of
  ``aiterator()``): the loop finalizes it later in a *new* task. Blocks
  therefore exit on the connection they captured on entry (``unhold(tenure)``,
  ``run_held()``), never through the current task's connections;
- the owner task ended with holds left: its scope's done callback waits two
  loop iterations (the finalizer tasks of the generators it dropped start
  then and give the connection back themselves), then gives back what is
  still held, through the same release;
- the owner task was garbage-collected while pending (nothing referenced it
  any more): a ``weakref.finalize`` on the task closes what it held.

``tenure`` tells a late exit that the connection was already given back (it
then touches nothing), so no release runs twice and none runs on a
connection that meanwhile went to another task. Ownership records never keep
a task alive: scopes refer to their task weakly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, cast

from ._greenlet import start
from ._providers import providers

if TYPE_CHECKING:
    from ._lease import Lease
    from ._scope import Scope

__all__ = ["TaskEnd"]

logger = logging.getLogger("django_aio.conn")
# Strong references to fire-and-forget tasks (the loop keeps only weak ones).
_background: set[asyncio.Task[None]] = set()


class TaskEnd:
    """The part of ``AsyncConnection`` that takes back what an ended task held."""

    scope: Scope
    alias: str
    lease: Lease | None
    _holds: int
    _borrowed: bool
    _tenure: object | None
    _active: int
    _orphaned: bool

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """The owner task ended: give back what it still holds, through the one path."""
        if self.lease is None or self._borrowed:
            return
        # Not at once: when a task ends, the async generators it dropped are
        # finalized by the loop in tasks that start on the next iterations,
        # and their blocks give the connection back properly (closing their
        # named cursors first). Only what nobody gives back is reclaimed.
        self.scope.loop.call_soon(self._reclaim_soon, 2)

    def _task_lost(self) -> None:
        """The owner task was garbage-collected while pending: close what it held."""
        lease = self.lease
        if lease is None or self._borrowed:
            return
        self.lease, self._holds, self._tenure = None, 0, None
        self._reclaiming(lease)
        loop = self.scope.loop
        if loop.is_closed():
            lease.pool.finish(lease)
            return
        # The garbage collector may run in any thread: hand over to the loop.
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._spawn_release, lease, True, "was destroyed")

    def _reclaiming(self, lease: Lease) -> None:
        """Tell the installed provider, if any, before ``lease`` is taken back."""
        provider = providers.current  # Note [Connection providers] in _providers.py
        if provider is not None:
            provider.ended_holding(cast(Any, self), lease)

    def _reclaim_soon(self, hops: int = 0) -> None:
        if hops:
            self.scope.loop.call_soon(self._reclaim_soon, hops - 1)
            return
        lease = self.lease
        if lease is None or self._borrowed:
            return
        if self._active:
            # A finalizer is giving it back right now; if it leaves holds
            # behind, run_held() calls us again when it ends.
            self._orphaned = True
            return
        self.lease, self._holds, self._tenure = None, 0, None
        self._reclaiming(lease)
        self._spawn_release(lease, False, "ended")

    def _spawn_release(self, lease: Lease, discard: bool, how: str) -> None:
        # Usually finishes at once (Note [Fast path]); a task only for a rest,
        # so that a loop shutting down right now does not drop the release.
        done, rest = start(self._release_for_ended(lease, discard, how))
        if not done:
            task = self.scope.loop.create_task(rest)
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def _release_for_ended(self, lease: Lease, discard: bool, how: str) -> None:
        provider = providers.current
        if provider is None:
            returned = await lease.pool.release(lease, discard=discard)
        else:
            returned = await provider.release(cast(Any, self), lease, discard=discard)
        if returned:
            logger.debug(
                "task %r %s holding a connection to database %r; it was returned to the pool",
                self.scope.name,
                how,
                self.alias,
            )
        else:
            logger.warning(
                "task %r %s while holding a connection to database %r in a transaction or "
                "with unfinished work; it was closed instead of returned to the pool. Leave "
                "every cursor or transaction block before the task ends.",
                self.scope.name,
                how,
                self.alias,
            )
