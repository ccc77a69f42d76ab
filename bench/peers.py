"""django-aio against its peers: raw psycopg, Django's async ORM, django-async-backend, SQLAlchemy.

Usage:  uv run python bench/peers.py [--quick] [--rounds 5] [--python PY312]
                                     [--skip-http] [--out bench]

One command, one run: it builds bench/.venv-peers (see peer_env.py), then for
each round starts every implementation in a fresh process (peer_impls.py), in
an order that rotates round by round, and runs all its workloads there; then
serves a Django ASGI app with uvicorn for Django's async ORM and for django-aio
and drives it over HTTP. It reports the median of the rounds, as ops/s and as a
ratio over Django's own async ORM, in RESULTS.md and a chart, ratios.png.

``--quick`` is a smoke run (tiny scale, 2 rounds, well under two minutes) for
CI: it checks that everything still runs, its numbers mean little. The server
comes from DATABASE_URL / PG* (else the embedded PostgreSQL); the benchmark
uses a database ``django_aio_peers`` there, created if missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peer_env  # noqa: E402  (standard library only: runs before the environment exists)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny scale, 2 rounds")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, --quick 2)")
    parser.add_argument("--scale", type=float, help="operations per pass (default 1.0)")
    parser.add_argument("--python", help="the Python to build bench/.venv-peers on")
    parser.add_argument("--only", help="implementations to run, comma-separated keys")
    parser.add_argument("--skip-http", action="store_true", help="no end-to-end HTTP part")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md and ratios.png go")
    return parser.parse_args()


if __name__ == "__main__":
    _args = _parse()
    peer_env.reexec(__file__, _args.python)

# -- from here on, inside bench/.venv-peers -----------------------------------

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from importlib import metadata  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

from peer_impls import IMPLEMENTATIONS, WORKLOADS, Workload  # noqa: E402

# Two runs at once on one server must not share a database (each refills
# the tables): DJANGO_AIO_BENCH_DATABASE names another.
DATABASE = os.environ.get("DJANGO_AIO_BENCH_DATABASE") or "django_aio_peers"
BASELINE = "django"
HTTP_FLAVOURS = {"django": "Django async ORM", "aio": "django-aio drop-in"}
HTTP_CONCURRENCY = 32


@dataclass
class Results:
    ops: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # impl -> workload
    http: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # flavour -> metric
    skipped: dict[str, str] = field(default_factory=dict)  # impl -> why
    failures: list[str] = field(default_factory=list)

    def median(self, impl: str, workload: str) -> float | None:
        samples = self.ops.get(impl, {}).get(workload)
        return statistics.median(samples) if samples else None


# -- the server and the database ------------------------------------------------


def server_url() -> str:
    """The server of DATABASE_URL, else PG*, else the embedded PostgreSQL, as a URL."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if os.environ.get("PGHOST") or os.environ.get("PGPORT"):
        import getpass
        from urllib.parse import quote

        user = quote(os.environ.get("PGUSER") or getpass.getuser())
        password = os.environ.get("PGPASSWORD")
        auth = f"{user}:{quote(password)}" if password else user
        host = os.environ.get("PGHOST") or "localhost"
        port = os.environ.get("PGPORT") or "5432"
        return f"postgresql://{auth}@{host}:{port}/{os.environ.get('PGDATABASE', 'postgres')}"
    from django_aio.conn.testdb import embedded_server_url

    return embedded_server_url()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        # A commit then returns without waiting for the disk: on a shared
        # machine the WAL flush of other processes' work made the write
        # columns measure the disk, not the client (raw psycopg once came out
        # slower than Django there). Every row gets the same setting.
        conn.execute(f'ALTER DATABASE "{DATABASE}" SET synchronous_commit = off')
    return with_database(url, DATABASE)


def child_command(script: str, key: str, op: str, n: int, *extra: str) -> list[str]:
    """The command line of ``script``'s measured child: ``n`` operations of ``op`` on ``key``."""
    return [sys.executable, script, "--child", key, "--op", op, "--n", str(n), *extra]


def filled_database() -> str:
    """The bench database's URL, created and filled with the workloads' rows."""
    url = create_database(server_url())
    run_worker("raw", url, "--setup")
    return url


# -- the ORM rounds --------------------------------------------------------------


def run_worker(impl: str, url: str, *args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, str(HERE / "peer_impls.py"), impl, *args],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode:
        raise RuntimeError(f"{impl}: exit {done.returncode}\n{done.stderr[-3000:]}")
    if not args or args[0] != "--setup":
        result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    return {}


