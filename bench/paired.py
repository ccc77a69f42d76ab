"""Paired ratios: every implementation alive at once, measured in alternating short batches.

Usage:  uv run python bench/paired.py [--only aio,dab,sqlalchemy]
        [--workloads create,atomic3|all] [--cycles 30] [--batch 0.1]
        [--python PY312] [--out FILE]

bench/peers.py runs each implementation in a process of its own, one after
the other: an implementation's whole pass takes a few seconds, so when the
machine's load changes between two passes (another tenant, a CI job), one
row pays for it and not the next. On a shared machine that moved ratios by
15-30% from one run to the next, more than the gaps this benchmark must judge.

Here every implementation's worker is started once and warmed up, then the
controller asks each in turn, in a new random order every cycle, for one
short batch of a workload: the same number of operations for everyone,
``--batch`` times a pass of bench/peers.py (200 gets, 100 creates, 40
transactions: tens of milliseconds each; Django's 200 queries of 5 ms take
it a second). A batch of one implementation and the same cycle's batch of
Django's async ORM run moments apart, under the same load, so their ratio
is measured on equal terms; the report gives, per workload and
implementation, the median over the cycles of that per-cycle ratio and its
interquartile range. Django's async ORM is always among the workers (it is
the baseline).

The same work is not the same time: a cost per batch (starting and ending
the concurrent columns' tasks) weighs more on a faster row and pulls its
ratio towards 1, so give those columns longer batches (``--batch 0.5``).

Each worker keeps its pool open (16 connections): the controller first
checks that the server has that many free per worker (``max_connections``
less the reserved and open connections). The database is bench/peers.py's;
do not run two benchmarks on it at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peer_env  # noqa: E402  (standard library only: runs before the environment exists)

DEFAULT_ONLY = "aio,dab,sqlalchemy"
DEFAULT_WORKLOADS = "get,list100,join,create,atomic3"
PROTOCOL = "@@ "  # a worker's answers; anything else it prints is passed through


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=DEFAULT_ONLY, help="implementation keys besides Django's")
    parser.add_argument(
        "--workloads", default=DEFAULT_WORKLOADS, help="workload keys, or all (see peer_impls.py)"
    )
    parser.add_argument("--cycles", type=int, default=30, help="batches of each, per workload")
    parser.add_argument("--batch", type=float, default=0.1, help="a batch, as a share of a pass")
    parser.add_argument("--python", help="the Python to build bench/.venv-peers on")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    _args = _parse()
    peer_env.reexec(__file__, _args.python)

# -- from here on, inside bench/.venv-peers -----------------------------------

import asyncio  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import queue  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import IO, Any  # noqa: E402

from peer_impls import (  # noqa: E402
    IMPLEMENTATIONS,
    POOL_SIZE,
    WORKLOADS,
    Workload,
    new_event_loop_factory,
    run_workload,
    warm_up,
)
from peers import BASELINE, available, filled_database, table_head  # noqa: E402

TIMEOUT = 300.0  # the longest a worker may take to answer
BY_KEY = {workload.key: workload for workload in WORKLOADS}


# -- the worker: one implementation, answering the controller's requests -------


def _answer(value: Any) -> None:
    print(PROTOCOL + json.dumps(value), flush=True)


def batch_size(workload: Workload, share: float) -> int:
    """Operations in one batch: at least four per concurrent task."""
    return max(workload.tasks * 4, round(workload.ops * share))


async def _serve(key: str, workloads: list[Workload], share: float) -> None:
    impl = IMPLEMENTATIONS[key]()
    await impl.start()
    loop = asyncio.get_running_loop()
    try:
        for workload in workloads:
            await warm_up(impl, workload, workload.ops)
        _answer("ready")
        while True:
            # Off the loop: the pools' own tasks may run between two batches.
            line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not line or line[0] == "stop":
                break
            workload = BY_KEY[line[0]]
            _answer(await run_workload(impl, workload, batch_size(workload, share)))
    finally:
        await impl.stop()


def child(key: str, workloads: list[Workload], share: float) -> None:
    impl_class = IMPLEMENTATIONS[key]
    if impl_class.flavour:
        from peerapp.settings import configure

        configure(impl_class.flavour)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=new_event_loop_factory(impl_class.uvloop)) as runner:
        runner.run(_serve(key, workloads, share))


# -- the controller --------------------------------------------------------------


class Worker:
    """One implementation's worker process and its protocol."""

    def __init__(self, key: str, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.key = key
        command = [sys.executable, __file__, "--child", key, "--workloads", args.workloads]
        command += ["--batch", str(args.batch)]
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        # A thread reads the worker's output, so that a worker that hangs
        # ends the run after TIMEOUT instead of blocking it for ever.
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        for line in stdout:
            self.lines.put(line)
        self.lines.put("")  # end of output

    def _read(self) -> Any:
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                self.process.kill()
                self.process.wait()
                raise SystemExit(
                    f"bench: the {self.key} worker did not answer in {TIMEOUT:.0f} s"
                ) from None
            if not line:
                code = self.process.wait(TIMEOUT)
                raise SystemExit(f"bench: the {self.key} worker ended (exit {code})")
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL) :])
            print(f"  [{self.key}] {line}", end="", file=sys.stderr)

    def ready(self) -> None:
        """Wait until the worker has warmed up."""
        if self._read() != "ready":
            raise SystemExit(f"bench: the {self.key} worker did not say it was ready")

    def batch(self, workload: str) -> float:
        """ops/s of one batch of ``workload``."""
        stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        stdin.write(f"{workload}\n")
        stdin.flush()
        return float(self._read())

    def stop(self) -> None:
        if self.process.poll() is None:
            stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
            try:
                stdin.write("stop\n")
                stdin.close()
                self.process.wait(TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def _check_connections(url: str, workers: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        ).fetchone()
    free = int(row[0]) if row else 0
    needed = workers * POOL_SIZE
    if needed > free:
        raise SystemExit(
            f"bench: {workers} workers keep {needed} connections open, and the server has"
            f" {free} free; pass fewer keys to --only, or close other connections or raise"
            " max_connections"
        )


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    # Within the data (the default method extrapolates past it for few
    # values); the middle cut point is the median.
    low, middle, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, middle, high


def report(
    ratios: dict[str, dict[str, list[float]]],
    keys: list[str],
    skipped: dict[str, str],
    seed: int,
    args: Any,
) -> str:
    workloads = [w for w in WORKLOADS if w.key in ratios]
    lines = [
        f"Paired ratios over Django's async ORM: {args.cycles} cycles; in each, one batch per"
        " implementation and workload, in a random order (operations per batch: "
        + ", ".join(f"{w.key} {batch_size(w, args.batch)}" for w in workloads)
        + f"; Python {sys.version.split()[0]}; order seed {seed}). Median of the per-cycle"
        " ratios of ops/s over Django's batch of the same cycle, and in brackets the"
        " interquartile range.",
        *(f"Not run: {key}, {why}." for key, why in skipped.items()),
        "",
        *table_head(workloads),
    ]
    for key in keys:
        if key == BASELINE:
            continue
        cells = []
        for workload in workloads:
            low, middle, high = _quartiles(ratios[workload.key][key])
            cells.append(f"{middle:.2f} [{low:.2f}-{high:.2f}]")
        lines.append(f"| {IMPLEMENTATIONS[key].title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    names = list(BY_KEY) if args.workloads == "all" else args.workloads.split(",")
    unknown = [name for name in names if name not in BY_KEY]
    if unknown:
        raise SystemExit(
            f"bench: unknown workloads {', '.join(unknown)} (choose from {', '.join(BY_KEY)})"
        )
    if len(set(names)) != len(names):
        raise SystemExit("bench: --workloads names a workload twice")
    if args.cycles < 1 or not (math.isfinite(args.batch) and args.batch > 0):
        raise SystemExit("bench: --cycles must be at least 1 and --batch a positive number")
    args.workloads = ",".join(names)
    keys, skipped = available(args.only.split(","))
    for key, why in skipped.items():
        print(f"skipping {key}: {why}", file=sys.stderr)
    if keys == [BASELINE]:
        raise SystemExit("bench: no row to compare with Django's; name one in --only")
    url = filled_database()
    _check_connections(url, len(keys))
    env = {**os.environ, "DATABASE_URL": url}
    seed = int.from_bytes(os.urandom(4), "big")  # printed in the report
    workers = [Worker(key, args, env) for key in keys]
    ratios: dict[str, dict[str, list[float]]] = {name: {k: [] for k in keys} for name in names}
    started = time.perf_counter()
    try:
        for worker in workers:
            worker.ready()
            print(f"{worker.key}: warmed up", flush=True)
        shuffle = random.Random(seed)
        for cycle in range(args.cycles):
            for name in names:
                order = workers[:]
                shuffle.shuffle(order)
                rates = {worker.key: worker.batch(name) for worker in order}
                for key, rate in rates.items():
                    ratios[name][key].append(rate / rates[BASELINE])
            print(f"cycle {cycle + 1}/{args.cycles} done", flush=True)
    finally:
        for worker in workers:
            worker.stop()
    text = report(ratios, keys, skipped, seed, args)
    print()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    print(f"in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    if _args.child:
        child(_args.child, [BY_KEY[name] for name in _args.workloads.split(",")], _args.batch)
    else:
        sys.exit(main(_args))
