"""What every implementation of the peer benchmark shares: its sizes, the database, ``Impl``.

``Impl`` is the interface that bench/peer_impls.py's workers drive: one
instance per process, one method per kind of operation.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator
from typing import Any, ClassVar

POOL_SIZE = 16
ITEMS = 1000
AUTHORS = 10
SLEEP = 0.005
SLEEP_SQL = f"pg_sleep({SLEEP})::text"

_names = itertools.count()


def _name() -> str:
    return f"bench {os.getpid()} {next(_names)}"


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set: run bench/peers.py, which sets it")
    return url


class Impl:
    """The operations every implementation provides; one instance per process."""

    key: ClassVar[str]
    title: ClassVar[str]
    flavour: ClassVar[str | None] = None  # the Django settings it needs, if any
    uvloop: ClassVar[bool] = False
    needs_python_312: ClassVar[bool] = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @contextlib.asynccontextmanager
    async def task_scope(self) -> AsyncIterator[None]:
        """Entered by each concurrent task around all of its operations."""
        yield

    async def get(self, pk: int) -> Any:
        raise NotImplementedError

    async def sleepy(self, pk: int) -> Any:
        raise NotImplementedError

    async def list100(self) -> Any:
        raise NotImplementedError

    async def join(self) -> Any:
        raise NotImplementedError

    async def create(self) -> Any:
        raise NotImplementedError

    async def atomic3(self) -> Any:
        raise NotImplementedError
