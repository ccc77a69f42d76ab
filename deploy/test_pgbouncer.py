"""django-aio behind PgBouncer in transaction pooling mode (PgBouncer 1.18+).

Each test points ``default`` at PgBouncer in front of the module's own
server. What a transaction pooler breaks is made to happen for certain: a
second client takes the server session a first one just used, so the first
one's next statement runs on another session, as under load.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.db import ProgrammingError, connections

from deploy.pgbouncer import PgBouncer
from django_aio.atomic import async_atomic
from django_aio.conn import async_connections
from faults._support import APP_NAME, seed
from faults.app.models import Account, Book
from faults.server import DATABASE, Server

pytestmark = pytest.mark.usefixtures("bouncer")


def behind(bouncer: PgBouncer, **fields: Any) -> None:
    """Point ``default`` at PgBouncer (``fields`` laid over the entry; OPTIONS merged)."""
    entry = connections.settings["default"]
    entry.update({"NAME": DATABASE, "USER": "postgres", "PASSWORD": "", "HOST": "127.0.0.1"})
    entry["PORT"] = str(bouncer.port)
    entry["DISABLE_SERVER_SIDE_CURSORS"] = False
    entry["OPTIONS"] = {"application_name": APP_NAME, **fields.pop("OPTIONS", {})}
    entry.update(fields)


async def backend_pid() -> int:
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT pg_backend_pid()")
        row = await cursor.fetchone()
    return int(row[0])


async def hold_session_in_transaction(ready: asyncio.Event, done: asyncio.Event) -> None:
    """Another client: takes an idle server session and keeps it in a transaction."""
    async with async_connections.independent_connection(), async_atomic():
        await Account.objects.acount()
        ready.set()
        await done.wait()


async def with_session_taken(step: Any) -> Any:
    """Run ``step()`` while another client holds the server session we last used."""
    ready, done = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(hold_session_in_transaction(ready, done))
    await ready.wait()
    try:
        return await step()
    finally:
        done.set()
        await holder


@pytest.fixture
async def books(primary: Server) -> AsyncIterator[None]:
    seed(primary, accounts=3, books=10)
    yield
    await async_connections.close_pools()
    # A WITH HOLD cursor left on a server session (the first aiterator test)
    # would stay there for the next test: start every test on fresh sessions.
    primary.terminate_backends()


async def test_orm_and_transactions_work(bouncer: PgBouncer, books: None) -> None:
    behind(bouncer)
    assert await Book.objects.acount() == 10
    with pytest.raises(RuntimeError):
        async with async_atomic():
            await Account.objects.filter(id=1).aupdate(balance=0)
            raise RuntimeError
    async with async_atomic():
        await Account.objects.filter(id=2).aupdate(balance=5)
    counts = await asyncio.gather(*(Book.objects.acount() for _ in range(8)))
    assert counts == [10] * 8
    assert [a.balance async for a in Account.objects.order_by("id")] == [1000, 5, 1000]


async def test_aiterator_outside_a_transaction_names_disable_server_side_cursors(
    bouncer: PgBouncer, books: None
) -> None:
    behind(bouncer)
    rows = Book.objects.order_by("id").aiterator(chunk_size=2)
    assert (await anext(rows)).title == "book 1"

    async def rest() -> list[str]:
        return [book.title async for book in rows]

    with pytest.raises(ProgrammingError) as caught:
        await with_session_taken(rest)
    assert str(caught.value).endswith(
        ": a server-side cursor lives on one server session, and outside a transaction a "
        "transaction pooler (such as PgBouncer with pool_mode = transaction) may run its next "
        "statement on another one. Set DISABLE_SERVER_SIDE_CURSORS = True on database "
        "'default', or iterate inside a transaction (async_atomic())."
    )
    assert str(caught.value).startswith('cursor "_django_curs_')
    # The failed iteration gave its connection back clean.
    assert await Book.objects.acount() == 10


async def test_a_cursor_left_on_a_server_session_names_the_setting(
    bouncer: PgBouncer, books: None
) -> None:
    behind(bouncer)
    async with async_connections["default"].cursor() as cursor:
        # Another client's WITH HOLD cursor, left open on the server session.
        await cursor.execute('DECLARE "left_behind" CURSOR WITH HOLD FOR SELECT 1')
    with pytest.raises(ProgrammingError) as caught:
        async with async_atomic(), async_connections["default"].cursor(name="left_behind") as c:
            await c.execute("SELECT 2")
    assert str(caught.value) == (
        'cursor "left_behind" already exists: behind a transaction pooler (such as PgBouncer '
        "with pool_mode = transaction), a server-side cursor declared outside a transaction "
        "stays on the server session it was declared on, where another client's cursor of "
        "the same name then collides with it. Set DISABLE_SERVER_SIDE_CURSORS = True on "
        "database 'default'."
    )


async def test_aiterator_works_with_disable_server_side_cursors(
    bouncer: PgBouncer, books: None
) -> None:
    behind(bouncer, DISABLE_SERVER_SIDE_CURSORS=True)
    rows = Book.objects.order_by("id").aiterator(chunk_size=2)
    first = (await anext(rows)).title

    async def rest() -> list[str]:
        return [book.title async for book in rows]

    assert [first, *await with_session_taken(rest)] == [f"book {i}" for i in range(1, 11)]


async def test_aiterator_inside_a_transaction_keeps_its_cursor(
    bouncer: PgBouncer, books: None
) -> None:
    behind(bouncer)
    async with async_atomic():
        rows = Book.objects.order_by("id").aiterator(chunk_size=2)
        first = (await anext(rows)).title

        async def rest() -> list[str]:
            return [book.title async for book in rows]

        titles = [first, *await with_session_taken(rest)]
    assert titles == [f"book {i}" for i in range(1, 11)]


async def test_prepared_statements_name_prepare_threshold(bouncer: PgBouncer, books: None) -> None:
    behind(bouncer, OPTIONS={"server_side_binding": True, "prepare_threshold": 1})

    async def exists() -> bool:
        return await Book.objects.filter(id=1).aexists()

    # The cursor block holds our client connection (psycopg's prepared
    # statements belong to it), so the other client gets a connection of its own.
    async with async_connections["default"].cursor():
        for _ in range(3):  # prepared on the server session PgBouncer gave us
            assert await exists()
        with pytest.raises(ProgrammingError) as caught:
            await with_session_taken(exists)
    assert str(caught.value) == (
        'prepared statement "_pg3_0" does not exist: psycopg\'s prepared statements live on '
        "one server session, and a transaction pooler (such as PgBouncer with pool_mode = "
        "transaction) runs each transaction on any of them. Set "
        "OPTIONS['prepare_threshold'] = None on database 'default' (or leave "
        "OPTIONS['server_side_binding'] off)."
    )


async def test_server_side_binding_works_with_prepare_threshold_none(
    bouncer: PgBouncer, books: None
) -> None:
    behind(bouncer, OPTIONS={"server_side_binding": True, "prepare_threshold": None})

    async def exists() -> bool:
        return await Book.objects.filter(id=1).aexists()

    async with async_connections["default"].cursor():
        for _ in range(3):
            assert await exists()
        assert await with_session_taken(exists)


async def test_transaction_scoped_state_works(bouncer: PgBouncer, books: None) -> None:
    # SET LOCAL and transaction-level advisory locks end with their
    # transaction, so no other client ever sees them.
    behind(bouncer)
    async with async_atomic(), async_connections["default"].cursor() as cursor:
        await cursor.execute("SET LOCAL statement_timeout = '1234ms'")
        await cursor.execute("SELECT pg_advisory_xact_lock(42)")
        await cursor.execute("SHOW statement_timeout")
        assert await cursor.fetchone() == ("1234ms",)

    async def timeout() -> str:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SHOW statement_timeout")
            (value,) = await cursor.fetchone()
        return str(value)

    assert await with_session_taken(timeout) == "0"


async def test_independent_connection_works(bouncer: PgBouncer, books: None) -> None:
    behind(bouncer)
    with pytest.raises(RuntimeError):
        async with async_atomic():
            await Account.objects.filter(id=1).aupdate(balance=1)
            async with async_connections.independent_connection():
                await Account.objects.filter(id=3).aupdate(balance=3)
            raise RuntimeError
    balances = [a.balance async for a in Account.objects.order_by("id")]
    assert balances == [1000, 1000, 3]
