"""part_of_a_transaction(): a test's stand-in for the caller's transaction."""

from __future__ import annotations

from functools import partial

import pytest
from atomic_testapp.models import Item
from django.db import connection, connections
from django.db import transaction as django_transaction
from django.test import TestCase, override_settings

from django_aio.atomic import (
    AmbiguousAfterCommit,
    NotInATestCase,
    TransactionAlreadyOpen,
    TransactionRequired,
    UnhandledAfterCommitCallbacks,
    async_atomic,
    in_transaction,
    part_of_a_transaction,
    run_after_commit,
    savepoint,
    transaction,
    transaction_required,
)
from django_aio.conn import async_connections, run_sync
from django_aio.testing import AsyncioTestCase, AsyncioTransactionTestCase

from .conftest import Boom

NOT_IN_A_TEST = (
    "part_of_a_transaction() is a test helper: it stands in for a transaction only inside "
    "a test case's own transaction (Django's TestCase, pytest-django's django_db, "
    "django_aio.testing's AsyncioTestCase or aio_db), and there is none on database "
    "'default'. Outside tests, and in tests whose work commits (TransactionTestCase, "
    "AsyncioTransactionTestCase, transaction=True), open a real one with transaction()."
)


@transaction_required
def add_item(name: str, ran: list[str]) -> Item:
    """Code under test that leaves the transaction to its caller."""
    item = Item.objects.create(name=name)
    run_after_commit(partial(ran.append, f"after {name}"))
    return item


@transaction_required
async def aadd_item(name: str, ran: list[str]) -> None:
    await run_sync(Item.objects.create, name=name)
    run_after_commit(partial(ran.append, f"after {name}"))


def _forget_callbacks() -> None:
    connections["default"].run_on_commit = []


class InDjangoTestCase(TestCase):
    def test_transaction_required_code_runs_and_callbacks_run_on_exit(self) -> None:
        ran: list[str] = []
        with part_of_a_transaction():
            assert in_transaction()
            add_item("a", ran)
            with savepoint():
                add_item("b", ran)
            assert ran == []
        assert ran == ["after a", "after b"]
        assert not in_transaction()
        assert connection.run_on_commit == []
        assert Item.objects.count() == 2  # still in the test's transaction

    def test_as_a_decorator(self) -> None:
        ran: list[str] = []

        @part_of_a_transaction
        def call(name: str) -> None:
            add_item(name, ran)

        call("first")
        call("second")
        assert ran == ["after first", "after second"]

    def test_run_callbacks_false_drops_them(self) -> None:
        ran: list[str] = []
        with part_of_a_transaction(run_callbacks=False):
            add_item("quiet", ran)
        assert ran == []
        assert connection.run_on_commit == []
        assert Item.objects.filter(name="quiet").exists()

    def test_an_error_rolls_its_work_back(self) -> None:
        ran: list[str] = []
        with pytest.raises(Boom), part_of_a_transaction():
            add_item("rolled back", ran)
            raise Boom
        assert ran == []
        assert not Item.objects.exists()

    def test_refuses_to_nest_in_a_transaction(self) -> None:
        with (
            transaction(),
            pytest.raises(TransactionAlreadyOpen) as error,
            part_of_a_transaction(),
        ):
            pass
        assert str(error.value) == (
            "part_of_a_transaction() cannot run inside a transaction, but one is open on "
            "database(s) 'default'. It stands in for the transaction of the code under "
            "test; inside a transaction, call that code directly."
        )
        with django_transaction.atomic(), pytest.raises(TransactionAlreadyOpen):
            part_of_a_transaction().__enter__()

    async def test_async_code_in_a_django_test_case(self) -> None:
        # Django's TestCase lends its transaction to async code (django_aio.conn).
        ran: list[str] = []
        async with part_of_a_transaction():
            await aadd_item("async", ran)
        assert ran == ["after async"]
        assert await run_sync(Item.objects.filter(name="async").exists)

    async def test_plain_async_atomic_in_a_django_test_case_is_ambiguous(self) -> None:
        async with async_atomic():
            with pytest.raises(AmbiguousAfterCommit):
                run_after_commit(print)


