"""pytest plugin for django_aio (registered by the ``pytest11`` entry point).

Fixtures:

- ``aio_db``: the test's async database work runs on one connection per
  database inside a transaction rolled back at the end (``RollbackDatabase``).
- ``aio_transactional_db``: work commits; tables are flushed at the end
  (``TransactionalDatabase``).
- ``aio_test_databases`` (session): creates the test databases, or lets
  pytest-django's ``django_db_setup`` do it. Override it in a conftest if
  your suite creates them itself.

Marker: ``@pytest.mark.aio_db`` (rollback) or
``@pytest.mark.aio_db(transaction=True)``, both with ``databases=[...]`` or
``"__all__"``, requests the matching fixture.

Async tests run under pytest-asyncio or anyio's plugin (asyncio backend);
with anyio, run pytest-asyncio in strict mode, as anyio itself requires.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

__all__ = [
    "aio_db",
    "aio_test_databases",
    "aio_transactional_db",
    "pytest_addoption",
    "pytest_configure",
]

_MARKER = "aio_db"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "aio_embedded_postgres",
        "When to run the test databases on an embedded PostgreSQL: 'auto' (for "
        "aliases that name no HOST/PORT, when no server answers and neither "
        "DATABASE_URL nor PGHOST/PGPORT is set), 'always' (for aliases that name "
        "no HOST/PORT) or 'never'.",
        default="auto",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(transaction=False, databases=None): run the test with django_aio's "
        "aio_db fixture (rolled back) or, with transaction=True, aio_transactional_db.",
    )
    if config.pluginmanager.has_plugin("django"):
        _teach_pytest_django()


def _item_databases(item: pytest.Item) -> Any:
    """The aliases a django_aio fixture of ``item`` uses, or ``()``."""
    marker = item.get_closest_marker(_MARKER)
    names = getattr(item, "fixturenames", ())
    if marker is None and "aio_db" not in names and "aio_transactional_db" not in names:
        return ()
    from ._session import resolve_databases

    databases = marker.kwargs.get("databases") if marker is not None else None
    return resolve_databases(databases)


def _teach_pytest_django() -> None:
    # pytest-django creates only the databases its own markers and fixtures
    # ask for (it scans the collected tests); add those of django_aio's.
    from pytest_django import fixtures  # type: ignore[import-not-found, unused-ignore]

    original = getattr(fixtures, "_get_databases_for_test", None)
    if original is None or getattr(original, "django_aio", False):
        return

    def databases_for_test(test: pytest.Item) -> tuple[Any, bool]:
        databases, serialized = original(test)
        extra = _item_databases(test)
        if extra:
            databases = [*dict.fromkeys([*databases, *extra])]
        return databases, serialized

    databases_for_test.django_aio = True  # type: ignore[attr-defined]
    fixtures._get_databases_for_test = databases_for_test


def _marker_args(request: pytest.FixtureRequest) -> tuple[bool, Any]:
    marker = request.node.get_closest_marker(_MARKER)
    if marker is None:
        return False, None

    def parse(transaction: bool = False, databases: Any = None) -> tuple[bool, Any]:
        return transaction, databases

    return parse(*marker.args, **marker.kwargs)


@pytest.fixture(scope="session")
def aio_test_databases(request: pytest.FixtureRequest) -> Iterator[None]:
    """Create the test databases for the session (or let pytest-django do it)."""
    from django.conf import settings

    if not settings.configured:
        raise pytest.UsageError(
            "django_aio's database fixtures need Django settings: set "
            "DJANGO_SETTINGS_MODULE (with pytest-django) or call settings.configure() "
            "in a conftest's pytest_configure."
        )
    from ._internals import prepare_bridged_classes
    from ._server import use_embedded_server_if_needed

    prepare_bridged_classes()
    use_embedded_server_if_needed(request.config.getini("aio_embedded_postgres"))
    if request.config.pluginmanager.has_plugin("django"):
        request.getfixturevalue("django_db_setup")
        yield
        return
    from django.test.utils import setup_databases, teardown_databases

    created = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        yield
    finally:
        from django_aio.conn.layers import discard_closed_loops

        discard_closed_loops()
        teardown_databases(created, verbosity=0)


@pytest.fixture(autouse=True)
def _aio_db_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker(_MARKER) is None:
        return
    transaction, _ = _marker_args(request)
    request.getfixturevalue("aio_transactional_db" if transaction else "aio_db")


@pytest.fixture(autouse=True, scope="class")
def _aio_unittest_databases(request: pytest.FixtureRequest) -> None:
    from ._testcases import _AsyncioLifecycle

    if request.cls is not None and issubclass(request.cls, _AsyncioLifecycle):
        request.getfixturevalue("aio_test_databases")


def _check_async_test(request: pytest.FixtureRequest, fixture: str) -> None:
    function = getattr(request, "function", None)
    if function is not None and not inspect.iscoroutinefunction(function):
        raise pytest.UsageError(
            f"{fixture} is for `async def` tests: {request.node.name} is a sync test "
            f"(use pytest-django's db fixtures there)."
        )
    if not _uses_anyio(request) and not _HAS_PYTEST_ASYNCIO:
        raise pytest.UsageError(
            f"{fixture} needs pytest-asyncio, or anyio's plugin with the test marked "
            f"@pytest.mark.anyio (and an anyio_backend of 'asyncio')."
        )


def _allow_database_access(request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("aio_test_databases")
    if request.config.pluginmanager.has_plugin("django"):
        blocker = request.getfixturevalue("django_db_blocker")
        blocker.unblock()
        request.addfinalizer(blocker.restore)


def _uses_anyio(request: pytest.FixtureRequest) -> bool:
    return "anyio_backend" in request.fixturenames


@pytest.fixture
def aio_db(request: pytest.FixtureRequest) -> Any:
    """The test's database work is rolled back at the end (one shared connection).

    Returns a ``RollbackDatabase``: ``async with aio_db.assert_num_queries(n)``,
    ``async with aio_db.capture_on_commit_callbacks() as callbacks``.
    """
    _check_async_test(request, "aio_db")
    _allow_database_access(request)
    return request.getfixturevalue("_aio_db_anyio" if _uses_anyio(request) else "_aio_db_asyncio")


@pytest.fixture
def aio_transactional_db(request: pytest.FixtureRequest) -> Any:
    """The test's database work commits; the tables are flushed at the end.

    Returns a ``TransactionalDatabase`` (``assert_num_queries`` counts the
    calling task's queries).
    """
    _check_async_test(request, "aio_transactional_db")
    _allow_database_access(request)
    name = (
        "_aio_transactional_db_anyio" if _uses_anyio(request) else "_aio_transactional_db_asyncio"
    )
    return request.getfixturevalue(name)


async def _database(request: pytest.FixtureRequest, *, transactional: bool) -> AsyncIterator[Any]:
    from ._session import RollbackDatabase, TransactionalDatabase

    _, databases = _marker_args(request)
    db = (TransactionalDatabase if transactional else RollbackDatabase)(databases)
    await db.begin()
    yield db
    await db.end()


# anyio's plugin runs plain async fixtures of tests that use ``anyio_backend``.
@pytest.fixture
async def _aio_db_anyio(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    async for db in _database(request, transactional=False):
        yield db


@pytest.fixture
async def _aio_transactional_db_anyio(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    async for db in _database(request, transactional=True):
        yield db


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is optional
    _HAS_PYTEST_ASYNCIO = False
else:
    _HAS_PYTEST_ASYNCIO = True

    @pytest_asyncio.fixture
    async def _aio_db_asyncio(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
        async for db in _database(request, transactional=False):
            yield db

    @pytest_asyncio.fixture
    async def _aio_transactional_db_asyncio(
        request: pytest.FixtureRequest,
    ) -> AsyncIterator[Any]:
        async for db in _database(request, transactional=True):
            yield db
