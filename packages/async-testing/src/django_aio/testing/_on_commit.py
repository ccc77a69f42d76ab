"""``on_commit`` callbacks that run in rollback tests as they would in production.

Note [Realistic on_commit]
~~~~~~~~~~~~~~~~~~~~~~~~~~
In a rollback test every query runs inside the test's own atomic block, so
Django sees each ``atomic()`` of the code under test as a nested savepoint and
never runs ``on_commit`` callbacks. The test's block (the *base*) carries
Django's own mark for test-case blocks (``Atomic._from_testcase``, so durable
blocks open on it and django_aio.atomic sees no transaction there), and we
treat the first block above it as what it is in production, the outermost
transaction:

- ``on_commit()`` with only the base open runs the callback at once, as
  Django does in autocommit mode;
- when the outermost block exits without error, the callbacks registered in it
  run, in order, as after a real commit; a block that rolls back drops them
  (Django's savepoint bookkeeping already does that);
- an outermost block entered with ``savepoint=False`` still gets a savepoint,
  because in production its failure rolls the whole transaction back and later
  queries of the test must keep working, as they would after that rollback.

Only the test's connection is affected, and nothing of Django's is patched:
Django's ``Atomic`` works through the connection, so the connection's own
pieces do it. Its list of open blocks is ours while the test runs (a list
whose ``append()`` sees the outermost block entered, at the end of
``Atomic.__enter__``, and gives it its savepoint), and its class adds
``savepoint_commit()``/``savepoint_rollback()``, which ``Atomic.__exit__``
calls for that savepoint: released without a rollback before it, the block
committed, and its callbacks run (Note [Class swaps] in django_aio.conn's
_class_swap.py says why the class).

Note [Statements outside blocks]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
In production a query outside any block runs in autocommit: when it fails
(an ``IntegrityError`` the test expects, say) nothing else is lost and the
next query works. Inside the test's transaction the failure would abort it
and every later query of the test would fail. So a statement run with only
the base open gets its own savepoint, set and released on the raw psycopg
connection (so ``assertNumQueries`` does not count them), and Django's
``needs_rollback`` flag is not raised at that level, where production has no
transaction to mark. ``get_autocommit()`` is true there too, so
``select_for_update()`` outside a block fails as in production.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django_aio.atomic import after_commit_settings
from django_aio.atomic.layers import run_callback
from django_aio.conn.layers import swap_class

__all__ = ["CapturedCallbacks", "TestTransaction"]

STATE = "django_aio_test_transaction"
logger = logging.getLogger("django.db.backends.base")


@dataclass
class CapturedCallbacks:
    """Callbacks caught by a capture block: what the user sees, and how to run them."""

    callbacks: list[Callable[[], Any]] = field(default_factory=list)
    runnable: list[tuple[Callable[[], Any], bool]] = field(default_factory=list)
    open: bool = True

    def add(self, func: Callable[[], Any], robust: bool) -> None:
        self.callbacks.append(_users_callable(func))
        self.runnable.append((func, robust))


def _users_callable(func: Callable[[], Any]) -> Callable[[], Any]:
    """The function the user registered, not conn's wrapper that awaits async ones."""
    # conn's AsyncConnection.on_commit and atomic's on_commit both keep the
    # user's function as __wrapped__ on their wrapper.
    return getattr(func, "__wrapped__", func)


class _Captured:
    """A callback registered while a capture block was open."""

    def __init__(self, func: Callable[[], Any], robust: bool, capture: CapturedCallbacks) -> None:
        self.func = func
        self.robust = robust
        self.capture = capture
        # Django names the callback by its __qualname__ when a robust one fails.
        self.__qualname__ = getattr(func, "__qualname__", repr(func))

    def __call__(self) -> Any:
        return self.func()


def call_hook(func: Callable[[], Any], robust: bool) -> None:
    """Run one callback as Django's ``run_and_clear_commit_hooks`` does."""
    if isinstance(func, _Captured):
        func.capture.add(func.func, func.robust)
        return
    run_callback(func, robust)


