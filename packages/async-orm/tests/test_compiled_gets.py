"""Drop-in ``Model.objects.aget(...)`` as a compiled query (Note [Compiled gets]).

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
    await Pet.objects.acreate(owner=cy)
    await Pet.objects.acreate(owner=dee)
    await Pet.objects.acreate(owner=dee)
    return {"ann": ann, "bob": bob, "cy": cy, "dee": dee}


def _outcome(result: Any) -> Any:
    if isinstance(result, BaseException):
        return (type(result), str(result))
    return (type(result), result.pk, result.__dict__.get("name"), result.__dict__.get("title"))


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
    "a queryset": (lambda o: Author.objects.filter(age__gt=0).aget(name="Ann"), False),
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
