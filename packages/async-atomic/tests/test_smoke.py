from __future__ import annotations

import pytest
from atomic_testapp.models import Item

from django_aio.atomic import async_atomic
from django_aio.conn import run_sync

from .conftest import names

pytestmark = pytest.mark.usefixtures("clean_tables")


async def test_commit_and_rollback() -> None:
    async with async_atomic():
        await run_sync(Item.objects.create, name="a")
    with pytest.raises(ValueError):
        async with async_atomic():
            await run_sync(Item.objects.create, name="b")
            raise ValueError
    assert await names() == ["a"]
