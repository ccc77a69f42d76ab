"""The event loop and the one task that run every step in ``--through-bridge``.

One per process (the main one, each parallel worker); see throughbridge.py.
Between steps the loop is not running, so unittest's own bookkeeping runs
as usual on the test thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import multiprocessing
import multiprocessing.util
from collections.abc import Awaitable, Callable
from typing import Any

Step = tuple[Callable[[], Awaitable[Any]], "asyncio.Future[Any]"]


class Bridge:
    """This process's event loop and the one task that runs every step."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.queue: asyncio.Queue[Step | None] | None = None
        self.task: asyncio.Task[None] | None = None
        # The class whose TestCase transaction the task holds connections for.
        self.held_class: type | None = None
        self.held: list[Any] = []

    def call(self, step: Callable[[], Awaitable[Any]]) -> Any:
        return self.runner.run(self._submit(step))

    async def _submit(self, step: Callable[[], Awaitable[Any]]) -> Any:
        if self.task is None:
            self.queue = asyncio.Queue()
            self.task = asyncio.get_running_loop().create_task(
                self._serve(self.queue), name="through-bridge", context=contextvars.Context()
            )
        assert self.queue is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((step, future))
        return await future

    @staticmethod
    async def _serve(queue: asyncio.Queue[Step | None]) -> None:
        while (item := await queue.get()) is not None:
            step, future = item
            try:
                result = await step()
            except BaseException as exc:  # raised where the step was submitted
                # A cancellation that escaped a step must not cancel the next.
                task = asyncio.current_task()
                while task is not None and task.cancelling():
                    task.uncancel()
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        from django_aio.conn import run_sync

        return self.call(lambda: run_sync(fn, *args))

    def hold_for(self, cls: type) -> None:
        """Hold an async connection per alias in the task, for the class's lifetime.

        See Note [The test thread's connection] in throughbridge.py.
        """
        from django.db import connections

        from django_aio.conn import async_connections

        async def hold() -> None:
            for alias in connections:
                conn = async_connections[alias]
                await conn.hold()
                self.held.append(conn)

        self.held_class = cls
        self.call(hold)

    def release(self) -> None:
        held, self.held, self.held_class = self.held, [], None

        async def release() -> None:
            for conn in held:
                await conn.unhold()

        if held:
            self.call(release)

    def close(self) -> None:
        try:
            self.release()
            if self.task is not None and self.queue is not None and not self.task.done():
                self.queue.put_nowait(None)
                task = self.task

                async def wait() -> None:
                    await task

                self.runner.run(wait())
        finally:
            self.runner.close()


_bridge: Bridge | None = None


def get_bridge() -> Bridge:
    global _bridge
    if _bridge is None:
        _bridge = Bridge()
        if multiprocessing.parent_process() is not None:
            # A parallel worker keeps its loop (and its pooled connections)
            # for all the subsuites it runs, and closes it as it exits,
            # before the main process drops the worker's database.
            multiprocessing.util.Finalize(None, close, exitpriority=10)
    return _bridge


def close() -> None:
    """Close this process's loop (its pools with it): before test databases are dropped.

    What the closed loop leaves (its task's connection records refer to each
    other) is collected at once, so that a later test that counts garbage
    (Django's ``select_related`` memory-leak test) does not find the
    harness's.
    """
    global _bridge
    bridge, _bridge = _bridge, None
    if bridge is not None:
        bridge.close()
        del bridge
        gc.collect()
