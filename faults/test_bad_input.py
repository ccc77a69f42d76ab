"""Scenario 8: bad input gives a clear Django error, promptly.

- Malformed or out-of-range ``OPTIONS["pool"]``: ``ImproperlyConfigured`` naming
  the option, on first use (``{"max_size": 2}`` alone works).
- Connection problems (wrong password, closed port, missing database, missing
  role, server stopped): ``django.db.utils.OperationalError`` whose message
  carries the server's reason and names the alias, raised well under the
  pool's timeout (10 s here), three times in a row with ``max_size`` 2 (a failed
  connect must not leak its pool slot), never a ``PoolTimeout``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.utils import OperationalError

from django_aio.conn import PoolTimeout
from faults._support import LoopErrors, record, use_server
from faults.app.models import Account
from faults.server import Server, free_port

PROMPT = 2.0  # seconds; the pool timeout below is 10
WHERE = "DATABASES['default']['OPTIONS']['pool']"

BAD_OPTIONS: dict[str, tuple[Any, str]] = {
    "timeout_zero": ({"timeout": 0}, "['timeout'] must be a number of seconds above 0, got 0"),
    "timeout_negative": ({"timeout": -1.5}, "['timeout'] must be a number of seconds above 0"),
    "num_workers_zero": ({"num_workers": 0}, "['num_workers'] must be 1 or more"),
    "max_below_min": (
        {"min_size": 4, "max_size": 2},
        "needs 0 <= min_size <= max_size and max_size >= 1, got min_size=4 and max_size=2",
    ),
    "max_size_zero": ({"max_size": 0}, "max_size >= 1"),
    "min_size_negative": ({"min_size": -1, "max_size": 2}, "0 <= min_size"),
    "unknown_key": ({"maxsize": 3}, "has an unknown option 'maxsize'; the options are:"),
    "sync_callback": ({"check": print}, "['check'] is a callback for Django's sync pool"),
    "timeout_string": ({"timeout": "5"}, "['timeout'] must be int or float, got str '5'"),
    "max_size_float": ({"max_size": 2.0}, "['max_size'] must be int, got float 2.0"),
    "max_size_bool": ({"max_size": True}, "['max_size'] must be int, got bool True"),
    "not_a_dict": ([("max_size", 2)], "must be True or a dict of psycopg_pool options"),
}


async def first_use() -> int:
    return await Account.objects.acount()


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
async def test_bad_pool_options(server: Server, loop_errors: LoopErrors, case: str) -> None:
    pool, expected = BAD_OPTIONS[case]
    use_server(server, pool=pool)
    started = time.monotonic()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is asserted below
        await first_use()
    elapsed = time.monotonic() - started
    record(
        "bad_input_options",
        {
            "case": case,
            "error": f"{type(caught.value).__name__}: {caught.value}",
            "seconds": round(elapsed, 3),
        },
    )
    assert isinstance(caught.value, ImproperlyConfigured), repr(caught.value)
    assert WHERE in str(caught.value)
    assert expected in str(caught.value)
    assert elapsed < PROMPT
    assert not loop_errors.calls


async def test_max_size_alone_works(server: Server, loop_errors: LoopErrors) -> None:
    use_server(server, pool={"max_size": 2})
    assert await first_use() == 0
    assert not loop_errors.calls


def _wrong_password(server: Server) -> dict[str, Any]:
    server.sql("CREATE ROLE app LOGIN PASSWORD 'right'")
    server.sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO app")
    server.set_hba(
        [
            "local all all trust",
            "host all app 127.0.0.1/32 scram-sha-256",
            "host all all 127.0.0.1/32 trust",
        ]
    )
    return {"USER": "app", "PASSWORD": "wrong"}


def _closed_port(server: Server) -> dict[str, Any]:
    return {"PORT": str(free_port())}


def _missing_database(server: Server) -> dict[str, Any]:
    return {"NAME": "no_such_database"}


def _missing_role(server: Server) -> dict[str, Any]:
    return {"USER": "no_such_role"}


def _server_stopped(server: Server) -> dict[str, Any]:
    server.stop("fast")
    return {}


CONNECTION_PROBLEMS: dict[str, tuple[Any, str]] = {
    "wrong_password": (_wrong_password, 'password authentication failed for user "app"'),
    "closed_port": (_closed_port, "Connection refused"),
    "missing_database": (_missing_database, 'database "no_such_database" does not exist'),
    "missing_role": (_missing_role, 'role "no_such_role" does not exist'),
    "server_stopped": (_server_stopped, "Connection refused"),
}


@pytest.mark.parametrize("case", list(CONNECTION_PROBLEMS))
async def test_connection_problem(server: Server, loop_errors: LoopErrors, case: str) -> None:
    break_it, reason = CONNECTION_PROBLEMS[case]
    use_server(server, pool={"min_size": 1, "max_size": 2, "timeout": 10.0})
    if case == "server_stopped":
        assert await first_use() == 0  # an idle pooled connection exists when it stops
    use_server(server, pool={"min_size": 1, "max_size": 2, "timeout": 10.0}, **break_it(server))
    if case == "server_stopped":
        # Same settings as before the stop: the pool with the dead idle connection is reused.
        use_server(server, pool={"min_size": 1, "max_size": 2, "timeout": 10.0})
    errors: list[str] = []
    seconds: list[float] = []
    caught: list[BaseException] = []
    for _ in range(3):
        started = time.monotonic()
        try:
            await asyncio.wait_for(first_use(), 15)
        except BaseException as exc:
            caught.append(exc)
            errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
        else:
            errors.append("no error")
        seconds.append(round(time.monotonic() - started, 3))
    record("bad_input_connection", {"case": case, "errors": errors, "seconds": seconds})
    assert len(caught) == 3, errors
    for exc in caught:
        assert isinstance(exc, OperationalError), errors
        assert not isinstance(exc, PoolTimeout), errors
        assert reason in str(exc), errors
        assert "'default'" in str(exc), errors
    assert max(seconds) < PROMPT, seconds
    assert not loop_errors.calls