class TestTransaction:
    """Marks the test's atomic block on one connection (Note [Realistic on_commit])."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.base_depth = len(connection.atomic_blocks)
        self.captures: list[CapturedCallbacks] = []
        # The savepoint of the outermost block of the code under test, and
        # how its exit went (Note [Realistic on_commit]).
        self.outer_sid: str | None = None
        self.outer_rolled_back = False
        self.outer_released = False

    def attach(self) -> None:
        connection = self.connection
        setattr(connection, STATE, self)
        connection.on_commit = self.on_commit
        connection.execute_wrappers.append(self.autocommit_statement)
        connection.atomic_blocks = _Blocks(self, connection.atomic_blocks)
        self.original_class = swap_class(connection, _test_class(type(connection)))

    def detach(self) -> None:
        connection = self.connection
        vars(connection).pop(STATE, None)
        vars(connection).pop("on_commit", None)
        if self.autocommit_statement in connection.execute_wrappers:
            connection.execute_wrappers.remove(self.autocommit_statement)
        if isinstance(connection.atomic_blocks, _Blocks):
            connection.atomic_blocks = list(connection.atomic_blocks)
        if type(connection) is _test_class(self.original_class):
            swap_class(connection, self.original_class)

    def entered_outermost(self) -> None:
        """The code under test entered its outermost block (end of ``Atomic.__enter__``).

        Note [Realistic on_commit]: it gets a savepoint even with
        ``savepoint=False``.
        """
        connection = self.connection
        sids = connection.savepoint_ids
        if sids and sids[-1] is None and not connection.needs_rollback:
            sids[-1] = connection.savepoint()
        self.outer_sid = sids[-1] if sids else None
        self.outer_rolled_back = self.outer_released = False

    def exiting_outermost(self, sid: Any) -> bool:
        """Whether ``Atomic.__exit__`` is ending the outermost block of the code under test."""
        return sid is not None and sid == self.outer_sid and not self.in_user_block()

    def autocommit_statement(
        self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
    ) -> Any:
        """Note [Statements outside blocks]."""
        if (
            self.in_user_block()
            or (isinstance(sql, str) and sql.lstrip().upper().startswith(_SAVEPOINT_SQL))
            or self.connection.needs_rollback
        ):
            return execute(sql, params, many, context)
        raw = self.connection.connection
        _run_raw(raw, f"SAVEPOINT {_STATEMENT_SAVEPOINT}")
        try:
            result = execute(sql, params, many, context)
        except BaseException:
            try:
                _run_raw(raw, f"ROLLBACK TO SAVEPOINT {_STATEMENT_SAVEPOINT}")
                _run_raw(raw, f"RELEASE SAVEPOINT {_STATEMENT_SAVEPOINT}")
            except Exception:
                logger.debug("could not roll back a failed statement's savepoint", exc_info=True)
            raise
        _run_raw(raw, f"RELEASE SAVEPOINT {_STATEMENT_SAVEPOINT}")
        return result

    def in_user_block(self) -> bool:
        return len(self.connection.atomic_blocks) > self.base_depth

    def on_commit(self, func: Callable[[], Any], robust: bool = False) -> None:
        if not callable(func):
            raise TypeError("on_commit()'s callback must be a callable.")
        if self.captures:
            func = _Captured(func, robust, self.captures[-1])
        if self.in_user_block():
            self.connection.run_on_commit.append((set(self.connection.savepoint_ids), func, robust))
        else:
            call_hook(func, robust)

    def run_committed(self) -> None:
        """The outermost user block committed: run what it registered.

        Unless the project turned that off for tests
        (``DJANGO_AIO_RUN_AFTER_COMMIT_CALLBACKS_IN_TESTS = False``): the
        callbacks are then left pending, as in Django's ``TestCase``.
        """
        if not after_commit_settings().run_in_tests:
            return
        pending, self.connection.run_on_commit = self.connection.run_on_commit, []
        for _sids, func, robust in pending:
            call_hook(func, robust)

    def start_capture(self) -> CapturedCallbacks:
        capture = CapturedCallbacks()
        self.captures.append(capture)
        return capture

    def stop_capture(self, capture: CapturedCallbacks) -> None:
        """End a capture; callbacks still waiting for their block are captured too."""
        if capture in self.captures:
            self.captures.remove(capture)
        capture.open = False
        keep = []
        for entry in self.connection.run_on_commit:
            func = entry[1]
            if isinstance(func, _Captured) and func.capture is capture:
                capture.add(func.func, func.robust)
            else:
                keep.append(entry)
        self.connection.run_on_commit = keep


_SAVEPOINT_SQL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
_STATEMENT_SAVEPOINT = "django_aio_statement"


def _run_raw(raw: Any, sql: str) -> None:
    cursor = raw.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


class _Blocks(list[Any]):
    """The test connection's ``atomic_blocks``: sees the outermost user block entered."""

    def __init__(self, state: TestTransaction, blocks: list[Any]) -> None:
        super().__init__(blocks)
        self.state = state

    def append(self, block: Any) -> None:
        super().append(block)
        if len(self) == self.state.base_depth + 1:
            self.state.entered_outermost()


