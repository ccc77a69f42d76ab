"""A PgBouncer in transaction pooling mode that a test (or CI) owns.

PgBouncer comes from the system (Debian: ``apt-get install -y pgbouncer``).
It refuses to run as root, so under root it runs as the ``postgres`` system
user, with its own ini file in a temporary folder, on a free port of
127.0.0.1, in front of one upstream server (every database name maps to the
same name there).

As a command, it wraps another command with a PgBouncer in front of the
server of ``PGHOST``/``PGPORT`` (default 127.0.0.1:5432)::

    python -m deploy.pgbouncer -- uv run pytest

The command then sees ``PGHOST``/``PGPORT`` pointing at PgBouncer; the
upstream's stay in ``DJANGO_AIO_UPSTREAM_PGHOST``/``..._PGPORT``. Exit status:
the command's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["PgBouncer", "binary"]

_RUN_AS = "postgres"


def binary() -> str | None:
    """The ``pgbouncer`` executable, or ``None`` when it is not installed."""
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    """``pool_mode = transaction`` in front of ``upstream_host:upstream_port``.

    ``pool_size`` is PgBouncer's ``default_pool_size``: server sessions per
    (database, user). Extra ``settings`` go to the ``[pgbouncer]`` section.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        pool_size: int = 20,
        user: str = "postgres",
        **settings: Any,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.pool_size = pool_size
        self.user = user
        self.settings = settings
        self.port = 0
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def _ini(self) -> str:
        host, port = self.upstream
        options = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": self.folder / "userlist.txt",  # type: ignore[operator]
            "pool_mode": "transaction",
            "default_pool_size": self.pool_size,
            "max_client_conn": 1000,
            # psycopg sends none of these, libpq's "options" (e.g. -c lock_timeout)
            # PgBouncer cannot forward: ignore rather than refuse the client.
            "ignore_startup_parameters": "extra_float_digits, options",
            # Idle server sessions go soon, so a test database can be dropped
            # (DROP DATABASE waits up to 5 s for other sessions to leave).
            "server_idle_timeout": 2,
            "admin_users": self.user,
            "log_connections": 0,
            "log_disconnections": 0,
            **self.settings,
        }
        lines = ["[databases]", f"* = host={host} port={port}", "", "[pgbouncer]"]
        lines += [f"{key} = {value}" for key, value in options.items()]
        return "\n".join(lines) + "\n"

    def start(self, *, timeout: float = 10.0) -> None:
        exe = binary()
        if exe is None:
            raise RuntimeError("pgbouncer is not installed (apt-get install -y pgbouncer)")
        self.folder = Path(tempfile.mkdtemp(prefix="django-aio-pgbouncer-"))
        self.folder.chmod(0o755)  # read by the postgres user under root
        self.port = _free_port()
        (self.folder / "userlist.txt").write_text(f'"{self.user}" ""\n')
        ini = self.folder / "pgbouncer.ini"
        ini.write_text(self._ini())
        log = open(self.folder / "pgbouncer.log", "wb")  # noqa: SIM115 - the child keeps it
        as_root = os.geteuid() == 0
        self.process = subprocess.Popen(
            [exe, str(ini)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **({"user": _RUN_AS, "group": _RUN_AS} if as_root else {}),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                text = self.log()
                self.process = None
                raise RuntimeError(f"pgbouncer exited at start:\n{text}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pgbouncer did not listen within {timeout} s")
            time.sleep(0.05)

    def log(self) -> str:
        if self.folder is None:
            return ""
        with contextlib.suppress(OSError):
            return (self.folder / "pgbouncer.log").read_text()[-3000:]
        return ""

    def stop(self) -> None:
        """SIGINT (PgBouncer's safe shutdown), then SIGKILL if it lingers; remove its files."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PgBouncer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("command", nargs="+", help="the command to run (after --)")
    args = parser.parse_args(argv)
    host = os.environ.get("PGHOST") or "127.0.0.1"
    port = int(os.environ.get("PGPORT") or 5432)
    with PgBouncer(host, port, pool_size=args.pool_size) as bouncer:
        env = {
            **os.environ,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(bouncer.port),
            "DJANGO_AIO_UPSTREAM_PGHOST": host,
            "DJANGO_AIO_UPSTREAM_PGPORT": str(port),
        }
        print(f"pgbouncer (transaction pooling) on 127.0.0.1:{bouncer.port} -> {host}:{port}")
        sys.stdout.flush()
        code = subprocess.call(args.command, env=env)
        if code:
            print(f"pgbouncer log (last lines):\n{bouncer.log()}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
