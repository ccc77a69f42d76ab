"""Per-operation profile of workloads (``aget()`` by pk by default): where each one spends.

Usage:  uv run python bench/profile_get.py [--op get,list100,join,create,atomic3|all]
        [--n 2000] [--python PY312] [--no-strace]

For django-aio drop-in (and, for the reads, its compiled queries),
django-async-backend, Django's own async ORM and raw psycopg (the floor), each
in a fresh process of bench/.venv-peers, after a warm-up, per operation
(``get``: ``aget`` by primary key; ``list100`` and ``join``: 100 rows, the
second with ``select_related``; ``create``: one ``acreate``; ``atomic3``:
three creates in one transaction; all as bench/peers.py runs them):

- wall and CPU microseconds (``time.process_time``: every thread of the process);
- greenlet switches (``greenlet.settrace``, counting ``switch`` and ``throw`` events);
- event-loop iterations (``loop._run_once`` wrapped; asyncio's pure-Python loop);
- system calls, when ``strace`` is installed (``strace -f -c``, every thread):
  two runs that differ only in the number of measured operations, so start-up
  and shut-down cancel out.

Prints a table per workload and writes them to bench/PROFILE.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peer_env  # noqa: E402  (standard library only: runs before the environment exists)

IMPLS = ["aio", "aio_compiled", "dab", "django", "raw"]
# Rows whose writes are another row's: profiled for reads only.
READS_ONLY = {"aio_compiled"}
OPS = ["get", "list100", "join", "create", "atomic3"]
READS = {"get", "list100", "join"}
TITLES = {
    "get": "`aget()` by primary key",
    "list100": "a list of 100 rows (`async for` over `order_by('id')[:100]`)",
    "join": "100 rows with their author (`select_related`, one JOIN)",
    "create": "`acreate()` of one row",
    "atomic3": "three creates in one `async_atomic()` (Django: `sync_to_async` of `atomic()`)",
}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="measured operations")
    parser.add_argument(
        "--op",
        default="get",
        help=f"the workloads to profile, comma-separated, of {', '.join(OPS)}; or all",
    )
    parser.add_argument("--python", help="the Python to build bench/.venv-peers on")
    parser.add_argument("--no-strace", action="store_true", help="skip the system-call count")
    parser.add_argument("--out", type=Path, default=HERE / "PROFILE.md")
    parser.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    _args = _parse()
    peer_env.reexec(__file__, _args.python)

# -- from here on, inside bench/.venv-peers -----------------------------------

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from peer_impls import IMPLEMENTATIONS, ITEMS, Impl  # noqa: E402
from peers import child_command, filled_database  # noqa: E402

WARM_UP = 300


OP = "get"  # set by child() before the event loop starts


async def _gets(impl: Impl, n: int) -> None:
    if OP == "get":
        for i in range(n):
            await impl.get(i % ITEMS + 1)
    else:
        run = getattr(impl, OP)
        for _ in range(n):
            await run()


async def profile(impl: Impl, n: int, plain: bool) -> dict[str, float]:
    """Warm up, then time ``n`` gets, then count switches and loop iterations over ``n`` more."""
    await impl.start()
    try:
        await _gets(impl, WARM_UP)
        await asyncio.sleep(1.0)  # let the pools finish opening their connections
        if plain:  # under strace: only the operations, nothing else
            await _gets(impl, n)
            return {}
        wall, cpu = time.perf_counter(), time.process_time()
        await _gets(impl, n)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        switches, iterations = await _count(impl, n)
    finally:
        await impl.stop()
    return {
        "wall_us": wall / n * 1e6,
        "cpu_us": cpu / n * 1e6,
        "switches": switches / n,
        "iterations": iterations / n,
    }


async def _count(impl: Impl, n: int) -> tuple[int, int]:
    import greenlet

    switches = iterations = 0

    def trace(event: str, args: Any) -> None:
        nonlocal switches
        if event in ("switch", "throw"):
            switches += 1

    loop: Any = asyncio.get_running_loop()
    run_once = loop._run_once

    def counted_run_once() -> None:
        nonlocal iterations
        iterations += 1
        run_once()

    loop._run_once = counted_run_once  # run_forever looks it up on each iteration
    previous = greenlet.settrace(trace)
    try:
        await _gets(impl, n)
    finally:
        greenlet.settrace(previous)
        del loop._run_once
    return switches, iterations


def child(key: str, op: str, n: int, plain: bool) -> None:
    global OP
    OP = op
    impl_class = IMPLEMENTATIONS[key]
    if impl_class.flavour:
        from peerapp.settings import configure

        configure(impl_class.flavour)  # type: ignore[arg-type]
    print(json.dumps(asyncio.run(profile(impl_class(), n, plain))))


# -- the parent: one process per implementation --------------------------------


def _child_command(key: str, op: str, n: int, plain: bool) -> list[str]:
    return child_command(__file__, key, op, n, *(["--plain"] if plain else []))


def syscalls(key: str, op: str, n: int, env: dict[str, str]) -> float:
    """System calls per operation: (calls with n ops - calls with none) / n, every thread."""

    def total(ops: int) -> int:
        with tempfile.NamedTemporaryFile(suffix=".strace") as out:
            subprocess.run(
                ["strace", "-f", "-c", "-o", out.name, *_child_command(key, op, ops, True)],
                env=env,
                check=True,
                capture_output=True,
            )
            text = Path(out.name).read_text()
        # The last line: "100.00  seconds  usecs/call  calls  [errors]  total".
        for line in reversed(text.splitlines()):
            fields = line.split()
            if fields and fields[-1] == "total":
                return int(fields[3])
        raise RuntimeError(f"no total in strace's output:\n{text[-500:]}")

    return (total(n) - total(0)) / n


def _table(op: str, keys: list[str], n: int, env: dict[str, str], strace: str | None) -> list[str]:
    rows = []
    for key in keys:
        done = subprocess.run(
            _child_command(key, op, n, False),
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        if strace:
            measured["syscalls"] = syscalls(key, op, max(200, n // 4), env)
        rows.append((IMPLEMENTATIONS[key].title, measured))
        print(f"  {op} {key}: done", file=sys.stderr, flush=True)
    lines = [
        f"{TITLES[op]}, per operation, after a warm-up ({n} operations;"
        f" Python {sys.version.split()[0]}).",
        "",
        "| implementation | wall us | CPU us | greenlet switches | loop iterations | syscalls |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for title, m in rows:
        calls = f"{m['syscalls']:.1f}" if "syscalls" in m else "-"
        lines.append(
            f"| {title} | {m['wall_us']:.0f} | {m['cpu_us']:.0f} | {m['switches']:.1f}"
            f" | {m['iterations']:.1f} | {calls} |"
        )
    return [*lines, ""]


def main(args: argparse.Namespace) -> None:
    env = {**os.environ, "DATABASE_URL": filled_database()}
    keys = [
        k for k in IMPLS if not (IMPLEMENTATIONS[k].needs_python_312 and sys.version_info < (3, 12))
    ]
    strace = None if args.no_strace else shutil.which("strace")
    ops = OPS if args.op == "all" else args.op.split(",")
    lines: list[str] = []
    for op in ops:
        if op not in OPS:
            raise SystemExit(f"--op: unknown workload {op!r}; choose from {', '.join(OPS)} or all")
        op_keys = [k for k in keys if op in READS or k not in READS_ONLY]
        lines += _table(op, op_keys, args.n, env, strace)
    if not strace and not args.no_strace:
        lines.append("syscalls: strace is not installed (apt-get install strace).")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    if _args.child:
        child(_args.child, _args.op, _args.n, _args.plain)
    else:
        main(_args)
