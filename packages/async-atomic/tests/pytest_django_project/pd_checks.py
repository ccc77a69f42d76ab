"""Run by test_pytest_django.py in a pytest process with pytest-django active.

pytest-django wraps each ``django_db`` test in the per-test atomic block of a
``django.test.TestCase`` (marked ``_from_testcase``), without the class block.
"""

from __future__ import annotations

from functools import partial

import pytest
from atomic_testapp.models import Item
from django.db import connection

from django_aio.atomic import (
    TransactionRequired,
    in_transaction,
    run_after_commit,
    transaction,
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
