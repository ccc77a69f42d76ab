"""The ASGI app that bench/peers.py serves with uvicorn: ``BENCH_FLAVOUR`` picks the ORM."""

import os

from django.core.asgi import get_asgi_application

from .settings import configure

configure(os.environ.get("BENCH_FLAVOUR", "aio"))  # type: ignore[arg-type]
application = get_asgi_application()
