"""Single-row inserts reuse their SQL (Note [Compiled inserts]): Django's statements and rows.

Each insert runs with ``DJANGO_AIO_QUERY_CACHE = False`` (Django writes the
SQL), then twice as the ENGINE runs it (the SQL written and kept, then
reused with other values): the statements and parameters sent and the
objects made must be the same.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.db.models import Value
from django.db.models.functions import Lower
from django.test.utils import CaptureQueriesContext, override_settings
from orm_testapp.models import Author, Book, Owner, Pet, Restaurant, Row

pytestmark = pytest.mark.threads_allowed


def _author(n: int) -> Any:
    return Author.objects.create(name=f"author {n}", age=20 + n)


def _book(n: int) -> Any:
    author = Author.objects.create(name=f"writer {n}")
    return Book.objects.create(
        title=f"book {n}", author=author, pages=n, written=datetime.date(2000, 1, n)
    )


def _saved(n: int) -> Any:
    owner = Owner(name=f"owner {n}")
    owner.save()
    pet = Pet(owner=owner)
    pet.save()
    return pet


def _with_defaults(n: int) -> Any:
    return Row.objects.create(n=n)


def _inherited(n: int) -> Any:
    return Restaurant.objects.create(name=f"place {n}", serves_pizza=n % 2 == 0)


def _expression(n: int) -> Any:
    return Author.objects.create(name=Lower(Value(f"LOUD {n}")), age=n)


def _bulk_of_one(n: int) -> Any:
    return Author.objects.bulk_create([Author(name=f"bulk {n}", age=n)])[0]


def _bulk_of_two(n: int) -> Any:
    return Author.objects.bulk_create(
        [Author(name=f"first {n}", age=n), Author(name=f"second {n}", age=n)]
    )


INSERTS: dict[str, Callable[[int], Any]] = {
    "create": _author,
    "a foreign key and a date": _book,
    "save()": _saved,
    "defaults": _with_defaults,
    "multi-table inheritance": _inherited,
    "an expression as a value": _expression,
    "bulk_create of one": _bulk_of_one,
    "bulk_create of two": _bulk_of_two,
}


def _state(result: Any) -> Any:
    objects = result if isinstance(result, list) else [result]
    return [
        (
            type(o).__name__,
            {
                k: repr(v) if hasattr(v, "resolve_expression") else v
                for k, v in vars(o).items()
                if not k.startswith("_")
            },
        )
        for o in objects
    ]


@pytest.mark.parametrize("insert", INSERTS)
def test_same_statements_and_objects_as_django(insert: str) -> None:
    make = INSERTS[insert]
    with (
        override_settings(DJANGO_AIO_QUERY_CACHE=False),
        CaptureQueriesContext(connection) as expected_sql,
    ):
        expected = make(1)
    for n in (2, 3):  # the SQL written and kept, then reused
        with CaptureQueriesContext(connection) as sql:
            made = make(n)
        assert _shape(sql.captured_queries) == _shape(expected_sql.captured_queries)
        assert [
            (kind, {k: v for k, v in fields.items() if k not in _IDS})
            for kind, fields in _state(made)
        ] == [
            (kind, {k: _renumbered(k, v, 1, n) for k, v in fields.items() if k not in _IDS})
            for kind, fields in _state(expected)
        ]


# Keys the database numbers: different on each run.
_IDS = {"id", "place_ptr_id", "author_id", "owner_id"}


def _shape(queries: list[dict[str, str]]) -> list[str]:
    # Each statement without its literal values: what was written.
    return [re.sub(r"'[^']*'|\b\d+\b|\b(true|false)\b", "?", q["sql"]) for q in queries]


def _renumbered(key: str, value: Any, old: int, new: int) -> Any:
    # What run ``old`` made, as run ``new`` makes it.
    if isinstance(value, str):
        return value.replace(str(old), str(new))
    if isinstance(value, datetime.date):
        return value.replace(day=new)
    if key == "serves_pizza":
        return new % 2 == 0
    if key in ("age", "pages", "n"):
        return value - old + new
    return value


def test_pre_save_runs_as_often_as_in_django(monkeypatch: pytest.MonkeyPatch) -> None:
    # Django 6.1's save() calls pre_save() once more itself, before the compiler.
    field = Author._meta.get_field("name")
    calls: list[str] = []
    original = type(field).pre_save

    def counted(self: Any, obj: Any, add: bool) -> Any:
        if self is field:
            calls.append("value" if isinstance(obj.name, str) else "expression")
        return original(self, obj, add)

    monkeypatch.setattr(type(field), "pre_save", counted)

    def inserts(first: int) -> list[str]:
        calls.clear()
        _author(first)  # the SQL written and kept (or reused from an earlier test)
        _author(first + 1)  # reused
        _expression(first + 2)  # an expression: Django writes it, handed the values
        return list(calls)

    with override_settings(DJANGO_AIO_QUERY_CACHE=False):
        expected = inserts(1)
    assert inserts(11) == expected
    assert expected.count("expression") in (1, 2)
    assert Author.objects.get(age=13).name == "loud 13"


def test_the_parameters_are_each_insert_s_own() -> None:
    for n in range(1, 6):
        _author(n)
    assert sorted(Author.objects.values_list("name", "age")) == [
        (f"author {n}", 20 + n) for n in range(1, 6)
    ]


def test_a_renamed_table_is_a_new_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    _author(1)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE renamed_author (LIKE orm_testapp_author INCLUDING ALL)")
    try:
        monkeypatch.setattr(Author._meta, "db_table", "renamed_author")
        with CaptureQueriesContext(connection) as sql:
            _author(2)
        assert sql.captured_queries[0]["sql"].startswith('INSERT INTO "renamed_author"')
    finally:
        monkeypatch.undo()
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE renamed_author")
