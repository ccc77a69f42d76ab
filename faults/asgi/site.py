"""Settings, views and URLs of the tiny ASGI site, in one module."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator

import django
from django.conf import settings

from faults._support import django_settings

if not settings.configured:
    settings.configure(
        **django_settings(
            int(os.environ["FAULTS_DB_PORT"]),
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["*"],
        )
    )
    settings.DATABASES["default"]["OPTIONS"]["pool"] = {"max_size": 10, "timeout": 10.0}
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    django.setup()

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections
from faults.app.models import Account, Book


async def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


async def read(request: HttpRequest) -> JsonResponse:
    count = await Account.objects.acount()
    first = await Account.objects.aget(pk=1)
    titles = [b.title async for b in Book.objects.order_by("id")[:5]]
    return JsonResponse({"count": count, "balance": first.balance, "titles": titles})


async def write(request: HttpRequest) -> JsonResponse:
    async with async_atomic():
        book = await Book.objects.acreate(title="from a request")
        await Book.objects.filter(pk=book.pk).aupdate(title="from a request, updated")
    return JsonResponse({"id": book.pk})


async def slow(request: HttpRequest) -> JsonResponse:
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT pg_sleep(0.03), 1")
        row = await cursor.fetchone()
    return JsonResponse({"row": list(row)})


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def lines() -> AsyncIterator[str]:
        async for book in Book.objects.aiterator(chunk_size=10):
            yield f"{book.pk} {book.title}\n"
            if book.pk >= 25:
                break  # early: the server-side cursor must be closed

    return StreamingHttpResponse(lines(), content_type="text/plain")


urlpatterns = [
    path("health", health),
    path("read", read),
    path("write", write),
    path("slow", slow),
    path("stream", stream),
]

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
