"""The first statement of a transaction carries its BEGIN (one round trip less).

Note [BEGIN with the first statement] in _first_statement.py. The round trips are
counted on the wire with libpq's protocol trace; everything else checks that
the shortcut changes nothing a user can see.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import pytest
from django.db import DatabaseError, ProgrammingError, connections, transaction
from django.test.utils import CaptureQueriesContext
from psycopg.pq import Trace

from django_aio.conn import async_connections, run_sync

pytestmark = pytest.mark.usefixtures("scratch_table")

T = TypeVar("T")


@pytest.fixture(autouse=True)
async def fresh_pools() -> Any:
    yield
    await async_connections.close_pools()


def _messages_sent(fn: Callable[[], T], kind: str = "Query") -> tuple[T, list[str]]:
    """``fn()``'s result and the contents of each ``kind`` message it sent (libpq's trace)."""
    aconnection = connections["default"].connection.aconnection
    with tempfile.TemporaryFile("w+") as trace:
        aconnection.pgconn.trace(trace.fileno())
        aconnection.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        try:
            result = fn()
        finally:
            aconnection.pgconn.untrace()
        trace.seek(0)
        lines = trace.read().splitlines()
    # A line per message: direction, length, type, contents.
    messages = [[field.strip() for field in line.split("\t", 3)] for line in lines]
    return result, [m[3] for m in messages if len(m) == 4 and m[0] == "F" and m[2] == kind]


def _execute(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connections["default"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _connect() -> None:
    # The trace needs the connection open before the measured work starts.
    connections["default"].ensure_connection()


async def test_a_transaction_of_three_inserts_is_four_round_trips() -> None:
    def work() -> list[str]:
        _connect()

        def three_inserts() -> None:
            with transaction.atomic():
                for value in (1, 2, 3):
                    _execute("INSERT INTO scratch (value) VALUES (%s)", [value])

        _, sent = _messages_sent(three_inserts)
        return sent

    sent = await run_sync(work)
    assert sent == [
        '"BEGIN; INSERT INTO scratch (value) VALUES (1)"',
        '"INSERT INTO scratch (value) VALUES (2)"',
        '"INSERT INTO scratch (value) VALUES (3)"',
        '"COMMIT"',
    ]
    assert await run_sync(_execute, "SELECT value FROM scratch ORDER BY value") == [
        (1,),
        (2,),
        (3,),
    ]


async def test_a_rolled_back_transaction_undoes_its_first_statement() -> None:
    def work() -> None:
        with transaction.atomic():
            _execute("INSERT INTO scratch (value) VALUES (1)")
            raise ValueError("abort")

    with pytest.raises(ValueError, match="abort"):
        await run_sync(work)
    assert await run_sync(_execute, "SELECT value FROM scratch") == []


async def test_the_cursor_and_the_query_log_show_the_statement_alone() -> None:
    def work() -> tuple[Any, ...]:
        connection = connections["default"]
        with transaction.atomic(), CaptureQueriesContext(connection) as captured:
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO scratch (value) VALUES (%s), (%s) RETURNING value", [7, 8]
                )
                rows = cursor.fetchall()
                rowcount = cursor.rowcount
                columns = [column.name for column in cursor.description]
            with connection.cursor() as cursor:
                cursor.execute("UPDATE scratch SET value = value + 10")
                updated = cursor.rowcount
        return rows, rowcount, columns, updated, [q["sql"] for q in captured]

    rows, rowcount, columns, updated, logged = await run_sync(work)
    assert rows == [(7,), (8,)]
    assert rowcount == 2
    assert columns == ["value"]
    assert updated == 2
    assert logged == [
        "INSERT INTO scratch (value) VALUES (7), (8) RETURNING value",
        "UPDATE scratch SET value = value + 10",
    ]


async def test_percent_signs_with_and_without_parameters() -> None:
    def work() -> list[Any]:
        with transaction.atomic():
            first = _execute("SELECT %s, '100%%'", ["x"])
        with transaction.atomic():
            second = _execute("SELECT '100%'")
        return [first, second]

    assert await run_sync(work) == [[("x", "100%")], [("100%",)]]


async def test_several_statements_in_one_execute() -> None:
    def work() -> list[Any]:
        with transaction.atomic(), connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1; SELECT 2")
            first = cursor.fetchall()
            more = cursor.cursor.nextset()
            second = cursor.fetchall()
            return [first, more, second, cursor.cursor.nextset()]

    assert await run_sync(work) == [[(1,)], True, [(2,)], None]


@pytest.mark.parametrize(
    ("statement", "error", "message"),
    [
        # Rejected by the parser: nothing ran, BEGIN included; replayed plainly.
        ("SELEC 1", ProgrammingError, 'syntax error at or near "SELEC"\nLINE 1: SELEC 1\n'),
        # Failed while running, inside the transaction BEGIN opened.
        ("SELECT 1 / 0", DatabaseError, "division by zero"),
        ("SELECT 'x'::int", DatabaseError, 'invalid input syntax for type integer: "x"\nLINE 1'),
        # Refused before running: the message points into the statement.
        (
            "SELECT * FROM no_such_table",
            ProgrammingError,
            'relation "no_such_table" does not exist\nLINE 1: SELECT * FROM no_such_table\n',
        ),
    ],
)
async def test_a_failing_first_statement_leaves_the_transaction_aborted(
    statement: str, error: type[Exception], message: str
) -> None:
    def work() -> tuple[str, str]:
        with transaction.atomic():
            with pytest.raises(error) as first:
                _execute(statement)
            # As after any failed statement in a transaction: the server
            # refuses the next one until the transaction is rolled back.
            with pytest.raises(DatabaseError) as next_one:
                _execute("INSERT INTO scratch (value) VALUES (1)")
            transaction.set_rollback(True)
        return str(first.value), str(next_one.value)

    first, next_one = await run_sync(work)
    assert message in first
    assert "BEGIN" not in first
    assert "current transaction is aborted" in next_one
    assert await run_sync(_execute, "SELECT value FROM scratch") == []


async def test_isolation_level_read_only_and_deferrable_go_with_the_begin(
    database_options: dict[str, Any],
) -> None:
    database_options["isolation_level"] = psycopg.IsolationLevel.SERIALIZABLE

    def work() -> tuple[list[str], list[Any]]:
        _connect()
        aconnection = connections["default"].connection.aconnection
        assert aconnection.read_only is None
        connections["default"].connection.read_only = True
        connections["default"].connection.deferrable = True
        try:

            def show() -> list[Any]:
                with transaction.atomic():
                    return _execute(
                        "SELECT current_setting('transaction_isolation'), "
                        "current_setting('transaction_read_only'), "
                        "current_setting('transaction_deferrable')"
                    )

            rows, sent = _messages_sent(show)
        finally:
            connections["default"].connection.read_only = None
            connections["default"].connection.deferrable = None
        return sent, rows

    sent, rows = await run_sync(work)
    assert sent[0].startswith('"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE; SELECT')
    assert rows == [("serializable", "on", "on")]


async def test_statements_that_cannot_carry_it_get_their_own_begin() -> None:
    def work() -> list[str]:
        _connect()

        def many() -> None:
            with transaction.atomic(), connections["default"].cursor() as cursor:
                cursor.executemany("INSERT INTO scratch (value) VALUES (%s)", [[1], [2]])

        # psycopg's executemany() uses the extended protocol: Parse messages.
        _, parsed = _messages_sent(many, "Parse")
        return parsed

    parsed = await run_sync(work)
    assert [message.split(" ", 1)[1] for message in parsed] == [
        '"BEGIN" 0',
        '"INSERT INTO scratch (value) VALUES (1)" 0',
        '"INSERT INTO scratch (value) VALUES (2)" 0',
    ]
    assert await run_sync(_execute, "SELECT count(*) FROM scratch") == [(2,)]


async def test_autocommit_statements_carry_no_begin() -> None:
    def work() -> list[str]:
        _connect()
        _, sent = _messages_sent(lambda: _execute("INSERT INTO scratch (value) VALUES (1)"))
        return sent

    assert await run_sync(work) == ['"INSERT INTO scratch (value) VALUES (1)"']
