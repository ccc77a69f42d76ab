"""The client CPU of one round trip, blocking and awaited: where writes spend.

Usage:  uv run python bench/roundtrip.py [--n 3000] [--python PY312]

``SELECT 1`` then ``fetchone()``, one after the other on one connection, in
each of these ways, in a fresh process each (bench/.venv-peers), after a
warm-up; per round trip, wall and CPU microseconds (``time.process_time``),
the median of five passes:

- psycopg's sync connection: a blocking wait, as Django's thread runs it;
- psycopg's ``AsyncConnection`` on asyncio's loop, and on uvloop's;
- django-aio's cursor (``async_connections[alias].cursor()``, the
  connection held for the whole pass) on asyncio's loop, and on uvloop's.

An awaited round trip costs the client more CPU than a blocking one: the
socket is registered with the loop and the task waits to be woken (with
psycopg's own waiter, by a future, one loop iteration after the reply
arrives; django-aio's wakes it in the iteration that saw the reply, but its
rows also pay for a unit of the bridge and Django's cursor wrapper on every
``execute``). Django's thread path runs a
whole ``atomic()`` block with blocking round trips in one hop, so for a
transaction of small writes this difference weighs more than for one read
(bench/README.md). Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peer_env  # noqa: E402  (standard library only: runs before the environment exists)

WAYS = {
    "sync": "psycopg, sync connection (blocking)",
    "async": "psycopg, AsyncConnection, asyncio",
    "async_uvloop": "psycopg, AsyncConnection, uvloop",
    "aio": "django-aio cursor, asyncio",
    "aio_uvloop": "django-aio cursor, uvloop",
}
WARM_UP = 300
PASSES = 5


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="round trips per pass")
    parser.add_argument("--python", help="the Python to build bench/.venv-peers on")
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    _args = _parse()
    peer_env.reexec(__file__, _args.python)

# -- from here on, inside bench/.venv-peers -----------------------------------

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any  # noqa: E402

SQL = "SELECT 1"


def _median(samples: list[tuple[float, float]]) -> dict[str, float]:
    samples.sort()
    cpu, wall = samples[len(samples) // 2]
    return {"cpu_us": cpu, "wall_us": wall}


def _sync(url: str, n: int) -> dict[str, float]:
    import psycopg

    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.cursor()
        for passes in range(PASSES + 1):
            count = WARM_UP if passes == 0 else n
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(count):
                cursor.execute(SQL)
                cursor.fetchone()
            if passes:
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                samples.append((cpu / n * 1e6, wall / n * 1e6))
    return _median(samples)


async def _passes(n: int, one: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    samples = []
    for passes in range(PASSES + 1):
        count = WARM_UP if passes == 0 else n
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await one()
        if passes:
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            samples.append((cpu / n * 1e6, wall / n * 1e6))
    return _median(samples)


async def _async(url: str, n: int) -> dict[str, float]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = conn.cursor()

        async def one() -> None:
            await cursor.execute(SQL)
            await cursor.fetchone()

        return await _passes(n, one)


async def _aio(n: int) -> dict[str, float]:
    from django_aio.conn import async_connections

    try:
        async with async_connections["default"].cursor() as cursor:

            async def one() -> None:
                await cursor.execute(SQL)
                await cursor.fetchone()

            return await _passes(n, one)
    finally:
        await async_connections.close_pools()


def child(way: str, n: int) -> None:
    url = os.environ["DATABASE_URL"]
    if way == "sync":
        print(json.dumps(_sync(url, n)))
        return
    if way.startswith("aio"):
        from peerapp.settings import configure

        configure("aio")
        main = _aio(n)
    else:
        main = _async(url, n)
    if way.endswith("_uvloop"):
        import uvloop

        print(json.dumps(uvloop.run(main)))
    else:
        print(json.dumps(asyncio.run(main)))


def main(args: argparse.Namespace) -> None:
    from peers import create_database, server_url

    env = {**os.environ, "DATABASE_URL": create_database(server_url())}
    lines = [
        f"`{SQL}` and `fetchone()`, per round trip, one connection, after a warm-up"
        f" (median of {PASSES} passes of {args.n}; Python {sys.version.split()[0]}).",
        "",
        "| way | wall us | CPU us |",
        "|---|---:|---:|",
    ]
    for way, title in WAYS.items():
        done = subprocess.run(
            [sys.executable, __file__, "--child", way, "--n", str(args.n)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        lines.append(f"| {title} | {measured['wall_us']:.0f} | {measured['cpu_us']:.0f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    if _args.child:
        child(_args.child, _args.n)
    else:
        main(_args)
