"""Workspace-wide pytest setup: one Django configuration for every package's tests.

The database comes from ``DATABASE_URL`` / ``PG*`` or, when neither is set, an
embedded PostgreSQL (see ``django_aio.conn.testdb``). Test databases get a
per-process name so concurrent runs on one server do not collide, and are
dropped at the end of the session.

Packages that are not installed (``uv run --package django-aio-conn pytest
packages/async-conn`` installs only that one and its dependencies) are left
out, together with their test apps.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings

ROOT = Path(__file__).parent

# package import name -> (its Django app or None, test apps under its tests/ folder)
PACKAGES = {
    "django_aio.conn": ("django_aio.conn", []),
    "django_aio.atomic": (None, ["atomic_testapp"]),
    "django_aio.orm": (None, ["orm_testapp"]),
    "django_aio.testing": (None, ["testing_testapp"]),
}
TEST_FOLDERS = {
    "django_aio.conn": "async-conn",
    "django_aio.atomic": "async-atomic",
    "django_aio.orm": "async-orm",
    "django_aio.testing": "async-testing",
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _configure() -> None:
    from django_aio.conn.testdb import database_settings

    apps = ["django.contrib.contenttypes", "django.contrib.auth"]
    for module, (app, test_apps) in PACKAGES.items():
        if not _installed(module):
            continue
        apps_py = Path(importlib.util.find_spec(module).origin).parent / "apps.py"  # type: ignore[union-attr, arg-type]
        if app or apps_py.exists():
            apps.append(module)
        tests = ROOT / "packages" / TEST_FOLDERS[module] / "tests"
        for test_app in test_apps:
            if (tests / test_app).is_dir():
                if str(tests) not in sys.path:
                    sys.path.insert(0, str(tests))
                apps.append(test_app)
    suffix = os.getpid()
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        SECRET_KEY="django-aio-tests",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=apps,
        DATABASES={
            "default": database_settings("django_aio", TEST={"NAME": f"test_django_aio_{suffix}"}),
            "other": database_settings(
                "django_aio_other", TEST={"NAME": f"test_django_aio_other_{suffix}"}
            ),
        },
    )
    django.setup()


def pytest_configure(config: pytest.Config) -> None:
    if not settings.configured:
        _configure()


def _database_access(request: pytest.FixtureRequest) -> contextlib.AbstractContextManager[Any]:
    # pytest-django (``uv run --with pytest-django``) blocks database access
    # outside its own fixtures; every test here may use the databases.
    if request.config.pluginmanager.has_plugin("django"):
        return request.getfixturevalue("django_db_blocker").unblock()  # type: ignore[no-any-return]
    return contextlib.nullcontext()


@pytest.fixture(scope="session")
def django_db_setup(request: pytest.FixtureRequest) -> Iterator[None]:
    """Create the test databases (every alias) once per session and drop them at the end.

    Also pytest-django's fixture of that name, so that under pytest-django the
    databases are made once, here, with every alias.
    """
    from django.test.utils import setup_databases, teardown_databases

    with _database_access(request):
        config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        yield
    finally:
        from django_aio.conn._loops import discard_closed_loops

        discard_closed_loops()
        with _database_access(request):
            teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session", autouse=True)
def django_test_databases(request: pytest.FixtureRequest, django_db_setup: None) -> Iterator[None]:
    """The test databases, usable by every test of the session."""
    with _database_access(request):
        yield


@pytest.fixture(scope="session")
def aio_test_databases(django_test_databases: None) -> None:
    """django_aio.testing's session fixture: the databases created above."""
