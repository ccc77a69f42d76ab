"""on_commit: AsyncConnection.on_commit and the module-level on_commit()."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import pytest
from atomic_testapp.models import Item, Note

from django_aio.atomic import async_atomic, on_commit
from django_aio.conn import ConnectionOwnedByAnotherTask, async_connections, run_sync

from .conftest import Boom, names, notes

pytestmark = pytest.mark.usefixtures("clean_tables")


async def test_connection_on_commit_runs_after_the_outermost_commit_in_order() -> None:
    ran: list[str] = []

    async def async_callback(label: str) -> None:
        ran.append(label)

    conn = async_connections["default"]
    async with async_atomic():
        await conn.on_commit(partial(ran.append, "sync 1"))
        async with async_atomic():
            await conn.on_commit(partial(async_callback, "async 2"))
        assert ran == []  # the savepoint was released, nothing committed yet
        await conn.on_commit(partial(ran.append, "sync 3"))
        assert ran == []
    assert ran == ["sync 1", "async 2", "sync 3"]


async def test_module_on_commit_sees_the_committed_data() -> None:
    seen: list[list[str]] = []

    async def check() -> None:
        seen.append(await names())

    async with async_atomic():
        await run_sync(Item.objects.create, name="a")
        await on_commit(check)
    assert seen == [["a"]]


async def test_callbacks_are_dropped_on_rollback() -> None:
    ran: list[str] = []
    with pytest.raises(Boom):
        async with async_atomic():
            await on_commit(partial(ran.append, "x"))
            raise Boom
    async with async_atomic():
        await on_commit(partial(ran.append, "y"))
        await run_sync(Item.objects.create, name="a")
        async with async_atomic():
            await on_commit(partial(ran.append, "z"))
        await on_commit(partial(ran.append, "w"))
        from django_aio.atomic import set_rollback

        await set_rollback(True)
    assert ran == []


async def test_callbacks_of_a_rolled_back_savepoint_are_dropped() -> None:
    ran: list[str] = []
    async with async_atomic():
        await on_commit(partial(ran.append, "outer before"))
        with pytest.raises(Boom):
            async with async_atomic():
                await on_commit(partial(ran.append, "inner"))
                async with async_atomic():
                    await on_commit(partial(ran.append, "innermost"))
                raise Boom
        await on_commit(partial(ran.append, "outer after"))
    assert ran == ["outer before", "outer after"]


async def test_outside_a_transaction_callbacks_run_at_once() -> None:
    ran: list[str] = []

    async def async_callback() -> None:
        ran.append("async")

    await on_commit(partial(ran.append, "sync"))
    await async_connections["default"].on_commit(async_callback)
    assert ran == ["sync", "async"]


async def test_callbacks_can_use_the_database() -> None:
    async def write_note() -> None:
        await run_sync(Note.objects.create, text="after commit")

    def write_note_sync() -> None:
        Note.objects.create(text="sync after commit")

    async with async_atomic():
        await run_sync(Item.objects.create, name="a")
        await on_commit(write_note)
        await on_commit(write_note_sync)
    assert await notes() == ["after commit", "sync after commit"]


async def test_robust_callback_error_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("callback failed")

    with caplog.at_level(logging.ERROR, logger="django.db.backends"):
        async with async_atomic():
            await run_sync(Item.objects.create, name="a")
            await on_commit(broken, robust=True)
            await on_commit(partial(ran.append, "next"))
    assert ran == ["next"]
    assert await names() == ["a"]
    [record] = [r for r in caplog.records if "callback failed" in r.getMessage()]
    assert "Error calling" in record.getMessage()
    assert "broken" in record.getMessage()


async def test_non_robust_callback_error_propagates_after_the_commit() -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        async with async_atomic():
            await run_sync(Item.objects.create, name="a")
            await on_commit(broken)
            await on_commit(partial(ran.append, "dropped"))
    # The data was committed before the callbacks ran; the later callback is dropped.
    assert await names() == ["a"]
    assert ran == []
    assert not async_connections["default"].in_atomic_block


@pytest.mark.aio_db(transaction=True, databases="__all__")
async def test_on_commit_on_another_alias() -> None:
    ran: list[str] = []
    async with async_atomic(using="other"):
        await on_commit(partial(ran.append, "other"), using="other")
        async with async_atomic():
            await on_commit(partial(ran.append, "default"))
        assert ran == ["default"]
    assert ran == ["default", "other"]


async def test_non_callable_is_refused() -> None:
    async with async_atomic():
        with pytest.raises(TypeError, match="on_commit\\(\\)'s callback must be a callable"):
            await on_commit("not callable")  # type: ignore[arg-type]


async def test_callback_can_open_its_own_transaction() -> None:
    async def outbox() -> None:
        async with async_atomic():
            await run_sync(Note.objects.create, text="own transaction")

    async with async_atomic():
        await run_sync(Item.objects.create, name="a")
        await on_commit(outbox)
    assert await notes() == ["own transaction"]


async def test_tasks_created_by_a_callback_are_refused_not_deadlocked() -> None:
    async def fan_out() -> None:
        await asyncio.gather(
            run_sync(Note.objects.create, text="x"), run_sync(Note.objects.create, text="y")
        )

    with pytest.raises(ConnectionOwnedByAnotherTask, match="independent_connection"):
        async with asyncio.timeout(30), async_atomic():
            await run_sync(Item.objects.create, name="a")
            await on_commit(fan_out)
    assert await names() == ["a"]  # committed before the callback ran
    assert await notes() == []


async def test_callback_tasks_with_their_own_connections() -> None:
    async def note(text: str) -> None:
        async with async_connections.independent_connection():
            await run_sync(Note.objects.create, text=text)

    async def fan_out() -> None:
        await asyncio.gather(note("x"), note("y"))

    async with async_atomic():
        await on_commit(fan_out)
    assert sorted(await notes()) == ["x", "y"]
