"""The end-to-end views: ordinary async Django views over the ORM's async API."""

from __future__ import annotations

import asyncio

from django.http import HttpRequest, JsonResponse

from .models import Item

GATE_TIMEOUT = 60.0  # seconds a request waits for the others at most


async def page(request: HttpRequest) -> JsonResponse:
    """A get, a filtered list of 10 and a count: three queries."""
    pk = int(request.GET.get("pk", "1"))
    item = await Item.objects.aget(pk=pk)
    following = [
        other.name
        async for other in Item.objects.filter(
            author_id=item.author_id, value__gt=item.value
        ).order_by("value")[:10]
    ]
    count = await Item.objects.filter(author_id=item.author_id).acount()
    return JsonResponse({"name": item.name, "following": following, "count": count})


class _Gate:
    """Holds requests until ``size`` of them have arrived, then lets them all through."""

    open_gates: dict[int, _Gate] = {}

    def __init__(self) -> None:
        self.arrived = 0
        self.opened = asyncio.Event()

    @classmethod
    async def wait(cls, size: int) -> None:
        gate = cls.open_gates.setdefault(size, cls())
        gate.arrived += 1
        if gate.arrived >= size:
            del cls.open_gates[size]
            gate.opened.set()
            return
        try:
            await asyncio.wait_for(gate.opened.wait(), GATE_TIMEOUT)
        except TimeoutError:
            if cls.open_gates.get(size) is gate:  # don't leave a half-full gate behind
                del cls.open_gates[size]
            raise


async def slow(request: HttpRequest) -> JsonResponse:
    """One query that the server takes ``?seconds=`` to answer, once ``?wait=`` requests are in."""
    await _Gate.wait(int(request.GET.get("wait", "1")))
    seconds = float(request.GET.get("seconds", "0.1"))
    queryset = Item.objects.extra(select={"slept": "pg_sleep(%s)::text"}, select_params=[seconds])
    item = await queryset.aget(pk=1)
    return JsonResponse({"name": item.name})
