"""Related managers' async methods (reverse FK, M2M, generic relations), bridged."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db.models import aprefetch_related_objects
from orm_testapp.models import Author, Book, Profile, Tag, TaggedItem

from django_aio.conn import run_sync


async def test_reverse_foreign_key_manager() -> None:
    ann = await Author.objects.acreate(name="Ann")
    bob = await Author.objects.acreate(name="Bob")
    created = await ann.books.acreate(title="A1")
    assert created.author_id == ann.pk
    got, was_created = await ann.books.aget_or_create(title="A2")
    assert was_created
    assert got.author_id == ann.pk
    updated, was_created = await ann.books.aupdate_or_create(title="A2", defaults={"pages": 7})
    assert not was_created
    assert updated.pages == 7
    assert await ann.books.acount() == 2
    assert [b.title async for b in ann.books.filter(pages=7)] == ["A2"]

    # aadd moves a book (bulk=False saves each instance).
    other = await bob.books.acreate(title="B1")
    await ann.books.aadd(other, bulk=False)
    assert await ann.books.acount() == 3

    # aremove / aclear / aset need a nullable foreign key: use `edited`.
    await ann.edited.aset([created, other])
    assert sorted([b.title async for b in ann.edited.all()]) == ["A1", "B1"]
    await ann.edited.aremove(other)
    assert [b.title async for b in ann.edited.all()] == ["A1"]
    await ann.edited.aclear()
    assert not await ann.edited.aexists()
    await ann.edited.aadd(other)
    await ann.edited.aset([created], clear=True)
    assert [b.title async for b in ann.edited.all()] == ["A1"]


async def test_many_to_many_manager() -> None:
    ann = await Author.objects.acreate(name="Ann")
    book = await Book.objects.acreate(title="T", author=ann)
    red, blue = await Tag.objects.abulk_create([Tag(name="red"), Tag(name="blue")])
    await book.tags.aadd(red, blue)
    assert [t.name async for t in book.tags.all()] == ["blue", "red"]
    await book.tags.aremove(red)
    assert [t.name async for t in book.tags.all()] == ["blue"]
    green = await book.tags.acreate(name="green")
    assert await green.books.acontains(book)
    tag, created = await book.tags.aget_or_create(name="blue")
    assert not created
    assert tag.pk == blue.pk
    tag, created = await book.tags.aupdate_or_create(name="pink", defaults={"name": "pink"})
    assert created
    assert await book.tags.acount() == 3
    await book.tags.aset([red])
    assert [t.name async for t in book.tags.all()] == ["red"]
    # The reverse side.
    assert [b.title async for b in red.books.all()] == ["T"]
    await red.books.aclear()
    assert not await book.tags.aexists()


async def test_generic_relation_manager() -> None:
    ann = await Author.objects.acreate(name="Ann")
    book = await Book.objects.acreate(title="T", author=ann)
    # Building the manager needs Book's ContentType: cache it first (as in
    # Django's own async API; see test_errors for the message otherwise).
    await run_sync(ContentType.objects.get_for_model, Book)
    item = await book.items.acreate(label="a")
    assert item.object_id == book.pk
    _got, created = await book.items.aget_or_create(label="b")
    assert created
    updated, created = await book.items.aupdate_or_create(label="b", defaults={"label": "c"})
    assert not created
    assert updated.label == "c"
    loose = await TaggedItem.objects.acreate(
        label="d",
        content_type=await ContentType.objects.aget(app_label="orm_testapp", model="author"),
        object_id=0,
    )
    await book.items.aadd(loose, bulk=False)
    assert [i.label async for i in book.items.all()] == ["a", "c", "d"]
    await book.items.aremove(loose)
    assert await book.items.acount() == 2
    await book.items.aset([item])
    assert [i.label async for i in book.items.all()] == ["a"]
    await book.items.aclear()
    assert not await book.items.aexists()


async def test_aprefetch_related_objects_and_generic_foreign_key() -> None:
    ann = await Author.objects.acreate(name="Ann")
    await Profile.objects.acreate(author=ann, bio="hi")
    book = await Book.objects.acreate(title="T", author=ann)
    await book.items.acreate(label="x")
    authors = [a async for a in Author.objects.all()]
    await aprefetch_related_objects(authors, "books__items", "profile")
    assert [i.label for i in authors[0].books.all()[0].items.all()] == ["x"]
    assert authors[0].profile.bio == "hi"
    items = [i async for i in TaggedItem.objects.prefetch_related("content_object")]
    assert items[0].content_object.title == "T"


async def test_one_to_one_both_sides() -> None:
    ann = await Author.objects.acreate(name="Ann")
    await Profile.objects.acreate(author=ann, bio="hi")
    profile = await Profile.objects.select_related("author").aget()
    assert profile.author.name == "Ann"
    author = await Author.objects.select_related("profile").aget()
    assert author.profile.bio == "hi"
