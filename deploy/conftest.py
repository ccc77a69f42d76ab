"""Deployment tests: PgBouncer, a streaming replica, many worker processes.

Run them on their own: ``uv run pytest deploy``. Like the fault suite (whose
embedded-server helper, faults/server.py, and models they reuse), every test
brings its own PostgreSQL, so Django is configured here, at import, and the
workspace conftest's session databases are replaced by no-ops. Tests that
need PgBouncer skip, saying so, when it is not installed; CI installs it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

from deploy.pgbouncer import PgBouncer, binary  # noqa: E402
from faults._support import django_settings  # noqa: E402
from faults.server import Server, make_template  # noqa: E402

if not settings.configured:
    _settings = django_settings(port=1)
    # test_replica.py points "replica" at a streaming standby of the primary.
    _settings["DATABASES"]["replica"] = dict(_settings["DATABASES"]["default"])
    settings.configure(**_settings)
    django.setup()


@pytest.fixture(scope="session")
def django_db_setup() -> None:
    """No shared test databases: each module starts its own server."""


@pytest.fixture(scope="session", autouse=True)
def django_test_databases() -> None:
    """Replaces the workspace conftest's fixture of that name (a no-op here)."""


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder made by initdb once per session, copied by each server."""
    return make_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="module")
def primary(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This module's own PostgreSQL on a free port."""
    pg = Server(template, tmp_path_factory.mktemp("primary"))
    pg.start()
    try:
        yield pg
    finally:
        pg.stop("fast")


@pytest.fixture(scope="module")
def bouncer(primary: Server) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode in front of ``primary``."""
    if binary() is None:
        pytest.skip("pgbouncer is not installed (apt-get install -y pgbouncer); CI installs it")
    with PgBouncer("127.0.0.1", primary.port, pool_size=4) as pgb:
        yield pgb
