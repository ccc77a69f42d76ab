"""The implementations without Django: raw psycopg and SQLAlchemy's asyncio ORM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peer_base import POOL_SIZE, SLEEP_SQL, Impl, _name, database_url


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
