"""End to end: a Django ASGI app under uvicorn, driven by a bounded client.

``serve(flavour)`` starts uvicorn (one worker, a free 127.0.0.1 port) on
``peerapp.asgi`` with ``BENCH_FLAVOUR`` picking the ORM; ``throughput()``
sends a fixed number of requests to ``/page`` (a get, a list of 10 and a count)
from ``concurrency`` client tasks, each on a keep-alive connection of its own
(``KeepAlive``: a few lines of HTTP/1.1 on asyncio streams, so that the
client, which shares the machine's two cores with the server and PostgreSQL,
takes little of them; httpx took about as much CPU per request as the
server); ``memory_per_request()`` measures the server's RSS while
``inflight`` requests to ``/slow`` are inside the ORM at once (with httpx).
All traffic stays on 127.0.0.1, and every loop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
ITEMS = 1000


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(flavour: str, database_url: str, *, loop: str = "asyncio") -> Iterator[Server]:
    port = _free_port()
    env = {**os.environ, "BENCH_FLAVOUR": flavour, "DATABASE_URL": database_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "peerapp.asgi:application",
         "--app-dir", str(HERE), "--host", HOST, "--port", str(port), "--workers", "1",
         "--loop", loop, "--lifespan", "off", "--log-level", "warning", "--no-access-log",
         # Keep idle connections open: a client task that waits for the others
         # (after the warm-up) must not race the server's keep-alive close.
         "--timeout-keep-alive", "300"],
        env=env,
    )  # fmt: skip
    server = Server(process, f"http://{HOST}:{port}")
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.process.returncode}")
        try:
            if httpx.get(f"{server.url}/page?pk=1", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"uvicorn did not answer on {server.url} within {timeout:.0f} s")


def _client(server: Server, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120)


@dataclass
class Throughput:
    rps: float
    p50_ms: float
    p99_ms: float


class KeepAlive:
    """One keep-alive HTTP/1.1 connection: GET requests one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: Server) -> KeepAlive:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        return cls(reader, writer)

    async def get(self, target: str) -> tuple[int, bytes]:
        """The status and the body of ``GET target``."""
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        status = int(head.split(b" ", 2)[1])
        if b"\r\ntransfer-encoding: chunked\r\n" in head:
            parts = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readuntil(b"\r\n")  # the end (no trailers)
            return status, b"".join(parts)
        length = int(head.split(b"\r\ncontent-length: ", 1)[1].split(b"\r\n", 1)[0])
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def throughput(server: Server, concurrency: int, requests: int) -> Throughput:
    """``requests`` requests to /page from ``concurrency`` tasks (after a warm-up)."""
    latencies: list[float] = []

    async def worker(client: KeepAlive, first: int, count: int, record: bool) -> None:
        for n in range(first, first + count):
            started = time.perf_counter()
            status, body = await asyncio.wait_for(client.get(f"/page?pk={n % ITEMS + 1}"), 120)
            if status != 200:
                raise RuntimeError(f"/page answered {status}: {body[:200]!r}")
            if record:
                latencies.append(time.perf_counter() - started)

    per_task = max(1, requests // concurrency)
    clients = [await KeepAlive.open(server) for _ in range(concurrency)]
    try:
        warm = max(2, per_task // 5)
        await asyncio.gather(*(worker(c, t * warm, warm, False) for t, c in enumerate(clients)))
        started = time.perf_counter()
        await asyncio.gather(
            *(worker(c, t * per_task, per_task, True) for t, c in enumerate(clients))
        )
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.close()
    cuts = statistics.quantiles(latencies, n=100)
    return Throughput(len(latencies) / elapsed, cuts[49] * 1e3, cuts[98] * 1e3)


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (Linux /proc, else psutil)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


async def memory_per_request(server: Server, inflight: int, seconds: float) -> float:
    """(peak RSS with ``inflight`` requests inside the ORM - idle RSS) / ``inflight``, bytes.

    /slow waits until ``inflight`` requests have arrived, then each runs a query
    of ``seconds`` on the server: all of them are in flight at once whatever the
    ORM does with them (a thread that takes one at a time, or a pool of 16).
    """
    async with _client(server, inflight) as client:
        # Warm up: code paths, the pool's connections, the client's connections.
        for _ in range(2):
            await asyncio.gather(*(client.get(f"/page?pk={n + 1}") for n in range(32)))
            await asyncio.gather(*(client.get("/slow?seconds=0&wait=16") for _ in range(16)))
        await asyncio.sleep(0.5)
        idle = rss(server.pid)
        peak = idle
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss(server.pid))
                await asyncio.sleep(0.002)

        sampler = asyncio.create_task(sample())
        try:
            responses = await asyncio.gather(
                *(client.get(f"/slow?seconds={seconds}&wait={inflight}") for _ in range(inflight))
            )
        finally:
            done.set()
            await sampler
        for response in responses:
            response.raise_for_status()
        peak = max(peak, rss(server.pid))
    return (peak - idle) / inflight
