"""django-aio benchmarks: raw psycopg (the floor), Django's own async ORM, and run_sync.

Usage:  uv run python bench/run.py [--rounds 5] [--quick]

Every scenario runs all implementations in one process, interleaved round by
round, and reports the median ops/s of each with ratios, so machine noise hits
them alike. Uses DATABASE_URL / PG* or the embedded PostgreSQL, in a database
named ``django_aio_bench`` (created if missing).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

POOL = {"min_size": 10, "max_size": 10}
ROWS = 1000


def setup_django() -> None:
    import django
    from django.conf import settings

    from django_aio.conn.testdb import database_settings

    entry = database_settings("django_aio_bench", OPTIONS={"pool": POOL})
    admin = {**entry, "NAME": "postgres"}
    _ensure_database(admin, entry["NAME"])
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django_aio.conn", "benchapp"],
        DATABASES={"default": entry},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    from benchapp.models import Item
    from django.db import connection

    with connection.schema_editor() as editor:
        editor.execute("DROP TABLE IF EXISTS bench_item")
        editor.create_model(Item)
    Item.objects.bulk_create(Item(name=f"item {n}", value=n) for n in range(ROWS))
    connection.close()


def _ensure_database(admin: dict[str, Any], name: str) -> None:
    import psycopg

    with psycopg.connect(**_conninfo(admin), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _conninfo(entry: dict[str, Any]) -> dict[str, Any]:
    keys = {
        "NAME": "dbname",
        "USER": "user",
        "PASSWORD": "password",
        "HOST": "host",
        "PORT": "port",
    }
    return {k: entry[s] for s, k in keys.items() if entry.get(s)}


# -- implementations ---------------------------------------------------------

Op = Callable[[int], Awaitable[Any]]


class Raw:
    """psycopg AsyncConnectionPool and hand-written SQL: the floor."""

    name = "raw psycopg"

    async def __aenter__(self) -> Raw:
        import psycopg_pool
        from django.db import connections

        self.pool = psycopg_pool.AsyncConnectionPool(
            kwargs=_conninfo(connections.settings["default"]), open=False, **POOL
        )
        await self.pool.open(wait=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.close()

    async def get(self, pk: int) -> Any:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT id, name, value FROM bench_item WHERE id = %s", [pk])
            return await cur.fetchone()

    async def sleepy(self, pk: int, sleep: float = 0.005) -> Any:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT id, name, value, pg_sleep({sleep})::text FROM bench_item WHERE id = %s",
                [pk],
            )
            return await cur.fetchone()

    async def sleepy20(self, pk: int) -> Any:
        return await self.sleepy(pk, 0.02)


class DjangoAsync:
    """Django's own async ORM: aget() is sync_to_async around get()."""

    name = "django aget"

    async def __aenter__(self) -> DjangoAsync:
        return self

    async def __aexit__(self, *exc: object) -> None:
        from asgiref.sync import sync_to_async
        from django.db import connections

        await sync_to_async(connections.close_all)()

    async def get(self, pk: int) -> Any:
        from benchapp.models import Item

        return await Item.objects.aget(pk=pk)

    async def sleepy(self, pk: int, sleep: float = 0.005) -> Any:
        from benchapp.models import Item

        return await Item.objects.extra(select={"s": f"pg_sleep({sleep})::text"}).aget(pk=pk)

    async def sleepy20(self, pk: int) -> Any:
        return await self.sleepy(pk, 0.02)


class Bridge:
    """django_aio.conn.run_sync: Django's get() with I/O on the loop."""

    name = "run_sync"

    async def __aenter__(self) -> Bridge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        from django_aio.conn import async_connections

        await async_connections.close_pools()

    async def get(self, pk: int) -> Any:
        from benchapp.models import Item

        from django_aio.conn import run_sync

        return await run_sync(Item.objects.get, pk=pk)

    async def sleepy(self, pk: int, sleep: float = 0.005) -> Any:
        from benchapp.models import Item

        from django_aio.conn import run_sync

        qs = Item.objects.extra(select={"s": f"pg_sleep({sleep})::text"})
        return await run_sync(qs.get, pk=pk)

    async def sleepy20(self, pk: int) -> Any:
        return await self.sleepy(pk, 0.02)


IMPLEMENTATIONS = [Raw, DjangoAsync, Bridge]


# -- scenarios ---------------------------------------------------------------


async def sequential(op: Op, n: int) -> int:
    for i in range(n):
        await op(i % ROWS + 1)
    return n


async def concurrent(op: Op, n: int, tasks: int) -> int:
    per_task = n // tasks

    async def worker(w: int) -> None:
        for i in range(per_task):
            await op((w * per_task + i) % ROWS + 1)

    await asyncio.gather(*(worker(w) for w in range(tasks)))
    return per_task * tasks


SCENARIOS: list[tuple[str, str, Callable[[Op, int], Awaitable[int]], int]] = [
    ("sequential get by pk", "get", sequential, 1000),
    ("32 concurrent tasks of gets", "get", lambda op, n: concurrent(op, n, 32), 1600),
    (
        "I/O-bound: 50 tasks, pg_sleep(0.005), pool 10",
        "sleepy",
        lambda op, n: concurrent(op, n, 50),
        500,
    ),
    (
        "I/O-bound: 50 tasks, pg_sleep(0.02), pool 10",
        "sleepy20",
        lambda op, n: concurrent(op, n, 50),
        200,
    ),
]


async def measure(rounds: int, scale: float) -> list[tuple[str, dict[str, float]]]:
    results = []
    for title, method, scenario, n in SCENARIOS:
        n = max(50, int(n * scale))
        samples: dict[str, list[float]] = {impl.name: [] for impl in IMPLEMENTATIONS}
        for _ in range(rounds):
            for impl_class in IMPLEMENTATIONS:
                async with impl_class() as impl:
                    op = getattr(impl, method)
                    await scenario(op, max(10, n // 10))  # warm up
                    started = time.perf_counter()
                    done = await scenario(op, n)
                    samples[impl_class.name].append(done / (time.perf_counter() - started))
        results.append((title, {name: statistics.median(s) for name, s in samples.items()}))
    return results


def report(results: list[tuple[str, dict[str, float]]]) -> None:
    print()
    print(
        f"{'scenario':48} {'raw psycopg':>12} {'django aget':>12} {'run_sync':>12} "
        f"{'vs raw':>8} {'vs aget':>8}"
    )
    for title, ops in results:
        raw, aget, bridge = ops["raw psycopg"], ops["django aget"], ops["run_sync"]
        print(
            f"{title:48} {raw:12.0f} {aget:12.0f} {bridge:12.0f} "
            f"{bridge / raw:7.2f}x {bridge / aget:7.2f}x"
        )
    print("\nops/s, median of the rounds; ratios are run_sync's.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer operations (smoke run)")
    args = parser.parse_args()
    setup_django()
    results = asyncio.run(measure(args.rounds, 0.2 if args.quick else 1.0))
    report(results)


if __name__ == "__main__":
    main()
