"""Drop-in ``Model.objects.aget(...)`` and ``queryset.aget(...)`` as compiled queries.

(Note [Compiled gets] and Note [Queryset shapes].)

Every call is run twice: with ``DJANGO_AIO_QUERY_CACHE = False`` (Django
builds and compiles the query) and as drop-in runs it. The statements sent,
their parameters and the outcome (the object, or the exception and its
message) must be the same. Whether the compiled path was taken shows in the
compiled query cache's counters: a compiled get does not compile again, so
it neither misses nor hits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from django.db.backends.utils import CursorWrapper
from django.db.models.functions import Lower
from django.test.utils import override_settings
from orm_testapp.models import Author, Book, Owner, Pet, Restaurant

from django_aio.conn.backends.postgresql.compiler import clear_query_cache, query_cache_info

Call = Callable[[dict[str, Any]], Awaitable[Any]]


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    sent: list[tuple[str, Any]] = []
    original = CursorWrapper._execute_with_wrappers

    def record(self: Any, sql: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append((str(sql), params))
        return original(self, sql, params, *args, **kwargs)

    monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", record)
    return sent


async def _library() -> dict[str, Any]:
    ann = await Author.objects.acreate(name="Ann", age=40)
    bob = await Author.objects.acreate(name="Bob", age=40)
    await Book.objects.acreate(title="T0", author=ann, pages=100)
    await Book.objects.acreate(title="T1", author=ann, pages=200, published=True)
    await Book.objects.acreate(title="T2", author=bob, pages=300, editor=ann)
    await Restaurant.objects.acreate(name="Luigi", serves_pizza=True)
    cy, dee = await Owner.objects.acreate(name="Cy"), await Owner.objects.acreate(name="Dee")
    cy.pets_pk = (await Pet.objects.acreate(owner=cy)).pk
    await Pet.objects.acreate(owner=dee)
    await Pet.objects.acreate(owner=dee)
    return {"ann": ann, "bob": bob, "cy": cy, "dee": dee}


def _outcome(result: Any) -> Any:
    if isinstance(result, BaseException):
        return (type(result), str(result))
    if isinstance(result, dict):
        return (dict, sorted(result.items()))
    fields = sorted((k, v) for k, v in result.__dict__.items() if k != "_state")
    # The related objects select_related() filled in, with their fields.
    related = sorted((name, _outcome(value)) for name, value in result._state.fields_cache.items())
    return (type(result), result.pk, fields, related)


# (model's manager call, compiled?) - the call takes the library's objects;
# compiled None: Django raises before any query, there is nothing to compile.
CALLS: dict[str, tuple[Call, bool | None]] = {
    "pk": (lambda o: Author.objects.aget(pk=o["ann"].pk), True),
    "missing pk": (lambda o: Author.objects.aget(pk=o["bob"].pk + 100), True),
    "a field": (lambda o: Author.objects.aget(name="Bob"), True),
    "several": (lambda o: Author.objects.aget(name="Ann", age=40), True),
    "more than one": (lambda o: Author.objects.aget(age=40), True),
    "a value Django cannot prepare": (lambda o: Author.objects.aget(pk="one"), None),
    "a foreign key's id": (lambda o: Pet.objects.aget(owner=o["cy"].pk), True),
    "a foreign key's id, two rows": (lambda o: Pet.objects.aget(owner_id=o["dee"].pk), True),
    "through a join": (lambda o: Pet.objects.aget(owner__name="Cy"), True),
    "a comparison": (lambda o: Author.objects.aget(name__gt="Ann"), True),
    "no arguments": (lambda o: Restaurant.objects.aget(), True),
    "an instance": (lambda o: Pet.objects.aget(owner=o["cy"]), False),
    "an instance of the wrong model": (lambda o: Pet.objects.aget(owner=o["ann"]), None),
    "None": (lambda o: Author.objects.aget(name=None), False),
    "a pattern": (lambda o: Author.objects.aget(name__icontains="b"), False),
    "a boolean": (lambda o: Restaurant.objects.aget(serves_pizza=True), False),
    "an unknown field": (lambda o: Author.objects.aget(colour="red"), None),
    "a custom queryset class": (lambda o: Book.objects.aget(pages=200), False),
    "a custom manager": (lambda o: Book.published_books.aget(pages=200), False),
    "a filtered queryset": (lambda o: Author.objects.filter(age__gt=0).aget(name="Ann"), False),
    "all()": (lambda o: Author.objects.all().aget(pk=o["ann"].pk), True),
    "using()": (lambda o: Author.objects.using("default").aget(name="Bob"), True),
    "extra(select=)": (
        lambda o: Author.objects.extra(select={"twice": "age * 2"}).aget(pk=o["ann"].pk),
        True,
    ),
    "extra(select=) of two columns": (
        lambda o: Author.objects.extra(select={"older": "age + 5", "label": "name || '!'"}).aget(
            name="Bob"
        ),
        True,
    ),
    "extra(select=) with parameters": (
        lambda o: Author.objects.extra(
            select={"older": "age + %s", "label": "name || %s"}, select_params=(5, "!")
        ).aget(name="Bob"),
        False,
    ),
    "extra(where=)": (
        lambda o: Author.objects.extra(where=["age > 0"]).aget(name="Ann"),
        False,
    ),
    "select_related()": (
        lambda o: Pet.objects.select_related("owner").aget(pk=o["cy"].pets_pk),
        True,
    ),
    "select_related() of all": (
        lambda o: Pet.objects.select_related().aget(pk=o["cy"].pets_pk),
        True,
    ),
    "only()": (lambda o: Author.objects.only("name").aget(pk=o["bob"].pk), True),
    "defer()": (lambda o: Author.objects.defer("name").aget(pk=o["bob"].pk), True),
    "ordered, two rows": (lambda o: Author.objects.order_by("-name").aget(age=40), True),
    "reverse()": (lambda o: Author.objects.reverse().aget(name="Ann"), True),
    "ordered by an expression": (
        lambda o: Author.objects.order_by(Lower("name")).aget(name="Ann"),
        False,
    ),
    "values()": (lambda o: Author.objects.values("name").aget(pk=o["ann"].pk), False),
    "distinct()": (lambda o: Author.objects.distinct().aget(pk=o["ann"].pk), False),
    "none()": (lambda o: Author.objects.none().aget(pk=o["ann"].pk), None),
    "a slice": (lambda o: Author.objects.all()[:1].aget(pk=o["ann"].pk), None),
    "a queryset of a custom class": (lambda o: Book.objects.all().aget(pages=200), False),
    "a manager for another database": (
        lambda o: Author.objects.db_manager("default").aget(name="Bob"),
        True,
    ),
}


@pytest.mark.parametrize("call", CALLS)
async def test_same_statements_and_outcome_as_django(
    call: str, statements: list[tuple[str, Any]]
) -> None:
    run, compiled = CALLS[call]
    objects = await _library()
    statements.clear()

    async def outcome() -> Any:
        try:
            return _outcome(await run(objects))
        except Exception as exc:
            return _outcome(exc)

    with override_settings(DJANGO_AIO_QUERY_CACHE=False):
        expected = await outcome()
    expected_statements = list(statements)
    statements.clear()
    assert await outcome() == expected
    assert statements == expected_statements
    # Twice more: a compiled get does not compile again.
    clear_query_cache()
    await outcome()
    await outcome()
    info = query_cache_info()
    if compiled is not None:
        assert (info.hits + info.misses == 0) is compiled, info
    else:
        assert info.hits + info.misses == 0, info


async def test_turned_off_with_the_query_cache() -> None:
    ann = await Author.objects.acreate(name="Ann", age=40)
    await Author.objects.aget(pk=ann.pk)
    clear_query_cache()
    with override_settings(DJANGO_AIO_QUERY_CACHE=False):
        await Author.objects.aget(pk=ann.pk)
    assert query_cache_info() == (0, 0, 0, 0)
    await Author.objects.aget(pk=ann.pk)
    assert query_cache_info() == (0, 0, 0, 0)  # compiled: no compilation at all


async def test_an_integer_out_of_range_is_does_not_exist() -> None:
    await Author.objects.acreate(name="Ann", age=40)
    for pk in (2**63, str(2**63), -(2**63) - 1):
        with pytest.raises(Author.DoesNotExist, match=r"^Author matching query does not exist\.$"):
            await Author.objects.aget(pk=pk)
    assert (await Author.objects.aget(age__gte=-(2**40))).name == "Ann"


async def test_querysets_of_other_extra_selects_or_parameter_types_do_not_share_a_query() -> None:
    ann = await Author.objects.acreate(name="Ann", age=40)

    async def kinds() -> list[str]:
        found = []
        for select, params in (
            ({"kind": "pg_typeof(%s)::text"}, (1,)),
            ({"kind": "pg_typeof(%s)::text"}, (True,)),
            ({"kind": "pg_typeof(%s)::text"}, (1.5,)),
            ({"kind": "'fixed'"}, ()),
            ({"kind": "pg_typeof(%s)::text"}, (1,)),
        ):
            queryset = Author.objects.extra(select=select, select_params=params)
            found.append((await queryset.aget(pk=ann.pk)).kind)
        return found

    with override_settings(DJANGO_AIO_QUERY_CACHE=False):
        assert await kinds() == ["integer", "boolean", "numeric", "fixed", "integer"]
    assert await kinds() == ["integer", "boolean", "numeric", "fixed", "integer"]


async def test_querysets_of_other_shapes_do_not_share_a_query() -> None:
    ann = await Author.objects.acreate(name="Ann", age=40)
    only_name = await Author.objects.only("name").aget(pk=ann.pk)
    only_age = await Author.objects.only("age").aget(pk=ann.pk)
    assert only_name.get_deferred_fields() == {"age"}
    assert only_age.get_deferred_fields() == {"name"}
    cy = await Owner.objects.acreate(name="Cy")
    pet = await Pet.objects.acreate(owner=cy)
    joined = await Pet.objects.select_related("owner").aget(pk=pet.pk)
    plain = await Pet.objects.all().aget(pk=pet.pk)
    assert joined._state.fields_cache["owner"].name == "Cy"
    assert "owner" not in plain._state.fields_cache
