"""Turning drop-in mode off restores Django exactly; foreign ENGINEs keep the thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref import sync as asgiref_sync
from django.db import connections
from django.db.models import Model, query
from django.db.models.base import ModelBase
from django.db.models.fields import related_descriptors
from django.dispatch import Signal
from django.test import override_settings
from orm_testapp.models import Author

from django_aio.orm import drop_in, drop_in_enabled

from .conftest import SqlLog


@pytest.mark.threads_allowed
@pytest.mark.aio_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_without_drop_in_django_uses_a_thread(sql_log: SqlLog) -> None:
    main = threading.get_ident()
    with drop_in(False):
        await Author.objects.acreate(name="threaded")
        assert await Author.objects.acount() == 1
    threaded = sql_log.threads()
    # What loop_thread_only refuses in every other test.
    assert threaded
    assert main not in threaded
    sql_log.entries.clear()
    await Author.objects.filter(name="threaded").adelete()
    assert sql_log.threads() == {main}


def test_disabling_restores_djangos_objects() -> None:
    patched_aiterator = query.QuerySet.aiterator
    patched_get = related_descriptors.ForwardManyToOneDescriptor.__get__
    with drop_in(False):
        assert not drop_in_enabled()
        assert query.sync_to_async is asgiref_sync.sync_to_async
        assert related_descriptors.sync_to_async is asgiref_sync.sync_to_async
        assert query.QuerySet.aiterator.__module__ == "django.db.models.query"
        assert (
            Signal.asend.__module__
            == Signal.asend_robust.__module__
            == ("django.dispatch.dispatcher")
        )
        assert related_descriptors.ForwardManyToOneDescriptor.__get__.__module__ == (
            "django.db.models.fields.related_descriptors"
        )
        assert "__get__" not in vars(
            __import__(
                "django.contrib.contenttypes.fields", fromlist=["x"]
            ).ReverseGenericManyToOneDescriptor
        )
        assert Model.from_db.__module__ == "django.db.models.base"
        assert "__setattr__" not in vars(ModelBase)
        assert "__delattr__" not in vars(ModelBase)
    assert drop_in_enabled()
    assert Model.from_db.__module__ == "django_aio.orm._model_building"
    assert query.sync_to_async is not asgiref_sync.sync_to_async
    # Re-enabling patches again, with equivalent wrappers.
    assert query.QuerySet.aiterator.__qualname__ == patched_aiterator.__qualname__
    assert related_descriptors.ForwardManyToOneDescriptor.__get__.__wrapped__ is (
        patched_get.__wrapped__
    )


def test_the_setting_turns_drop_in_off_and_on() -> None:
    assert drop_in_enabled()
    with override_settings(DJANGO_AIO_DROP_IN=False):
        assert not drop_in_enabled()
    assert drop_in_enabled()


@contextmanager
def _plain_engine(alias: str) -> Iterator[None]:
    """``alias`` on Django's own PostgreSQL ENGINE for a block: not bridgeable."""
    settings_dict = connections.settings[alias]
    engine = settings_dict["ENGINE"]
    settings_dict["ENGINE"] = "django.db.backends.postgresql"
    try:
        yield
    finally:
        settings_dict["ENGINE"] = engine


@pytest.mark.threads_allowed
@pytest.mark.aio_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_aliases_on_other_engines_keep_djangos_thread(sql_log: SqlLog) -> None:
    main = threading.get_ident()
    with _plain_engine("other"):
        await Author.objects.using("other").acreate(name="plain")
        assert [a.name async for a in Author.objects.using("other").aiterator()] == ["plain"]
        await Author.objects.using("other").all().adelete()
        await Author.objects.acount()
    other_threads = {thread for thread, _, sql in sql_log.entries if "orm_testapp" in sql}
    assert other_threads - {main}, "the plain ENGINE alias should run in a thread"
    bridged = [sql for thread, in_bridge, sql in sql_log.entries if in_bridge]
    assert any("COUNT(*)" in sql for sql in bridged)


def _unpatched_orm_modules() -> list[str]:
    import importlib
    import pkgutil

    import django.db

    unpatched = []
    for info in pkgutil.walk_packages(django.db.__path__, "django.db."):
        if ".backends." in info.name and not info.name.startswith("django.db.backends.base"):
            continue  # other databases' drivers may be missing
        module = importlib.import_module(info.name)
        if getattr(module, "sync_to_async", None) is asgiref_sync.sync_to_async:
            unpatched.append(info.name)
    for name in (
        "django.contrib.contenttypes.fields",
        "django.core.paginator",
        "django.dispatch.dispatcher",
    ):
        module = importlib.import_module(name)
        if getattr(module, "sync_to_async", None) is asgiref_sync.sync_to_async:
            unpatched.append(name)
    return sorted(unpatched)


def test_every_django_orm_module_using_sync_to_async_is_patched() -> None:
    """A new Django version moving ORM async code to another module fails here."""
    assert _unpatched_orm_modules() == []
    with drop_in(False):
        found = _unpatched_orm_modules()
    assert {
        "django.contrib.contenttypes.fields",
        "django.db.models.base",
        "django.db.models.fields.related_descriptors",
        "django.db.models.query",
        "django.dispatch.dispatcher",
    } <= set(found)


async def test_no_thread_runs_orm_work_in_drop_in_mode(
    sql_log: SqlLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db.models import aprefetch_related_objects, signals
    from orm_testapp.models import Book, Tag

    hops: list[object] = []
    original_call = asgiref_sync.SyncToAsync.__call__

    async def counting_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(self.func)
        return await original_call(self, *args, **kwargs)

    monkeypatch.setattr(asgiref_sync.SyncToAsync, "__call__", counting_call)
    receiver_threads: list[int] = []

    def receiver(**kwargs: Any) -> None:
        receiver_threads.append(threading.get_ident())

    signals.post_save.connect(receiver, sender=Book)
    try:
        author = await Author.objects.acreate(name="Ann")
        book = await author.books.acreate(title="T")
        tag = await Tag.objects.acreate(name="t")
        await book.tags.aadd(tag)
        await book.asave()
        books = [b async for b in Book.objects.select_related("author")]
        await aprefetch_related_objects(books, "tags")
        assert [b.title async for b in Book.objects.aiterator(chunk_size=1)] == ["T"]
        await book.arefresh_from_db()
        await author.adelete()
    finally:
        signals.post_save.disconnect(receiver, sender=Book)
    main = threading.get_ident()
    assert hops == []
    assert sql_log.threads() == {main}
    assert receiver_threads == [main, main]


@pytest.mark.threads_allowed
@pytest.mark.aio_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_compiled_queries_on_other_engines_keep_djangos_thread(sql_log: SqlLog) -> None:
    from django_aio.orm import CompiledQuery, Param

    main = threading.get_ident()
    with _plain_engine("other"):
        await Author.objects.using("other").acreate(name="plain")
        by_name = CompiledQuery(Author.objects.using("other").filter(name=Param("name")))
        assert (await by_name.aget(name="plain")).name == "plain"
        assert (await Author.objects.db_manager("other").aget(name="plain")).name == "plain"
        await Author.objects.using("other").all().adelete()
    selects = [(thread, sql) for thread, _, sql in sql_log.entries if '"name" = %s' in sql]
    assert len(selects) == 2
    assert all(thread != main for thread, _ in selects), "the plain ENGINE alias runs in a thread"
