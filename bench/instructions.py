"""Instructions per operation, counted by valgrind: a measure that noise does not move.

Usage:  uv run python bench/instructions.py [--op get,create,atomic3|all]
        [--only aio,dab,django,raw] [--n 200] [--python PY312]

Timings on a shared machine move by 10-20% from one run to the next, more
than most single changes to the hot path are worth. Counting the user-space
instructions an operation executes does not depend on the machine's load:
two runs of the same code agree to within about 0.5%. Each implementation
runs in a fresh process of bench/.venv-peers under ``valgrind
--tool=callgrind`` with counting off; after a warm-up, counting is turned on
for ``--n`` operations only (``callgrind_control``), every thread included.
The kernel's work (system calls) is not counted: bench/profile_get.py counts
those. Needs valgrind (``apt-get install valgrind``); prints a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peer_env  # noqa: E402  (standard library only: runs before the environment exists)

OPS = ["get", "list100", "join", "create", "atomic3"]
KEYS = ["aio", "dab", "django", "raw"]
WARM_UP = 200


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", default="create,atomic3", help=f"of {', '.join(OPS)}, or all")
    parser.add_argument("--only", default=",".join(KEYS), help="implementation keys")
    parser.add_argument("--n", type=int, default=200, help="counted operations")
    parser.add_argument("--python", help="the Python to build bench/.venv-peers on")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--signals", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    _args = _parse()
    peer_env.reexec(__file__, _args.python)

# -- from here on, inside bench/.venv-peers -----------------------------------

import asyncio  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from peer_impls import IMPLEMENTATIONS, ITEMS  # noqa: E402
from peers import child_command, filled_database  # noqa: E402

TIMEOUT = 600.0


def _signal(signals: Path, name: str) -> None:
    (signals / name).touch()


def _await_signal(signals: Path, name: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not (signals / name).exists():
        if process is not None and process.poll() is not None:
            raise SystemExit(f"bench: the measured process ended early; see {signals}/child.log")
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: no {name!r} signal after {TIMEOUT:.0f} s")
        time.sleep(0.05)


def child(key: str, op: str, n: int, signals: Path) -> None:
    impl = IMPLEMENTATIONS[key]()
    if impl.flavour:
        from peerapp.settings import configure

        configure(impl.flavour)  # type: ignore[arg-type]

    async def main() -> None:
        await impl.start()
        run = getattr(impl, op)
        pks = iter(range(10**9))

        async def one() -> None:
            if op == "get":
                await run(next(pks) % ITEMS + 1)
            else:
                await run()

        try:
            for _ in range(WARM_UP):
                await one()
            await asyncio.sleep(0.5)  # the pools finish opening their connections
            _signal(signals, "ready")
            # Blocks the loop on purpose: nothing runs while counting starts.
            _await_signal(signals, "go")
            for _ in range(n):
                await one()
            _signal(signals, "done")
            _await_signal(signals, "stop")
        finally:
            await impl.stop()

    asyncio.run(main())


def measure(key: str, op: str, n: int, env: dict[str, str]) -> float:
    """User-space instructions per operation of ``op`` on ``key``."""
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        signals = Path(tmp)
        dump = signals / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={dump}",
            *child_command(__file__, key, op, n, "--signals", str(signals)),
        ]
        with (signals / "child.log").open("wb") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                _await_signal(signals, "ready", process)
                control = ["callgrind_control"]
                subprocess.run(
                    [*control, "-i", "on", str(process.pid)], check=True, capture_output=True
                )
                subprocess.run([*control, "-z", str(process.pid)], check=True, capture_output=True)
                _signal(signals, "go")
                _await_signal(signals, "done", process)
                subprocess.run([*control, "-d", str(process.pid)], check=True, capture_output=True)
                subprocess.run(
                    [*control, "-i", "off", str(process.pid)], check=True, capture_output=True
                )
                _signal(signals, "stop")
                if process.wait(TIMEOUT) != 0:
                    raise SystemExit(
                        f"bench: {key} {op} failed:\n{(signals / 'child.log').read_text()[-2000:]}"
                    )
            finally:
                if process.poll() is None:
                    process.kill()
        counted = [
            int(line.split()[1])
            for part in signals.glob("callgrind.out.*")
            for line in part.read_text().splitlines()
            if line.startswith(("summary:", "totals:"))
        ]
        if not counted:
            raise SystemExit(f"bench: no count in callgrind's dump for {key} {op}")
        return max(counted) / n


def main(args: argparse.Namespace) -> None:
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is needed (apt-get install valgrind)")
    env = {**os.environ, "DATABASE_URL": filled_database()}
    ops = OPS if args.op == "all" else args.op.split(",")
    keys = args.only.split(",")
    for name, known in (("--op", OPS), ("--only", KEYS)):
        unknown = [value for value in (ops if name == "--op" else keys) if value not in known]
        if unknown:
            raise SystemExit(
                f"{name}: unknown {', '.join(unknown)}; choose from {', '.join(known)}"
            )
    keys = [
        k for k in keys if not (IMPLEMENTATIONS[k].needs_python_312 and sys.version_info < (3, 12))
    ]
    lines = [
        f"Instructions per operation (valgrind's callgrind, user space, every thread; "
        f"{args.n} operations after a warm-up; Python {sys.version.split()[0]}).",
        "",
        "| implementation | " + " | ".join(ops) + " |",
        "|---|" + "---:|" * len(ops),
    ]
    for key in keys:
        counts = []
        for op in ops:
            counts.append(f"{measure(key, op, args.n, env):,.0f}")
            print(f"  {key} {op}: done", file=sys.stderr, flush=True)
        lines.append(f"| {IMPLEMENTATIONS[key].title} | " + " | ".join(counts) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    if _args.child:
        child(_args.child, _args.op, _args.n, _args.signals)
    else:
        main(_args)
