"""``AsyncRelatedManager``: ``AsyncQuery`` over a related manager (``obj.arel.books``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from typing import Any, TypeVar

from django.core.exceptions import SynchronousOnlyOperation
from django.db.models import Model, QuerySet

from ._async_query import AsyncQuery
from ._dispatch import run
from ._queryset import AsyncQueryMethods

__all__ = ["AsyncRelatedManager"]

M = TypeVar("M", bound=Model)


class AsyncRelatedManager(AsyncQuery[M]):
    """An async facade over a related manager (reverse FK, M2M, generic relation).

    The query methods of ``AsyncQuery`` plus the manager's writes, awaitable.
    """

    __slots__ = ("_attribute", "_manager", "_owner")

    def __init__(self, owner: Any, attribute: str) -> None:
        self._owner = owner
        self._attribute = attribute
        self._manager: Any = None

    @property
    def manager(self) -> Any:
        """The underlying Django related manager."""
        if self._manager is None:
            self._manager = getattr(self._owner, self._attribute)
        return self._manager

    async def _load_manager(self) -> Any:
        if self._manager is None:
            try:
                self._manager = getattr(self._owner, self._attribute)
            except SynchronousOnlyOperation:
                # A generic relation's manager looks up its ContentType on
                # creation; with a cold cache that is a query: run it bridged.
                self._manager = await run(getattr, self._owner, self._attribute)
        return self._manager

    async def _target(self) -> AsyncQueryMethods[M]:
        await self._load_manager()
        return self._methods()

    @property  # read-only here: the relation's manager gives it
    def queryset(self) -> QuerySet[M, Any]:  # type: ignore[override]
        """The manager's current queryset: each evaluation runs a fresh query,
        unless the relation was prefetched."""
        queryset: QuerySet[M, Any] = self.manager.all()
        return queryset

    def __repr__(self) -> str:
        return f"<AsyncRelatedManager {type(self._owner).__name__}.{self._attribute}>"

    def _chain(self, queryset: Any) -> AsyncQuery[M]:
        return AsyncQuery(queryset)

    async def iterator(self, chunk_size: int = 2000) -> AsyncGenerator[M, None]:
        """Stream the related rows through a server-side cursor (``async for``)."""
        target = await self._target()
        async with aclosing(target.aiterator(chunk_size)) as rows:
            async for row in rows:
                yield row

    async def add(self, *objs: Any, **kwargs: Any) -> None:
        """As the related manager's ``add()``."""
        await run((await self._load_manager()).add, *objs, **kwargs)

    async def remove(self, *objs: Any, **kwargs: Any) -> None:
        """As the related manager's ``remove()`` (nullable foreign keys and M2M)."""
        await run((await self._load_manager()).remove, *objs, **kwargs)

    async def clear(self, **kwargs: Any) -> None:
        """As the related manager's ``clear()``."""
        await run((await self._load_manager()).clear, **kwargs)

    async def set(self, objs: Iterable[Any], **kwargs: Any) -> None:
        """As the related manager's ``set()``."""
        await run((await self._load_manager()).set, objs, **kwargs)

    async def create(self, **kwargs: Any) -> M:
        """Create a related row (M2M: ``through_defaults=`` accepted)."""
        return await run((await self._load_manager()).create, **kwargs)

    async def get_or_create(  # type: ignore[override]
        self, **kwargs: Any
    ) -> tuple[M, bool]:
        """As the related manager's ``get_or_create()``."""
        return await run((await self._load_manager()).get_or_create, **kwargs)

    async def update_or_create(  # type: ignore[override]
        self, **kwargs: Any
    ) -> tuple[M, bool]:
        """As the related manager's ``update_or_create()``."""
        return await run((await self._load_manager()).update_or_create, **kwargs)
