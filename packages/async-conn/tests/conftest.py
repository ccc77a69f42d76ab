"""Fixtures for django_aio.conn's tests (Django itself is configured by the root conftest)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.db import connections

from django_aio.conn import async_connections, run_sync


@pytest.fixture
async def scratch_table() -> AsyncIterator[str]:
    """A committed table ``scratch(id serial, value int)``, dropped afterwards."""

    def create() -> None:
        with connections["default"].cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS scratch")
            cursor.execute("CREATE TABLE scratch (id serial PRIMARY KEY, value int UNIQUE)")

    def drop() -> None:
        with connections["default"].cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS scratch")

    await run_sync(create)
    yield "scratch"
    await run_sync(drop)
    await async_connections.close_pools()


@pytest.fixture
def database_options() -> Iterator[dict[str, Any]]:
    """The live ``OPTIONS`` of the default alias; restored after the test.

    Changing them makes the next async use open a new pool with them.
    """
    settings_dict = connections.settings["default"]
    saved = copy.deepcopy(settings_dict["OPTIONS"])
    try:
        yield settings_dict["OPTIONS"]
    finally:
        settings_dict["OPTIONS"] = saved


async def backend_pid() -> int:
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT pg_backend_pid()")
        (pid,) = await cursor.fetchone()
    return int(pid)


async def pool_waiters(count: int, alias: str = "default") -> None:
    """Return once ``count`` tasks are queued for a connection of ``alias``'s pool."""
    from django_aio.conn._loops import pool_for

    pool = pool_for(alias)
    async with asyncio.timeout(5):
        # The pool signals nothing when a task starts waiting: poll its queue.
        while pool._waiting() < count:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
