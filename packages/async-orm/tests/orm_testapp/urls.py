"""Views for the tests that serve requests through Django's ASGI handler."""

from __future__ import annotations

from collections.abc import AsyncIterator

from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from .models import Author


async def authors(request: HttpRequest) -> JsonResponse:
    """An async view over the ORM's async API."""
    return JsonResponse({"names": [a.name async for a in Author.objects.order_by("name")]})


def sync_authors(request: HttpRequest) -> JsonResponse:
    """A sync view: Django runs it in the request's thread, on that thread's connection."""
    sync_authors.wrappers.append(connections["default"])  # type: ignore[attr-defined]
    return JsonResponse({"names": list(Author.objects.values_list("name", flat=True))})


sync_authors.wrappers = []  # type: ignore[attr-defined]


async def hello(request: HttpRequest) -> HttpResponse:
    """An async view with no database work."""
    return HttpResponse(b"hello")


class Chunks:
    """Streamed content that the response closes at the end (as it would a file)."""

    last: Chunks | None = None

    def __init__(self) -> None:
        self.parts = [b"pay", b"load"]
        self.closed = False
        Chunks.last = self

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if not self.parts:
            raise StopAsyncIteration
        return self.parts.pop(0)

    def close(self) -> None:
        self.closed = True


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    """A response with something to close at the end."""
    return StreamingHttpResponse(Chunks())


urlpatterns = [
    path("authors/", authors),
    path("sync-authors/", sync_authors),
    path("hello/", hello),
    path("stream/", stream),
]
