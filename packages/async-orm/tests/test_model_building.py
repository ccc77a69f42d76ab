"""Drop-in's ``Model.from_db`` (Note [Model building]): Django's instances, with less work.

Each case builds instances with drop-in on and with Django's own
``from_db`` (drop-in off) and compares everything they hold: the instance's
attributes and its ``ModelState``'s, in order, related objects included.
The cases where the direct way would differ check that Django's way ran.
"""

from __future__ import annotations

import datetime
from typing import Any
from unittest import mock

import django
import pytest
from django.db import models
from django.db.models.base import DEFERRED
from django.db.models.signals import post_init, pre_init
from django.test.utils import isolate_apps
from orm_testapp.models import Author, AuthorProxy, Book, Collar, Owner, Pet, Restaurant, Topping

from django_aio.orm import drop_in
from django_aio.orm._model_building import _plans

pytestmark = pytest.mark.threads_allowed


def _snapshot(obj: Any, depth: int = 0) -> Any:
    if not isinstance(obj, models.Model) or depth > 3:
        return obj
    state = vars(obj._state)
    return (
        type(obj),
        [(key, _snapshot(value, depth + 1)) for key, value in vars(obj).items() if key != "_state"],
        [
            (
                key,
                {name: _snapshot(cached, depth + 1) for name, cached in value.items()}
                if key == "fields_cache"
                else value,
            )
            for key, value in state.items()
            if key != "peers"
        ],
    )


def _both_ways(build: Any) -> tuple[Any, Any]:
    with drop_in(False):
        django_built = build()
    return django_built, build()


@pytest.fixture
def rows() -> None:
    writer = Author.objects.create(name="writer", age=40)
    editor = Author.objects.create(name="editor")
    Book.objects.create(
        title="edited", author=writer, editor=editor, written=datetime.date(2001, 2, 3)
    )
    Book.objects.create(title="alone", author=writer)
    Restaurant.objects.create(name="the place", serves_pizza=True)
    owner = Owner.objects.create(name="owner")
    pet = Pet.objects.create(owner=owner)
    Collar.objects.create(pet=pet)
    Collar.objects.create(pet=None)
    Topping.objects.create(name="olive")


QUERIES = {
    "plain": lambda: list(Author.objects.order_by("pk")),
    "foreign keys, one null": lambda: list(Book.objects.order_by("pk")),
    "select_related": lambda: list(Book.objects.select_related("author", "editor").order_by("pk")),
    "a null foreign key's value": lambda: list(Collar.objects.order_by("pk")),
    "proxy": lambda: list(AuthorProxy.objects.order_by("pk")),
    "multi-table inheritance": lambda: list(Restaurant.objects.all()),
    "parent of a child": lambda: list(Restaurant.objects.select_related("place_ptr")),
    "deferred fields": lambda: list(Book.objects.only("title").order_by("pk")),
    "deferred foreign key": lambda: list(Book.objects.defer("author").order_by("pk")),
    "async mixin model": lambda: list(Topping.objects.all()),
    "values of get": lambda: [Book.objects.get(title="edited")],
    "refresh_from_db": lambda: [_refreshed()],
}


def _refreshed() -> Any:
    book = Book.objects.get(title="edited")
    book.refresh_from_db()
    return book


@pytest.mark.usefixtures("rows")
@pytest.mark.parametrize("query", QUERIES.values(), ids=QUERIES.keys())
def test_query_results_are_the_instances_django_builds(query: Any) -> None:
    django_built, built = _both_ways(query)
    assert built
    assert [_snapshot(obj) for obj in built] == [_snapshot(obj) for obj in django_built]


@pytest.mark.usefixtures("rows")
def test_plain_models_skip_init() -> None:
    # Otherwise every case above compares Django with itself.
    with mock.patch.object(models.Model, "__init__", autospec=True) as init:
        init.side_effect = AssertionError("never called")
        # Patching Model.__init__ is itself a change the plans must see.
        with pytest.raises(AssertionError):
            list(Author.objects.all())
    list(Book.objects.select_related("author"))
    assert _plans[Author] is not None
    assert _plans[Book] is not None


