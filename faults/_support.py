"""Helpers shared by the fault scenarios: settings, durations, recorders, results."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import django

from .server import DATABASE, Server

__all__ = [
    "APP_NAME",
    "MODE",
    "ErrorCounter",
    "LogCapture",
    "LoopErrors",
    "django_settings",
    "duration",
    "record",
    "seed",
    "unraisable",
    "use_server",
    "wait_until",
]

#: application_name of every connection the app (Django) opens.
APP_NAME = "django_aio_faults"

MODE = os.environ.get("DJANGO_AIO_FAULTS", "short")
if MODE not in ("short", "full"):
    raise RuntimeError(f"DJANGO_AIO_FAULTS must be 'short' or 'full', got {MODE!r}")

RESULTS = Path(__file__).parent / ".results"


def duration(short: float, full: float = 20.0) -> float:
    """Seconds a scenario runs for under the current mode."""
    return short if MODE == "short" else full


def django_settings(port: int, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for ``settings.configure()``, pointing at 127.0.0.1:``port``."""
    return {
        "DEBUG": False,
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "SECRET_KEY": "django-aio-faults",
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "INSTALLED_APPS": ["django_aio.conn", "django_aio.orm", "faults.app"],
        "DATABASES": {
            "default": {
                "ENGINE": "django_aio.conn.backends.postgresql",
                "NAME": DATABASE,
                "USER": "postgres",
                "PASSWORD": "",
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "OPTIONS": {"application_name": APP_NAME},
            }
        },
        **extra,
    }


def use_server(server: Server, *, pool: dict[str, Any] | None = None, **fields: Any) -> None:
    """Point the ``default`` alias at ``server`` (the next loop's pool uses it).

    Pools are per (alias, loop) and keyed by NAME/USER/HOST/PORT/OPTIONS, so a
    change here gives the next use a fresh pool.
    """
    from django.db import connections

    entry = connections.settings["default"]
    entry.update(
        {"NAME": DATABASE, "USER": "postgres", "PASSWORD": "", "HOST": "127.0.0.1"},
    )
    entry["PORT"] = str(server.port)
    entry["OPTIONS"] = {"application_name": APP_NAME}
    if pool is not None:
        entry["OPTIONS"]["pool"] = pool
    entry.update(fields)


def seed(server: Server, *, accounts: int = 0, balance: int = 1000, books: int = 0) -> None:
    """Fresh rows: ``accounts`` accounts of ``balance`` each, ``books`` books."""
    server.sql("TRUNCATE faults_account, faults_transfer, faults_book RESTART IDENTITY")
    server.sql(
        "INSERT INTO faults_account SELECT i, %s FROM generate_series(1, %s) i", balance, accounts
    )
    server.sql(
        "INSERT INTO faults_book (title) SELECT 'book ' || i FROM generate_series(1, %s) i", books
    )


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` (sync) until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


class LoopErrors:
    """An event loop exception handler that records every call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> LoopErrors:
        (loop or asyncio.get_running_loop()).set_exception_handler(self)
        return self

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        text = context.get("message", "")
        if exc is not None:
            text += f": {type(exc).__name__}: {exc}"
        self.calls.append(text)

    def without(self, *allowed: str) -> list[str]:
        """The calls whose message contains none of ``allowed``."""
        return [call for call in self.calls if not any(part in call for part in allowed)]


@contextmanager
def unraisable() -> Iterator[list[str]]:
    """Collect ``sys.unraisablehook`` calls (exceptions ignored in ``__del__``, coroutines)."""
    calls: list[str] = []
    previous = sys.unraisablehook

    def hook(info: Any) -> None:
        calls.append(
            f"{info.err_msg or 'Exception ignored in'}: {info.object!r}: "
            f"{type(info.exc_value).__name__}: {info.exc_value}"
        )

    sys.unraisablehook = hook
    try:
        yield calls
    finally:
        sys.unraisablehook = previous


class LogCapture(logging.Handler):
    """Records of the given loggers at ``level`` and above (any thread)."""

    def __init__(self, *names: str, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.names = names
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [f"{r.name} {r.levelname}: {r.getMessage()}" for r in self.records]

    @contextmanager
    def active(self) -> Iterator[LogCapture]:
        loggers = [logging.getLogger(name) for name in self.names]
        for logger in loggers:
            logger.addHandler(self)
        try:
            yield self
        finally:
            for logger in loggers:
                logger.removeHandler(self)


class ErrorCounter:
    """Counts outcomes by exception type; keeps a few messages of each."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.samples: dict[str, list[str]] = {}

    def add(self, exc: BaseException) -> None:
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        self.counts[name] += 1
        samples = self.samples.setdefault(name, [])
        if len(samples) < 3:
            samples.append(str(exc)[:300])

    def other_than(self, *names: str) -> dict[str, int]:
        return {name: n for name, n in self.counts.items() if name not in names}

    def as_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "samples": self.samples}


def record(scenario: str, figures: dict[str, Any]) -> None:
    """Append this run's figures to faults/.results/<scenario>.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{scenario}.json"
    runs: list[Any] = json.loads(path.read_text()) if path.exists() else []
    runs.append(
        {
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "mode": MODE,
            "python": platform.python_version(),
            "django": django.get_version(),
            **figures,
        }
    )
    path.write_text(json.dumps(runs, indent=1, default=str) + "\n")
    print(f"\n[{scenario}] {json.dumps(figures, default=str)}", file=sys.stderr)
