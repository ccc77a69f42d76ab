"""Fixture files, and async signal receivers inside the test's transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.db.models.signals import post_save
from testing_testapp.models import Author, Book

from django_aio.atomic import async_atomic
from django_aio.conn import ConnectionOwnedByAnotherTask, run_sync
from django_aio.testing import AsyncioTestCase, AsyncioTransactionTestCase


class FixtureFilesInARollbackTest(AsyncioTestCase):
    fixtures = ["authors.json"]

    async def test_fixture_rows_are_visible(self) -> None:
        book = await run_sync(lambda: Book.objects.select_related("author").get())
        assert (book.title, book.author.name) == ("Fixture Book", "Fixture Author")


class FixtureFilesInATransactionTest(AsyncioTransactionTestCase):
    fixtures = ["authors.json"]

    async def test_fixture_rows_are_visible(self) -> None:
        assert await run_sync(Author.objects.count) == 1


@pytest.fixture
def async_receiver() -> Iterator[list[Any]]:
    seen: list[Any] = []

    async def receiver(sender: type[Author], instance: Author, **kwargs: Any) -> None:
        # Runs in child tasks while the saving task waits (Django's
        # async_to_sync dispatch): they borrow the test's connection.
        seen.append(await run_sync(Author.objects.filter(pk=instance.pk).count))

    post_save.connect(receiver, sender=Author, dispatch_uid="testing-async-receiver")
    try:
        yield seen
    finally:
        post_save.disconnect(sender=Author, dispatch_uid="testing-async-receiver")


class AsyncReceivers(AsyncioTestCase):
    @pytest.fixture(autouse=True)
    def _receiver(self, async_receiver: list[Any]) -> None:
        self.seen = async_receiver

    async def test_async_receivers_see_the_uncommitted_row(self) -> None:
        await run_sync(Author.objects.create, name="signalled")
        assert self.seen == [1]

    async def test_and_inside_an_async_atomic_block(self) -> None:
        async with async_atomic():
            await run_sync(Author.objects.create, name="signalled")
        assert self.seen == [1]


class ChildTasksOfATransactionOfTheTest(AsyncioTestCase):
    async def test_are_refused_as_in_production(self) -> None:
        async def count() -> int:
            return await run_sync(Author.objects.count)

        async with async_atomic():
            with pytest.raises(ConnectionOwnedByAnotherTask, match="independent_connection"):
                await asyncio.create_task(count())
        assert await asyncio.create_task(count()) == 0
