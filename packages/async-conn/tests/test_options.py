"""Database settings honoured by the async side: isolation level, binding, signals."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections, transaction
from django.db.backends.signals import connection_created
from psycopg import IsolationLevel

from django_aio.conn import async_connections, run_sync


@pytest.fixture(autouse=True)
async def fresh_pools() -> Any:
    yield
    await async_connections.close_pools()


def _isolation_in_transaction() -> str:
    with transaction.atomic(), connections["default"].cursor() as cursor:
        cursor.execute("SHOW transaction_isolation")
        (level,) = cursor.fetchone()
    return str(level)


async def test_default_isolation_level_is_read_committed() -> None:
    assert await run_sync(_isolation_in_transaction) == "read committed"


async def test_isolation_level_option(database_options: dict[str, Any]) -> None:
    database_options["isolation_level"] = IsolationLevel.SERIALIZABLE
    assert await run_sync(_isolation_in_transaction) == "serializable"


async def test_server_side_binding_option(database_options: dict[str, Any]) -> None:
    database_options["server_side_binding"] = True

    def work() -> tuple[int, list[str]]:
        User.objects.bulk_create(User(username=f"ssb{n}") for n in range(3))
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT %s::int + %s::int", [1, 2])
                (total,) = cursor.fetchone()
            names = [u.username for u in User.objects.order_by("username").iterator(chunk_size=2)]
            return int(total), names
        finally:
            User.objects.filter(username__startswith="ssb").delete()

    assert await run_sync(work) == (3, ["ssb0", "ssb1", "ssb2"])


async def test_health_checks_option(database_options: dict[str, Any]) -> None:
    settings_dict = connections.settings["default"]
    settings_dict["CONN_HEALTH_CHECKS"] = True
    database_options["pool"] = {"min_size": 1, "max_size": 1}
    try:
        for _ in range(3):
            async with async_connections["default"].cursor() as cursor:
                await cursor.execute("SELECT 1")
                assert await cursor.fetchone() == (1,)
    finally:
        settings_dict["CONN_HEALTH_CHECKS"] = False


async def test_connection_created_is_sent_once_per_physical_connection(
    database_options: dict[str, Any],
) -> None:
    database_options["pool"] = {"min_size": 1, "max_size": 1}
    seen: list[str] = []

    def on_created(sender: object, connection: Any, **kwargs: object) -> None:
        # Receivers can run SQL on the new connection, as in sync Django.
        with connection.cursor() as cursor:
            cursor.execute("SET application_name = 'django-aio-test'")
        seen.append(connection.alias)

    def application_name() -> str:
        with connections["default"].cursor() as cursor:
            cursor.execute("SHOW application_name")
            (name,) = cursor.fetchone()
        return str(name)

    connection_created.connect(on_created)
    try:
        assert await run_sync(application_name) == "django-aio-test"
        assert await run_sync(application_name) == "django-aio-test"
    finally:
        connection_created.disconnect(on_created)
    assert seen == ["default"]
