"""create() of a plain model inserts without save()'s chain (Note [Direct creates]).

Which creates take the direct way, and that every other one, and every error,
is Django's: the same objects, rows, signals, hooks and messages as with
``DJANGO_AIO_QUERY_CACHE = False``, where Django's own create() runs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import django
import pytest
from django.db import IntegrityError, connections, transaction
from django.db.models import Model, QuerySet, Value
from django.db.models.functions import Lower
from django.db.models.signals import post_init, post_save, pre_save
from django.db.transaction import TransactionManagementError
from django.test.utils import override_settings
from django.utils import timezone
from orm_testapp.models import (
    Author,
    AuthorProxy,
    Note,
    Owner,
    Pet,
    Profile,
    Restaurant,
    Stamped,
    Token,
)

from django_aio.atomic import async_atomic
from django_aio.conn import run_sync
from django_aio.orm._direct_create import direct_creates_run

DJANGO_S = override_settings(DJANGO_AIO_QUERY_CACHE=False)


@pytest.fixture
def direct() -> Callable[[], int]:
    """How many creates took the direct way since the test started."""
    start = direct_creates_run()
    return lambda: direct_creates_run() - start


async def _warm_up() -> Owner:
    # Django writes Author's and Pet's INSERTs once; from then on they are kept.
    await Author.objects.acreate(name="warm-up", age=1)
    owner = await Owner.objects.acreate(name="owner")
    await Pet.objects.acreate(owner=owner)
    return owner


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """pre_save and post_save as Author's receivers see them."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def pre(sender: Any, **kwargs: Any) -> None:
        seen.append(("pre_save", kwargs))

    def post(sender: Any, **kwargs: Any) -> None:
        seen.append(("post_save", kwargs))

    pre_save.connect(pre, sender=Author, weak=False, dispatch_uid="direct-create-pre")
    post_save.connect(post, sender=Author, weak=False, dispatch_uid="direct-create-post")
    yield seen
    pre_save.disconnect(sender=Author, dispatch_uid="direct-create-pre")
    post_save.disconnect(sender=Author, dispatch_uid="direct-create-post")


async def test_a_plain_create_is_direct(direct: Callable[[], int]) -> None:
    owner = await _warm_up()
    before = direct()
    made = [await Author.objects.acreate(name=f"author {n}", age=n) for n in range(3)]
    pet = await owner.pets.acreate()  # a related manager's create()
    in_bridge = await run_sync(lambda: Author.objects.create(name="sync", age=9))
    assert direct() - before == 5
    assert [(a.name, a.age, a._state.adding, a._state.db) for a in made] == [
        (f"author {n}", n, False, "default") for n in range(3)
    ]
    stored = [a async for a in Author.objects.filter(name__startswith="author").order_by("age")]
    assert [(a.pk, a.name, a.age) for a in stored] == [(a.pk, a.name, a.age) for a in made]
    assert (await Pet.objects.aget(pk=pet.pk)).owner_id == owner.pk == pet.owner_id
    assert (await Author.objects.aget(pk=in_bridge.pk)).name == "sync"


async def test_the_object_is_django_s() -> None:
    await _warm_up()
    ours = await Author.objects.acreate(name="ours", age=3)
    with DJANGO_S:
        theirs = await Author.objects.acreate(name="theirs", age=3)

    def state(author: Author) -> tuple[Any, ...]:
        fields = {k: v for k, v in vars(author).items() if k not in ("_state", "id", "name")}
        return (type(author.pk), fields, vars(author._state))

    assert ours.pk == theirs.pk - 1
    assert state(ours) == state(theirs)


async def test_receivers_make_it_django_s(
    direct: Callable[[], int], received: list[tuple[str, dict[str, Any]]]
) -> None:
    await _warm_up()
    received.clear()
    before = direct()
    author = await Author.objects.acreate(name="heard", age=4)
    assert direct() == before
    assert [(name, kwargs["instance"]) for name, kwargs in received] == [
        ("pre_save", author),
        ("post_save", author),
    ]
    assert received[1][1]["created"] is True
    assert received[1][1]["using"] == "default"


