"""``AsyncMixin``: awaitable model API (``Model.aobjects``, ``await obj.a<relation>``)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from django.db.models import Model

from ._async_query import AsyncQuery
from ._dispatch import run
from ._related_manager import AsyncRelatedManager

__all__ = ["AsyncMixin", "AsyncObjects"]

M = TypeVar("M", bound=Model)

# Per model class: accessor name -> (attribute name, is it a manager?)
_relations: dict[type[Any], dict[str, tuple[str, bool]]] = {}


def _relation_map(model: type[Any]) -> dict[str, tuple[str, bool]]:
    found = _relations.get(model)
    if found is not None:
        return found
    found = {}
    for field in model._meta.get_fields(include_hidden=False):
        if not field.is_relation:
            continue
        if field.auto_created and not field.concrete:
            name = field.get_accessor_name()  # reverse relation
            if not name:
                continue
        else:
            name = field.name
        found[name] = (name, bool(field.one_to_many or field.many_to_many))
    _relations[model] = found
    return found


class AsyncObjects:
    """The ``aobjects`` descriptor: an ``AsyncQuery`` of the model's default manager."""

    def __get__(self, instance: object, owner: type[M]) -> AsyncQuery[M]:
        if instance is not None:
            raise AttributeError(
                f"aobjects isn't accessible via {owner.__name__} instances; use "
                f"{owner.__name__}.aobjects."
            )
        return AsyncQuery(owner._default_manager.all())


class AsyncMixin:
    """Mix into a model for an awaitable API that never runs a query by accident.

    - ``await Pizza.aobjects.get(id=1)``, ``.count()``, ``.exists()``, ``.first()``,
      ``.eval()``, ``await Pizza.aobjects.filter(...)[0]``, ``async for``;
    - ``await pizza.asave()``, ``await pizza.adelete()``;
    - ``await pizza.a<fk>`` for a foreign key, one-to-one (both sides) or
      generic foreign key; ``pizza.a<m2m>`` / ``box.a<name>_set`` for the async
      related manager of a many-to-many, reverse foreign key or generic relation.
    """

    aobjects: AsyncObjects = AsyncObjects()

    if TYPE_CHECKING:
        pk: Any

    async def asave(self, *args: Any, **kwargs: Any) -> None:
        """``save()`` with its queries (and signal receivers) on the event loop."""
        await run(self.save, *args, **kwargs)

    async def adelete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """``delete()`` through the bridge (cascades and signals included)."""
        return await run(self.delete, *args, **kwargs)

    async def arefresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        """``refresh_from_db()`` through the bridge."""
        await run(self.refresh_from_db, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for missing attributes: `a<relation>`. Django probes
        # private names (`_prefetched_objects_cache`, ...) with hasattr in hot
        # paths: answer those at once.
        if name[:1] == "_":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        if name[:1] == "a":
            relation = _relation_map(type(self)).get(name[1:])
            if relation is not None:
                attribute, is_manager = relation
                if is_manager:
                    return AsyncRelatedManager(self, attribute)
                return _load(self, attribute)
        # A descriptor of the class raised AttributeError (a missing reverse
        # one-to-one raises RelatedObjectDoesNotExist, an AttributeError) and
        # Python fell back to us: raise its own error again, not ours. Django's
        # descriptors cached the miss, so this runs no second query.
        descriptor = inspect.getattr_static(type(self), name, None)
        if descriptor is not None and hasattr(type(descriptor), "__get__"):
            return descriptor.__get__(self, type(self))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _load(instance: Any, attribute: str) -> Awaitable[Any]:
    async def load() -> Any:
        return await run(getattr, instance, attribute)

    return load()


# Migrations list a model's bases by import path; use the public one.
AsyncMixin.__module__ = "django_aio.orm"
