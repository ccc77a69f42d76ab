"""Django's own async ORM (drop-in off: ``sync_to_async``) vs drop-in on, interleaved.

Usage:  uv run python bench/orm_dropin.py [--rounds 5] [--ops 200]
        [--rows 200000]

Or, with Django configured and the ``orm_testapp`` tables present,
``await bench(...)`` from another benchmark. Each scenario runs both modes in
one process, alternating round by round; the report gives the median time per
operation (wall and CPU), and for ``aiterator`` over ``--rows`` rows the tracemalloc peak
(Python allocations while streaming) and the wall time. Uses DATABASE_URL /
PG* or the embedded PostgreSQL, in a database ``django_aio_orm_bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from itertools import count
from pathlib import Path
from typing import Any

MODES = {"django (sync_to_async)": False, "django_aio drop-in": True}
_names = count()


async def _list_100() -> None:
    from orm_testapp.models import Row

    rows = [r async for r in Row.objects.order_by("id")[:100]]
    assert len(rows) == 100


async def _select_related() -> None:
    from orm_testapp.models import Book

    books = [b async for b in Book.objects.select_related("author").order_by("id")[:100]]
    assert books[0].author.name


async def _create() -> None:
    from orm_testapp.models import Author

    await Author.objects.acreate(name=f"bench-{next(_names)}")


async def _concurrent_slow() -> None:
    # I/O-bound work: 20 tasks, each a query the server takes 5 ms to answer.
    from django.db.models.expressions import RawSQL
    from orm_testapp.models import Row

    async def one() -> None:
        qs = Row.objects.filter(n=1).annotate(slept=RawSQL("pg_sleep(0.005)::text", ()))
        assert await qs.values_list("slept", flat=True).aget() == ""

    await asyncio.gather(*(one() for _ in range(20)))


SCENARIOS: dict[str, Callable[[], Awaitable[None]]] = {
    "list 100 rows": _list_100,
    "select_related, 100 rows": _select_related,
    "create": _create,
    "20 concurrent 5 ms queries (per batch)": _concurrent_slow,
}


async def _time_per_op(op: Callable[[], Awaitable[None]], ops: int) -> tuple[float, float]:
    """(wall, CPU) seconds per operation; CPU counts every thread of the process."""
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(ops):
        await op()
    return (time.perf_counter() - started) / ops, (time.process_time() - cpu) / ops


async def _stream(rows: int) -> tuple[float, float]:
    """(tracemalloc peak in MiB, seconds) of streaming ``rows`` rows with aiterator.

    Timed in a second pass without tracemalloc, which slows allocation-heavy code.
    """
    from orm_testapp.models import Row

    async def consume() -> int:
        seen = 0
        async for _ in Row.objects.aiterator(chunk_size=2000):
            seen += 1
        return seen

    gc.collect()
    tracemalloc.start()
    try:
        seen = await consume()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == rows, (seen, rows)
    started = time.perf_counter()
    await consume()
    return peak / 2**20, time.perf_counter() - started


async def bench(rounds: int = 5, ops: int = 200, rows: int = 200_000) -> dict[str, Any]:
    """Run every scenario in both modes, interleaved; returns the medians."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    from django_aio.orm import drop_in

    timings: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {mode: [] for mode in MODES} for name in SCENARIOS
    }
    streaming: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    for enabled in MODES.values():  # warm up both paths
        with drop_in(enabled):
            for op in SCENARIOS.values():
                await op()
    for round_ in range(rounds):
        order = list(MODES.items())
        if round_ % 2:
            order.reverse()
        for mode, enabled in order:
            with drop_in(enabled):
                for name, op in SCENARIOS.items():
                    timings[name][mode].append(await _time_per_op(op, ops))
                if rows and round_ < 2:
                    streaming[mode].append(await _stream(rows))
    await sync_to_async(connections.close_all)()
    result: dict[str, Any] = {}
    for name, per_mode in timings.items():
        result[name] = {
            mode: {
                "wall_us": statistics.median(w for w, _ in v) * 1e6,
                "cpu_us": statistics.median(c for _, c in v) * 1e6,
            }
            for mode, v in per_mode.items()
        }
    if not rows:
        return result
    result[f"aiterator over {rows} rows"] = {
        mode: {
            "peak_mib": max(p for p, _ in runs),
            "seconds": statistics.median(s for _, s in runs),
        }
        for mode, runs in streaming.items()
    }
    return result