_test_classes: dict[type[Any], type[Any]] = {}


def _test_class(cls: type[Any]) -> type[Any]:
    made = _test_classes.get(cls)
    if made is None:
        made = _test_classes[cls] = _make_test_class(cls)
    return made


def _make_test_class(cls: type[Any]) -> type[Any]:
    """``cls`` as production code sees it outside any block of its own.

    Note [Statements outside blocks]: ``needs_rollback`` stays down and
    ``get_autocommit()`` is true there.
    """

    def get(self: Any) -> bool:
        return bool(self.__dict__.get("needs_rollback", False))

    def set_(self: Any, value: bool) -> None:
        state = self.__dict__.get(STATE)
        if value and isinstance(state, TestTransaction) and not state.in_user_block():
            return  # Note [Statements outside blocks]
        self.__dict__["needs_rollback"] = value

    def get_autocommit(self: Any) -> bool:
        state = self.__dict__.get(STATE)
        if isinstance(state, TestTransaction) and not state.in_user_block():
            # What production code sees outside any block (Django's
            # select_for_update check, transaction.get_autocommit()).
            return True
        return bool(cls.get_autocommit(self))

    def savepoint_allowed(self: Any) -> bool:
        # Savepoints are real whatever get_autocommit() pretends above.
        return bool(self.features.uses_savepoints and not cls.get_autocommit(self))

    def close(self: Any) -> None:
        state = self.__dict__.get(STATE)
        if not isinstance(state, TestTransaction):
            cls.close(self)
        elif state.in_user_block():
            # Closing loses the code's transaction; the test's must survive.
            self.needs_rollback = True
        # Outside blocks (loaddata does it) production reconnects on next use;
        # the test keeps its connection.

    def savepoint_rollback(self: Any, sid: Any) -> None:
        state = self.__dict__.get(STATE)
        if isinstance(state, TestTransaction) and state.exiting_outermost(sid):
            if state.outer_released:
                # A callback run on its release failed; Atomic.__exit__ tries
                # to roll back a savepoint that is gone, as it would not try
                # after a real commit.
                return
            state.outer_rolled_back = True
        cls.savepoint_rollback(self, sid)

    def savepoint_commit(self: Any, sid: Any) -> None:
        state = self.__dict__.get(STATE)
        if not (isinstance(state, TestTransaction) and state.exiting_outermost(sid)):
            cls.savepoint_commit(self, sid)
            return
        if state.outer_released:
            return  # see savepoint_rollback above
        cls.savepoint_commit(self, sid)
        state.outer_released = True
        if not state.outer_rolled_back and not self.needs_rollback:
            # Released without a rollback first: the block committed
            # (Note [Realistic on_commit]). Atomic.__exit__ has nothing left
            # to do but this, as a real commit's callbacks run last.
            state.run_committed()

    return type(
        cls.__name__,
        (cls,),
        {
            "__module__": cls.__module__,
            "needs_rollback": property(get, set_),
            "get_autocommit": get_autocommit,
            "_savepoint_allowed": savepoint_allowed,
            "close": close,
            "savepoint_rollback": savepoint_rollback,
            "savepoint_commit": savepoint_commit,
        },
    )
