"""The explicit API in sync code, on Django's own sync connection."""

from __future__ import annotations

from functools import partial

import pytest
from atomic_testapp.models import Item
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection
from django.db import transaction as django_transaction

from django_aio.atomic import (
    DanglingTransaction,
    NotADecorator,
    TransactionAlreadyOpen,
    TransactionError,
    TransactionRequired,
    dbs_with_open_transactions,
    durable,
    in_transaction,
    run_after_commit,
    savepoint,
    transaction,
    transaction_if_not_already,
    transaction_required,
)

from .conftest import Boom

pytestmark = pytest.mark.usefixtures("clean_tables_sync")

REQUIRED = (
    "{what} needs an open transaction on database 'default', and there is none. Open one "
    "in the caller with `transaction()` (`async with transaction():` in async code). In "
    "tests, the test case's own transaction does not count: wrap the call in "
    "`transaction()` as production code would. A task created inside a transaction block "
    "does not share that transaction."
)
ALREADY_OPEN = (
    "transaction() cannot run inside a transaction, but one is open on database(s) "
    "'default'. Transactions do not nest: use savepoint() for a block that may roll back "
    "on its own, or transaction_required() for code that must run in its caller's "
    "transaction."
)


def names() -> list[str]:
    return sorted(Item.objects.values_list("name", flat=True))


def test_transaction_commits_and_rolls_back() -> None:
    with transaction():
        Item.objects.create(name="a")
        assert in_transaction()
    assert not in_transaction()
    with pytest.raises(Boom), transaction():
        Item.objects.create(name="b")
        raise Boom
    assert names() == ["a"]


def test_transaction_decorator_forms() -> None:
    @transaction
    def bare() -> str:
        Item.objects.create(name="bare")
        return "ok"

    @transaction(using="default")
    def with_args() -> None:
        Item.objects.create(name="args")
        raise LookupError

    assert bare() == "ok"
    with pytest.raises(LookupError):
        with_args()
    assert names() == ["bare"]
    assert bare.__name__ == "bare"


def test_transaction_inside_a_transaction_raises() -> None:
    with transaction():
        with pytest.raises(TransactionAlreadyOpen) as error, transaction():
            pass
        assert str(error.value) == ALREADY_OPEN
        assert error.value.aliases == frozenset({"default"})
    # Django's own atomic counts as a transaction too, and so does manual mode.
    with django_transaction.atomic(), pytest.raises(TransactionAlreadyOpen), transaction():
        pass
    connection.set_autocommit(False)
    try:
        with pytest.raises(TransactionAlreadyOpen), transaction():
            pass
    finally:
        connection.rollback()
        connection.set_autocommit(True)


def test_errors_are_public_and_transaction_management_errors() -> None:
    assert issubclass(TransactionRequired, TransactionError)
    assert issubclass(TransactionAlreadyOpen, django_transaction.TransactionManagementError)
    assert issubclass(TransactionAlreadyOpen, RuntimeError)  # as atomic(durable=True)
    assert issubclass(NotADecorator, TypeError)


def test_transaction_if_not_already() -> None:
    with transaction_if_not_already():
        Item.objects.create(name="own")
        assert in_transaction()
    assert names() == ["own"]

    with transaction():
        Item.objects.create(name="outer")
        depth = len(connection.savepoint_ids)
        with transaction_if_not_already():
            # Joins the open transaction: no savepoint of its own.
            assert len(connection.savepoint_ids) == depth
            Item.objects.create(name="joined")
        django_transaction.set_rollback(True)
    assert names() == ["own"]

    @transaction_if_not_already
    def decorated() -> None:
        Item.objects.create(name="decorated")

    decorated()
    assert names() == ["decorated", "own"]


def test_savepoint_needs_a_transaction() -> None:
    with pytest.raises(TransactionRequired) as error, savepoint():
        pass
    assert str(error.value) == REQUIRED.format(what="savepoint()")
    # Django's atomic counts as a transaction.
    with django_transaction.atomic(), savepoint():
        pass


def test_savepoint_rolls_back_only_its_block() -> None:
    with transaction():
        Item.objects.create(name="kept")
        with pytest.raises(Boom), savepoint():
            Item.objects.create(name="dropped")
            raise Boom
    assert names() == ["kept"]


