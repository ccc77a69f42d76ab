"""Fixtures for django_aio.orm's tests (Django itself is configured by the root conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from django.apps import apps
from django.db import connections, transaction

from django_aio.conn import async_connections, run_sync


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
async def clean_tables() -> AsyncIterator[None]:
    """Every test starts and ends with empty test-app tables (the test DB is shared)."""
    yield
    await run_sync(_truncate)


@asynccontextmanager
async def atomic(using: str = "default") -> AsyncIterator[None]:
    """A transaction on the task's pinned connection.

    Stands in for ``django_aio.atomic.async_atomic`` until that package lands:
    Django's own ``atomic`` entered and exited through the bridge.
    """
    try:
        from django_aio.atomic import async_atomic  # type: ignore[attr-defined]
    except ImportError:
        pass
    else:
        async with async_atomic(using=using):
            yield
        return
    async with async_connections[using].pinned():
        block = transaction.atomic(using=using)
        await run_sync(block.__enter__)
        try:
            yield
        except BaseException as exc:
            await run_sync(block.__exit__, type(exc), exc, exc.__traceback__)
            raise
        else:
            await run_sync(block.__exit__, None, None, None)
