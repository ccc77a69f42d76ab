"""Many worker processes: the demo app under uvicorn --workers 4 and under gunicorn.

Each worker process has its own pool per event loop (here: one loop per
worker), so the server sees at most workers x max_size sessions. Load drives
every worker's pool up; after the load, as each worker serves more requests,
connections idle longer than ``max_idle`` close until each pool is back at its
``min_size``. Pools trim when a connection comes back (nothing runs in the
background), so the check keeps a light trickle of requests going.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from faults._support import wait_until
from faults.server import Server, free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WORKERS = 4
POOL = {"min_size": 1, "max_size": 3, "max_idle": 0.5, "timeout": 20.0}
DEMO_DB = "django_aio_demo"


@pytest.fixture(scope="module")
def demo_db(primary: Server) -> Server:
    """The demo's database on the module's server, migrated and seeded by tour.py's helper."""
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{primary.port}/{DEMO_DB}",
    }
    code = "import tour; tour.prepare_database()"
    subprocess.run([sys.executable, "-c", code], cwd=EXAMPLES, env=env, check=True, timeout=120)
    return primary


def sessions(server: Server) -> int:
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [DEMO_DB]
        ).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def serve(server: Server, command: list[str], base: str, log: Path) -> Iterator[None]:
    """Run ``command`` (a server of the demo app at ``base``) until the block ends."""
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{server.port}/{DEMO_DB}",
        "DJANGO_AIO_DEMO_POOL": json.dumps(POOL),
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "PYTHONUNBUFFERED": "1",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=EXAMPLES, env=env, stdout=out, stderr=out)
    try:
        if not wait_until(lambda: _answers(base) or proc.poll() is not None, 30.0, 0.1):
            raise RuntimeError(f"the server did not start:\n{log.read_text()[-3000:]}")
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()[-3000:]}")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, -15), log.read_text()[-3000:]
    text = log.read_text()
    for forbidden in ("Traceback", "exception was never retrieved", "Task was destroyed"):
        assert forbidden not in text, text[-3000:]


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/accounts/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def load_and_settle(server: Server, base: str) -> dict[str, int]:
    """64 clients for 3 s (peak sessions sampled), then a trickle until pools are at min.

    The load is the demo's ``/dropin/`` view: two queries at once, then a third.
    """
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, sessions(server))
            time.sleep(0.05)

    def client(_: int) -> int:
        failures = 0
        deadline = time.monotonic() + 3.0
        # A new connection per request: the workers share the listening
        # socket, and a kept-alive connection would stay with one of them.
        with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while time.monotonic() < deadline:
                if http.get(f"{base}/dropin/").status_code != 200:
                    failures += 1
        return failures

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(64) as pool:
            failures = sum(pool.map(client, range(64)))
    finally:
        stop.set()
        sampler.join()
    time.sleep(POOL["max_idle"] + 0.2)

    def trickled() -> bool:
        # A fresh connection per request, so every worker gets some of them.
        for _ in range(4):
            assert httpx.get(f"{base}/accounts/", timeout=10).status_code == 200
        return sessions(server) <= WORKERS * POOL["min_size"]

    settled = wait_until(trickled, 20.0, 0.05)
    figures = {"failures": failures, "peak": peak, "settled": settled, "after": sessions(server)}
    print(figures, file=sys.stderr)
    return figures


def check(figures: dict[str, int]) -> None:
    assert figures["failures"] == 0
    # Several workers' pools were in use at once, never more than they may hold.
    assert POOL["max_size"] < figures["peak"] <= WORKERS * POOL["max_size"], figures
    assert figures["settled"], figures
    assert 1 <= figures["after"] <= WORKERS * POOL["min_size"], figures


def test_uvicorn_workers(demo_db: Server, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "demo.asgi:application"]
    command += ["--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning"]
    with serve(demo_db, command, base, tmp_path / "uvicorn.log"):
        check(load_and_settle(demo_db, base))
    assert wait_until(lambda: sessions(demo_db) == 0, 10.0), "sessions left after shutdown"


def test_gunicorn_with_uvicorn_workers(demo_db: Server, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gunicorn", "demo.asgi:application"]
    command += ["--workers", str(WORKERS), "--worker-class", "uvicorn_worker.UvicornWorker"]
    command += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    with serve(demo_db, command, base, tmp_path / "gunicorn.log"):
        check(load_and_settle(demo_db, base))
    assert wait_until(lambda: sessions(demo_db) == 0, 10.0), "sessions left after shutdown"
