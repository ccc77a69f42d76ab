"""The after-commit checks and settings in tests (Django's TestCase, sync code)."""

from __future__ import annotations

from functools import partial

import pytest
from atomic_testapp.models import Item
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db import transaction as django_transaction
from django.test import TestCase, override_settings

from django_aio.atomic import (
    AfterCommitSettings,
    AmbiguousAfterCommit,
    TransactionRequired,
    UnhandledAfterCommitCallbacks,
    after_commit_settings,
    in_transaction,
    part_of_a_transaction,
    run_after_commit,
    savepoint,
    transaction,
    transaction_if_not_already,
)

AMBIGUOUS = (
    "run_after_commit(AmbiguityCheck.{name}.<locals>.notify) was called inside a plain "
    "atomic() block on database 'default' that the test's own transaction turns into a "
    "savepoint: no commit will run the callback in this test, though in production it "
    "would run when that block commits. Open the block with transaction() so the "
    "callback runs when it exits, or, in a test that calls code needing a transaction "
    "directly, wrap the call in part_of_a_transaction(). Setting "
    "DJANGO_AIO_AFTER_COMMIT_AMBIGUITY_ERROR_IN_TESTS = False registers it anyway (it "
    "will not run)."
)

UNHANDLED = (
    "{what} found after-commit callbacks pending on database 'default' that no commit "
    "will run in this test: {names}. They were registered outside any transaction() "
    "(with on_commit() inside a plain atomic() block, which the test's own transaction "
    "turns into a savepoint, or directly in the test), so in production they would have "
    "run before this point. Register them inside transaction() (or, in a test that calls "
    "such code directly, part_of_a_transaction()), or set "
    "DJANGO_AIO_CATCH_UNHANDLED_AFTER_COMMIT_CALLBACKS_IN_TESTS = False to run them when "
    "{what} exits."
)


def send_mail() -> None:
    pass


def send_sms() -> None:
    pass


class AmbiguityCheck(TestCase):
    def test_run_after_commit_in_a_plain_atomic_raises(self) -> None:
        def notify() -> None:
            pass

        with django_transaction.atomic():
            Item.objects.create(name="kept")
            with pytest.raises(AmbiguousAfterCommit) as error:
                run_after_commit(notify)
            assert error.value.alias == "default"
            assert error.value.callback is notify
            # Nested savepoints inside the plain block are no better.
            with savepoint(), pytest.raises(AmbiguousAfterCommit):
                run_after_commit(notify)
        assert str(error.value) == AMBIGUOUS.format(
            name="test_run_after_commit_in_a_plain_atomic_raises"
        )
        assert connection.run_on_commit == []
        assert Item.objects.filter(name="kept").exists()  # the error does not roll back

    def test_transaction_if_not_already_inside_a_plain_atomic_is_ambiguous(self) -> None:
        def notify() -> None:
            pass

        with (
            django_transaction.atomic(),
            transaction_if_not_already(),
            pytest.raises(AmbiguousAfterCommit) as error,
        ):
            run_after_commit(notify)
        assert "run_after_commit(AmbiguityCheck.test_transaction_if" in str(error.value)

    def test_explicit_blocks_are_not_ambiguous(self) -> None:
        ran: list[str] = []
        with transaction(), savepoint(), django_transaction.atomic():
            run_after_commit(partial(ran.append, "transaction"))
        with part_of_a_transaction(), django_transaction.atomic():
            run_after_commit(partial(ran.append, "part_of_a_transaction"))
        assert ran == ["transaction", "part_of_a_transaction"]

    @override_settings(DJANGO_AIO_AFTER_COMMIT_AMBIGUITY_ERROR_IN_TESTS=False)
    def test_turned_off_the_callback_is_registered_and_never_runs(self) -> None:
        ran: list[str] = []
        with django_transaction.atomic():
            run_after_commit(partial(ran.append, "never"))
        assert ran == []
        assert len(connection.run_on_commit) == 1
        connection.run_on_commit = []

    @override_settings(SUBATOMIC_AFTER_COMMIT_AMBIGUITY_ERROR_IN_TESTS=False)
    def test_django_subatomic_name_turns_it_off_too(self) -> None:
        with django_transaction.atomic():
            run_after_commit(send_mail)
        assert len(connection.run_on_commit) == 1
        connection.run_on_commit = []


