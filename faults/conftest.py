"""The fault-injection suite: each test owns an embedded PostgreSQL.

Run it on its own: ``uv run pytest faults`` (``DJANGO_AIO_FAULTS=full`` for
the long durations). Django is configured here, at import, before the
workspace conftest's ``pytest_configure`` would configure it for the
packages' tests; that conftest's session database fixtures are replaced by
no-ops, since every scenario brings its own server.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

from faults._support import LoopErrors, django_settings, use_server  # noqa: E402
from faults.server import Server, make_template  # noqa: E402

if not settings.configured:
    settings.configure(**django_settings(port=1))
    django.setup()


@pytest.fixture(scope="session")
def django_db_setup() -> None:
    """No shared test databases: each scenario starts its own server."""


@pytest.fixture(scope="session", autouse=True)
def django_test_databases() -> None:
    """Replaces the workspace conftest's fixture of that name (a no-op here)."""


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder made by initdb once per session, copied by each server."""
    return make_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def server(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This test's own PostgreSQL, started on a free port, stopped at the end.

    The ``default`` alias points at it (with the default pool options).
    """
    pg = Server(template, tmp_path_factory.mktemp("pg"))
    pg.start()
    use_server(pg)
    try:
        yield pg
    finally:
        pg.stop("fast")


@pytest.fixture
async def loop_errors() -> AsyncIterator[LoopErrors]:
    """Every call of the test loop's exception handler (the test asserts on them)."""
    loop = asyncio.get_running_loop()
    recorder = LoopErrors().install(loop)
    yield recorder
    loop.set_exception_handler(None)
