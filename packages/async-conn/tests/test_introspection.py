"""Django's backend objects on AsyncConnection: features, ops, pg_version, ..."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connections
from django.test import override_settings

from django_aio.conn import async_connections, run_sync
from django_aio.conn._introspection import static_wrapper


async def test_static_objects_need_no_connection() -> None:
    conn = async_connections["default"]
    django_connection = connections["default"]
    assert conn.vendor == "postgresql"
    assert conn.display_name == "PostgreSQL"
    assert conn.ops.quote_name("x") == '"x"'
    assert conn.features.supports_transactions is True
    assert conn.features.can_return_columns_from_insert is True
    # The same classes, from the same settings, as Django's own wrapper.
    for name in ("features", "ops", "client", "creation", "introspection", "validation"):
        assert type(getattr(conn, name)) is type(getattr(django_connection, name)), name
    assert conn.introspection.identifier_converter("X") == "X"
    assert conn.client.executable_name == "psql"
    assert conn.timezone_name == django_connection.timezone_name
    assert conn.timezone == django_connection.timezone
    assert isinstance(conn.timezone, datetime.tzinfo)
    # Nothing was taken from the pool, and the objects are stable.
    assert conn.lease is None
    assert conn.ops is conn.ops


async def test_static_objects_in_the_bridge_take_no_connection() -> None:
    def read() -> str:
        return str(async_connections["default"].ops.quote_name("y"))

    assert await run_sync(read) == '"y"'
    assert async_connections["default"].lease is None


async def test_pg_version_is_awaited_once_then_cached() -> None:
    conn = async_connections["default"]
    static_wrapper("default").__dict__.pop("pg_version", None)
    with pytest.raises(SynchronousOnlyOperation) as raised:
        conn.pg_version  # noqa: B018
    assert str(raised.value) == (
        "the server version of database 'default' is not known yet; await "
        "async_connections['default'].get_pg_version() once before reading "
        "pg_version or a version-dependent feature (it needs a round trip)."
    )
    with pytest.raises(SynchronousOnlyOperation, match="get_pg_version"):
        conn.features.is_postgresql_16  # noqa: B018

    version = await conn.get_pg_version()
    expected = await run_sync(lambda: connections["default"].pg_version)
    assert version == expected
    assert version >= 140000
    assert conn.pg_version == version
    assert conn.features.is_postgresql_16 is (version >= 160000)
    assert conn.lease is None


async def test_pg_version_from_a_held_connection_needs_no_round_trip() -> None:
    conn = async_connections["default"]
    static_wrapper("default").__dict__.pop("pg_version", None)
    async with conn.cursor():
        conn.force_debug_cursor = True
        before = len(conn.queries_log)
        version = await conn.get_pg_version()
        assert len(conn.queries_log) == before
    conn.force_debug_cursor = False
    assert version == conn.pg_version >= 140000


async def test_static_wrapper_follows_replaced_settings() -> None:
    conn = async_connections["default"]
    before = conn.ops
    saved = connections.settings["default"]
    # What override_settings(DATABASES=...) amounts to: a new settings dict.
    connections.settings["default"] = {**saved, "TIME_ZONE": "Europe/Paris"}
    try:
        with override_settings(USE_TZ=True):
            assert conn.ops is not before
            assert conn.timezone_name == "Europe/Paris"
    finally:
        connections.settings["default"] = saved
    assert conn.timezone_name != "Europe/Paris"
