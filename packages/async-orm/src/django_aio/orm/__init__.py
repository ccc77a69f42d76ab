"""django_aio.orm: the whole Django ORM, truly async on PostgreSQL.

Add ``"django_aio.orm"`` to ``INSTALLED_APPS`` and Django's own async ORM API
(``aget``, ``acreate``, ``async for``, ``asave``, related managers' ``a*``, ...)
runs its queries on the event loop through ``django_aio.conn``'s bridge instead
of a thread (``DJANGO_AIO_DROP_IN = False`` turns that off). ``AsyncManager``,
``AsyncQuerySet`` and ``AsyncMixin`` add typed, awaitable APIs of their own;
``CompiledQuery`` runs a queryset built and compiled once with new values.
"""

from ._async_query import AsyncQuery
from ._compiled import CompiledQuery, Param
from ._dropin import disable_drop_in, drop_in, drop_in_enabled, enable_drop_in
from ._guards import deferred_message, queryset_message, relation_message
from ._mixin import AsyncMixin, AsyncObjects
from ._queryset import AsyncManager, AsyncQueryMethods, AsyncQuerySet, AwaitableRow
from ._related_manager import AsyncRelatedManager

__all__ = [
    "AsyncManager",
    "AsyncMixin",
    "AsyncObjects",
    "AsyncQuery",
    "AsyncQueryMethods",
    "AsyncQuerySet",
    "AsyncRelatedManager",
    "AwaitableRow",
    "CompiledQuery",
    "Param",
    "deferred_message",
    "disable_drop_in",
    "drop_in",
    "drop_in_enabled",
    "enable_drop_in",
    "queryset_message",
    "relation_message",
]