def available(only: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """The keys of ``only`` (all if None) that run here, Django's always; and those skipped."""
    unknown = [key for key in only or () if key not in IMPLEMENTATIONS]
    if unknown:
        raise SystemExit(
            f"--only: unknown {', '.join(unknown)}; choose from {', '.join(IMPLEMENTATIONS)}"
        )
    keys, skipped = [], {}
    for key, impl in IMPLEMENTATIONS.items():
        if only and key not in only and key != BASELINE:
            continue
        if impl.needs_python_312 and sys.version_info < (3, 12):
            skipped[key] = "needs Python 3.12+ (Django 6.1)"
            continue
        keys.append(key)
    return keys, skipped


def orm_rounds(url: str, rounds: int, scale: float, results: Results, keys: list[str]) -> None:
    run_worker("raw", url, "--setup")
    for round_ in range(rounds):
        shift = round_ % len(keys)
        order = keys[shift:] + keys[:shift]
        print(f"round {round_ + 1}/{rounds}: {', '.join(order)}", flush=True)
        for key in order:
            started = time.perf_counter()
            try:
                measured = run_worker(key, url, "--scale", str(scale))
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                results.failures.append(str(error))
                print(f"  {key}: FAILED\n{error}", file=sys.stderr, flush=True)
                continue
            for workload, ops in measured.items():
                results.ops.setdefault(key, {}).setdefault(workload, []).append(ops)
            print(f"  {key:12} {time.perf_counter() - started:5.1f} s", flush=True)


# -- the HTTP rounds -------------------------------------------------------------


async def http_round(
    url: str, flavour: str, requests: int, inflight: int, seconds: float
) -> dict[str, float]:
    import peer_http

    with peer_http.serve(flavour, url) as server:
        try:
            measured = await peer_http.throughput(server, HTTP_CONCURRENCY, requests)
        except Exception as error:
            raise RuntimeError(f"throughput: {error!r}") from error
    # A fresh server for the memory figure: the throughput run's heap would hide it.
    with peer_http.serve(flavour, url) as server:
        try:
            per_request = await peer_http.memory_per_request(server, inflight, seconds)
        except Exception as error:
            raise RuntimeError(f"memory: {error!r}") from error
    return {
        "rps": measured.rps,
        "p50_ms": measured.p50_ms,
        "p99_ms": measured.p99_ms,
        "kib_per_request": per_request / 1024,
    }


def http_rounds(url: str, rounds: int, quick: bool, results: Results) -> None:
    requests = 320 if quick else 3200
    inflight, seconds = 200, (0.002 if quick else 0.01)
    flavours = list(HTTP_FLAVOURS)
    for round_ in range(rounds):
        order = flavours if round_ % 2 == 0 else flavours[::-1]
        print(f"HTTP round {round_ + 1}/{rounds}: {', '.join(order)}", flush=True)
        for flavour in order:
            try:
                measured = asyncio.run(http_round(url, flavour, requests, inflight, seconds))
            except Exception as error:  # report and go on: one failure shouldn't lose the run
                results.failures.append(f"HTTP {flavour}: {error!r}")
                print(f"  {flavour}: FAILED {error!r}", file=sys.stderr, flush=True)
                continue
            for metric, value in measured.items():
                results.http.setdefault(flavour, {}).setdefault(metric, []).append(value)
            print(f"  {flavour:12} {measured['rps']:7.0f} req/s", flush=True)


# -- the report ------------------------------------------------------------------


def _versions() -> str:
    names = ["django", "psycopg", "greenlet", "django-async-backend", "sqlalchemy", "uvloop"]
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return f"Python {platform.python_version()}, " + ", ".join(found)


def table_head(workloads: list[Workload]) -> list[str]:
    """The first two lines of a Markdown table with a row per implementation."""
    return [
        "| implementation | " + " | ".join(w.title for w in workloads) + " |",
        "|---|" + "---:|" * len(workloads),
    ]


def report(results: Results, args: argparse.Namespace, rounds: int, scale: float) -> str:
    keys = [k for k in IMPLEMENTATIONS if k in results.ops or k in results.skipped]
    lines = [
        f"Run of {datetime.date.today().isoformat()}: {rounds} rounds, scale {scale:g}"
        f"{' (--quick: a smoke run, not a measurement)' if args.quick else ''}; {_versions()};"
        f" {os.cpu_count()} CPUs.",
        "",
        "ops/s, median of the rounds, and in brackets the ratio over Django's async ORM"
        " (higher is better). Pool of 16 connections everywhere; each implementation in a"
        " fresh process per round, the order rotating round by round.",
        "",
        *table_head(WORKLOADS),
    ]
    for key in keys:
        cells = []
        for workload in WORKLOADS:
            value = results.median(key, workload.key)
            base = results.median(BASELINE, workload.key)
            if value is None:
                cells.append("-")
            elif base:
                cells.append(f"{value:,.0f} ({value / base:.2f}x)")
            else:
                cells.append(f"{value:,.0f}")
        lines.append(f"| {IMPLEMENTATIONS[key].title} | " + " | ".join(cells) + " |")
    for key, why in results.skipped.items():
        lines.append(f"\n{IMPLEMENTATIONS[key].title}: not run, {why}.")
    if results.http:
        lines += [
            "",
            f"End to end: Django ASGI views under uvicorn (1 worker, no middleware), a"
            f" keep-alive HTTP/1.1 client on asyncio streams with {HTTP_CONCURRENCY}"
            " concurrent requests to a view doing a get, a list of 10 and a"
            " count; memory: server RSS with 200 requests inside the ORM at once, minus idle"
            " RSS, per request.",
            "",
            "| server | req/s | vs Django | p50 ms | p99 ms | KiB per in-flight request |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        base_rps = statistics.median(results.http.get(BASELINE, {}).get("rps", [0.0]))
        for flavour, metrics in results.http.items():
            m = {name: statistics.median(values) for name, values in metrics.items()}
            ratio = f"{m['rps'] / base_rps:.2f}x" if base_rps else "-"
            lines.append(
                f"| {HTTP_FLAVOURS[flavour]} | {m['rps']:,.0f} | {ratio} | {m['p50_ms']:.1f}"
                f" | {m['p99_ms']:.1f} | {m['kib_per_request']:.1f} |"
            )
    if results.failures:
        lines += ["", f"{len(results.failures)} part(s) FAILED; see the run's output."]
    return "\n".join(lines) + "\n"


def chart(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    columns = [(w.key, w.title) for w in WORKLOADS]
    if results.http:
        columns.append(("http", "HTTP req/s"))
    keys = [k for k in IMPLEMENTATIONS if k != BASELINE and k in results.ops]
    width = 0.8 / max(1, len(keys))
    figure, axes = plt.subplots(figsize=(12, 5.5))
    for n, key in enumerate(keys):
        xs, ys = [], []
        for x, (column, _) in enumerate(columns):
            if column == "http":
                flavour = results.http.get(key, {}).get("rps")
                base = results.http.get(BASELINE, {}).get("rps")
                value = statistics.median(flavour) if flavour else None
                base_value = statistics.median(base) if base else None
            else:
                value = results.median(key, column)
                base_value = results.median(BASELINE, column)
            if value and base_value:
                xs.append(x - 0.4 + width * (n + 0.5))
                ys.append(value / base_value)
        bars = axes.bar(xs, ys, width, label=IMPLEMENTATIONS[key].title)
        axes.bar_label(bars, labels=[f"{y:.1f}" for y in ys], fontsize=6, padding=1)
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_yscale("log")
    axes.yaxis.set_major_locator(FixedLocator([0.25, 0.5, 1, 2, 4, 8, 16, 32]))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}x"))
    axes.yaxis.set_minor_locator(NullLocator())
    axes.set_xticks(range(len(columns)), [title for _, title in columns], fontsize=8)
    axes.set_ylabel("ops/s over Django's async ORM (log scale; 1 = Django)")
    axes.set_title("Throughput relative to Django's async ORM (higher is better)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(args: argparse.Namespace) -> int:
    rounds = args.rounds or (2 if args.quick else 5)
    scale = args.scale or (0.05 if args.quick else 1.0)
    results = Results()
    keys, results.skipped = available(args.only.split(",") if args.only else None)
    url = create_database(server_url())
    started = time.perf_counter()
    orm_rounds(url, rounds, scale, results, keys)
    if not args.skip_http:
        http_rounds(url, 1 if args.quick else max(1, rounds // 2 + 1), args.quick, results)
    text = report(results, args, rounds, scale)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "RESULTS.md").write_text(text)
    chart(results, args.out / "ratios.png")
    print()
    print(text)
    print(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'ratios.png'}"
          f" in {time.perf_counter() - started:.0f} s")  # fmt: skip
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main(_args))