def report(result: dict[str, Any]) -> str:
    """The result of ``bench()`` as a markdown table."""
    lines = [
        "| scenario | " + " | ".join(MODES) + " | wall-time speed-up |",
        "|---|" + "---|" * (len(MODES) + 1),
    ]
    off, on = MODES
    for name, values in result.items():
        if "aiterator" in name:
            cells = [f"{v['peak_mib']:.1f} MiB peak, {v['seconds']:.2f} s" for v in values.values()]
            ratio = values[off]["seconds"] / values[on]["seconds"]
        else:
            cells = [
                f"{v['wall_us']:.0f} us/op (CPU {v['cpu_us']:.0f} us)" for v in values.values()
            ]
            ratio = values[off]["wall_us"] / values[on]["wall_us"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    return "\n".join(lines)


def setup_django(rows: int, fill: bool = True) -> None:
    """Configure Django for a standalone run and (with ``fill``) create and fill the database."""
    import django
    import psycopg
    from django.conf import settings

    from django_aio.conn.testdb import database_settings

    # orm_testapp (the models) lives with the ORM's tests.
    orm_tests = Path(__file__).resolve().parents[1] / "packages" / "async-orm" / "tests"
    sys.path.insert(0, str(orm_tests))
    entry = database_settings(
        "django_aio_orm_bench", OPTIONS={"pool": {"min_size": 10, "max_size": 10}}
    )
    admin = {k: entry[k] for k in ("HOST", "PORT", "USER", "PASSWORD")}
    conninfo = {
        "host": admin["HOST"] or None,
        "port": admin["PORT"] or None,
        "user": admin["USER"] or None,
        "password": admin["PASSWORD"] or None,
        "dbname": "postgres",
    }
    if fill:
        with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS django_aio_orm_bench")
            conn.execute("CREATE DATABASE django_aio_orm_bench")
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django_aio.conn",
            "django_aio.orm",
            "orm_testapp",
        ],
        DATABASES={"default": entry},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    if not fill:
        return
    from django.core.management import call_command
    from django.db import connection
    from orm_testapp.models import Author, Book, Row

    call_command("migrate", verbosity=0)
    rows = max(rows, 100)
    Row.objects.bulk_create((Row(n=i, payload="x" * 40) for i in range(rows)), batch_size=10_000)
    authors = Author.objects.bulk_create(Author(name=f"author {i}") for i in range(10))
    Book.objects.bulk_create(Book(title=f"book {i}", author=authors[i % 10]) for i in range(200))
    connection.close()


async def peak_rss_of_streaming(
    drop_in_on: bool, rows: int, chunk_size: int = 2000, *, load_all: bool = False
) -> float:
    """Stream ``rows`` rows with ``aiterator`` in one mode; the process's peak RSS in MiB.

    Peak RSS only grows, so call it once per fresh process (``--rss-mode``).
    ``load_all`` uses ``async for`` over the queryset instead (every row in
    memory at once), for contrast.
    """
    import resource

    from asgiref.sync import sync_to_async
    from django.db import connections
    from orm_testapp.models import Row

    from django_aio.orm import drop_in

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seen = 0
    with drop_in(drop_in_on):
        source = Row.objects.all() if load_all else Row.objects.aiterator(chunk_size=chunk_size)
        async for _ in source:
            seen += 1
    assert seen == rows, (seen, rows)
    await sync_to_async(connections.close_all)()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {after / 1024:.1f} MiB (grew {(after - before) / 1024:.1f} MiB)")
    return after / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--fill-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--rss-mode",
        choices=["django", "drop-in", "drop-in-load-all"],
        help="only stream --rows rows in this mode and print the peak RSS",
    )
    args = parser.parse_args()
    if args.rss_mode:
        # Fill the database in another process: its peak must not count here.
        import subprocess

        subprocess.run(
            [sys.executable, __file__, "--rows", str(args.rows), "--fill-only"], check=True
        )
        setup_django(args.rows, fill=False)
        asyncio.run(
            peak_rss_of_streaming(
                args.rss_mode != "django",
                args.rows,
                load_all=args.rss_mode == "drop-in-load-all",
            )
        )
        return
    setup_django(args.rows)
    if args.fill_only:
        return
    result = asyncio.run(bench(args.rounds, args.ops, args.rows))
    print(report(result))


if __name__ == "__main__":
    main()
