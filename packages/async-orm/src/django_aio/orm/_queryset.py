"""``AsyncQuerySet`` and ``AsyncManager``: Django's own classes, async methods bridged.

Their ``a*`` methods always run through the bridge, whether drop-in mode is on
or not, and add ``alist()``. Everything sync stays Django's, so admin, forms
and sync code keep working with these managers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from django.db.models import Model, QuerySet
from django.db.models.expressions import OrderBy
from django.db.models.manager import BaseManager, Manager

from django_aio.conn import in_bridge

from ._dispatch import run
from ._iteration import aiterator

__all__ = ["AsyncManager", "AsyncQueryMethods", "AsyncQuerySet", "AwaitableRow"]

M = TypeVar("M", bound=Model)
T = TypeVar("T")


# Django's own aiterator, whatever drop-in mode did to QuerySet since.
_django_aiterator = QuerySet.__dict__["aiterator"]


class AsyncQueryMethods(Generic[M]):
    """The async API shared by ``AsyncQuerySet`` and ``AsyncManager``."""

    def _aio_target(self) -> Any:
        # Managers run their own methods (a related manager's create() sets
        # the foreign key); querysets their own.
        return self

    def _aio_queryset(self) -> AsyncQuerySet[M]:
        if isinstance(self, QuerySet):
            return cast("AsyncQuerySet[M]", self)
        return self.get_queryset()  # type: ignore[attr-defined, no-any-return]

    async def aget(self, *args: Any, **kwargs: Any) -> M:
        """``get()`` with its query awaited on the event loop."""
        return await run(self._aio_target().get, *args, **kwargs)

    async def acreate(self, **kwargs: Any) -> M:
        """``create()`` through the bridge."""
        return await run(self._aio_target().create, **kwargs)

    async def acount(self) -> int:
        """``count()`` through the bridge."""
        return await run(self._aio_target().count)

    async def aexists(self) -> bool:
        """``exists()`` through the bridge."""
        return await run(self._aio_target().exists)

    async def afirst(self) -> M | None:
        """``first()`` through the bridge."""
        return await run(self._aio_target().first)

    async def alast(self) -> M | None:
        """``last()`` through the bridge."""
        return await run(self._aio_target().last)

    async def aearliest(self, *fields: str | OrderBy) -> M:
        """``earliest()`` through the bridge."""
        return await run(self._aio_target().earliest, *fields)

    async def alatest(self, *fields: str | OrderBy) -> M:
        """``latest()`` through the bridge."""
        return await run(self._aio_target().latest, *fields)

    async def ain_bulk(
        self, id_list: Iterable[Any] | None = None, *, field_name: str = "pk"
    ) -> dict[Any, M]:
        """``in_bulk()`` through the bridge."""
        return await run(
            self._aio_target().in_bulk,
            id_list=id_list,
            field_name=field_name,
        )

    async def aupdate(self, **kwargs: Any) -> int:
        """``update()`` through the bridge."""
        return await run(self._aio_target().update, **kwargs)

    async def adelete(self) -> tuple[int, dict[str, int]]:
        """``delete()`` through the bridge (cascades and signals included)."""
        return await run(self._aio_queryset().delete)

    async def abulk_create(self, objs: Iterable[M], *args: Any, **kwargs: Any) -> list[M]:
        """``bulk_create()`` through the bridge."""
        return await run(self._aio_target().bulk_create, objs, *args, **kwargs)

    async def abulk_update(
        self, objs: Iterable[M], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        """``bulk_update()`` through the bridge."""
        return await run(
            self._aio_target().bulk_update,
            objs,
            fields,
            batch_size=batch_size,
        )

    async def aget_or_create(
        self, defaults: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> tuple[M, bool]:
        """``get_or_create()`` through the bridge."""
        return await run(self._aio_target().get_or_create, defaults=defaults, **kwargs)

    async def aupdate_or_create(
        self,
        defaults: Mapping[str, Any] | None = None,
        create_defaults: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> tuple[M, bool]:
        """``update_or_create()`` through the bridge."""
        return await run(
            self._aio_target().update_or_create,
            defaults=defaults,
            create_defaults=create_defaults,
            **kwargs,
        )

    async def acontains(self, obj: Model) -> bool:
        """``contains()`` through the bridge."""
        return await run(self._aio_target().contains, obj)

    async def aexplain(self, *, format: str | None = None, **options: Any) -> str:
        """``explain()`` through the bridge."""
        return await run(self._aio_target().explain, format=format, **options)

    async def aaggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """``aggregate()`` through the bridge."""
        return await run(self._aio_target().aggregate, *args, **kwargs)

    async def alist(self) -> list[M]:
        """Evaluate the queryset (one query, prefetches included) and return its rows."""
        qs = self._aio_queryset()
        await run(qs._fetch_all)
        return list(qs._result_cache or ())

    def aiterator(self, chunk_size: int = 2000) -> AsyncGenerator[M, None]:
        """Stream the rows with a server-side cursor, ``chunk_size`` rows at a time.

        Memory stays flat however many rows there are; the task holds one
        connection until the iteration ends or is abandoned.
        """
        return aiterator(self._aio_queryset(), chunk_size, _django_aiterator)


class AwaitableRow(Generic[M]):
    """What ``queryset[i]`` is in async code: ``await`` it for the row.

    Reading an attribute of it (forgetting the ``await``) raises an error that
    says so, instead of failing later on a coroutine.
    """

    __slots__ = ("_index", "_queryset")

    def __init__(self, queryset: AsyncQuerySet[M], index: int) -> None:
        self._queryset = queryset
        self._index = index

    def __await__(self) -> Generator[Any, None, M]:
        return self._fetch().__await__()

    async def _fetch(self) -> M:
        qs, index = self._queryset, self._index
        if qs._result_cache is not None:  # evaluated or prefetched: no query
            return qs._result_cache[index]
        # In the bridge __getitem__ is Django's own (Note [Indexing]).
        return await run(qs.__getitem__, index)

    def __repr__(self) -> str:
        return f"<AwaitableRow {self._queryset.model.__name__}[{self._index}]>"

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"queryset[{self._index}] in async code must be awaited: use "
            f"`(await queryset[{self._index}]).{name}`."
        )


class AsyncQuerySet(AsyncQueryMethods[M], QuerySet[M, M]):
    """A Django ``QuerySet`` whose async methods run on the event loop; plus ``alist()``.

    Note [Indexing]
    ~~~~~~~~~~~~~~~
    In async code (a running loop in this thread, outside the bridge)
    ``qs[i]`` is an ``AwaitableRow``: ``await qs[i]`` runs the one-row query
    on the loop, or reads the row from the result cache if the queryset was
    evaluated or prefetched. Everywhere else (sync code, code run by
    ``run_sync``, Django's own internals) it is Django's ``__getitem__``, so
    admin, forms and sync code are unchanged. Slices are always Django's:
    they return querysets.
    """

    def __getitem__(self, k: int | slice) -> Any:
        """``await qs[i]`` in async code (Note [Indexing]); ``qs[a:b]`` is a queryset."""
        if isinstance(k, int) and not in_bridge() and _loop_running():
            if k < 0:
                raise ValueError("Negative indexing is not supported.")  # Django's words
            return AwaitableRow(self, k)
        return super().__getitem__(k)

    # Set operators keep the left operand's class: Django builds the result
    # from the model's base manager (a plain QuerySet) when that operand is
    # sliced, or returns a plain right operand as is.
    def __or__(self, other: Any) -> AsyncQuerySet[M]:
        return self._keep_class(super().__or__(other))

    def __and__(self, other: Any) -> AsyncQuerySet[M]:
        return self._keep_class(super().__and__(other))

    def __xor__(self, other: Any) -> AsyncQuerySet[M]:
        # Django 5.1+; in django-stubs 6.1, not 5.2.
        return self._keep_class(super().__xor__(other))  # type: ignore[misc, unused-ignore]

    def _keep_class(self, result: Any) -> AsyncQuerySet[M]:
        if isinstance(result, AsyncQuerySet):
            return result
        # A fresh copy of the result's state in an instance of our class
        # (``__class__`` assignment is refused: the layouts differ).
        clone = object.__new__(type(self))
        vars(clone).update(vars(result._chain()))
        return clone

    def __aiter__(self) -> AsyncIterator[M]:
        async def rows() -> AsyncIterator[M]:
            await run(self._fetch_all)
            for item in self._result_cache or ():
                yield item

        return rows()


if TYPE_CHECKING:
    # For type checkers (mypy with django-stubs, pyright) the manager is a
    # Django ``Manager[M]`` whose chain methods return ``AsyncQuerySet[M]``
    # (declared below); at run time it is built by ``from_queryset``.
    _ManagerBase = Manager
else:
    _ManagerBase = BaseManager.from_queryset(AsyncQuerySet)


class AsyncManager(AsyncQueryMethods[M], _ManagerBase[M]):
    """A real Django manager (admin, forms and sync code work) returning ``AsyncQuerySet``.

    ``objects: ClassVar[AsyncManager[Self]] = AsyncManager()`` (``typing.ClassVar`` and
    ``typing.Self``: the form django-stubs' mypy plugin and pyright both read).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Related managers subclass the model's default manager and define
        # their own a* methods with sync_to_async; bridge those too (Note
        # [How drop-in patches Django] does it for every manager).
        super().__init_subclass__(**kwargs)
        for name in _RELATED_ASYNC_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _bridged_method(name[1:]))

    if TYPE_CHECKING:
        # Django's chain methods, typed (at run time they are Django's own).
        def get_queryset(self) -> AsyncQuerySet[M]: ...
        def all(self) -> AsyncQuerySet[M]: ...
        def filter(self, *args: Any, **kwargs: Any) -> AsyncQuerySet[M]: ...
        def exclude(self, *args: Any, **kwargs: Any) -> AsyncQuerySet[M]: ...
        def complex_filter(self, filter_obj: Any) -> AsyncQuerySet[M]: ...
        def annotate(self, *args: Any, **kwargs: Any) -> AsyncQuerySet[M]: ...
        def alias(self, *args: Any, **kwargs: Any) -> AsyncQuerySet[M]: ...
        def order_by(self, *field_names: Any) -> AsyncQuerySet[M]: ...
        def reverse(self) -> AsyncQuerySet[M]: ...
        def distinct(self, *field_names: str) -> AsyncQuerySet[M]: ...
        def select_related(self, *fields: Any) -> AsyncQuerySet[M]: ...
        def prefetch_related(self, *lookups: Any) -> AsyncQuerySet[M]: ...
        def only(self, *fields: str) -> AsyncQuerySet[M]: ...
        def defer(self, *fields: Any) -> AsyncQuerySet[M]: ...
        def using(self, alias: str | None) -> AsyncQuerySet[M]: ...
        def select_for_update(self, *args: Any, **kwargs: Any) -> AsyncQuerySet[M]: ...
        def none(self) -> AsyncQuerySet[M]: ...
        def union(self, *other_qs: Any, all: bool = False) -> AsyncQuerySet[M]: ...
        def intersection(self, *other_qs: Any) -> AsyncQuerySet[M]: ...
        def difference(self, *other_qs: Any) -> AsyncQuerySet[M]: ...


_RELATED_ASYNC_METHODS = (
    "aadd",
    "aremove",
    "aclear",
    "aset",
    "acreate",
    "aget_or_create",
    "aupdate_or_create",
)


def _bridged_method(name: str) -> Callable[..., Any]:
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await run(getattr(self, name), *args, **kwargs)

    method.__name__ = method.__qualname__ = f"a{name}"
    method.__doc__ = f"``{name}()`` through the bridge."
    return method


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# Migrations refer to managers by import path; use the public one.
AsyncManager.__module__ = "django_aio.orm"
AsyncQuerySet.__module__ = "django_aio.orm"
