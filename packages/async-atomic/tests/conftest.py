"""Fixtures for django_aio.atomic's tests (Django itself is configured by the root conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_aio.conn import async_connections, run_sync

# The test app is importable only once the root conftest has configured
# Django, after this module is loaded: import it inside the functions.


def _clean() -> None:
    from atomic_testapp.models import Item, Note

    Item.objects.all().delete()
    Note.objects.all().delete()


@pytest.fixture
def clean_tables(aio_transactional_db: object) -> object:
    """Async tests here check real commits: django_aio.testing's committing
    database, flushed after each test, with its leak checks."""
    return aio_transactional_db


@pytest.fixture
def clean_tables_sync() -> Iterator[None]:
    """Empty test tables before and after a sync test."""
    _clean()
    yield
    _clean()


async def names() -> list[str]:
    """Committed item names, read on a fresh connection outside any transaction."""
    from atomic_testapp.models import Item

    async with async_connections.independent_connection():
        return await run_sync(lambda: sorted(Item.objects.values_list("name", flat=True)))


async def notes() -> list[str]:
    """Committed note texts in insertion order, read on a fresh connection."""
    from atomic_testapp.models import Note

    async with async_connections.independent_connection():
        return await run_sync(
            lambda: list(Note.objects.order_by("id").values_list("text", flat=True))
        )


class Boom(Exception):
    """Raised by tests to leave a block with an error."""
