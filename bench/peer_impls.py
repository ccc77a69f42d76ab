"""One implementation, one process: the worker that bench/peers.py starts for each round.

Usage (peers.py does this):  python bench/peer_impls.py IMPL [--scale 1.0] [--setup]

Runs every workload for ``IMPL`` (warm-up, then a timed pass) and prints one
JSON line ``{"workload": ops_per_second, ...}``. ``--setup`` instead creates
and fills the tables. The server comes from ``DATABASE_URL`` (peers.py sets it).

Every implementation runs the same queries on the same tables, with a pool of
16 connections:

- get:      an item by primary key, sequentially;
- conc_get: the same from 32 concurrent tasks;
- io_conc:  50 concurrent tasks, each query takes 5 ms on the server (pg_sleep);
- list100:  a list of 100 items;
- join:     100 items with their author (select_related / joinedload / a JOIN);
- create:   one insert;
- atomic3:  three inserts in one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

POOL_SIZE = 16
ITEMS = 1000
AUTHORS = 10
SLEEP = 0.005
SLEEP_SQL = f"pg_sleep({SLEEP})::text"

_names = itertools.count()


def _name() -> str:
    return f"bench {os.getpid()} {next(_names)}"


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set: run bench/peers.py, which sets it")
    return url


# -- implementations -----------------------------------------------------------


class Impl:
    """The operations every implementation provides; one instance per process."""

    key: ClassVar[str]
    title: ClassVar[str]
    flavour: ClassVar[str | None] = None  # the Django settings it needs, if any
    uvloop: ClassVar[bool] = False
    needs_python_312: ClassVar[bool] = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @contextlib.asynccontextmanager
    async def task_scope(self) -> AsyncIterator[None]:
        """Entered by each concurrent task around all of its operations."""
        yield

    async def get(self, pk: int) -> Any:
        raise NotImplementedError

    async def sleepy(self, pk: int) -> Any:
        raise NotImplementedError

    async def list100(self) -> Any:
        raise NotImplementedError

    async def join(self) -> Any:
        raise NotImplementedError

    async def create(self) -> Any:
        raise NotImplementedError

    async def atomic3(self) -> Any:
        raise NotImplementedError


class RawPsycopg(Impl):
    """psycopg's AsyncConnectionPool (autocommit) and hand-written SQL: the floor."""

    key = "raw"
    title = "raw psycopg"

    async def start(self) -> None:
        import psycopg_pool

        self.pool = psycopg_pool.AsyncConnectionPool(
            database_url(),
            min_size=POOL_SIZE,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True},
            open=False,
        )
        await self.pool.open(wait=True)

    async def stop(self) -> None:
        await self.pool.close()

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

    async def get(self, pk: int) -> Any:
        rows = await self._fetch(
            "SELECT id, name, value, author_id FROM peer_item WHERE id = %s", (pk,)
        )
        return rows[0]

    async def sleepy(self, pk: int) -> Any:
        rows = await self._fetch(
            f"SELECT id, name, value, author_id, {SLEEP_SQL} FROM peer_item WHERE id = %s",
            (pk,),
        )
        return rows[0]

    async def list100(self) -> Any:
        return await self._fetch(
            "SELECT id, name, value, author_id FROM peer_item ORDER BY id LIMIT 100"
        )

    async def join(self) -> Any:
        return await self._fetch(
            "SELECT i.id, i.name, i.value, i.author_id, a.id, a.name"
            " FROM peer_item i JOIN peer_author a ON a.id = i.author_id"
            " ORDER BY i.id LIMIT 100"
        )

    async def create(self) -> Any:
        rows = await self._fetch(
            "INSERT INTO peer_author (name) VALUES (%s) RETURNING id", (_name(),)
        )
        return rows[0]

    async def atomic3(self) -> Any:
        async with self.pool.connection() as conn, conn.transaction():
            for _ in range(3):
                await conn.execute(
                    "INSERT INTO peer_author (name) VALUES (%s) RETURNING id", (_name(),)
                )


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


class SQLAlchemyORM(Impl):
    """SQLAlchemy 2's asyncio ORM on psycopg's async dialect; a session per operation."""

    key = "sqlalchemy"
    title = "SQLAlchemy asyncio ORM"

    async def start(self) -> None:
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        url = database_url().replace("postgresql://", "postgresql+psycopg_async://", 1)
        self.engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        self.models = _sqlalchemy_models()

    async def stop(self) -> None:
        await self.engine.dispose()

    async def get(self, pk: int) -> Any:
        async with self.session() as session:
            return await session.get(self.models.Item, pk)

    async def sleepy(self, pk: int) -> Any:
        from sqlalchemy import select, text

        Item = self.models.Item
        statement = select(Item, text(SLEEP_SQL)).where(Item.id == pk)
        async with self.session() as session:
            return (await session.execute(statement)).one()

    async def list100(self) -> Any:
        from sqlalchemy import select

        Item = self.models.Item
        async with self.session() as session:
            return (await session.scalars(select(Item).order_by(Item.id).limit(100))).all()

    async def join(self) -> Any:
        from sqlalchemy import select
        from sqlalchemy.orm import joinedload

        Item = self.models.Item
        statement = select(Item).options(joinedload(Item.author)).order_by(Item.id).limit(100)
        async with self.session() as session:
            items = (await session.scalars(statement)).all()
        assert items[0].author.name
        return items

    async def create(self) -> Any:
        author = self.models.Author(name=_name())
        async with self.session() as session, session.begin():
            session.add(author)
        return author

    async def atomic3(self) -> Any:
        async with self.session() as session, session.begin():
            for _ in range(3):
                session.add(self.models.Author(name=_name()))
                await session.flush()  # one INSERT each, as the others do