def test_outside_tests_it_raises_and_leaves_nothing_open(clean_tables_sync: None) -> None:
    with pytest.raises(NotInATestCase) as error, part_of_a_transaction():
        Item.objects.create(name="never")
    assert str(error.value) == NOT_IN_A_TEST
    assert not connection.in_atomic_block
    assert connection.get_autocommit()
    assert not Item.objects.exists()


async def test_outside_tests_in_async_code(clean_tables: object) -> None:
    with pytest.raises(NotInATestCase):
        async with part_of_a_transaction():
            pass
    assert async_connections["default"].lease is None


async def test_in_a_pytest_rollback_test(aio_db: object) -> None:
    ran: list[str] = []
    async with part_of_a_transaction():
        await aadd_item("pytest", ran)
    assert ran == ["after pytest"]
    with pytest.raises(TransactionRequired):
        await aadd_item("outside", ran)


class InAsyncioTestCase(AsyncioTestCase):
    async def test_async_with(self) -> None:
        ran: list[str] = []
        async with part_of_a_transaction():
            await aadd_item("one", ran)
            assert ran == []
        assert ran == ["after one"]
        assert await run_sync(Item.objects.count) == 1

    def test_sync_with_in_a_sync_test(self) -> None:
        ran: list[str] = []
        with part_of_a_transaction():
            add_item("sync", ran)
        assert ran == ["after sync"]

    async def test_a_plain_async_atomic_is_not_ambiguous_here(self) -> None:
        # django_aio.testing runs the callbacks of the outermost block itself.
        ran: list[str] = []
        async with async_atomic():
            run_after_commit(partial(ran.append, "committed"))
        assert ran == ["committed"]

    @override_settings(DJANGO_AIO_RUN_AFTER_COMMIT_CALLBACKS_IN_TESTS=False)
    async def test_run_in_tests_setting_is_honoured(self) -> None:
        ran: list[str] = []
        async with async_atomic():
            run_after_commit(partial(ran.append, "plain"))
        assert ran == []
        # Left pending, as in Django's TestCase: the next block says so.
        with pytest.raises(UnhandledAfterCommitCallbacks):
            async with part_of_a_transaction():
                pass
        await run_sync(_forget_callbacks)
        async with part_of_a_transaction():
            run_after_commit(partial(ran.append, "part"))
        assert ran == []
        await run_sync(_forget_callbacks)

    @override_settings(DJANGO_AIO_AFTER_COMMIT_NEEDS_TRANSACTION=False)
    async def test_outside_a_transaction_sync_callbacks_run_at_once(self) -> None:
        ran: list[str] = []
        run_after_commit(partial(ran.append, "now"))
        assert ran == ["now"]

        async def acallback() -> None:
            ran.append("never")

        with pytest.raises(TypeError) as error:
            run_after_commit(acallback)
        assert str(error.value) == (
            "run_after_commit() cannot run the async callback "
            "InAsyncioTestCase.test_outside_a_transaction_sync_callbacks_run_at_once."
            "<locals>.acallback at once from async code: no transaction is open on "
            "database 'default' (and DJANGO_AIO_AFTER_COMMIT_NEEDS_TRANSACTION is False). "
            "Use `await on_commit(callback)`, which awaits it, or open a transaction."
        )
        await run_sync(run_after_commit, acallback)  # in the bridge it can be awaited
        assert ran == ["now", "never"]


class InAsyncioTransactionTestCase(AsyncioTransactionTestCase):
    async def test_refused_where_work_commits(self) -> None:
        with pytest.raises(NotInATestCase):
            async with part_of_a_transaction():
                await run_sync(Item.objects.create, name="rolled back")
        assert await run_sync(Item.objects.count) == 0
