"""The Django-based implementations: Django's async ORM, django-aio (drop-in, uvloop,
compiled queries) and django-async-backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from peer_base import SLEEP_SQL, Impl, _name


class DjangoNative(Impl):
    """Django's own async ORM: aget() and friends are sync_to_async around the sync ORM."""

    key = "django"
    title = "Django async ORM"
    flavour = "django"

    async def stop(self) -> None:
        from asgiref.sync import sync_to_async
        from django.db import connections

        await sync_to_async(connections.close_all)()

    async def get(self, pk: int) -> Any:
        from peerapp.models import Item

        return await Item.objects.aget(pk=pk)

    async def sleepy(self, pk: int) -> Any:
        from peerapp.models import Item

        return await Item.objects.extra(select={"slept": SLEEP_SQL}).aget(pk=pk)

    async def list100(self) -> Any:
        from peerapp.models import Item

        return [item async for item in Item.objects.order_by("id")[:100]]

    async def join(self) -> Any:
        from peerapp.models import Item

        items = [i async for i in Item.objects.select_related("author").order_by("id")[:100]]
        assert items[0].author.name
        return items

    async def create(self) -> Any:
        from peerapp.models import Author

        return await Author.objects.acreate(name=_name())

    async def atomic3(self) -> Any:
        # What Django users write: the transaction in a sync function, in the thread.
        from asgiref.sync import sync_to_async

        return await sync_to_async(_three_in_atomic)()


def _three_in_atomic() -> None:
    from django.db import transaction
    from peerapp.models import Author

    with transaction.atomic():
        for _ in range(3):
            Author.objects.create(name=_name())


class DjangoAio(DjangoNative):
    """django-aio drop-in: the same code as Django's, run through the bridge on the loop."""

    key = "aio"
    title = "django-aio drop-in"
    flavour = "aio"

    async def stop(self) -> None:
        from django_aio.conn import async_connections

        await async_connections.close_pools()

    async def atomic3(self) -> Any:
        from peerapp.models import Author

        from django_aio.atomic import async_atomic

        async with async_atomic():
            for _ in range(3):
                await Author.objects.acreate(name=_name())


class DjangoAioUvloop(DjangoAio):
    key = "aio_uvloop"
    title = "django-aio drop-in (uvloop)"
    uvloop = True


class DjangoAioCompiled(DjangoAio):
    """django-aio with ``CompiledQuery`` for the reads: built and compiled once, then run."""

    key = "aio_compiled"
    title = "django-aio compiled queries"

    async def start(self) -> None:
        await super().start()
        from peerapp.models import Item

        from django_aio.orm import CompiledQuery, Param

        self.by_pk = CompiledQuery(Item.objects.filter(pk=Param("pk")))
        self.sleepy_by_pk = CompiledQuery(
            Item.objects.extra(select={"slept": SLEEP_SQL}).filter(pk=Param("pk"))
        )
        self.first100 = CompiledQuery(Item.objects.order_by("id")[:100])
        self.first100_joined = CompiledQuery(
            Item.objects.select_related("author").order_by("id")[:100]
        )

    async def get(self, pk: int) -> Any:
        return await self.by_pk.aget(pk=pk)

    async def sleepy(self, pk: int) -> Any:
        return await self.sleepy_by_pk.aget(pk=pk)

    async def list100(self) -> Any:
        return await self.first100.alist()

    async def join(self) -> Any:
        items = await self.first100_joined.alist()
        assert items[0].author.name
        return items


class DjangoAsyncBackend(Impl):
    """django-async-backend: its own async ORM (``async_objects``) on psycopg's async connection.

    A connection belongs to the task that first used it, so each concurrent task
    takes its own with ``async_new_connection()`` (from the pool) for all its
    operations; sequential work reuses the main task's connection.
    """

    key = "dab"
    title = "django-async-backend"
    flavour = "dab"
    needs_python_312 = True

    async def stop(self) -> None:
        from django_async_backend.db import async_connections

        await async_connections.close_all()

    @contextlib.asynccontextmanager
    async def task_scope(self) -> AsyncIterator[None]:
        from django_async_backend.db import async_new_connection

        async with async_new_connection():
            yield

    async def get(self, pk: int) -> Any:
        from peerapp.models import Item

        return await Item.async_objects.aget(pk=pk)  # type: ignore[attr-defined]

    async def sleepy(self, pk: int) -> Any:
        from peerapp.models import Item

        queryset = Item.async_objects.extra(select={"slept": SLEEP_SQL})  # type: ignore[attr-defined]
        return await queryset.aget(pk=pk)

    async def list100(self) -> Any:
        from peerapp.models import Item

        return [item async for item in Item.async_objects.order_by("id")[:100]]  # type: ignore[attr-defined]

    async def join(self) -> Any:
        from peerapp.models import Item

        queryset = Item.async_objects.select_related("author").order_by("id")[:100]  # type: ignore[attr-defined]
        items = [item async for item in queryset]
        assert items[0].author.name
        return items

    async def create(self) -> Any:
        from peerapp.models import Author

        return await Author.async_objects.acreate(name=_name())  # type: ignore[attr-defined]

    async def atomic3(self) -> Any:
        from django_async_backend.db.transaction import async_atomic
        from peerapp.models import Author

        async with async_atomic():
            for _ in range(3):
                await Author.async_objects.acreate(name=_name())  # type: ignore[attr-defined]
