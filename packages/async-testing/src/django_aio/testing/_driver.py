"""Run every async step of one test in one asyncio task.

Note [One task per test]
~~~~~~~~~~~~~~~~~~~~~~~~
``unittest.IsolatedAsyncioTestCase`` runs ``asyncSetUp``, the test and
``asyncTearDown`` as separate tasks. django_aio gives each task its own
connections (and an ``async_atomic`` block belongs to the task that opened
it), so a context variable set or a transaction opened in ``asyncSetUp``
would not carry over. The driver starts one task per test and feeds it every
step; between steps the loop is simply not running, so unittest's sync
machinery (and Django's) runs in between as usual.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Driver"]

Step = tuple[Callable[[], Awaitable[Any]], "asyncio.Future[Any]"]


class Driver:
    """An event loop and the one task that runs a test's async steps in order."""

    def __init__(self, debug: bool | None = None) -> None:
        self.runner = asyncio.Runner(debug=debug)
        self._queue: asyncio.Queue[Step | None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.runner.get_loop()

    def call(self, step: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``await step()`` in the test's task and return its result."""
        return self.runner.run(self._submit(step))

    async def _submit(self, step: Callable[[], Awaitable[Any]]) -> Any:
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(
                self._serve(self._queue), name="django_aio test", context=contextvars.copy_context()
            )
        assert self._queue is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((step, future))
        return await future

    @staticmethod
    async def _serve(queue: asyncio.Queue[Step | None]) -> None:
        while (item := await queue.get()) is not None:
            step, future = item
            try:
                result = await step()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # the caller sees the test's own error
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    def close(self) -> None:
        """Stop the task, then close the loop (cancelling what the test left running)."""
        try:
            if self._task is not None and self._queue is not None and not self._task.done():
                self._queue.put_nowait(None)
                self.runner.run(self._wait(self._task))
        finally:
            self.runner.close()

    @staticmethod
    async def _wait(task: asyncio.Task[None]) -> None:
        await task
