"""Run by test_pytest_django.py in a pytest process with pytest-django active.

pytest-django wraps each ``django_db`` test in the per-test atomic block of a
``django.test.TestCase`` (marked ``_from_testcase``), without the class block.
"""

from __future__ import annotations

from functools import partial

import pytest
from atomic_testapp.models import Item
from django.db import connection
from django.db import transaction as django_transaction

from django_aio.atomic import (
    AmbiguousAfterCommit,
    NotInATestCase,
    TransactionRequired,
    in_transaction,
    part_of_a_transaction,
    run_after_commit,
    transaction,
    transaction_required,
)


@pytest.mark.django_db
def test_1_callbacks_run_when_transaction_exits() -> None:
    assert [block._from_testcase for block in connection.atomic_blocks] == [True]
    built: list[str] = []
    with transaction():
        built.append("A")
        run_after_commit(partial(built.append, "C"))
        Item.objects.create(name="written")
        built.append("B")
    built.append("D")
    assert built == ["A", "B", "C", "D"]


@pytest.mark.django_db
def test_2_test_transaction_is_not_a_transaction() -> None:
    assert connection.in_atomic_block
    assert not in_transaction()
    with pytest.raises(TransactionRequired):
        run_after_commit(lambda: None)


@pytest.mark.django_db
def test_3_data_was_rolled_back() -> None:
    assert Item.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_4_transactional_test_commits_for_real() -> None:
    ran: list[str] = []
    with transaction():
        run_after_commit(partial(ran.append, "committed"))
        Item.objects.create(name="committed")
    assert ran == ["committed"]


@pytest.mark.django_db
def test_5_part_of_a_transaction_and_the_ambiguity_check() -> None:
    ran: list[str] = []
    with part_of_a_transaction(), transaction_required():
        run_after_commit(partial(ran.append, "ran"))
    assert ran == ["ran"]
    with django_transaction.atomic(), pytest.raises(AmbiguousAfterCommit):
        run_after_commit(partial(ran.append, "never"))


@pytest.mark.django_db(transaction=True)
def test_6_part_of_a_transaction_is_refused_where_work_commits() -> None:
    with pytest.raises(NotInATestCase), part_of_a_transaction():
        pass
