"""``aiterator()`` streams with a server-side cursor on one held connection."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest
from orm_testapp.models import Author, Book, Row

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections


async def open_cursors() -> list[str]:
    """Named cursors open on the task's connection (the held one, if any)."""
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT name FROM pg_cursors ORDER BY name")
        return [name for (name,) in await cursor.fetchall()]


@pytest.fixture
async def rows() -> int:
    count = 1000
    await Row.objects.abulk_create([Row(n=i, payload="x" * 50) for i in range(count)])
    return count


async def test_aiterator_uses_a_server_side_cursor_on_the_held_connection(rows: int) -> None:
    conn = async_connections["default"]
    seen: list[int] = []
    cursors_during: list[str] = []
    async for row in Row.objects.order_by("n").aiterator(chunk_size=100):
        seen.append(row.n)
        if row.n == 150:
            # Between chunks: the same connection is held and its cursor is open.
            assert conn.lease is not None
            cursors_during = await open_cursors()
    assert seen == list(range(rows))
    assert len(cursors_during) == 1
    assert cursors_during[0].startswith("_django_curs_")
    assert conn.lease is None
    assert await open_cursors() == []


async def test_other_queries_inside_the_loop_share_the_connection(rows: int) -> None:
    total = 0
    async for row in Row.objects.filter(n__lt=250).order_by("n").aiterator(chunk_size=100):
        if row.n % 100 == 0:
            total += await Row.objects.filter(n__gte=row.n).acount()
    assert total == 1000 + 900 + 800


async def test_values_and_values_list(rows: int) -> None:
    values = [v async for v in Row.objects.filter(n__lt=3).values("n").order_by("n").aiterator()]
    assert values == [{"n": 0}, {"n": 1}, {"n": 2}]
    flat = [
        v
        async for v in Row.objects.filter(n__lt=3)
        .values_list("n", flat=True)
        .order_by("n")
        .aiterator(chunk_size=2)
    ]
    assert flat == [0, 1, 2]


async def test_aiterator_with_prefetch_related() -> None:
    ann = await Author.objects.acreate(name="Ann")
    bob = await Author.objects.acreate(name="Bob")
    await Book.objects.abulk_create(
        [Book(title="a", author=ann), Book(title="b", author=ann), Book(title="c", author=bob)]
    )
    found = [
        (a.name, [b.title for b in a.books.all()])
        async for a in Author.objects.prefetch_related("books").aiterator(chunk_size=1)
    ]
    assert found == [("Ann", ["a", "b"]), ("Bob", ["c"])]


async def test_aiterator_in_a_transaction_sees_its_writes() -> None:
    async with async_atomic():
        await Row.objects.abulk_create([Row(n=i) for i in range(5)])
        assert [r.n async for r in Row.objects.order_by("n").aiterator(chunk_size=2)] == [
            0,
            1,
            2,
            3,
            4,
        ]


async def test_closing_the_iteration_early_closes_the_cursor(rows: int) -> None:
    conn = async_connections["default"]
    iterator = Row.objects.aiterator(chunk_size=10)
    async for _ in iterator:
        break
    assert conn.lease is not None
    await iterator.aclose()  # type: ignore[attr-defined]
    assert conn.lease is None
    assert await open_cursors() == []


async def test_abandoned_iteration_is_finalized_in_another_task(rows: int) -> None:
    conn = async_connections["default"]
    async for _ in Row.objects.aiterator(chunk_size=10):
        break
    lease = conn.lease
    assert lease is not None
    # The loop finalizes the dropped generator in a task of its own.
    gc.collect()
    for _ in range(20):
        await asyncio.sleep(0.01)
        if conn.lease is None:
            break
    assert conn.lease is None
    assert lease.wrapper.connection.server_cursors == set()
    assert await open_cursors() == []


async def test_cancelled_iteration_releases_the_connection(rows: int) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in Row.objects.aiterator(chunk_size=10):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await Row.objects.acount() == rows
    assert await open_cursors() == []


async def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="Chunk size must be strictly positive"):
        async for _ in Row.objects.aiterator(chunk_size=0):
            pass


async def test_memory_stays_flat() -> None:
    count = 20_000
    await Row.objects.abulk_create(
        [Row(n=i, payload="y" * 80) for i in range(count)], batch_size=5000
    )

    async def peak_of(streaming: bool) -> int:
        gc.collect()
        tracemalloc.start()
        try:
            seen = 0
            if streaming:
                async for _ in Row.objects.aiterator(chunk_size=500):
                    seen += 1
            else:
                seen = len([r async for r in Row.objects.all()])
            assert seen == count
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    streamed = await peak_of(streaming=True)
    loaded = await peak_of(streaming=False)
    assert streamed * 5 < loaded, (streamed, loaded)


async def test_abandoned_iteration_inside_a_transaction(rows: int) -> None:
    async with async_atomic():
        await Row.objects.acreate(n=-1)
        async for _ in Row.objects.order_by("n").aiterator(chunk_size=10):
            break
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0.01)
        # The transaction goes on on the same connection, its cursor closed.
        assert await open_cursors() == []
        assert await Row.objects.acount() == rows + 1
    assert await Row.objects.filter(n=-1).aexists()
    assert async_connections["default"].lease is None