class UnhandledCheck(TestCase):
    def test_callbacks_left_by_a_plain_atomic_stop_transaction(self) -> None:
        ran: list[str] = []
        with django_transaction.atomic():
            django_transaction.on_commit(send_mail)
            django_transaction.on_commit(partial(send_sms))
        with pytest.raises(UnhandledAfterCommitCallbacks) as error, transaction():
            ran.append("body")  # never runs
        assert ran == []
        assert str(error.value) == UNHANDLED.format(
            what="transaction()", names="send_mail, partial(send_sms, ...)"
        )
        assert list(error.value.callbacks) == [entry[1] for entry in connection.run_on_commit]
        # The block it had opened is closed again: the test goes on.
        assert len(connection.atomic_blocks) == 2
        assert not in_transaction()
        connection.run_on_commit = []

    def test_transaction_if_not_already_and_part_of_a_transaction_check_too(self) -> None:
        django_transaction.on_commit(send_mail)
        with pytest.raises(UnhandledAfterCommitCallbacks) as first, transaction_if_not_already():
            pass
        with pytest.raises(UnhandledAfterCommitCallbacks) as second, part_of_a_transaction():
            pass
        assert str(first.value).startswith("transaction_if_not_already() found")
        assert str(second.value) == UNHANDLED.format(
            what="part_of_a_transaction()", names="send_mail"
        )
        connection.run_on_commit = []

    @override_settings(DJANGO_AIO_CATCH_UNHANDLED_AFTER_COMMIT_CALLBACKS_IN_TESTS=False)
    def test_turned_off_transaction_runs_them_when_it_exits(self) -> None:
        ran: list[str] = []
        django_transaction.on_commit(partial(ran.append, "left over"))
        with transaction():
            run_after_commit(partial(ran.append, "own"))
            assert ran == []
        assert ran == ["left over", "own"]
        assert connection.run_on_commit == []

    @override_settings(SUBATOMIC_CATCH_UNHANDLED_AFTER_COMMIT_CALLBACKS_IN_TESTS=False)
    def test_django_subatomic_name_turns_it_off_too(self) -> None:
        ran: list[str] = []
        django_transaction.on_commit(partial(ran.append, "left over"))
        with part_of_a_transaction():
            pass
        assert ran == ["left over"]


class RunInTestsSetting(TestCase):
    @override_settings(DJANGO_AIO_RUN_AFTER_COMMIT_CALLBACKS_IN_TESTS=False)
    def test_turned_off_callbacks_are_left_to_django(self) -> None:
        ran: list[str] = []
        with transaction():
            run_after_commit(partial(ran.append, "not run"))
        assert ran == []
        assert len(connection.run_on_commit) == 1
        connection.run_on_commit = []

    @override_settings(SUBATOMIC_RUN_AFTER_COMMIT_CALLBACKS_IN_TESTS=False)
    def test_django_subatomic_name(self) -> None:
        ran: list[str] = []
        with part_of_a_transaction():
            run_after_commit(partial(ran.append, "not run"))
        assert ran == []
        connection.run_on_commit = []


class NeedsTransactionSetting(TestCase):
    def test_by_default_run_after_commit_needs_a_transaction(self) -> None:
        with pytest.raises(TransactionRequired):
            run_after_commit(send_mail)

    @override_settings(DJANGO_AIO_AFTER_COMMIT_NEEDS_TRANSACTION=False)
    def test_turned_off_the_callback_runs_at_once(self) -> None:
        ran: list[str] = []
        run_after_commit(partial(ran.append, "now"))
        assert ran == ["now"]
        with transaction():  # inside one it still waits for the commit
            run_after_commit(partial(ran.append, "later"))
            assert ran == ["now"]
        assert ran == ["now", "later"]

    @override_settings(SUBATOMIC_AFTER_COMMIT_NEEDS_TRANSACTION=False)
    def test_django_subatomic_name_and_async_callbacks(self) -> None:
        ran: list[str] = []

        async def callback() -> None:
            ran.append("async")

        run_after_commit(callback)
        assert ran == ["async"]


def test_defaults() -> None:
    assert after_commit_settings() == AfterCommitSettings(
        needs_transaction=True,
        run_in_tests=True,
        catch_unhandled_in_tests=True,
        ambiguity_error_in_tests=True,
    )


def test_either_name_is_read() -> None:
    with override_settings(
        DJANGO_AIO_RUN_AFTER_COMMIT_CALLBACKS_IN_TESTS=False,
        SUBATOMIC_AFTER_COMMIT_NEEDS_TRANSACTION=False,
    ):
        assert after_commit_settings() == AfterCommitSettings(
            needs_transaction=False, run_in_tests=False
        )


def test_both_names_must_agree() -> None:
    with override_settings(
        DJANGO_AIO_AFTER_COMMIT_NEEDS_TRANSACTION=True,
        SUBATOMIC_AFTER_COMMIT_NEEDS_TRANSACTION=True,
    ):
        assert after_commit_settings().needs_transaction is True
    with (
        override_settings(
            DJANGO_AIO_AFTER_COMMIT_NEEDS_TRANSACTION=False,
            SUBATOMIC_AFTER_COMMIT_NEEDS_TRANSACTION=True,
        ),
        pytest.raises(ImproperlyConfigured) as error,
    ):
        after_commit_settings()
    assert str(error.value) == (
        "settings.DJANGO_AIO_AFTER_COMMIT_NEEDS_TRANSACTION = False and "
        "settings.SUBATOMIC_AFTER_COMMIT_NEEDS_TRANSACTION = True disagree; keep one of "
        "them (django_aio.atomic reads both)."
    )


def test_values_must_be_bools() -> None:
    with (
        override_settings(SUBATOMIC_RUN_AFTER_COMMIT_CALLBACKS_IN_TESTS="no"),
        pytest.raises(ImproperlyConfigured) as error,
    ):
        run_after_commit(send_mail)
    assert str(error.value) == (
        "settings.SUBATOMIC_RUN_AFTER_COMMIT_CALLBACKS_IN_TESTS must be True or False, not 'no'."
    )
