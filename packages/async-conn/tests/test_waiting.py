"""Waiting for the server (Note [Waiting for a reply]): every kind of wait still ends right."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from django.db import connections
from psycopg import OperationalError

from django_aio.conn import async_connections, run_sync

from .conftest import backend_pid

# Far more than a socket's send buffer: sending it makes psycopg wait until
# the socket is writable again, several times.
BIG = 16 * 1024 * 1024


async def test_a_query_larger_than_the_socket_buffer_is_sent_whole() -> None:
    try:
        async with asyncio.timeout(60), async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT length(%s)", ["x" * BIG])
            assert await cursor.fetchone() == (BIG,)
    finally:
        await async_connections.close_pools()


async def test_a_query_larger_than_the_socket_buffer_is_sent_whole_from_the_bridge() -> None:
    def query() -> Any:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT length(%s), 'after'", ["y" * BIG])
            return cursor.fetchone()

    try:
        assert await asyncio.wait_for(run_sync(query), 60) == (BIG, "after")
    finally:
        await async_connections.close_pools()


async def test_a_cancelled_wait_in_the_bridge_cancels_the_query_on_the_server(
    database_options: dict[str, Any],
) -> None:
    database_options["pool"] = {"min_size": 1, "max_size": 1}
    sleeping = asyncio.Event()

    def sleep() -> None:
        with connections["default"].cursor() as cursor:
            sleeping.set()
            cursor.execute("SELECT pg_sleep(30) -- cancelled wait")

    try:
        pid = await backend_pid()
        task = asyncio.create_task(run_sync(sleep))
        await asyncio.wait_for(sleeping.wait(), 10)
        await asyncio.sleep(0.05)  # the query is on the server, its task waits
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # psycopg cancelled the query on the server and read its end, so the
        # one pooled connection is back, idle, and the sleep is over.
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute(
                "SELECT pg_backend_pid(), (SELECT count(*) FROM pg_stat_activity"
                " WHERE query LIKE '%%-- cancelled wait' AND state = 'active'"
                " AND pid <> pg_backend_pid())"
            )
            assert await cursor.fetchone() == (pid, 0)
    finally:
        await async_connections.close_pools()


async def test_closing_the_connection_ends_a_wait_on_it() -> None:
    from django_aio.conn._socket_wait import WaitingConnection

    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)  # Django's sync cursor
    aconnection = await WaitingConnection.connect(**params, autocommit=True)
    pid = aconnection.info.backend_pid
    waiting = asyncio.create_task(aconnection.execute("SELECT pg_sleep(30)"))
    await asyncio.sleep(0.2)
    await aconnection.close()
    with pytest.raises(OperationalError, match=r"^connection socket closed$"):
        await asyncio.wait_for(waiting, 5)
    # Its descriptor's number is free again: a new connection may get it, and
    # the loop must not be watching it for the old one.
    for _ in range(3):
        other = await WaitingConnection.connect(**params, autocommit=True)
        try:
            # The server still sleeps for the closed one: end it.
            cursor = await other.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert await cursor.fetchone() in ((True,), (False,))
        finally:
            await other.close()


async def test_closing_the_connection_ends_a_shielded_wait_and_frees_the_connection() -> None:
    # The exit of a transaction waits shielded (Note [Inline shield]): when
    # another task closes its connection meanwhile, the error must reach
    # psycopg where it waits, so that it lets go of the connection's lock;
    # Django's atomic exit then rolls back on it and must not wait forever.
    from django_aio.conn._greenlet import Shield
    from django_aio.conn._socket_wait import WaitingConnection

    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)  # Django's sync cursor
    aconnection = await WaitingConnection.connect(**params, autocommit=True)
    pid = aconnection.info.backend_pid

    async def shielded() -> Any:
        return await Shield().protect(aconnection.execute("SELECT pg_sleep(30)"))

    waiting = asyncio.create_task(shielded())
    try:
        await asyncio.sleep(0.2)
        await aconnection.close()
        with pytest.raises(OperationalError, match=r"^connection socket closed$"):
            await asyncio.wait_for(waiting, 5)
        # What Django's atomic exit does next; psycopg takes the lock first.
        with pytest.raises(OperationalError, match=r"^the connection is closed$"):
            await asyncio.wait_for(aconnection.rollback(), 5)
    finally:
        # The server still sleeps for the closed one: end it.
        other = await WaitingConnection.connect(**params, autocommit=True)
        try:
            await other.execute("SELECT pg_terminate_backend(%s)", [pid])
        finally:
            await other.close()


def test_a_loop_that_overrides_add_reader_is_called_for_every_wait() -> None:
    # The loop's internal methods are only used where the public ones are
    # asyncio's own (Note [The reader in the selector]).
    calls: list[str] = []

    class WatchedLoop(asyncio.SelectorEventLoop):
        def add_reader(self, fd: Any, callback: Any, *args: Any) -> None:
            calls.append("add")
            super().add_reader(fd, callback, *args)

        def remove_reader(self, fd: Any) -> bool:
            calls.append("remove")
            return super().remove_reader(fd)

    def select_one() -> Any:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()

    async def main() -> None:
        try:
            assert await run_sync(select_one) == (1,)  # opens the connection
            calls.clear()
            assert await run_sync(select_one) == (1,)
            assert await run_sync(select_one) == (1,)
        finally:
            await async_connections.close_pools()

    with asyncio.Runner(loop_factory=WatchedLoop) as runner:
        runner.run(main())
    assert calls == ["add", "remove"] * 2


class _WatchedSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The loop's selector, recording what it reports ready for one descriptor.

    ``hook``, if set, is called once, from the select() that next reports
    ``watched`` readable.
    """

    watched: int = -1
    reported: int = 0
    selects: int = 0
    hook: Any = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.selects += 1
        ready = super().select(timeout)
        seen = sum(1 for key, _ in ready if key.fd == self.watched)
        self.reported += seen
        if seen and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return ready

    def run(self, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``main()`` on a new loop of this selector."""
        with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(self)) as runner:
            runner.run(main())


async def _waiting_connection() -> Any:
    from django_aio.conn._socket_wait import WaitingConnection

    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)  # Django's sync cursor
    return await WaitingConnection.connect(**params, autocommit=True)


def test_the_reader_of_a_wait_is_called_once_and_leaves_no_trace() -> None:
    # Note [The reader in the selector]: the reader removes itself when it fires,
    # so the loop does not report the unread reply a second time.
    selector = _WatchedSelector()

    async def main() -> None:
        aconnection = await _waiting_connection()
        try:
            selector.watched = aconnection.pgconn.socket
            selector.reported = 0
            for number in range(5):
                cursor = await aconnection.execute("SELECT %s::int", [number])
                assert await cursor.fetchone() == (number,)
            assert selector.reported == 5
            with pytest.raises(KeyError):
                selector.get_key(aconnection.pgconn.socket)
        finally:
            await aconnection.close()

    selector.run(main)


async def test_a_writer_on_the_socket_is_kept_by_a_wait() -> None:
    # Someone else's writer on the socket: there before the wait, or added
    # while it waits. The wait combines with it and leaves it registered.
    loop = asyncio.get_running_loop()
    aconnection = await _waiting_connection()
    fileno = aconnection.pgconn.socket
    writes: list[None] = []

    def writable() -> None:
        writes.append(None)

    async def add_writer_soon() -> None:
        await asyncio.sleep(0.05)
        loop.add_writer(fileno, writable)

    try:
        loop.add_writer(fileno, writable)
        cursor = await aconnection.execute("SELECT 1")
        assert await cursor.fetchone() == (1,)
        assert loop.remove_writer(fileno)

        adding = asyncio.create_task(add_writer_soon())
        cursor = await aconnection.execute("SELECT pg_sleep(0.2), 2")
        assert await cursor.fetchone() == ("", 2)
        await adding
        writes.clear()
        await asyncio.sleep(0.01)
        assert writes, "the writer added during the wait is gone"
        assert loop.remove_writer(fileno)
        assert not loop.remove_reader(fileno)
    finally:
        loop.remove_writer(fileno)
        await aconnection.close()


def test_a_reply_resumes_its_task_in_the_loop_iteration_that_saw_it() -> None:
    # Note [Waking the task at once]: one select() per round trip, not one to
    # see the reply and a second to run the task that it woke.
    selector = _WatchedSelector()

    async def main() -> None:
        aconnection = await _waiting_connection()
        try:
            selector.selects = 0
            for number in range(5):
                cursor = await aconnection.execute("SELECT %s::int", [number])
                assert await cursor.fetchone() == (number,)
            assert selector.selects == 5
        finally:
            await aconnection.close()

    selector.run(main)


async def test_a_task_cancelled_while_it_waits_gets_the_message_and_a_usable_connection() -> None:
    aconnection = await _waiting_connection()
    try:
        waiting = asyncio.create_task(aconnection.execute("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.2)
        waiting.cancel("the client went away")
        with pytest.raises(asyncio.CancelledError, match=r"^the client went away$"):
            await asyncio.wait_for(waiting, 10)
        assert waiting.cancelled()
        # psycopg cancelled the sleep on the server and read the rest of its reply.
        cursor = await asyncio.wait_for(aconnection.execute("SELECT 7"), 10)
        assert await cursor.fetchone() == (7,)
    finally:
        await aconnection.close()


@pytest.mark.parametrize("first", ["cancel", "reply"])
def test_a_cancel_in_the_iteration_of_the_reply_wins_only_if_it_comes_first(first: str) -> None:
    # Callbacks scheduled from select() run before the readers it reports,
    # timers due at once after them: the two orders of one loop iteration.
    selector = _WatchedSelector()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        aconnection = await _waiting_connection()
        selector.watched = aconnection.pgconn.socket
        try:
            for number in range(5):
                waiting = asyncio.create_task(
                    aconnection.execute("SELECT pg_sleep(0.01), %s::int", [number])
                )
                await asyncio.sleep(0)  # sent: the task waits for the reply
                if first == "cancel":
                    selector.hook = functools.partial(loop.call_soon, waiting.cancel, "raced")
                else:
                    selector.hook = functools.partial(loop.call_later, 0, waiting.cancel, "raced")
                async with asyncio.timeout(10):
                    if first == "cancel":
                        with pytest.raises(asyncio.CancelledError, match=r"^raced$"):
                            await waiting
                    else:
                        cursor = await waiting
                        assert await cursor.fetchone() == ("", number)
                cursor = await asyncio.wait_for(aconnection.execute("SELECT %s::int", [number]), 10)
                assert await cursor.fetchone() == (number,)
            assert not loop.remove_reader(aconnection.pgconn.socket)
        finally:
            await aconnection.close()

    selector.run(main)


async def test_the_wait_a_task_is_suspended_on_answers_as_a_future_does() -> None:
    # Tools that inspect or interrupt a task's wait call these (Note [Waking
    # the task at once]).
    aconnection = await _waiting_connection()
    try:
        waiting = asyncio.create_task(aconnection.execute("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.1)
        wait = waiting._fut_waiter  # type: ignore[attr-defined]
        assert not wait.done()
        assert not wait.cancelled()
        with pytest.raises(asyncio.InvalidStateError):
            wait.exception()
        calls: list[object] = []
        wait.add_done_callback(calls.append)
        assert wait.remove_done_callback(calls.append) == 1
        assert wait.remove_done_callback(calls.append) == 0
        waiting.cancel()
        assert wait.done()
        assert wait.cancelled()
        with pytest.raises(asyncio.CancelledError):
            wait.exception()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 10)
        assert calls == []
        assert "pending" not in repr(wait)
    finally:
        await aconnection.close()


def test_in_debug_mode_a_slow_step_after_a_reply_is_named_by_its_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Note [Waking the task at once]: the reader does not run the task itself
    # in debug mode, so asyncio's warning names the task, not the reader.
    async def slow_view() -> None:
        aconnection = await _waiting_connection()
        try:
            cursor = await aconnection.execute("SELECT 1")
            assert await cursor.fetchone() == (1,)
            time.sleep(0.15)  # noqa: ASYNC251 (blocks the loop, as a slow view would)
        finally:
            await aconnection.close()

    async def main() -> None:
        asyncio.get_running_loop().slow_callback_duration = 0.1
        await asyncio.create_task(slow_view(), name="slow-view")

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        asyncio.run(main(), debug=True)
    slow = [record.getMessage() for record in caplog.records if "took" in record.getMessage()]
    assert slow, caplog.text
    assert all("slow-view" in message and "_fire" not in message for message in slow), slow


# Run in a child process: what it guards against is a segfault.
_DEEP_GREENLET_READS = """
import asyncio, json, os, sys

import django
from django.conf import settings

settings.configure(
    DATABASES={"default": {"ENGINE": "django_aio.conn.backends.postgresql",
                           **json.loads(os.environ["DJANGO_AIO_TEST_DB"])}},
    INSTALLED_APPS=["django_aio.conn"],
    USE_TZ=True,
)
django.setup()

from django.db import connection, transaction

from django_aio.conn import async_connections, run_sync


def deep(levels, fn):
    # Each level goes through C (map), so it takes C stack in the greenlet.
    if levels:
        return list(map(lambda _: deep(levels - 1, fn), [0]))[0]
    return fn()


def read(levels):
    # In a transaction, so that a transaction pooler keeps the cursor's session.
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute("SELECT generate_series(1, 30)")
        rows = 0
        while chunk := deep(levels, lambda: cursor.fetchmany(10)):
            rows += len(chunk)
        return rows


async def start(awaits, levels):
    # Each await of a coroutine takes some C stack before the greenlet starts.
    if awaits:
        return await start(awaits - 1, levels)
    return await run_sync(read, levels)


async def main():
    try:
        for levels in range(200):
            # New tasks, so their greenlets start high up the stack, at six
            # depths; parked greenlets are reused by other tasks later.
            reads = [asyncio.ensure_future(start(awaits, levels)) for awaits in range(6)]
            assert await asyncio.gather(*reads) == [30] * 6
    finally:
        await async_connections.close_pools()
    print("read at every depth")


if sys.argv[1] == "uvloop":
    import uvloop

    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_bridge_greenlet_woken_by_a_reply_reads_again_at_any_stack_depth(loop: str) -> None:
    # Note [Waking the task at once]: on uvloop a reply's reader must not run
    # the task (and its greenlet) inside libuv's poll phase. Each named-cursor
    # fetch starts its wait inside the greenlet, after going deep in the stack.
    if loop == "uvloop" and sys.platform == "win32":
        pytest.skip("uvloop is not available on Windows")
    params = connections["default"].settings_dict
    database = {key: params[key] for key in ("NAME", "HOST", "PORT", "USER", "PASSWORD")}
    child = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", _DEEP_GREENLET_READS, loop],
        env={**os.environ, "DJANGO_AIO_TEST_DB": json.dumps(database)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.strip() == "read at every depth"
