"""Async views on django-aio, and the URLconf."""

from __future__ import annotations

import asyncio
import time

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path

from django_aio.conn import async_connections, run_sync

from .models import Account


async def accounts(request: HttpRequest) -> JsonResponse:
    """The ORM, unchanged, with its I/O on the event loop."""
    rows = await run_sync(
        lambda: list(Account.objects.order_by("owner").values("owner", "balance"))
    )
    return JsonResponse({"accounts": rows})


async def parallel(request: HttpRequest) -> JsonResponse:
    """Five 0.2 s queries at once: each takes its own pooled connection."""

    def slow_query(n: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::int FROM pg_sleep(0.2)", [n])
            return int(cursor.fetchone()[0])

    started = time.perf_counter()
    results = await asyncio.gather(*(run_sync(slow_query, n) for n in range(5)))
    return JsonResponse({"results": results, "seconds": round(time.perf_counter() - started, 3)})


async def server(request: HttpRequest) -> JsonResponse:
    """The async cursor API."""
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT version(), current_database()")
        version, database = await cursor.fetchone()
    return JsonResponse({"version": version, "database": database})


async def transfer(request: HttpRequest) -> JsonResponse:
    """Move money in one async transaction (needs django-aio-atomic)."""
    try:
        from django_aio.atomic import async_atomic
    except ImportError:
        return JsonResponse({"error": "install django-aio-atomic"}, status=501)
    amount = int(request.GET.get("amount", "10"))

    def move() -> None:
        payer = Account.objects.select_for_update().get(owner="alice")
        payee = Account.objects.select_for_update().get(owner="bob")
        if payer.balance < amount:
            raise ValueError(f"alice has only {payer.balance}")
        payer.balance -= amount
        payee.balance += amount
        payer.save()
        payee.save()

    try:
        async with async_atomic():
            await run_sync(move)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return await accounts(request)


async def dropin(request: HttpRequest) -> JsonResponse:
    """Django's own async ORM API, run on the loop by django_aio.orm's drop-in mode."""
    from django.apps import apps

    if not apps.is_installed("django_aio.orm"):
        return JsonResponse({"error": "install django-aio-orm"}, status=501)
    count, richest = await asyncio.gather(
        Account.objects.acount(), Account.objects.order_by("-balance").afirst()
    )
    owners = [account.owner async for account in Account.objects.order_by("owner")]
    return JsonResponse({"count": count, "richest": str(richest), "owners": owners})


urlpatterns = [
    path("dropin/", dropin),
    path("accounts/", accounts),
    path("parallel/", parallel),
    path("server/", server),
    path("transfer/", transfer),
]
