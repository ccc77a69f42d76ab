"""Failure paths: database errors, cancellation, paginator (Django 6)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db import IntegrityError
from django.db.transaction import TransactionManagementError
from orm_testapp.models import Author

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections


async def test_database_errors_keep_their_type_and_the_connection_works() -> None:
    await Author.objects.acreate(name="Ann")
    with pytest.raises(IntegrityError, match="duplicate key"):
        await Author.objects.acreate(name="Ann")
    assert await Author.objects.acount() == 1


async def test_an_error_in_a_transaction_breaks_it_until_it_ends() -> None:
    with pytest.raises(TransactionManagementError, match="current transaction"):
        async with async_atomic():
            await Author.objects.acreate(name="Ann")
            with pytest.raises(IntegrityError):
                await Author.objects.acreate(name="Ann")
            await Author.objects.acount()
    assert not await Author.objects.aexists()
    # A savepoint keeps the outer block usable.
    async with async_atomic():
        await Author.objects.acreate(name="Ann")
        with pytest.raises(IntegrityError):
            async with async_atomic():
                await Author.objects.acreate(name="Ann")
        await Author.objects.acreate(name="Bob")
    assert await Author.objects.acount() == 2


async def test_cancelling_a_query_leaves_a_clean_pool() -> None:
    await Author.objects.acreate(name="Ann")
    table = Author._meta.db_table
    started = asyncio.Event()

    def mark_start(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if "pg_sleep" in sql:
            # The task's next wait is on this query: that is where the cancel lands.
            started.set()
        return execute(sql, params, many, context)

    async def slow() -> None:
        with async_connections["default"].execute_wrapper(mark_start):
            raw = Author.objects.raw(f"SELECT id, name FROM {table}, pg_sleep(30)")
            [a async for a in raw]

    task = asyncio.create_task(slow())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert async_connections["default"].lease is None
    # Every pooled connection still answers.
    counts = await asyncio.gather(*(Author.objects.acount() for _ in range(4)))
    assert counts == [1, 1, 1, 1]


async def test_async_paginator() -> None:
    paginator_module = pytest.importorskip("django.core.paginator")
    paginator_class = getattr(paginator_module, "AsyncPaginator", None)
    if paginator_class is None:
        pytest.skip("AsyncPaginator is new in Django 6.0")
    await Author.objects.abulk_create([Author(name=f"a{i:02}") for i in range(25)])
    paginator = paginator_class(Author.objects.all(), 10)
    assert await paginator.acount() == 25
    page = await paginator.apage(3)
    assert [a.name for a in await page.aget_object_list()] == [f"a{i}" for i in range(20, 25)]
