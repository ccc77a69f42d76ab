"""Django's per-request housekeeping in drop-in mode (Note [Request housekeeping]).

Requests go through Django's own ASGI handler, as under an ASGI server. An
async view over the ORM starts no thread; any receiver or response that may
need Django's thread still gets it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext
from django.core import signals
from django.core.asgi import get_asgi_application
from django.core.cache import caches
from django.db import connections
from django.test import override_settings
from orm_testapp import urls
from orm_testapp.cache import ClosingCache
from orm_testapp.models import Author

from django_aio.orm import drop_in

pytestmark = pytest.mark.aio_db(transaction=True)


@pytest.fixture(autouse=True)
def served() -> Iterator[None]:
    with override_settings(
        ROOT_URLCONF="orm_testapp.urls", MIDDLEWARE=[], ALLOWED_HOSTS=["testserver"]
    ):
        yield


@pytest.fixture
def threads_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads started during the test."""
    started: list[str] = []
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


async def serve(path: str) -> tuple[int, bytes]:
    """One GET through Django's ASGI application; the status and the body."""
    application = get_asgi_application()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    requested = False
    done = asyncio.Event()
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # Django listens for a disconnect until the response is out
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await asyncio.wait_for(application(scope, receive, send), 30)
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return status, body


async def test_an_async_view_starts_no_thread(threads_started: list[str]) -> None:
    await Author.objects.acreate(name="Ann")
    status, body = await serve("/authors/")
    assert (status, json.loads(body)) == (200, {"names": ["Ann"]})
    assert threads_started == []


@pytest.mark.threads_allowed
async def test_without_drop_in_django_starts_its_threads(threads_started: list[str]) -> None:
    # What the test above saves: Django's thread for the request, and the one
    # that joins it.
    with drop_in(False):
        status, _ = await serve("/hello/")
    assert status == 200
    assert len(threads_started) >= 2


async def test_a_receiver_of_its_own_keeps_djangos_thread(threads_started: list[str]) -> None:
    ran_in: list[tuple[str, int]] = []

    def started(sender: Any, **kwargs: Any) -> None:
        ran_in.append(("started", threading.get_ident()))

    def finished(sender: Any, **kwargs: Any) -> None:
        ran_in.append(("finished", threading.get_ident()))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        status, _ = await serve("/authors/")
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert status == 200
    assert [name for name, _ in ran_in] == ["started", "finished"]
    # Both in the request's thread, as without drop-in.
    assert {thread for _, thread in ran_in} != {threading.get_ident()}
    assert len({thread for _, thread in ran_in}) == 1
    assert threads_started


async def test_a_response_with_more_to_close_closes_it_in_djangos_thread(
    threads_started: list[str],
) -> None:
    status, body = await serve("/stream/")
    assert (status, body) == (200, b"payload")
    assert urls.Chunks.last is not None
    assert urls.Chunks.last.closed
    assert threads_started


@pytest.mark.threads_allowed
async def test_a_connection_of_the_requests_thread_is_closed_there() -> None:
    # A sync view runs in the request's thread, on a connection of that
    # thread: Django's request_finished receiver closes it there (its
    # CONN_MAX_AGE is 0), with or without drop-in.
    urls.sync_authors.wrappers.clear()  # type: ignore[attr-defined]
    await Author.objects.acreate(name="Ann")
    status, body = await serve("/sync-authors/")
    (wrapper,) = urls.sync_authors.wrappers  # type: ignore[attr-defined]
    try:
        assert (status, json.loads(body)) == (200, {"names": ["Ann"]})
        assert wrapper.connection is None
    finally:
        if wrapper.connection is not None:  # its thread is gone: close it by hand
            wrapper.connection.close()


async def test_a_dispatch_with_only_djangos_receivers_runs_them_on_the_loop(
    threads_started: list[str],
) -> None:
    async with ThreadSensitiveContext():  # as Django's ASGI handler does per request
        responses = await signals.request_started.asend(sender=None)
        robust = await signals.request_finished.asend_robust(sender=None)
    assert sorted(receiver.__name__ for receiver, _ in responses) == [
        "close_old_connections",
        "reset_queries",
    ]
    assert [receiver for receiver, _ in robust] == [
        receiver for receiver, _ in signals.request_finished.send_robust(sender=None)
    ]
    assert threads_started == []


@pytest.mark.threads_allowed
async def test_an_open_connection_of_the_loop_keeps_djangos_thread(
    threads_started: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sync I/O on the loop (allowed by Django's escape hatch) left the loop a
    # connection: on the loop, close_old_connections would close it, which
    # the request's new thread does not (its connections are its own).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    wrapper = connections["default"]
    wrapper.ensure_connection()
    try:
        wrapper.close_at = time.monotonic()
        async with ThreadSensitiveContext():
            await signals.request_started.asend(sender=None)
        assert wrapper.connection is not None
        assert threads_started
    finally:
        wrapper.close()


async def test_a_cache_that_closes_something_keeps_djangos_thread() -> None:
    ClosingCache.closed_in.clear()
    backend = {"BACKEND": "orm_testapp.cache.ClosingCache"}
    with override_settings(CACHES={"default": backend}):
        async with ThreadSensitiveContext():
            caches["default"].get("anything")  # on the loop: no thread started yet
            await signals.request_finished.asend(sender=None)
        closed_in = list(ClosingCache.closed_in)  # before override_settings closes it again
    assert len(closed_in) == 1
    assert closed_in != [threading.get_ident()]