def test_direct_calls_with_deferred_values_and_fetch_mode() -> None:
    names = ["id", "name", "age"]

    def build(values: list[Any], **kwargs: Any) -> Any:
        return _both_ways(lambda: Author.from_db("default", names, values, **kwargs))

    for values in ([1, "a", 3], [1, DEFERRED, None], (2, "b", DEFERRED)):
        django_built, built = build(list(values))
        assert _snapshot(built) == _snapshot(django_built)
    if django.VERSION >= (6, 0):
        from django.db.models import FETCH_PEERS

        django_built, built = build([1, "a", 3], fetch_mode=FETCH_PEERS)
        assert built._state.fetch_mode is FETCH_PEERS
        assert _snapshot(built) == _snapshot(django_built)
    else:
        with pytest.raises(TypeError):
            Author.from_db("default", names, [1, "a", 3], fetch_mode=None)


def test_init_signal_receivers_still_run() -> None:
    seen: list[Any] = []

    def before(sender: Any, args: Any, kwargs: Any, **extra: Any) -> None:
        seen.append(("pre", sender, tuple(args)))

    def after(sender: Any, instance: Any, **extra: Any) -> None:
        seen.append(("post", sender, instance.name))

    for signal, receiver in ((pre_init, before), (post_init, after)):
        signal.connect(receiver, sender=Author)
        try:
            Author.from_db("default", ["id", "name", "age"], [1, "a", 3])
        finally:
            signal.disconnect(receiver, sender=Author)
    assert seen == [("pre", Author, (1, "a", 3)), ("post", Author, "a")]
    # Receivers of other models do not send Author's instances Django's way.
    post_init.connect(after, sender=Book)
    try:
        Author.from_db("default", ["id", "name", "age"], [2, "b", 3])
    finally:
        post_init.disconnect(after, sender=Book)
    assert len(seen) == 2


def test_a_descriptor_patched_in_is_used() -> None:
    written: list[Any] = []
    name = property(lambda self: "read", lambda self, value: written.append(value))
    Author.from_db("default", ["id", "name", "age"], [1, "before", 3])
    with mock.patch.object(Author, "name", name):
        built = Author.from_db("default", ["id", "name", "age"], [1, "set", 3])
    assert written == ["set"]
    assert "name" not in vars(built)
    after = Author.from_db("default", ["id", "name", "age"], [1, "after", 3])
    assert vars(after)["name"] == "after"


def _meta() -> type:
    class Meta:
        app_label = "orm_testapp"

    return Meta


@isolate_apps("orm_testapp")
def test_classes_that_do_more_take_djangos_way() -> None:
    calls: list[str] = []

    class Tail:
        def __init__(self) -> None:
            calls.append("tail")
            super().__init__()

    class WithTail(models.Model, Tail):
        Meta = _meta()
        name = models.CharField(max_length=10)

    class OwnInit(models.Model):
        Meta = _meta()
        name = models.CharField(max_length=10)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append("own")
            super().__init__(*args, **kwargs)

    class Setter(models.Model):
        Meta = _meta()
        name = models.CharField(max_length=10)

        def __setattr__(self, key: str, value: Any) -> None:
            calls.append(f"set {key}")
            super().__setattr__(key, value)

    class Upload(models.Model):
        Meta = _meta()
        upload = models.FileField()

    for model in (WithTail, OwnInit, Setter):
        model.from_db("default", ["id", "name"], [1, "x"])
    assert calls == ["tail", "own", "set _state", "set id", "set name"]
    upload = Upload.from_db("default", ["id", "upload"], [1, "a.txt"])
    assert upload.upload.name == "a.txt"
    assert _plans[Upload] is None
    assert all(_plans[model] is None for model in (WithTail, OwnInit, Setter))
