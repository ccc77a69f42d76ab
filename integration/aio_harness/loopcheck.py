"""DJANGO_AIO_ASSERT_LOOP_THREAD: SQL must run on the event loop's thread.

Django's own async methods (``QuerySet.aget``, ``Model.asave``, ...) normally
hop to a thread with ``sync_to_async``: the SQL runs in the sync thread while
the event loop waits. With django_aio's drop-in they run through the bridge
instead, whose greenlets execute on the loop's own thread. This check tells
the two apart in every process of the run:

- It tracks which threads are running an asyncio event loop (by wrapping
  ``asyncio.events._set_running_loop``, which every loop calls when it starts
  and stops running).
- Every SQL statement Django executes passes through
  ``CursorWrapper._execute_with_wrappers``; a statement issued while some
  thread runs a loop, from a thread that does not, is off the loop.
- Each ``sync_to_async`` call records who made it (the calling frame), in a
  context variable that asgiref carries into the worker thread, so an
  off-loop statement can say which async API hopped to a thread.

Modes (the variable's value):

``1`` (or ``on``)
    Raise ``LoopThreadViolation`` for off-loop SQL sent there by the code that
    drop-in claims to carry on the loop: Django's ORM async API (the modules
    under ``django/db/``, ``contrib.contenttypes.fields``, the database
    session backend, the paginator, ``shortcuts``), ``contrib.auth``'s
    backends (their sync ``get_user``, permission methods and
    ``configure_user``), ``Signal.asend``'s sync receivers inside a
    transaction, django_aio itself, or an unknown caller. Other hops are
    Django's own sync-thread design and are only counted, by caller: a test's
    own ``await sync_to_async(f)()``; sync middleware run by
    ``MiddlewareMixin.__acall__``, sync views, ``user_passes_test``'s sync
    test function, a backend's sync-only ``authenticate`` (drop-in leaves it
    on Django's thread: it may call outside services); and ``Signal.asend``'s
    sync receivers outside a transaction (``request_finished`` must close that
    thread's connections).
``strict``
    Raise for every off-loop statement.

``DJANGO_AIO_ASSERT_LOOP_THREAD_SCOPE`` (comma-separated test labels, e.g.
``async,basic.tests``) limits the check to the tests under those labels;
run.py sets it to the async-related modules for a full-suite run, where sync
views served through the async test client legitimately run their SQL in
Django's thread. Off-loop statements of other tests are only counted.

Every violation (raised or not) and every test that issued SQL on the loop
thread is appended as one JSON line to ``DJANGO_AIO_IT_LOOP_LOG``, so run.py
can fail a test whose violation was swallowed by an ``except Exception`` and
can show that bridged SQL really ran on the loop.
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
import threading
import unittest
from asyncio import events
from collections.abc import Callable, Coroutine
from typing import Any

ENV = "DJANGO_AIO_ASSERT_LOOP_THREAD"
SCOPE_ENV = "DJANGO_AIO_ASSERT_LOOP_THREAD_SCOPE"
LOG_ENV = "DJANGO_AIO_IT_LOOP_LOG"


class LoopThreadViolation(AssertionError):
    """SQL ran off the event loop's thread while the loop was running."""


# thread id -> the loop running in it
_running_loops: dict[int, object] = {}
# (filename, qualified name, line) of the code that called sync_to_async
_hop_caller: contextvars.ContextVar[tuple[str, str, int] | None] = contextvars.ContextVar(
    "django_aio_it_hop_caller", default=None
)
_mode = ""
_scope: tuple[str, ...] = ()
_current_test = ""
_counts = {
    "on_loop": 0,
    "off_loop": 0,
    "test_hops": 0,
    "django_hops": 0,
    "signal_hops": 0,
    "unchecked": 0,
}
_installed = False


def _log(record: dict[str, Any]) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = json.dumps(record) + "\n"
    # One short O_APPEND write per record: safe across the parallel workers.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


# Files whose sync_to_async hops drop-in must replace (relative to django/).
_ORM_FILES = (
    "db" + os.sep,
    os.path.join("contrib", "contenttypes", "fields.py"),
    os.path.join("contrib", "sessions", "backends", "db.py"),
    os.path.join("core", "paginator.py"),
    "shortcuts.py",
    os.path.join("contrib", "auth", "backends.py"),
)
# Hops from those files that drop-in leaves on Django's thread, by qualified name.
_THREADED_CALLERS = ("BaseBackend.aauthenticate",)


def _classify(caller: tuple[str, str, int] | None) -> str:
    """Who sent a statement off the loop: ``orm``, ``signal``, ``test``, ``django`` or
    ``unknown`` (see the module docstring for which ones are violations)."""
    if caller is None:
        return "unknown"
    filename = os.path.realpath(caller[0])
    tests_dir = os.environ.get("RUNTESTS_DIR")
    if tests_dir and filename.startswith(os.path.realpath(tests_dir) + os.sep):
        return "test"
    import django

    django_dir = os.path.realpath(os.path.dirname(django.__file__))
    if caller[1].startswith("receivers_sync_to_async.") or filename == os.path.join(
        django_dir, "dispatch", "dispatcher.py"
    ):
        # Signal.asend's sync receivers: drop-in bridges them only inside a
        # transaction (django_aio.orm's receivers_sync_to_async).
        return "signal"
    if filename.startswith(django_dir + os.sep):
        inner = filename[len(django_dir) + 1 :]
        if inner.startswith(_ORM_FILES) and caller[1] not in _THREADED_CALLERS:
            return "orm"
        return "django"
    return "unknown"


