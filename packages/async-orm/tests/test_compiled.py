"""CompiledQuery gives Django's SQL and Django's results (Note [Compiled queries]).

Each shape is written once, as a function of ``p``: called with ``Param`` it
is the compiled query's queryset, called with a lookup of the values it is
the queryset Django runs. For every set of values, the statements sent and
what ``list()``, ``get()`` and ``first()`` give (rows, exceptions and their
messages) must be the same both ways.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.db.models import Count, Q, QuerySet
from django.test.utils import CaptureQueriesContext
from orm_testapp.models import Author, AuthorProxy, Book, Restaurant

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections, run_sync
from django_aio.orm import CompiledQuery, Param

from .conftest import fill_library

# The comparison runs Django's own sync path next to the compiled one.
pytestmark = pytest.mark.threads_allowed

Maker = Callable[[Callable[[str], Any]], QuerySet[Any, Any]]


@pytest.fixture
def library() -> None:
    fill_library()


def _row(row: Any) -> Any:
    if isinstance(row, Book):
        # select_related and deferred fields must come back as Django builds them.
        cached = row._state.fields_cache
        return (
            row.pk,
            row.title,
            row.pages,
            row.written,
            sorted(row.get_deferred_fields()),
            cached["author"].name if "author" in cached else None,
            cached["editor"].name if cached.get("editor") else None,
            row._state.db,
            row._state.adding,
        )
    if hasattr(row, "_meta"):
        extra = {k: v for k, v in vars(row).items() if k in ("c", "older")}
        return (type(row).__name__, row.pk, str(row), row._state.db, extra)
    return row


def _outcome(run: Callable[[], Any]) -> Any:
    """What ``run()`` returned (rows made comparable) or raised (type and message)."""
    try:
        result = run()
    except Exception as exc:
        return (type(exc), str(exc))
    if isinstance(result, list):
        return [_row(r) for r in result]
    return _row(result)


SHAPES: dict[str, tuple[Maker, list[dict[str, Any]]]] = {
    "pk": (lambda p: Author.objects.filter(pk=p("pk")), [{"pk": 1}, {"pk": 3}, {"pk": 99}]),
    "pk as a string": (lambda p: Author.objects.filter(pk=p("pk")), [{"pk": "2"}]),
    "foreign key by id": (
        lambda p: Book.objects.filter(author=p("a")).order_by("pk"),
        [{"a": 1}, {"a": 2}, {"a": 7}],
    ),
    "foreign key by instance": (
        lambda p: Book.objects.filter(author=p("a")).order_by("pk"),
        [{"a": "@Ann"}, {"a": "@Cy"}, {"a": "#T0"}],  # a Book: refused, as by Django
    ),
    "reverse foreign key by instance": (
        lambda p: Author.objects.filter(books=p("b")),
        [{"b": "#T2"}, {"b": "@Bob"}],
    ),
    "range, ordered, sliced": (
        lambda p: Book.objects.filter(pages__gte=p("lo"), pages__lt=p("hi")).order_by("-pages")[:2],
        [{"lo": 100, "hi": 400}, {"lo": 300, "hi": 1000}, {"lo": 500, "hi": 600}],
    ),
    "through a join": (
        lambda p: Book.objects.filter(author__name=p("name")).order_by("pk"),
        [{"name": "Ann"}, {"name": "Bob"}, {"name": "Nobody"}],
    ),
    "exclude on a nullable key": (
        lambda p: Book.objects.exclude(editor=p("e")).order_by("pk"),
        [{"e": 1}, {"e": 2}],
    ),
    "or": (
        lambda p: Book.objects.filter(Q(pages=p("pages")) | Q(author=p("author"))).order_by("pk"),
        [{"pages": 200, "author": 3}, {"pages": 400, "author": 1}],
    ),
    "select_related": (
        lambda p: (
            Book.objects.select_related("author", "editor").filter(pages__gt=p("n")).order_by("pk")
        ),
        [{"n": 0}, {"n": 250}],
    ),
    "only": (
        lambda p: Book.objects.only("title").filter(pk__lte=p("n")).order_by("pk"),
        [{"n": 2}],
    ),
    "defer": (
        lambda p: Book.objects.defer("written").filter(pk__gte=p("n")).order_by("pk"),
        [{"n": 3}],
    ),
    "values": (
        lambda p: (
            Book.objects.values("title", "author__name").filter(pages__gte=p("n")).order_by("pk")
        ),
        [{"n": 200}],
    ),
    "values_list flat": (
        lambda p: Book.objects.values_list("title", flat=True).filter(pk__gt=p("n")).order_by("pk"),
        [{"n": 1}, {"n": 9}],
    ),
    "values_list named": (
        lambda p: (
            Book.objects.values_list("pk", "pages", named=True)
            .filter(pages__lte=p("n"))
            .order_by("pk")
        ),
        [{"n": 300}],
    ),
    "a date, and a date as a string": (
        lambda p: Book.objects.filter(written__gte=p("d")).order_by("pk"),
        [{"d": datetime.date(2002, 1, 1)}, {"d": "2001-06-01"}],
    ),
    "annotated": (
        lambda p: Author.objects.annotate(c=Count("books")).filter(age__gt=p("age")).order_by("pk"),
        [{"age": 30}],
    ),
    "extra select": (
        lambda p: Author.objects.extra(select={"older": "age + 1"}).filter(pk=p("pk")),
        [{"pk": 2}],
    ),
    "model ordering": (
        lambda p: Author.objects.filter(age__lt=p("age")),
        [{"age": 50}, {"age": 100}],
    ),
    "cleared ordering": (
        lambda p: Author.objects.filter(age__lt=p("age")).order_by(),
        [{"age": 99}],
    ),
    "multi-table inheritance": (
        lambda p: Restaurant.objects.filter(name=p("name")),
        [{"name": "Luigi"}, {"name": "Mario"}],
    ),
    "proxy": (lambda p: AuthorProxy.objects.filter(age__gte=p("age")), [{"age": 30}]),
    "distinct over a reverse join": (
        lambda p: Author.objects.filter(books__pages__gt=p("n")).distinct().order_by("pk"),
        [{"n": 100}],
    ),
    "many-to-many": (
        lambda p: Book.objects.filter(tags__name=p("tag")).order_by("pk"),
        [{"tag": "blue"}, {"tag": "red"}],
    ),
    "always empty": (lambda p: Author.objects.filter(pk__in=[], age=p("age")), [{"age": 40}]),
    "no Param at all": (lambda p: Author.objects.filter(age__gte=30), [{}]),
}


def _resolved(values: dict[str, Any]) -> dict[str, Any]:
    # "@Ann" is the author named Ann, "#T0" the book titled T0.
    def resolved(value: Any) -> Any:
        if str(value).startswith("@"):
            return Author.objects.get(name=value[1:])
        if str(value).startswith("#"):
            return Book.objects.get(title=value[1:])
        return value

    return {name: resolved(value) for name, value in values.items()}


@pytest.mark.parametrize("shape", SHAPES)
def test_same_statements_and_results_as_django(library: None, shape: str) -> None:
    make, runs = SHAPES[shape]
    compiled = CompiledQuery(make(Param))
    for values in runs:
        values = _resolved(values)
        for method, expected_run in (
            ("list", lambda: list(make(values.__getitem__))),  # noqa: B023
            ("get", lambda: make(values.__getitem__).get()),  # noqa: B023
            ("first", lambda: make(values.__getitem__).first()),  # noqa: B023
        ):
            with CaptureQueriesContext(connection) as expected_sql:
                expected = _outcome(expected_run)
            with CaptureQueriesContext(connection) as sql:
                outcome = _outcome(lambda: getattr(compiled, method)(**values))  # noqa: B023
            assert outcome == expected, (method, values)
            assert [q["sql"] for q in sql] == [q["sql"] for q in expected_sql], (method, values)


def test_each_variant_is_compiled_once_per_alias_and_time_zone(library: None) -> None:
    compiled = CompiledQuery(Author.objects.filter(pk=Param("pk")))
    assert [compiled.get(pk=n).name for n in (1, 2, 3, 1)] == ["Ann", "Bob", "Cy", "Ann"]
    assert compiled.list(pk=2)[0].name == "Bob"
    get_variant = compiled._get
    assert get_variant is not None
    from django.utils import timezone

    with timezone.override("Asia/Tokyo"):
        assert compiled.get(pk=1).name == "Ann"
    # Its SQL has no time zone in it: one template for every zone.
    assert list(get_variant.templates) == [("default", True)]
    assert type(get_variant.templates["default", True]).__name__ == "_Template"
    assert len(compiled._all.templates) == 1


def test_sql_with_the_time_zone_in_it_is_compiled_per_zone(library: None) -> None:
    from django.db.models import DateTimeField, Value
    from django.db.models.functions import ExtractHour
    from django.utils import timezone

    noon = Value(datetime.datetime(2020, 1, 1, 12, tzinfo=datetime.UTC), DateTimeField())
    compiled = CompiledQuery(
        Book.objects.annotate(hour=ExtractHour(noon)).filter(pages__gte=Param("pages"))
    )
    compiled.list(pages=0)
    with timezone.override("Asia/Tokyo"):
        compiled.list(pages=0)
    compiled.list(pages=0)
    per_zone = compiled._all.templates["default", True]
    assert isinstance(per_zone, dict)
    assert sorted(per_zone) == ["Asia/Tokyo", "UTC"]


# -- async, through the bridge -------------------------------------------------


async def test_aget_alist_afirst_in_the_bridge() -> None:
    await run_sync(fill_library)
    by_author = CompiledQuery(Book.objects.filter(author__name=Param("name")).order_by("pages"))
    assert [b.title for b in await by_author.alist(name="Ann")] == ["T0", "T1"]
    first = await by_author.afirst(name="Cy")
    assert first is not None
    assert first.title == "T3"
    assert await by_author.afirst(name="Nobody") is None
    by_pk = CompiledQuery(Author.objects.filter(pk=Param("pk")))
    bob = await Author.objects.aget(name="Bob")
    assert (await by_pk.aget(pk=bob.pk)).name == "Bob"
    with pytest.raises(Author.DoesNotExist, match=r"^Author matching query does not exist\.$"):
        await by_pk.aget(pk=bob.pk + 1000)
    with pytest.raises(
        Book.MultipleObjectsReturned,
        match=r"^get\(\) returned more than one Book -- it returned 2!$",
    ):
        await by_author.aget(name="Ann")


async def test_concurrent_runs_get_their_own_values() -> None:
    await run_sync(fill_library)
    by_pages = CompiledQuery(Book.objects.filter(pages=Param("pages")))
    results = await asyncio.gather(*(by_pages.aget(pages=100 * (n % 4 + 1)) for n in range(40)))
    assert [b.pages for b in results] == [100 * (n % 4 + 1) for n in range(40)]


@pytest.mark.aio_db("transactional")
async def test_runs_inside_the_transaction_of_its_task() -> None:
    by_name = CompiledQuery(Author.objects.filter(name=Param("name")))
    try:
        async with async_atomic():
            await Author.objects.acreate(name="Uncommitted", age=1)
            # The same connection and transaction: the row is seen.
            assert (await by_name.aget(name="Uncommitted")).age == 1
            # Another connection does not see it.
            async with async_connections.independent_connection():
                assert await by_name.afirst(name="Uncommitted") is None
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert await by_name.afirst(name="Uncommitted") is None


@pytest.mark.aio_db("transactional")
async def test_cancelled_while_the_server_runs_it() -> None:
    slow = CompiledQuery(
        Author.objects.extra(select={"slept": "pg_sleep(30)"}).filter(pk__gt=Param("pk"))
    )
    await Author.objects.acreate(name="Ann", age=40)
    task = asyncio.create_task(slow.alist(pk=0))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The query was cancelled on the server and the connection is usable.
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'"
            " AND pid <> pg_backend_pid()",
            ["%pg_sleep(30)%FROM%"],
        )
        assert await cursor.fetchone() == (0,)
    everyone = CompiledQuery(Author.objects.filter(pk__gt=Param("pk")))
    assert [a.name for a in await everyone.alist(pk=0)] == ["Ann"]


async def test_the_statement_is_logged_and_wrapped_as_any_other() -> None:
    await run_sync(fill_library)
    by_pk = CompiledQuery(Author.objects.filter(pk=Param("pk")))
    cy = await Author.objects.aget(name="Cy")
    seen: list[tuple[str, Any]] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append((sql, params))
        return execute(sql, params, many, context)

    def run() -> tuple[str, list[str]]:
        with (
            connections["default"].execute_wrapper(wrapper),
            CaptureQueriesContext(connections["default"]) as log,
        ):
            name = by_pk.get(pk=cy.pk).name
        return name, [q["sql"] for q in log]

    name, logged = await run_sync(run)
    assert name == "Cy"
    assert [params for _, params in seen] == [(cy.pk,)]
    assert logged == [seen[0][0] % (cy.pk,)]


# -- errors ---------------------------------------------------------------------


def test_values_must_match_the_params() -> None:
    compiled = CompiledQuery(Book.objects.filter(pages=Param("pages"), title=Param("title")))
    assert compiled.names == {"pages", "title"}
    with pytest.raises(
        TypeError,
        match=r"^<CompiledQuery of Book: \['pages', 'title'\]> takes exactly the values "
        r"\['pages', 'title'\]; missing \['title'\]; unknown \['titel'\]\.$",
    ):
        compiled.list(pages=1, titel="x")


def test_none_is_refused() -> None:
    compiled = CompiledQuery(Book.objects.filter(editor=Param("editor")))
    with pytest.raises(
        ValueError,
        match=r"^Param\('editor'\) got None: Django turns field=None into IS NULL, another "
        r"statement; compile a queryset with field__isnull=True for that\.$",
    ):
        compiled.list(editor=None)


def test_an_expression_as_a_value_is_refused() -> None:
    from django.db.models import F

    compiled = CompiledQuery(Book.objects.filter(pages=Param("pages")))
    with pytest.raises(
        TypeError, match=r"^Param\('pages'\) got F\(id\): a Param takes plain values"
    ):
        compiled.list(pages=F("id"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Book.objects.filter(pages__in=Param("p")),
            r"^Param\('p'\) is the value of a 'in' lookup on Col: a Param can only be the "
            r"value of exact, gt, gte, lt, lte on a model field",
        ),
        (
            lambda: Book.objects.filter(title__contains=Param("p")),
            r"^Param\('p'\) is the value of a 'contains' lookup on Col",
        ),
        (
            lambda: Book.objects.filter(published=Param("p")),
            r"^Param\('p'\) is the value of a boolean field, orm_testapp.Book.published: "
            r"Django writes WHERE field or WHERE NOT field, without the value, so the SQL "
            r"depends on it; compile one query for each value\.$",
        ),
        (
            lambda: Book.objects.filter(written__year=Param("p")),
            r"^Param\('p'\) is the value of a 'exact' lookup on ExtractYear",
        ),
    ],
)
def test_a_param_whose_sql_depends_on_its_value_is_refused(
    make: Callable[[], QuerySet[Any, Any]], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        CompiledQuery(make())


def test_a_param_elsewhere_is_refused(library: None) -> None:
    from django.db.models import F

    stray = r"^Param\('n'\) is not the value of a lookup on a model field \(it is in an "
    with pytest.raises(TypeError, match=stray):
        CompiledQuery(Book.objects.filter(pages=F("author__age") + Param("n")))
    with pytest.raises(TypeError, match=stray):
        CompiledQuery(Book.objects.annotate(more=F("pages") + Param("n")))
    # In a subquery, it is found when the query is compiled, on its first run.
    compiled = CompiledQuery(
        Author.objects.filter(pk__in=Book.objects.filter(pages=Param("n")).values("author"))
    )
    with pytest.raises(TypeError, match=stray):
        compiled.list()


def test_one_param_in_two_lookups_is_refused() -> None:
    shared = Param("n")
    with pytest.raises(
        TypeError,
        match=r"^Param\('n'\) is the value of two lookups: use a new Param\('n'\) for each",
    ):
        CompiledQuery(Book.objects.filter(Q(pages=shared) | Q(pk=shared)))
    # The same name twice is fine: one value for both.
    both = CompiledQuery(Book.objects.filter(Q(pages=Param("n")) | Q(pk=Param("n"))))
    assert both.names == {"n"}


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"^CompiledQuery\(\) takes a QuerySet, such as "):
        CompiledQuery(Book.objects)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^CompiledQuery\(\) does not run prefetch_related\(\)"):
        CompiledQuery(Book.objects.prefetch_related("tags"))
    with pytest.raises(TypeError, match=r"^Param\(\) takes the name of a keyword argument"):
        Param("not a name")
    with pytest.raises(TypeError, match=r"is not iterable: call \.list\(\.\.\.\)"):
        iter(CompiledQuery(Book.objects.all()))  # type: ignore[call-overload]


def test_a_queryset_with_params_runs_only_compiled(library: None) -> None:
    with pytest.raises(
        TypeError,
        match=r"^Param\('pk'\) has no value: a queryset with Param\(\) runs through "
        r"CompiledQuery\(queryset\)",
    ):
        list(Author.objects.filter(pk=Param("pk")))


def test_the_template_queryset_is_left_alone(library: None) -> None:
    queryset = Author.objects.filter(pk=Param("pk"))
    before = str(queryset.query.__dict__.keys())
    compiled = CompiledQuery(queryset)
    compiled.get(pk=1)
    compiled.list(pk=1)
    assert str(queryset.query.__dict__.keys()) == before
    assert queryset._result_cache is None


def test_in_a_sync_transaction(library: None) -> None:
    by_name = CompiledQuery(Author.objects.filter(name=Param("name")))
    with transaction.atomic():
        Author.objects.create(name="Dee", age=5)
        assert by_name.get(name="Dee").age == 5
        transaction.set_rollback(True)
    assert by_name.first(name="Dee") is None


# -- values that change Django's statement: run Django's way ---------------------

BIG = 2**63  # past a bigint column: Django drops the condition, or the whole WHERE


@pytest.mark.parametrize(
    ("make", "values"),
    [
        (lambda p: Author.objects.filter(pk=p("pk")), {"pk": BIG}),
        (lambda p: Author.objects.filter(pk=p("pk")), {"pk": str(BIG)}),
        (lambda p: Author.objects.filter(age__gte=p("age")).order_by("pk"), {"age": -(2**40)}),
        (lambda p: Author.objects.filter(age__lt=p("age")).order_by("pk"), {"age": -(2**40)}),
        (lambda p: Author.objects.exclude(pk=p("pk")).order_by("pk"), {"pk": BIG}),
        (
            lambda p: Author.objects.filter(Q(pk=p("pk")) | Q(name=p("name"))).order_by("pk"),
            {"pk": BIG, "name": "Bob"},
        ),
    ],
)
def test_integers_out_of_range_as_django(
    library: None, make: Maker, values: dict[str, Any]
) -> None:
    compiled = CompiledQuery(make(Param))
    runs: dict[str, Callable[[QuerySet[Any, Any]], Any]] = {
        "list": list,
        "get": QuerySet.get,
        "first": QuerySet.first,
    }
    for method, run in runs.items():
        expected = _outcome(lambda: run(make(values.__getitem__)))  # noqa: B023
        assert _outcome(lambda: getattr(compiled, method)(**values)) == expected, method  # noqa: B023


def test_instances_in_a_list_are_checked_as_django(library: None) -> None:
    compiled = CompiledQuery(Author.objects.filter(books=Param("books")))
    book = Book.objects.get(title="T0")
    expected = _outcome(lambda: list(Author.objects.filter(books=[book])))
    assert _outcome(lambda: compiled.list(books=[book])) == expected
    assert expected[0] is TypeError  # Django: an int() of a list, after the model check
    ann = Author.objects.get(name="Ann")
    wrong = _outcome(lambda: list(Book.objects.filter(author=(Restaurant(pk=ann.pk),))))
    compiled_fk = CompiledQuery(Book.objects.filter(author=Param("author")))
    assert _outcome(lambda: compiled_fk.list(author=(Restaurant(pk=ann.pk),))) == wrong
    assert wrong[0] is ValueError


def test_select_for_update_is_checked_on_every_run(library: None) -> None:
    compiled = CompiledQuery(Author.objects.select_for_update().filter(name=Param("name")))
    with transaction.atomic():
        assert compiled.get(name="Ann").age == 40
    message = r"^select_for_update cannot be used outside of a transaction\.$"
    with pytest.raises(transaction.TransactionManagementError, match=message):
        compiled.get(name="Ann")


def test_the_current_time_zone_is_the_one_of_each_run(library: None) -> None:
    from django.db.models import DateTimeField, Value
    from django.db.models.functions import ExtractHour
    from django.utils import timezone

    noon = datetime.datetime(2020, 1, 1, 12, tzinfo=datetime.UTC)
    compiled = CompiledQuery(
        Author.objects.annotate(h=ExtractHour(Value(noon, output_field=DateTimeField()))).filter(
            name=Param("name")
        )
    )
    assert compiled.get(name="Ann").h == 12  # type: ignore[attr-defined]
    with timezone.override("Asia/Tokyo"):
        assert compiled.get(name="Ann").h == 21  # type: ignore[attr-defined]
    assert compiled.get(name="Ann").h == 12  # type: ignore[attr-defined]


def test_converters_are_looked_up_on_the_first_run_and_applied_on_every_run(
    library: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db.models import ExpressionWrapper, F, FloatField

    def authors(age: Any) -> QuerySet[Author, Author]:
        half = ExpressionWrapper(F("age") / 2.0, output_field=FloatField())
        return Author.objects.filter(age__gte=age).annotate(half=half).order_by("pk")

    def rows(found: list[Author]) -> list[tuple[str, Any]]:
        return [(author.name, author.half) for author in found]  # type: ignore[attr-defined]

    ages = (0, 35, 0)
    expected = [rows(list(authors(age))) for age in ages]
    assert all(type(half) is float for run in expected for _, half in run)
    assert expected[0] != expected[1]

    looked_up: list[Any] = []
    ops = type(connection.ops)
    original = ops.get_db_converters

    def counted(self: Any, expression: Any) -> list[Any]:
        looked_up.append(expression)
        return original(self, expression)

    monkeypatch.setattr(ops, "get_db_converters", counted)
    compiled = CompiledQuery(authors(Param("age")))
    assert rows(compiled.list(age=0)) == expected[0]
    assert len(looked_up) == 4  # id, name, age and the annotation
    again = [rows(compiled.list(age=age)) for age in ages]
    assert again == expected
    assert all(type(half) is float for run in again for _, half in run)  # not Decimal
    assert len(looked_up) == 4


def test_converters_of_a_composite_key_and_json_as_django(library: None) -> None:
    # Django looks up the converters of a composite key's columns in a nested
    # call of its own; only those of the selected columns are kept.
    from orm_testapp.models import Seat

    Seat.objects.create(block="A", number=1, details={"row": [1, 2]})
    Seat.objects.create(block="B", number=2, details={"row": [3]})

    def seats(number: Any) -> QuerySet[Any, Any]:
        chosen = Seat.objects.filter(number__gte=number).order_by("number")
        return chosen.values_list("pk", "details")

    compiled = CompiledQuery(seats(Param("n")))
    for number in (0, 2, 0):
        assert compiled.list(n=number) == list(seats(number))
    assert compiled.list(n=0) == [(("A", 1), {"row": [1, 2]}), (("B", 2), {"row": [3]})]