@dataclass
class _SAModels:
    Author: Any
    Item: Any


def _sqlalchemy_models() -> _SAModels:
    # Columns without annotations: this module's ``from __future__ import
    # annotations`` would hide ``Mapped`` from SQLAlchemy's resolver here.
    from sqlalchemy import ForeignKey, Integer, String
    from sqlalchemy.orm import DeclarativeBase, mapped_column, relationship

    class Base(DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = "peer_author"
        id = mapped_column(Integer, primary_key=True)
        name = mapped_column(String(50), nullable=False)

    class Item(Base):
        __tablename__ = "peer_item"
        id = mapped_column(Integer, primary_key=True)
        name = mapped_column(String(50), nullable=False)
        value = mapped_column(Integer, nullable=False)
        author_id = mapped_column(ForeignKey("peer_author.id"), nullable=False)
        author = relationship(Author)

    return _SAModels(Author, Item)


IMPLEMENTATIONS: dict[str, type[Impl]] = {
    cls.key: cls
    for cls in (
        RawPsycopg,
        DjangoNative,
        DjangoAsyncBackend,
        SQLAlchemyORM,
        DjangoAio,
        DjangoAioUvloop,
        DjangoAioCompiled,
    )
}


# -- workloads -----------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    ops: int  # operations in one timed pass at scale 1
    tasks: int  # concurrent tasks; 1 = sequential
    run: Callable[[Impl, int], Awaitable[Any]]  # (impl, i) -> one operation


WORKLOADS = [
    Workload("get", "get by pk", 2000, 1, lambda impl, i: impl.get(i % ITEMS + 1)),
    Workload("conc_get", "get, 32 tasks", 3200, 32, lambda impl, i: impl.get(i % ITEMS + 1)),
    Workload(
        "io_conc", "5 ms query, 50 tasks", 500, 50, lambda impl, i: impl.sleepy(i % ITEMS + 1)
    ),
    Workload("list100", "list 100 rows", 400, 1, lambda impl, i: impl.list100()),
    Workload("join", "select_related 100", 300, 1, lambda impl, i: impl.join()),
    Workload("create", "create", 1000, 1, lambda impl, i: impl.create()),
    Workload("atomic3", "3 creates, atomic", 400, 1, lambda impl, i: impl.atomic3()),
]


async def run_workload(impl: Impl, workload: Workload, ops: int) -> float:
    """Run ``ops`` operations; ops/s."""
    per_task = max(1, ops // workload.tasks)

    async def task(t: int) -> None:
        async with impl.task_scope():
            for i in range(t * per_task, (t + 1) * per_task):
                await workload.run(impl, i)

    started = time.perf_counter()
    if workload.tasks == 1:
        for i in range(ops):
            await workload.run(impl, i)
        done = ops
    else:
        await asyncio.gather(*(task(t) for t in range(workload.tasks)))
        done = per_task * workload.tasks
    return done / (time.perf_counter() - started)


async def warm_up(impl: Impl, workload: Workload, ops: int) -> None:
    """Run a fifth of a pass of ``ops`` operations, at least one per task, untimed."""
    await run_workload(impl, workload, max(workload.tasks, ops // 5))


async def run_all(impl: Impl, scale: float, only: list[str] | None) -> dict[str, float]:
    await impl.start()
    results = {}
    try:
        for workload in WORKLOADS:
            if only and workload.key not in only:
                continue
            ops = max(workload.tasks * 2, int(workload.ops * scale))
            await warm_up(impl, workload, ops)
            results[workload.key] = await run_workload(impl, workload, ops)
    finally:
        await impl.stop()
    return results


# -- set-up and entry point ----------------------------------------------------


def setup_database() -> None:
    """Create and fill the tables (Django's schema editor, stock backend)."""
    from django.db import connection
    from peerapp.models import Author, Item

    with connection.schema_editor() as editor:
        editor.execute("DROP TABLE IF EXISTS peer_item, peer_author")
        editor.create_model(Author)
        editor.create_model(Item)
    authors = Author.objects.bulk_create(Author(name=f"author {n}") for n in range(AUTHORS))
    Item.objects.bulk_create(
        Item(name=f"item {n}", value=n, author=authors[n % AUTHORS]) for n in range(ITEMS)
    )
    connection.close()


def new_event_loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop]:
    if use_uvloop:
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=IMPLEMENTATIONS)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", help="comma-separated workload keys")
    parser.add_argument("--setup", action="store_true", help="create and fill the tables")
    args = parser.parse_args()
    impl_class = IMPLEMENTATIONS[args.impl]
    if impl_class.flavour or args.setup:
        from peerapp.settings import configure

        configure(impl_class.flavour or "django")  # type: ignore[arg-type]
    if args.setup:
        setup_database()
        return
    only = args.only.split(",") if args.only else None
    with asyncio.Runner(loop_factory=new_event_loop_factory(impl_class.uvloop)) as runner:
        results = runner.run(run_all(impl_class(), args.scale, only))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
