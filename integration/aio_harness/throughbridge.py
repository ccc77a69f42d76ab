"""DJANGO_AIO_IT_THROUGH_BRIDGE: run every test of the suite inside ``run_sync()``.

In this mode each process of the run (the main one, each parallel worker)
has one event loop and one asyncio task that runs every step of every test
through ``django_aio.conn.run_sync``:

- the class fixtures (``setUpClass`` / ``tearDownClass``, so a TestCase's
  class transaction, its ``setUpTestData`` and fixtures) and the module
  fixtures, each as one ``run_sync`` call;
- each test (``TestCase.__call__``: Django's ``_pre_setup``, ``setUp``, the
  test, ``tearDown``, ``_post_teardown``) as one ``run_sync`` call.

Inside, ``django.db.connections[alias]`` is the task's async connection, so
every statement goes through django-aio's bridge, its I/O awaited on the
loop. Between steps the loop is not running, so unittest's own bookkeeping
runs as usual.

Note [The test thread's connection]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Django's test cases rely on ``connections[alias]`` being one object for a
whole class: a TestCase's class transaction is opened in ``setUpClass`` and
rolled back in ``tearDownClass``, and every class swaps the methods of the
connections it may not use for failing stand-ins in ``setUpClass`` and puts
them back in ``tearDownClass``. In the plain mode that object is the test
thread's connection. Here the task holds an async connection per alias
(``AsyncConnection.hold()``) from before a class's ``setUpClass`` to after
its ``tearDownClass``, so every ``run_sync`` call of the class gets the same
bridged wrapper, exactly as the thread's connection in the plain mode; a
``run_sync`` call otherwise takes a connection from the pool and gives it
back when it ends.

Tests that by nature cannot run inside a greenlet on a loop are listed, with
the reason, in the file named by ``DJANGO_AIO_IT_THROUGH_BRIDGE_LIST`` (see
integration/through-bridge-list.txt); they run the plain way (a listed
test of a ``django.test.TestCase`` takes its whole class with it).

Every statement Django executes is counted by the test (or class fixture)
that ran it: through a bridged wrapper (one paired with a pooled async
connection, inside ``run_sync``) or not. One JSON line per test goes to
``DJANGO_AIO_IT_BRIDGE_LOG``; run.py fails a test of a bridged class that ran
any statement outside the bridge.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import sys
import unittest
import unittest.suite
from collections.abc import Callable
from typing import Any

from aio_harness.bridgeloop import close, get_bridge

ENV = "DJANGO_AIO_IT_THROUGH_BRIDGE"
LIST_ENV = "DJANGO_AIO_IT_THROUGH_BRIDGE_LIST"
LOG_ENV = "DJANGO_AIO_IT_BRIDGE_LOG"

_listed: tuple[str, ...] = ()
_current = ""  # the test (or "setUpClass (module.Class)") whose statements are counted
_counts = {"bridged": 0, "plain": 0}
_installed = False


def read_list(path: str) -> dict[str, str]:
    """The explicit list: test id (or class, or module label) -> reason.

    A line holds an id; a ``# reason: ...`` line gives the reason of the ids
    below it, up to the next one. Other ``#`` lines and blank ones are ignored.
    """
    listed: dict[str, str] = {}
    reason = ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if line.startswith("# reason:"):
                reason = line.removeprefix("# reason:").strip()
            elif line and not line.startswith("#"):
                if not reason:
                    raise ValueError(f"{path}: {line} has no '# reason:' line above it")
                listed[line] = reason
    return listed


def class_is_listed(cls: type) -> bool:
    """Whether the whole class runs the plain way.

    Its module or the class itself is listed; or it is a ``django.test.TestCase``
    with a listed test: the class's transaction and the test's statements
    must be on one connection. (A listed test of another class runs plain
    alone, see ``test_is_listed``.)
    """
    from django.test import TestCase

    name = f"{cls.__module__}.{cls.__qualname__}"
    for entry in _listed:
        if name == entry or name.startswith(entry + "."):
            return True
        if entry.startswith(name + ".") and issubclass(cls, TestCase):
            return True
    return False


def test_is_listed(test: unittest.TestCase) -> bool:
    return test.id() in _listed or class_is_listed(type(test))


def _class_id(cls: type) -> str:
    return f"setUpClass ({cls.__module__}.{cls.__qualname__})"


def _in_bridge() -> bool:
    from django_aio.conn import in_bridge

    return in_bridge()


# -- counting statements ---------------------------------------------------


def _count(db: Any) -> None:
    # A bridged wrapper talks to a psycopg async connection, awaited on the
    # loop: a pooled one (its lease), or for one Django builds from it (the
    # maintenance database's, in _nodb_cursor()) its own.
    bridged = getattr(type(db), "django_aio_plain_class", None) is not None and _in_bridge()
    _counts["bridged" if bridged else "plain"] += 1


def _log(test: str, delta: dict[str, int], plain_class: bool) -> None:
    path = os.environ.get(LOG_ENV)
    if not path or not any(delta.values()):
        return
    line = json.dumps({"test": test, "listed": plain_class, **delta}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _counted(test: str, plain_class: bool, fn: Callable[[], Any]) -> Any:
    global _current
    before = dict(_counts)
    outer, _current = _current, test
    try:
        return fn()
    finally:
        _current = outer
        _log(test, {k: _counts[k] - before[k] for k in _counts}, plain_class)


# -- the wrapped unittest and Django hooks ----------------------------------


def _wrap_cursor() -> None:
    from django.db.backends import utils

    original = utils.CursorWrapper._execute_with_wrappers

    def _execute_with_wrappers(self: Any, sql: Any, params: Any, many: bool, executor: Any) -> Any:
        _count(self.db)
        return original(self, sql, params, many, executor)

    utils.CursorWrapper._execute_with_wrappers = _execute_with_wrappers


def _wrap_test_call(cls: type) -> None:
    original = cls.__call__

    def __call__(self: unittest.TestCase, *args: Any, **kwargs: Any) -> Any:
        if _in_bridge() or _current == self.id():  # Django's __call__ calls unittest's
            return original(self, *args, **kwargs)
        plain = test_is_listed(self)

        def run() -> Any:
            if plain:
                return original(self, *args, **kwargs)
            try:
                return get_bridge().run_sync(original, self, *args, **kwargs)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                # unittest lets BaseExceptions through (a CancelledError the
                # test raised in the task): an error of this test, not the
                # end of the worker.
                result = args[0] if args else kwargs.get("result")
                if result is None:
                    raise
                failure = RuntimeError(
                    f"{type(exc).__name__} escaped the test through run_sync(): {exc!r}"
                )
                result.addError(self, (RuntimeError, failure, exc.__traceback__))
                return None

        return _counted(self.id(), plain, run)

    cls.__call__ = __call__  # type: ignore[method-assign]


def _has(module: str, name: str) -> bool:
    return hasattr(sys.modules.get(module), name)


def _wrap_suite() -> None:
    suite = unittest.suite.TestSuite
    class_setup = suite._handleClassSetUp
    class_teardown = suite._tearDownPreviousClass
    module_setup = suite._handleModuleFixture
    module_teardown = suite._handleModuleTearDown
    run = suite.run

    # A suite run from inside a test (Django's test_utils and test_runner
    # tests run test cases of their own) is already in the bridge: it runs
    # as it would on the test thread.
    def _handleClassSetUp(self: Any, test: Any, result: Any) -> None:
        cls = test.__class__
        if _in_bridge():
            class_setup(self, test, result)
            return
        if (
            cls is getattr(result, "_previousTestClass", None)
            or getattr(result, "_moduleSetUpFailed", False)
            or getattr(cls, "__unittest_skip__", False)
            or class_is_listed(cls)
        ):
            _counted(_class_id(cls), True, lambda: class_setup(self, test, result))
            return
        bridge = get_bridge()
        bridge.hold_for(cls)
        _counted(_class_id(cls), False, lambda: bridge.run_sync(class_setup, self, test, result))
        if getattr(cls, "_classSetupFailed", False) and bridge.held_class is cls:
            bridge.release()

    def _tearDownPreviousClass(self: Any, test: Any, result: Any) -> None:
        previous = getattr(result, "_previousTestClass", None)
        if (
            _in_bridge()
            or previous is None
            or previous is test.__class__
            or class_is_listed(previous)
        ):
            class_teardown(self, test, result)
            return
        bridge = get_bridge()
        try:
            _counted(
                _class_id(previous).replace("setUpClass", "tearDownClass"),
                False,
                lambda: bridge.run_sync(class_teardown, self, test, result),
            )
        finally:
            if bridge.held_class is previous:
                bridge.release()

    def _handleModuleFixture(self: Any, test: Any, result: Any) -> None:
        module = test.__class__.__module__
        if (
            _in_bridge()
            or self._get_previous_module(result) == module
            or not _has(module, "setUpModule")
        ):
            module_setup(self, test, result)
            return
        get_bridge().run_sync(module_setup, self, test, result)

    def _handleModuleTearDown(self: Any, result: Any) -> None:
        module = self._get_previous_module(result)
        if _in_bridge() or module is None or not _has(module, "tearDownModule"):
            module_teardown(self, result)
            return
        get_bridge().run_sync(module_teardown, self, result)

    def run_suite(self: Any, result: Any, *args: Any, **kwargs: Any) -> Any:
        top_level = not getattr(result, "_testRunEntered", False) and not _in_bridge()
        try:
            return run(self, result, *args, **kwargs)
        finally:
            if top_level and multiprocessing.parent_process() is None:
                close()  # a serial run: before the test databases are dropped

    suite._handleClassSetUp = _handleClassSetUp  # type: ignore[method-assign]
    suite._tearDownPreviousClass = _tearDownPreviousClass  # type: ignore[method-assign]
    suite._handleModuleFixture = _handleModuleFixture  # type: ignore[method-assign]
    suite._handleModuleTearDown = _handleModuleTearDown  # type: ignore[method-assign]
    suite.run = run_suite  # type: ignore[method-assign]


def install(list_path: str) -> None:
    """Install the mode in this process (forked workers inherit it)."""
    global _installed, _listed
    if _installed:
        return
    _installed = True
    _listed = tuple(read_list(list_path)) if list_path else ()
    from django.test import SimpleTestCase

    _wrap_cursor()
    _wrap_test_call(unittest.TestCase)
    _wrap_test_call(SimpleTestCase)
    _wrap_suite()
    atexit.register(close)


def install_from_environment() -> bool:
    if os.environ.get(ENV, "") not in ("1", "on", "true"):
        return False
    install(os.environ.get(LIST_ENV, ""))
    return True
