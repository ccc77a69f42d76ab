"""Pauses of Python's garbage collector under concurrency, with and without ``gc.freeze()``.

Usage:  uv run python bench/gc_pauses.py [--only aio,raw] [--ops 20000] [--python PY312]

Each implementation runs the "5 ms query, 50 tasks" workload (bench/peers.py)
in a fresh process of bench/.venv-peers, twice: as it comes, and with
``gc.collect(); gc.freeze()`` once after start-up and warm-up. A callback of
``gc.callbacks`` times every collection while ``--ops`` operations run; the
table gives, per generation, the collections per 1,000 operations and the
milliseconds each took (median and longest). A collection of the oldest
generation scans every container object the process holds unless it was
frozen: the loop serves nothing meanwhile (docs/performance.md, "Pauses of
the garbage collector"). Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peer_env  # noqa: E402  (standard library only: runs before the environment exists)

KEYS = ["aio", "raw"]


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(KEYS), help="implementation keys")
    parser.add_argument("--ops", type=int, default=20000, help="measured operations")
    parser.add_argument("--python", help="the Python to build bench/.venv-peers on")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--freeze", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    _args = _parse()
    peer_env.reexec(__file__, _args.python)

# -- from here on, inside bench/.venv-peers -----------------------------------

import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from peer_impls import IMPLEMENTATIONS  # noqa: E402
from peer_workloads import WORKLOADS, run_workload, warm_up  # noqa: E402

WORKLOAD = next(workload for workload in WORKLOADS if workload.key == "io_conc")


class _Timings:
    """Every collection's generation and duration, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))


def child(key: str, ops: int, freeze: bool) -> None:
    impl = IMPLEMENTATIONS[key]()
    if impl.flavour:
        from peerapp.settings import configure

        configure(impl.flavour)  # type: ignore[arg-type]

    async def main() -> dict[str, Any]:
        await impl.start()
        try:
            await warm_up(impl, WORKLOAD, WORKLOAD.ops)
            if freeze:
                gc.collect()
                gc.freeze()
            timings = _Timings()
            gc.callbacks.append(timings)
            done = 0
            while done < ops:
                await run_workload(impl, WORKLOAD, WORKLOAD.ops)
                done += WORKLOAD.ops
            gc.callbacks.remove(timings)
        finally:
            await impl.stop()
        result: dict[str, Any] = {}
        for generation in range(3):
            spans = [span * 1e3 for gen, span in timings.pauses if gen == generation]
            result[str(generation)] = {
                "per_1000": len(spans) / done * 1000,
                "median_ms": statistics.median(spans) if spans else 0.0,
                "max_ms": max(spans, default=0.0),
            }
        return result

    print(json.dumps(asyncio.run(main())))


def main(args: argparse.Namespace) -> None:
    from peers import filled_database

    keys = args.only.split(",")
    unknown = [key for key in keys if key not in IMPLEMENTATIONS]
    if unknown:
        raise SystemExit(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(KEYS)}")
    env = {**os.environ, "DATABASE_URL": filled_database()}
    lines = [
        f"Garbage collections during {args.ops:,} operations of {WORKLOAD.title!r}"
        f" (Python {sys.version.split()[0]}): per generation, collections per 1,000"
        " operations, and milliseconds each (median / longest).",
        "",
        "| implementation | gc.freeze() | young | middle | oldest |",
        "|---|---|---:|---:|---:|",
    ]
    for key in keys:
        for freeze in (False, True):
            command = [sys.executable, __file__, "--child", key, "--ops", str(args.ops)]
            done = subprocess.run(
                [*command, *(["--freeze"] if freeze else [])],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            cells = [
                f"{m['per_1000']:.2f} x {m['median_ms']:.1f} / {m['max_ms']:.1f} ms"
                if m["per_1000"]
                else "none"
                for m in (measured[str(generation)] for generation in range(3))
            ]
            title = IMPLEMENTATIONS[key].title
            lines.append(f"| {title} | {'yes' if freeze else 'no'} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    if _args.child:
        child(_args.child, _args.ops, _args.freeze)
    else:
        main(_args)
