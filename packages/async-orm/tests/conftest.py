"""Fixtures for django_aio.orm's tests (Django itself is configured by the root conftest)."""

from __future__ import annotations

import inspect
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.db import connections
from django.db.backends.utils import CursorWrapper

from django_aio.conn import in_bridge


def _truncate() -> None:
    tables = [m._meta.db_table for m in apps.get_app_config("orm_testapp").get_models()]
    tables += [
        f.remote_field.through._meta.db_table
        for m in apps.get_app_config("orm_testapp").get_models()
        for f in m._meta.local_many_to_many
    ]
    with connections["default"].cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(sorted(set(tables)))} RESTART IDENTITY CASCADE")


@pytest.fixture(autouse=True)
def database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Where each test's data lives.

    Async tests run on django_aio.testing's test connection, rolled back at
    the end (``@pytest.mark.aio_db(...)`` picks another mode). Sync tests
    commit through Django's own connection and empty the tables afterwards.
    """
    if request.node.get_closest_marker("aio_db") is None:
        if inspect.iscoroutinefunction(request.function):
            request.getfixturevalue("aio_db")
        else:
            yield
            _truncate()
            return
    yield


def fill_library() -> None:
    """Three authors, two tags, four books, a restaurant: the query-shape tests' data."""
    import datetime

    from orm_testapp.models import Author, Book, Restaurant, Tag

    ann = Author.objects.create(name="Ann", age=40)
    bob = Author.objects.create(name="Bob", age=25)
    cy = Author.objects.create(name="Cy", age=60)
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    for n, (author, editor) in enumerate([(ann, bob), (ann, None), (bob, cy), (cy, ann)]):
        book = Book.objects.create(
            title=f"T{n}",
            author=author,
            editor=editor,
            pages=100 * (n + 1),
            published=n % 2 == 0,
            written=datetime.date(2000 + n, 1, 1),
        )
        book.tags.set([red] if n % 2 else [red, blue])
    Restaurant.objects.create(name="Luigi", serves_pizza=True)


class SqlLog:
    """Where each SQL statement ran: ``(thread id, in the bridge?, sql)``."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, bool, str]] = []

    def threads(self) -> set[int]:
        return {thread for thread, _, _ in self.entries}

    def outside_bridge(self) -> list[str]:
        return [sql for _, bridged, sql in self.entries if not bridged]

    def statements(self) -> list[str]:
        return [sql for _, _, sql in self.entries]


@pytest.fixture
def sql_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[SqlLog]:
    """Records the thread and bridge state of every statement Django executes."""
    log = SqlLog()
    original = CursorWrapper._execute_with_wrappers

    def record(self: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        log.entries.append((threading.get_ident(), in_bridge(), str(sql)))
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", record)
    return log


@pytest.fixture(autouse=True)
def loop_thread_only(request: pytest.FixtureRequest) -> Iterator[None]:
    """In drop-in mode, every statement of every test runs on the loop's thread, bridged.

    Tests that turn drop-in off are marked ``threads_allowed``.
    """
    if request.node.get_closest_marker("threads_allowed"):
        yield
        return
    log: SqlLog = request.getfixturevalue("sql_log")
    yield
    main = threading.get_ident()
    assert log.threads() <= {main}, "ORM work ran in another thread"
    assert log.outside_bridge() == [], "ORM work ran outside the bridge"


@pytest.fixture
async def close_thread_connections() -> AsyncIterator[None]:
    """Django's thread-based path leaves a connection open in asgiref's thread."""
    yield
    await sync_to_async(connections.close_all)()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "threads_allowed: the test runs Django's thread-based async path"
    )
