"""What only django-stubs' mypy plugin infers: ``values()`` / ``values_list()`` rows.

pyright, without the plugin, types these rows as ``dict[str, Any]`` / ``Any``
(``usage.py`` checks what both agree on); this file is checked by mypy only.
"""

from __future__ import annotations

from typing import assert_type

from django.db.models import QuerySet

from .models import Pizza


async def values_rows() -> None:
    qs = Pizza.objects.filter(name="m")
    row = await qs.values("name", "box__size").aget()
    assert_type(row["name"], str)
    assert_type(row["box__size"], int)
    row["price"]  # type: ignore[misc]
    async for named in Pizza.objects.values("name"):
        assert_type(named["name"], str)


async def model_fields() -> None:
    # The plugin checks create() keywords against the model's fields.
    await Pizza.objects.acreate(name="m", nope=1)  # type: ignore[misc]
    await Pizza.objects.acreate(name="m", box=3)  # type: ignore[misc]


async def values_list_rows() -> None:
    qs = Pizza.objects.filter(name="m")
    assert_type(qs.values_list("name", flat=True), QuerySet[Pizza, str])
    assert_type(qs.values_list("name", "box_id"), QuerySet[Pizza, tuple[str, int]])
    assert_type(await qs.values_list("name", flat=True).afirst(), str | None)
    async for pk, name in qs.values_list("pk", "name"):
        assert_type(pk, int)
        assert_type(name, str)
    async for name in qs.values_list("name", flat=True).aiterator():
        assert_type(name, str)
    qs.values_list("no_such_field")  # type: ignore[misc]
