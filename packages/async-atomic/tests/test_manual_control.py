"""AsyncConnection's manual transaction API meeting async_atomic blocks (Django's rules)."""

from __future__ import annotations

import pytest
from atomic_testapp.models import Item
from django.db import IntegrityError
from django.db.transaction import TransactionManagementError

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections, run_sync

from .conftest import names

pytestmark = pytest.mark.usefixtures("clean_tables")

FORBIDDEN = "This is forbidden when an 'atomic' block is active."


async def create(name: str) -> Item:
    return await run_sync(Item.objects.create, name=name)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda conn: conn.set_autocommit(False), id="set_autocommit(False)"),
        pytest.param(lambda conn: conn.set_autocommit(True), id="set_autocommit(True)"),
        pytest.param(lambda conn: conn.commit(), id="commit"),
        pytest.param(lambda conn: conn.rollback(), id="rollback"),
    ],
)
async def test_forbidden_inside_an_atomic_block_as_in_django(call: object) -> None:
    conn = async_connections["default"]
    async with async_atomic():
        await create("a")
        with pytest.raises(TransactionManagementError) as raised:
            await call(conn)  # type: ignore[operator]
        assert str(raised.value) == FORBIDDEN
        # The refused call took nothing: the block goes on and commits.
        await create("b")
        assert await conn.get_autocommit() is False
    assert conn.lease is None
    assert await names() == ["a", "b"]


async def test_savepoints_inside_an_atomic_block() -> None:
    conn = async_connections["default"]
    async with async_atomic():
        await create("a")
        sid = await conn.savepoint()
        assert sid is not None
        await create("b")
        await conn.savepoint_rollback(sid)
        kept = await conn.savepoint()
        await create("c")
        await conn.savepoint_commit(kept)
    assert await names() == ["a", "c"]


async def test_rollback_flag_on_the_connection() -> None:
    conn = async_connections["default"]
    async with async_atomic():
        await create("a")
        assert conn.get_rollback() is False
        conn.set_rollback(True)
        assert conn.get_rollback() is True
        assert conn.needs_rollback is True
    assert await names() == []
    assert conn.needs_rollback is False


async def test_needs_rollback_after_an_error_in_a_block() -> None:
    conn = async_connections["default"]
    with pytest.raises(IntegrityError):
        async with async_atomic():
            await create("a")
            try:
                async with async_atomic(savepoint=False):
                    await create("a")
            except IntegrityError:
                assert conn.needs_rollback is True
                raise
    assert await names() == []


async def test_async_atomic_inside_a_manual_transaction_uses_savepoints() -> None:
    # As in Django: atomic() in a transaction opened by set_autocommit(False)
    # is a savepoint of it, and the outer transaction stays manual.
    conn = async_connections["default"]
    await conn.set_autocommit(False)
    try:
        await create("a")
        with pytest.raises(ValueError, match="inner"):
            async with async_atomic():
                await create("b")
                raise ValueError("inner")
        async with async_atomic():
            await create("c")
        assert await names() == []  # nothing committed yet
        await conn.commit()
    finally:
        await conn.set_autocommit(True)
    assert await names() == ["a", "c"]
