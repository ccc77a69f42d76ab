from __future__ import annotations

from orm_testapp.models import Author, Book, Box, Pizza


async def test_smoke() -> None:
    a = await Author.objects.acreate(name="x")
    assert await Author.objects.acount() == 1
    b = await Book.objects.acreate(title="t", author=a)
    got = await Book.objects.select_related("author").aget(pk=b.pk)
    assert got.author.name == "x"
    box = await Box.objects.acreate()
    p = await Pizza.aobjects.create(name="m", box=box)
    assert (await p.abox).pk == box.pk
    assert await box.apizza_set.count() == 1
    rows = [x async for x in Author.objects.all().aiterator(chunk_size=1)]
    assert len(rows) == 1
