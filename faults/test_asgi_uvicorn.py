"""Scenario 6: a Django ASGI app under uvicorn, with clients that disconnect.

uvicorn serves faults/asgi/site.py in a subprocess (views that read, write in
``async_atomic``, hold a cursor over ``pg_sleep``, and stream ``aiterator()``
breaking early). 64 concurrent httpx clients drive it for the duration; 15% of
requests are cancelled by the client after a random short delay (a disconnect
mid-request).

Pass: uvicorn exits with 0 when stopped (uvloop is its loop, and a crash in
it was seen here once: Note [Waking the task at once] in django_aio.conn); 0
responses 5xx and 0 transport errors on requests not cancelled; the server's
stderr has no 'exception was never retrieved', 'Task was destroyed',
'Traceback' or 'Fatal Python error'; its RSS is roughly flat (mean of the
last half of the run, warm-up excluded, within 10% or 8 MiB of the first
half); 0 app sessions on the server after uvicorn shuts down.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from faults._support import APP_NAME, ErrorCounter, duration, record, seed, wait_until
from faults.server import Server, free_port

CLIENTS = 64
DISCONNECT = 0.15
PATHS = ["read", "read", "write", "slow", "stream"]
FORBIDDEN = (
    "exception was never retrieved",
    "Task was destroyed",
    "Traceback",
    "Fatal Python error",
)


def start_uvicorn(server: Server, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "FAULTS_DB_PORT": str(server.port),
        "PYTHONUNBUFFERED": "1",
        # A crash of the server (a segfault) prints where it happened.
        "PYTHONFAULTHANDLER": "1",
    }
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faults.asgi", str(port)],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdout=stderr,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    ready = wait_until(lambda: _answers(base) or proc.poll() is not None, 20.0, 0.1)
    if not ready or proc.poll() is not None:
        proc.kill()
        raise RuntimeError(f"uvicorn did not start:\n{log.read_text()[-3000:]}")
    return proc, base


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_asgi_under_uvicorn(server: Server, tmp_path: Path) -> None:
    seed(server, accounts=5, books=100)
    log = tmp_path / "uvicorn.log"
    proc, base = start_uvicorn(server, log)
    figures: dict[str, object] = {}
    try:
        statuses: dict[int, int] = {}
        disconnects = 0
        errors = ErrorCounter()
        rss: list[int] = []
        end = time.monotonic() + duration(8)

        async def client() -> None:
            nonlocal disconnects
            async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                while time.monotonic() < end:
                    request = http.get(f"/{random.choice(PATHS)}")
                    try:
                        if random.random() < DISCONNECT:
                            try:
                                await asyncio.wait_for(request, random.uniform(0.001, 0.04))
                            except TimeoutError:
                                disconnects += 1
                                continue
                            response = None
                        else:
                            response = await request
                    except httpx.HTTPError as exc:
                        errors.add(exc)
                        continue
                    if response is not None:
                        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        async def sample() -> None:
            process = psutil.Process(proc.pid)
            while time.monotonic() < end:
                rss.append(process.memory_info().rss)
                await asyncio.sleep(0.25)

        async with asyncio.timeout(duration(8) + 60):
            await asyncio.gather(sample(), *(client() for _ in range(CLIENTS)))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    wait_until(lambda: server.session_count(APP_NAME) == 0, 3.0)
    sessions_left = server.session_count(APP_NAME)
    stderr = log.read_text(errors="replace")
    warm = rss[len(rss) // 4 :]
    first, second = warm[: len(warm) // 2], warm[len(warm) // 2 :]
    mib = 1024 * 1024
    first_mean = sum(first) / max(len(first), 1) / mib
    second_mean = sum(second) / max(len(second), 1) / mib
    figures = {
        "requests": sum(statuses.values()) + disconnects + sum(errors.counts.values()),
        "statuses": statuses,
        "disconnects": disconnects,
        "client_errors": errors.as_dict(),
        "rss_mib_first_half": round(first_mean, 1),
        "rss_mib_second_half": round(second_mean, 1),
        "rss_mib_max": round(max(rss, default=0) / mib, 1),
        "sessions_left": sessions_left,
        "exit_code": proc.returncode,
        "stderr_forbidden": [
            line for line in stderr.splitlines() if any(f in line for f in FORBIDDEN)
        ][:10],
        "stderr_tail": stderr[-2000:],
    }
    record("asgi_uvicorn", figures)
    # First: a server that died makes every later figure meaningless.
    assert proc.returncode == 0, stderr[-5000:]
    assert not [code for code in statuses if code >= 500], figures
    assert not errors.counts, figures
    assert not figures["stderr_forbidden"], stderr[-5000:]
    assert second_mean - first_mean <= max(0.10 * first_mean, 8.0), figures
    assert sessions_left == 0, figures