async def test_a_receiver_for_another_model_keeps_it_direct(direct: Callable[[], int]) -> None:
    await _warm_up()
    seen: list[Any] = []

    def on_pet(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(instance)

    post_save.connect(on_pet, sender=Pet, weak=False, dispatch_uid="direct-create-pet")
    try:
        before = direct()
        # Connecting empties the signal's cache of receivers per sender: the
        # first save sends and fills it (Author has none), the next ones read it.
        for n in range(3):
            await Author.objects.acreate(name=f"unheard {n}", age=5)
        assert direct() - before == 2
    finally:
        post_save.disconnect(sender=Pet, dispatch_uid="direct-create-pet")
    assert seen == []


async def test_init_signals_run_once_either_way() -> None:
    await _warm_up()
    seen: list[Any] = []

    def on_init(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(instance)

    post_init.connect(on_init, sender=Author, weak=False, dispatch_uid="direct-create-init")
    try:
        direct_one = await Author.objects.acreate(name="init", age=6)
        fallback = await Author.objects.acreate(id=10_000, name="init pk", age=6)
    finally:
        post_init.disconnect(sender=Author, dispatch_uid="direct-create-init")
    assert seen == [direct_one, fallback]


@pytest.mark.parametrize(
    ("model", "arguments"),
    [
        (Stamped, lambda n: {"label": "own save"}),  # its save() runs
        (AuthorProxy, lambda n: {"name": f"proxy {n}"}),  # the signals' sender is the proxy
        (Restaurant, lambda n: {"name": "child", "serves_pizza": True}),  # parents
        (Token, lambda n: {"label": "uuid"}),  # a primary key with a default
        (Author, lambda n: {"id": 20_000 + n, "name": f"chosen pk {n}"}),  # a given key
    ],
    ids=["own save", "proxy", "parents", "key default", "given key"],
)
async def test_other_creates_are_django_s(
    direct: Callable[[], int], model: Any, arguments: Callable[[int], dict[str, Any]]
) -> None:
    await _warm_up()
    for n in range(2):  # the second finds anything Django kept from the first
        await model.objects.acreate(**arguments(n))
    before = direct()
    ours = await model.objects.acreate(**arguments(2))
    assert direct() == before
    stored = await model.objects.aget(pk=ours.pk)
    if model is Stamped:
        assert ours.label == stored.label == "own save (saved)"
    elif model is Token:
        assert isinstance(ours.pk, uuid.UUID)
    elif model is Author:
        assert stored.pk == ours.pk == 20_002
    else:
        assert (stored.pk, stored.name) == (ours.pk, ours.name)


async def test_an_expression_is_inserted_as_django_inserts_it(direct: Callable[[], int]) -> None:
    # Django 6 returns the expression's column and assigns it; 5.2 leaves the
    # expression on the object.
    await _warm_up()
    before = direct()
    ours = await Author.objects.acreate(name=Lower(Value("OURS")), age=1)
    assert direct() - before == 1
    with DJANGO_S:
        theirs = await Author.objects.acreate(name=Lower(Value("THEIRS")), age=1)
    assert type(ours.name) is type(theirs.name)
    if isinstance(theirs.name, str):
        assert (ours.name, theirs.name) == ("ours", "theirs")
    stored = [a.name async for a in Author.objects.filter(pk__in=[ours.pk, theirs.pk])]
    assert sorted(stored) == ["ours", "theirs"]


async def test_a_key_hook_of_its_own_is_called(
    direct: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _warm_up()
    key = type(Author._meta.pk)
    monkeypatch.setattr(key, "get_pk_value_on_save", lambda self, instance: 30_000)
    before = direct()
    author = await Author.objects.acreate(name="hooked", age=1)
    assert direct() == before
    assert author.pk == 30_000
    assert await Author.objects.filter(pk=30_000, name="hooked").aexists()


class _Unlucky:
    """A data descriptor over ``age`` that fails to read 13."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        if obj.__dict__["age"] == 13:
            raise RuntimeError("unlucky")
        return obj.__dict__["age"]

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["age"] = value


async def test_a_value_failing_to_read_dooms_the_transaction(
    direct: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Django reads the values under mark_for_rollback_on_error().
    await _warm_up()
    monkeypatch.setattr(Author, "age", _Unlucky())
    before = direct()
    await Author.objects.acreate(name="lucky", age=12)
    assert direct() - before == 1
    with pytest.raises(TransactionManagementError):
        async with async_atomic():
            with pytest.raises(RuntimeError, match="unlucky"):
                await Author.objects.acreate(name="unlucky", age=13)
            await Author.objects.acount()
    assert not await Author.objects.filter(name="unlucky").aexists()


async def test_signals_patched_where_save_base_reads_them_see_every_create(
    direct: Callable[[], int],
) -> None:
    await _warm_up()
    before = direct()
    with mock.patch("django.db.models.base.post_save") as signal:
        await Author.objects.acreate(name="patched", age=1)
    assert direct() == before
    assert signal.send.call_count == 1


async def test_a_receiver_connected_during_the_insert_is_sent_post_save(
    direct: Callable[[], int],
) -> None:
    await _warm_up()
    heard: list[Any] = []

    def late(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
        heard.append((instance.name, created, kwargs["using"]))

    def connecting(execute: Any, sql: Any, params: Any, many: Any, context: Any) -> Any:
        post_save.connect(late, sender=Author, weak=False, dispatch_uid="direct-create-late")
        return execute(sql, params, many, context)

    def create() -> None:
        with connections["default"].execute_wrapper(connecting):
            Author.objects.create(name="late", age=1)

    before = direct()
    try:
        await run_sync(create)
    finally:
        post_save.disconnect(sender=Author, dispatch_uid="direct-create-late")
    assert direct() - before == 1
    assert heard == [("late", True, "default")]


async def test_auto_now_takes_the_time_as_often_as_django(direct: Callable[[], int]) -> None:
    # Django 6's _save_table() calls pre_save() before the insert does.
    await _warm_up()
    for n in range(2):
        await Note.objects.acreate(text=f"warm-up {n}")
    counts = []
    for setting in (override_settings(), DJANGO_S):
        with setting, mock.patch("django.utils.timezone.now", wraps=timezone.now) as now:
            before = direct()
            note = await Note.objects.acreate(text="noted")
            counts.append((now.call_count, direct() - before))
        stored = await Note.objects.aget(pk=note.pk)
        assert stored.created == note.created
        assert note.created is not None
    ((ours, ours_direct), (theirs, theirs_direct)) = counts
    assert (ours_direct, theirs_direct) == (1, 0)
    assert ours == theirs == (2 if django.VERSION >= (6, 0) else 1)


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (Model, "save"),
        (Model, "save_base"),
        (Model, "_save_table"),
        (Model, "_do_insert"),
        (QuerySet, "_insert"),
        (transaction, "mark_for_rollback_on_error"),
    ],
)
async def test_a_wrapper_on_save_s_chain_sees_every_create(
    owner: Any, name: str, direct: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Profilers and tests wrap these; Django's create() calls each of them.
    await _warm_up()
    original = getattr(owner, name)
    seen: list[str] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        seen.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    before = direct()
    await Author.objects.acreate(name="wrapped", age=1)
    await Author.objects.acreate(name="wrapped too", age=2)
    assert seen == [name, name]
    assert direct() == before


async def test_a_mock_in_place_of_save_is_called(direct: Callable[[], int]) -> None:
    # Django's create() calls the model's save(), whatever it is.
    await _warm_up()
    before = direct()
    with mock.patch.object(Author, "save") as save:
        author = await Author.objects.acreate(name="mocked", age=1)
    assert direct() == before
    save.assert_called_once_with(force_insert=True, using="default")
    assert author.pk is None
    assert not await Author.objects.filter(name="mocked").aexists()


async def test_without_the_query_cache_create_is_django_s(direct: Callable[[], int]) -> None:
    await _warm_up()
    before = direct()
    with DJANGO_S:
        await Author.objects.acreate(name="django", age=2)
    assert direct() == before


async def test_a_failed_create_raises_django_s_error_and_dooms_the_transaction(
    direct: Callable[[], int],
) -> None:
    await _warm_up()
    before = direct()
    with pytest.raises(IntegrityError, match="orm_testapp_author_name_key"):
        await Author.objects.acreate(name="warm-up", age=3)
    with pytest.raises(TransactionManagementError):
        async with async_atomic():
            await Author.objects.acreate(name="in a transaction", age=4)
            with pytest.raises(IntegrityError):
                await Author.objects.acreate(name="warm-up", age=5)
            await Author.objects.acount()  # Django's rule: the block must roll back
    assert direct() - before == 1  # "in a transaction"; the failed ones do not count
    assert not await Author.objects.filter(name="in a transaction").aexists()
    assert await Author.objects.acount() == 1


async def test_an_unsaved_related_object_raises_django_s_error(direct: Callable[[], int]) -> None:
    await _warm_up()
    message = "save() prohibited to prevent data loss due to unsaved related object 'owner'."
    before = direct()
    with pytest.raises(ValueError, match=re.escape(message)):
        await Pet.objects.acreate(owner=Owner(name="unsaved"))
    with DJANGO_S, pytest.raises(ValueError, match=re.escape(message)):
        await Pet.objects.acreate(owner=Owner(name="unsaved"))
    assert direct() == before
    assert await Pet.objects.acount() == 1


async def test_a_related_object_saved_after_assignment_is_linked() -> None:
    await _warm_up()
    owner = Owner(name="later")
    pet = Pet(owner=owner)
    await owner.asave()
    assert pet.owner_id is None
    made = await Pet.objects.acreate(owner=pet.owner)
    assert made.owner_id == owner.pk
    assert (await Pet.objects.aget(pk=made.pk)).owner_id == owner.pk


async def test_a_reverse_one_to_one_argument_is_refused() -> None:
    await _warm_up()
    profile = Profile(bio="orphan")
    message = "The following fields do not exist in this model: profile"
    with pytest.raises(ValueError, match=message):
        await Author.objects.acreate(name="with profile", profile=profile)
    assert not await Author.objects.filter(name="with profile").aexists()


@pytest.mark.skipif(not hasattr(QuerySet, "fetch_mode"), reason="fetch modes are new in 6.1")
async def test_the_queryset_s_fetch_mode_is_the_object_s(direct: Callable[[], int]) -> None:
    from django.db.models import FETCH_PEERS  # type: ignore[attr-defined,unused-ignore]

    await _warm_up()
    before = direct()
    author = await Author.objects.fetch_mode(FETCH_PEERS).acreate(name="peers", age=1)  # type: ignore[attr-defined,unused-ignore]
    assert direct() - before == 1
    assert author._state.fetch_mode is FETCH_PEERS  # type: ignore[attr-defined,unused-ignore]
