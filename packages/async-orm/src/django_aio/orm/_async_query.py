"""``AsyncQuery``: an awaitable-only view of a queryset, for ``Model.aobjects``.

Chain methods return a new ``AsyncQuery``; methods that run a query are
coroutines with Django's names, unprefixed (``await q.get(...)``,
``await q.count()``, ``await q[0]``, ``await q.eval()``, ``async for``). It has
no sync evaluation at all, so it can't run a query by accident in async code.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterable, Iterator, Sequence
from typing import Any, Generic, NoReturn, TypeVar, overload

from django.db.models import Model, QuerySet

from ._dispatch import run
from ._queryset import AsyncQueryMethods, AsyncQuerySet

__all__ = ["AsyncQuery"]

M = TypeVar("M", bound=Model)

_LEN_MESSAGE = (
    "len() of an async query would run a database query synchronously; use "
    "`await query.count()` (Django: `await queryset.acount()`), or fetch the rows "
    "with `await query.eval()` and take len() of the list."
)
_BOOL_MESSAGE = (
    "the truth value of an async query would run a database query synchronously; "
    "use `await query.exists()` (Django: `await queryset.aexists()`)."
)
_NEGATIVE_INDEX_MESSAGE = (
    "Negative indexing is not supported (as in Django). For the last row use "
    "`await query.last()` (Django: `await queryset.alast()`); for the last n, "
    "reverse the ordering and slice: `await query.reverse()[:n].eval()`."
)
_ITER_MESSAGE = (
    "an async query can't be iterated synchronously; use `async for obj in query` "
    "or `await query.eval()`."
)


class AsyncQuery(Generic[M]):
    """An async-only facade over a Django ``QuerySet`` of ``M``."""

    __slots__ = ("queryset",)

    def __init__(self, queryset: QuerySet[M, Any]) -> None:
        #: The underlying Django ``QuerySet`` (for sync code and Django APIs).
        self.queryset = queryset

    def __repr__(self) -> str:
        return f"<AsyncQuery of {self.queryset.model.__name__}: {self.queryset.query}>"

    def _chain(self, queryset: Any) -> AsyncQuery[M]:
        return AsyncQuery(queryset)

    @property
    def model(self) -> type[M]:
        """The model class of the rows."""
        return self.queryset.model

    @property
    def db(self) -> str:
        """The database alias the query reads from."""
        return str(self.queryset.db)

    # -- chain methods (no query) -------------------------------------------

    def all(self) -> AsyncQuery[M]:
        """A copy of the query."""
        return self._chain(self.queryset.all())

    def filter(self, *args: Any, **kwargs: Any) -> AsyncQuery[M]:
        """As ``QuerySet.filter()``."""
        return self._chain(self.queryset.filter(*args, **kwargs))

    def exclude(self, *args: Any, **kwargs: Any) -> AsyncQuery[M]:
        """As ``QuerySet.exclude()``."""
        return self._chain(self.queryset.exclude(*args, **kwargs))

    def annotate(self, *args: Any, **kwargs: Any) -> AsyncQuery[M]:
        """As ``QuerySet.annotate()``."""
        return self._chain(self.queryset.annotate(*args, **kwargs))

    def alias(self, *args: Any, **kwargs: Any) -> AsyncQuery[M]:
        """As ``QuerySet.alias()``."""
        return self._chain(self.queryset.alias(*args, **kwargs))

    def order_by(self, *fields: Any) -> AsyncQuery[M]:
        """As ``QuerySet.order_by()``."""
        return self._chain(self.queryset.order_by(*fields))

    def reverse(self) -> AsyncQuery[M]:
        """As ``QuerySet.reverse()``."""
        return self._chain(self.queryset.reverse())

    def distinct(self, *fields: str) -> AsyncQuery[M]:
        """As ``QuerySet.distinct()``."""
        return self._chain(self.queryset.distinct(*fields))

    def select_related(self, *fields: str) -> AsyncQuery[M]:
        """As ``QuerySet.select_related()``."""
        return self._chain(self.queryset.select_related(*fields))

    def prefetch_related(self, *lookups: Any) -> AsyncQuery[M]:
        """As ``QuerySet.prefetch_related()``."""
        return self._chain(self.queryset.prefetch_related(*lookups))

    def only(self, *fields: str) -> AsyncQuery[M]:
        """As ``QuerySet.only()``."""
        return self._chain(self.queryset.only(*fields))

    def defer(self, *fields: str) -> AsyncQuery[M]:
        """As ``QuerySet.defer()``."""
        return self._chain(self.queryset.defer(*fields))

    def using(self, alias: str | None) -> AsyncQuery[M]:
        """As ``QuerySet.using()``."""
        return self._chain(self.queryset.using(alias))

    def select_for_update(self, **kwargs: Any) -> AsyncQuery[M]:
        """As ``QuerySet.select_for_update()`` (inside a transaction)."""
        return self._chain(self.queryset.select_for_update(**kwargs))

    def none(self) -> AsyncQuery[M]:
        """As ``QuerySet.none()``."""
        return self._chain(self.queryset.none())

    def values(self, *fields: Any, **expressions: Any) -> AsyncQuery[Any]:
        """As ``QuerySet.values()``: rows are dicts."""
        return AsyncQuery(self.queryset.values(*fields, **expressions))

    def values_list(self, *fields: Any, **kwargs: Any) -> AsyncQuery[Any]:
        """As ``QuerySet.values_list()``: rows are tuples (or values with ``flat``)."""
        return AsyncQuery(self.queryset.values_list(*fields, **kwargs))

    def union(self, *others: AsyncQuery[Any] | Any, all: bool = False) -> AsyncQuery[M]:
        """As ``QuerySet.union()``."""
        return self._chain(self.queryset.union(*_unwrap(others), all=all))

    def intersection(self, *others: AsyncQuery[Any] | Any) -> AsyncQuery[M]:
        """As ``QuerySet.intersection()``."""
        return self._chain(self.queryset.intersection(*_unwrap(others)))

    def difference(self, *others: AsyncQuery[Any] | Any) -> AsyncQuery[M]:
        """As ``QuerySet.difference()``."""
        return self._chain(self.queryset.difference(*_unwrap(others)))

    # -- evaluation (awaitable) ---------------------------------------------

    async def _target(self) -> AsyncQueryMethods[M]:
        return self._methods()

    def _methods(self) -> AsyncQueryMethods[M]:
        qs = self.queryset
        if not isinstance(qs, AsyncQuerySet):
            # A plain QuerySet (custom querysets included): borrow the bridged
            # methods without changing its class.
            return _Borrowed(qs)
        return qs

    async def get(self, *args: Any, **kwargs: Any) -> M:
        """The one matching row; ``DoesNotExist`` / ``MultipleObjectsReturned`` otherwise."""
        return await (await self._target()).aget(*args, **kwargs)

    async def create(self, **kwargs: Any) -> M:
        """Create and save a row."""
        return await (await self._target()).acreate(**kwargs)

    async def count(self) -> int:
        """``SELECT COUNT(*)`` of the query."""
        return await (await self._target()).acount()

    async def exists(self) -> bool:
        """Whether the query has any row."""
        return await (await self._target()).aexists()

    async def first(self) -> M | None:
        """The first row (by the ordering, else the primary key), or ``None``."""
        return await (await self._target()).afirst()

    async def last(self) -> M | None:
        """The last row, or ``None``."""
        return await (await self._target()).alast()

    async def earliest(self, *fields: str) -> M:
        """As ``QuerySet.earliest()``."""
        return await (await self._target()).aearliest(*fields)

    async def latest(self, *fields: str) -> M:
        """As ``QuerySet.latest()``."""
        return await (await self._target()).alatest(*fields)

    async def in_bulk(
        self, id_list: Iterable[Any] | None = None, *, field_name: str = "pk"
    ) -> dict[Any, M]:
        """As ``QuerySet.in_bulk()``."""
        return await (await self._target()).ain_bulk(id_list, field_name=field_name)

    async def update(self, **kwargs: Any) -> int:
        """``UPDATE`` the matching rows; returns how many."""
        return await (await self._target()).aupdate(**kwargs)

    async def delete(self) -> tuple[int, dict[str, int]]:
        """Delete the matching rows (cascades and signals included)."""
        return await (await self._target()).adelete()

    async def bulk_create(self, objs: Iterable[M], *args: Any, **kwargs: Any) -> list[M]:
        """As ``QuerySet.bulk_create()``."""
        return await (await self._target()).abulk_create(objs, *args, **kwargs)

    async def bulk_update(
        self, objs: Iterable[M], fields: Sequence[str], batch_size: int | None = None
    ) -> int:
        """As ``QuerySet.bulk_update()``."""
        return await (await self._target()).abulk_update(objs, fields, batch_size)

    async def get_or_create(
        self, defaults: dict[str, Any] | None = None, **kwargs: Any
    ) -> tuple[M, bool]:
        """As ``QuerySet.get_or_create()``."""
        return await (await self._target()).aget_or_create(defaults, **kwargs)

    async def update_or_create(
        self,
        defaults: dict[str, Any] | None = None,
        create_defaults: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> tuple[M, bool]:
        """As ``QuerySet.update_or_create()``."""
        return await (await self._target()).aupdate_or_create(defaults, create_defaults, **kwargs)

    async def contains(self, obj: M) -> bool:
        """Whether ``obj`` is in the query's rows."""
        return await (await self._target()).acontains(obj)

    async def explain(self, *, format: str | None = None, **options: Any) -> str:
        """PostgreSQL's ``EXPLAIN`` of the query."""
        return await (await self._target()).aexplain(format=format, **options)

    async def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """As ``QuerySet.aggregate()``."""
        return await (await self._target()).aaggregate(*args, **kwargs)

    async def eval(self) -> list[M]:
        """Run the query and return its rows as a list."""
        return await (await self._target()).alist()

    def iterator(self, chunk_size: int = 2000) -> AsyncGenerator[M, None]:
        """Stream rows through a server-side cursor (``async for``)."""
        return self._methods().aiterator(chunk_size)

    def __aiter__(self) -> AsyncIterator[M]:
        async def rows() -> AsyncIterator[M]:
            for row in await self.eval():
                yield row

        return rows()

    @overload
    def __getitem__(self, key: int) -> Coroutine[Any, Any, M]: ...
    @overload
    def __getitem__(self, key: slice) -> AsyncQuery[M]: ...
    def __getitem__(self, key: int | slice) -> Coroutine[Any, Any, M] | AsyncQuery[M]:
        """``query[2:5]`` is a sliced query; ``await query[0]`` fetches one row."""
        if isinstance(key, slice):
            return self._chain(self.queryset[key])
        if isinstance(key, int) and key < 0:
            raise ValueError(_NEGATIVE_INDEX_MESSAGE)
        return self._one(key)

    # Set operators, as on Django's querysets (``q1 | q2``): a new query of
    # the rows matching either / both / exactly one. The right operand may
    # be an AsyncQuery or a QuerySet.
    def __or__(self, other: AsyncQuery[M] | Any) -> AsyncQuery[M]:
        return self._combine(other, "__or__")

    def __and__(self, other: AsyncQuery[M] | Any) -> AsyncQuery[M]:
        return self._combine(other, "__and__")

    def __xor__(self, other: AsyncQuery[M] | Any) -> AsyncQuery[M]:
        return self._combine(other, "__xor__")

    def _combine(self, other: Any, operator: str) -> AsyncQuery[M]:
        if isinstance(other, AsyncQuery):
            other = other.queryset
        elif not isinstance(other, QuerySet):
            # Python then raises its own TypeError ("unsupported operand").
            return NotImplemented  # type: ignore[no-any-return]
        return self._chain(getattr(self.queryset, operator)(other))

    async def _one(self, index: int) -> M:
        target = await self._target()
        return await run(target._aio_queryset().__getitem__, index)

    # -- sync evaluation is refused -----------------------------------------

    def __len__(self) -> NoReturn:
        raise TypeError(_LEN_MESSAGE)

    def __bool__(self) -> NoReturn:
        raise TypeError(_BOOL_MESSAGE)

    def __iter__(self) -> Iterator[M]:
        raise TypeError(_ITER_MESSAGE)


class _Borrowed(AsyncQueryMethods[M]):
    """Runs ``AsyncQueryMethods`` against any queryset."""

    __slots__ = ("_qs",)

    def __init__(self, qs: Any) -> None:
        self._qs = qs

    def _aio_target(self) -> Any:
        return self._qs

    def _aio_queryset(self) -> Any:
        return self._qs


def _unwrap(queries: Sequence[Any]) -> list[Any]:
    return [q.queryset if isinstance(q, AsyncQuery) else q for q in queries]
