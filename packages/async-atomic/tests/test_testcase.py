"""The explicit API inside django.test.TestCase's two test-case atomic blocks.

Django's TestCase opens one atomic block per class and one per test, both
marked ``_from_testcase``; pytest runs these unittest-style tests as Django's
runner would.
"""

from __future__ import annotations

import logging
from functools import partial

import pytest
from atomic_testapp.models import Item, Note
from django.db import connection
from django.db import transaction as django_transaction
from django.test import TestCase

from django_aio.atomic import (
    TransactionAlreadyOpen,
    TransactionRequired,
    UnhandledAfterCommitCallbacks,
    dbs_with_open_transactions,
    in_transaction,
    run_after_commit,
    savepoint,
    transaction,
    transaction_if_not_already,
    transaction_required,
)

from .conftest import Boom


def build_abcd() -> list[str]:
    built: list[str] = []
    with transaction():
        built.append("A")
        run_after_commit(partial(built.append, "C"))
        built.append("B")
    built.append("D")
    return built


class ExplicitApiInTestCase(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        Item.objects.create(name="class data")

    def test_runs_inside_two_test_case_blocks(self) -> None:
        assert len(connection.atomic_blocks) == 2
        assert all(block._from_testcase for block in connection.atomic_blocks)

    def test_test_case_transaction_is_not_a_transaction(self) -> None:
        assert connection.in_atomic_block
        assert not in_transaction()
        assert dbs_with_open_transactions() == frozenset()
        with pytest.raises(TransactionRequired), transaction_required():
            pass
        with pytest.raises(TransactionRequired), savepoint():
            pass
        with pytest.raises(TransactionRequired):
            run_after_commit(lambda: None)

    def test_callbacks_run_when_transaction_exits(self) -> None:
        assert build_abcd() == ["A", "B", "C", "D"]

    def test_callbacks_run_with_the_data_of_the_block(self) -> None:
        seen: list[list[str]] = []

        def check() -> None:
            seen.append(sorted(Item.objects.values_list("name", flat=True)))
            Note.objects.create(text="from callback")

        with transaction():
            Item.objects.create(name="in block")
            run_after_commit(check)
            assert seen == []
        assert seen == [["class data", "in block"]]
        assert Note.objects.count() == 1

    def test_callbacks_are_dropped_when_the_block_fails(self) -> None:
        ran: list[str] = []
        with pytest.raises(Boom), transaction():
            Item.objects.create(name="rolled back")
            run_after_commit(partial(ran.append, "dropped"))
            raise Boom
        with transaction():
            with pytest.raises(KeyError), savepoint():
                run_after_commit(partial(ran.append, "savepoint dropped"))
                raise KeyError
            django_transaction.on_commit(partial(ran.append, "django on_commit"))
        assert ran == ["django on_commit"]
        assert not Item.objects.filter(name="rolled back").exists()
        # Nothing is left for Django to run when the test transaction ends.
        assert connection.run_on_commit == []

    def test_set_rollback_drops_the_callbacks(self) -> None:
        ran: list[str] = []
        with transaction():
            run_after_commit(partial(ran.append, "dropped"))
            django_transaction.set_rollback(True)
        assert ran == []

    def test_callbacks_registered_outside_transaction_stop_the_next_one(self) -> None:
        # In production they would have run already; see test_after_commit_in_tests.py.
        ran: list[str] = []
        django_transaction.on_commit(partial(ran.append, "test body"))
        with pytest.raises(UnhandledAfterCommitCallbacks), transaction():
            run_after_commit(partial(ran.append, "block"))
        assert ran == []
        [(_, pending, _)] = connection.run_on_commit
        assert pending.func == ran.append
        assert pending.args == ("test body",)

    def test_robust_callback_errors_are_logged(self) -> None:
        ran: list[str] = []

        def broken() -> None:
            raise RuntimeError("callback failed")

        with self.assertLogs("django.db.backends", logging.ERROR) as logs, transaction():
            django_transaction.on_commit(broken, robust=True)
            run_after_commit(partial(ran.append, "next"))
        assert ran == ["next"]
        assert "callback failed" in logs.output[0]

    def test_non_robust_callback_error_propagates(self) -> None:
        def broken() -> None:
            raise RuntimeError("callback failed")

        with pytest.raises(RuntimeError, match="callback failed"), transaction():
            Item.objects.create(name="kept")
            run_after_commit(broken)
        assert Item.objects.filter(name="kept").exists()

    def test_transaction_still_refuses_to_nest(self) -> None:
        with transaction():
            assert in_transaction()
            with pytest.raises(TransactionAlreadyOpen), transaction():
                pass

    def test_transaction_if_not_already_runs_callbacks(self) -> None:
        ran: list[str] = []
        with transaction_if_not_already():
            run_after_commit(partial(ran.append, "ran"))
        assert ran == ["ran"]

    def test_async_callback_runs_in_sync_code(self) -> None:
        ran: list[str] = []

        async def callback() -> None:
            ran.append("async")

        with transaction():
            run_after_commit(callback)
        assert ran == ["async"]

    def test_data_is_rolled_back_by_the_test_case(self) -> None:
        # Sorted after tests that wrote items: only the class data is left.
        assert list(Item.objects.values_list("name", flat=True)) == ["class data"]