def _where(caller: tuple[str, str, int] | None) -> str:
    if caller is None:
        return "an unknown caller (no sync_to_async seen)"
    filename, qualname, line = caller
    for marker in (os.sep + "django" + os.sep, os.sep + "tests" + os.sep):
        if marker in filename:
            filename = filename[filename.rindex(marker) + 1 :]
            break
    return f"{qualname} ({filename}:{line})"


def _in_transaction() -> bool:
    """Whether the hop left an open django_aio transaction behind (then it is a violation)."""
    try:
        from django_aio.conn.layers import lending_var
    except ImportError:
        return False
    window = lending_var.get()
    return window is not None and window.active


def _in_scope(test_id: str) -> bool:
    if not _scope:
        return True
    return any(test_id == label or test_id.startswith(label + ".") for label in _scope)


def check_statement(sql: object) -> None:
    """Called before every statement; raises if it runs off the loop thread."""
    if not _running_loops:
        return
    thread = threading.get_ident()
    if thread in _running_loops:
        _counts["on_loop"] += 1
        return
    if not _in_scope(_current_test):
        _counts["unchecked"] += 1
        return
    caller = _hop_caller.get()
    kind = _classify(caller)
    if _mode != "strict":
        allowed = kind in ("test", "django") or (kind == "signal" and not _in_transaction())
        if allowed:
            _counts[f"{kind}_hops"] += 1
            _log({"event": "allowed", "test": _current_test, "caller": _where(caller)})
            return
    _counts["off_loop"] += 1
    statement = " ".join(str(sql).split())[:160]
    message = (
        f"SQL ran in thread {threading.current_thread().name!r}, off the event loop's "
        f"thread, while the loop was running; it was sent there by sync_to_async "
        f"from {_where(caller)}. With django_aio's drop-in this call should run "
        f"through the bridge on the loop's thread. Statement: {statement}"
    )
    _log(
        {
            "event": "violation",
            "test": _current_test,
            "kind": kind,
            "caller": _where(caller),
            "sql": statement,
        }
    )
    raise LoopThreadViolation(message)


def _wrap_set_running_loop() -> None:
    original = events._set_running_loop

    def _set_running_loop(loop: Any) -> None:
        thread = threading.get_ident()
        if loop is None:
            _running_loops.pop(thread, None)
        else:
            _running_loops[thread] = loop
        original(loop)

    events._set_running_loop = _set_running_loop  # type: ignore[assignment]


def _wrap_cursor() -> None:
    from django.db.backends import utils

    original = utils.CursorWrapper._execute_with_wrappers

    def _execute_with_wrappers(self: Any, sql: Any, params: Any, many: bool, executor: Any) -> Any:
        check_statement(sql)
        return original(self, sql, params, many, executor)

    utils.CursorWrapper._execute_with_wrappers = _execute_with_wrappers


def _wrap_sync_to_async() -> None:
    from asgiref.sync import SyncToAsync, markcoroutinefunction

    original: Callable[..., Coroutine[Any, Any, Any]] = SyncToAsync.__call__

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        # The frame that called sync_to_async(f)(...) is the one that made
        # this coroutine: that is the code that chose to hop to a thread.
        frame = sys._getframe(1)
        if frame.f_code.co_name == "_sync_to_async_call" and frame.f_back is not None:
            # django_aio.conn's thread-sensitive adapter (Note [Thread-sensitive
            # sync_to_async]) stands between: the caller is the frame above it.
            frame = frame.f_back
        code = frame.f_code
        caller = (code.co_filename, getattr(code, "co_qualname", code.co_name), frame.f_lineno)

        async def hop() -> Any:
            # asgiref copies the context into the worker thread after this.
            token = _hop_caller.set(caller)
            try:
                return await original(self, *args, **kwargs)
            finally:
                _hop_caller.reset(token)

        return hop()

    markcoroutinefunction(__call__)
    SyncToAsync.__call__ = __call__  # type: ignore[method-assign]


def _wrap_test_run() -> None:
    original = unittest.TestCase.run

    def run(self: unittest.TestCase, result: Any = None) -> Any:
        global _current_test
        _current_test = self.id()
        before = dict(_counts)
        try:
            return original(self, result)
        finally:
            delta = {key: _counts[key] - before[key] for key in _counts}
            if any(delta.values()):
                _log({"event": "test", "test": _current_test, **delta})
            _current_test = ""

    unittest.TestCase.run = run  # type: ignore[method-assign]


def install(mode: str, scope: str = "") -> None:
    """Install the check in this process (forked test workers inherit it)."""
    global _installed, _mode, _scope
    _mode = "strict" if mode.strip().lower() == "strict" else "on"
    _scope = tuple(label.strip() for label in scope.split(",") if label.strip())
    if _installed:
        return
    _installed = True
    _wrap_set_running_loop()
    _wrap_cursor()
    _wrap_sync_to_async()
    _wrap_test_run()


def install_from_environment() -> bool:
    """Install when DJANGO_AIO_ASSERT_LOOP_THREAD is set to a true value."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "0", "off", "false", "no"):
        return False
    install(value, os.environ.get(SCOPE_ENV, ""))
    return True
