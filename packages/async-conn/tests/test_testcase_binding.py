"""Django's own TestCase: bridged code sees (and writes into) the test's transaction."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connections
from django.test import SimpleTestCase, TestCase

from django_aio.conn import run_sync


class DisallowsDefault(SimpleTestCase):
    databases = {"other"}


class TestCaseBindingTests(TestCase):
    user: User

    @classmethod
    def setUpTestData(cls) -> None:
        cls.user = User.objects.create(username="bound")

    def setUp(self) -> None:
        User.objects.create(username="from-setup")

    async def test_bridged_code_sees_the_test_data(self) -> None:
        names = await run_sync(lambda: sorted(User.objects.values_list("username", flat=True)))
        assert names == ["bound", "from-setup"]

    async def test_bridged_writes_land_in_the_test_transaction(self) -> None:
        await run_sync(User.objects.create, username="from-bridge")
        assert await run_sync(User.objects.count) == 3

    async def test_sync_orm_outside_the_bridge_still_raises(self) -> None:
        with pytest.raises(SynchronousOnlyOperation):
            User.objects.count()

    def test_rolled_back_between_tests(self) -> None:
        # Sync, in the test thread: whatever other tests wrote is gone.
        assert sorted(User.objects.values_list("username", flat=True)) == ["bound", "from-setup"]


class AfterATestClassThatDisallowedDefault(TestCase):
    def setUp(self) -> None:
        # What a test class that does not use "default" leaves on its
        # connection when it ends (SimpleTestCase._remove_databases_failures).
        DisallowsDefault._add_databases_failures()
        DisallowsDefault._remove_databases_failures()
        assert "cursor" in vars(connections["default"])
        User.objects.create(username="sync")

    async def test_the_restored_methods_do_not_guard_the_bridge(self) -> None:
        assert await run_sync(User.objects.count) == 1

    async def test_outside_the_bridge_the_guard_stays(self) -> None:
        with pytest.raises(SynchronousOnlyOperation):
            User.objects.count()