def test_savepoint_is_not_a_decorator() -> None:
    with pytest.raises(NotADecorator) as error:

        @savepoint()
        def f() -> None: ...

    assert str(error.value) == (
        "savepoint() is a context manager, not a decorator. Open it inside the function, "
        "where the code that handles its rollback lives: `with savepoint(): ...` (`async "
        "with` in async code)."
    )


def test_transaction_required() -> None:
    @transaction_required
    def needs() -> str:
        return "ran"

    @transaction_required(using="default")
    def needs_default() -> str:
        return "ran"

    with pytest.raises(TransactionRequired) as error:
        needs()
    assert str(error.value) == REQUIRED.format(what="transaction_required()")
    with pytest.raises(TransactionRequired), transaction_required():
        pass
    with transaction():
        assert needs() == needs_default() == "ran"
        with transaction_required():
            Item.objects.create(name="a")
    assert names() == ["a"]


def test_durable_refuses_an_open_transaction() -> None:
    @durable
    def important() -> None:
        Item.objects.create(name="important")

    with transaction(), pytest.raises(TransactionAlreadyOpen) as error:
        important()
    assert str(error.value) == (
        "durable function test_durable_refuses_an_open_transaction.<locals>.important "
        "cannot run inside a transaction, but one is open on database(s) 'default'. Its "
        "work would be rolled back if the open transaction is; call it after the "
        "transaction, e.g. from run_after_commit()."
    )
    important()
    assert names() == ["important"]


def test_durable_rolls_back_a_dangling_transaction() -> None:
    @durable
    def leaky() -> None:
        connection.set_autocommit(False)
        Item.objects.create(name="dangling")

    with pytest.raises(DanglingTransaction) as error:
        leaky()
    assert str(error.value) == (
        "durable function test_durable_rolls_back_a_dangling_transaction.<locals>.leaky "
        "returned with a transaction still open on database(s) 'default'; it was rolled "
        "back. Close every transaction the function opens, e.g. with `transaction()` "
        "instead of set_autocommit(False)."
    )
    assert connection.get_autocommit()
    assert not in_transaction()
    assert names() == []


def test_durable_cleans_up_an_atomic_block_left_open_by_a_failing_function() -> None:
    @durable
    def broken() -> None:
        django_transaction.atomic().__enter__()
        Item.objects.create(name="dangling")
        raise KeyError("original")

    with pytest.raises(DanglingTransaction) as error:
        broken()
    assert isinstance(error.value.__context__, KeyError)
    assert not connection.in_atomic_block
    assert connection.get_autocommit()
    assert names() == []


def test_run_after_commit() -> None:
    ran: list[str] = []

    async def async_callback() -> None:
        ran.append("async")

    with pytest.raises(TransactionRequired) as error:
        run_after_commit(partial(ran.append, "never"))
    assert str(error.value) == REQUIRED.format(what="run_after_commit()")
    assert ran == []

    with transaction():
        run_after_commit(partial(ran.append, "sync"))
        run_after_commit(async_callback)
        with pytest.raises(Boom), savepoint():
            run_after_commit(partial(ran.append, "rolled back"))
            raise Boom
        assert ran == []
    assert ran == ["sync", "async"]

    with pytest.raises(Boom), transaction():
        run_after_commit(partial(ran.append, "dropped"))
        raise Boom
    assert ran == ["sync", "async"]


def test_in_transaction_and_dbs_with_open_transactions() -> None:
    assert not in_transaction()
    assert dbs_with_open_transactions() == frozenset()
    with transaction(using="other"):
        assert dbs_with_open_transactions() == frozenset({"other"})
        assert in_transaction(using="other")
        assert not in_transaction()
        with transaction():
            assert dbs_with_open_transactions() == frozenset({"default", "other"})


async def test_sync_form_in_async_code_names_the_async_form() -> None:
    with pytest.raises(SynchronousOnlyOperation) as error, transaction():
        pass
    assert str(error.value) == (
        "`with transaction()` was used in async code; use `async with transaction()` there "
        "(or decorate an `async def`). The sync form is for sync code, including code run "
        "by django_aio.conn.run_sync()."
    )
