"""The django-aio demo: a scripted tour of an ASGI Django app using the async layer.

    uv run python examples/tour.py           # the tour: requests against the app, printed
    uv run python examples/tour.py --serve   # then serve it with uvicorn on :8000

Uses DATABASE_URL / PG* when set, otherwise starts an embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")


def prepare_database() -> None:
    """Create the demo database if needed, migrate, and seed two accounts."""
    import django
    import psycopg
    from django.conf import settings

    entry = settings.DATABASES["default"]
    params = {
        "dbname": "postgres",
        "user": entry["USER"],
        "password": entry["PASSWORD"],
        "host": entry["HOST"],
        "port": entry["PORT"],
    }
    with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [entry["NAME"]]
        ).fetchone():
            conn.execute(f'CREATE DATABASE "{entry["NAME"]}"')
    django.setup()
    from demo.models import Account
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", run_syncdb=True, verbosity=0)
    Account.objects.all().delete()
    Account.objects.bulk_create(
        [Account(owner="alice", balance=100), Account(owner="bob", balance=20)]
    )
    connection.close()


async def tour() -> None:
    import httpx
    from demo.asgi import application

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        for title, url in [
            ("The server, through the async cursor API", "/server/"),
            ("The ORM through run_sync", "/accounts/"),
            ("Five 0.2 s queries in parallel (about 0.2 s, not 1 s)", "/parallel/"),
            ("Django's own acount(), afirst(), async for: on the loop (drop-in)", "/dropin/"),
            ("An async transaction moving 30 from alice to bob", "/transfer/?amount=30"),
            ("A transfer that fails and rolls back", "/transfer/?amount=1000"),
            ("Nothing was lost", "/accounts/"),
        ]:
            response = await client.get(url)
            print(f"\n== {title}\nGET {url} -> {response.status_code}")
            print(json.dumps(response.json(), indent=2))
    from django_aio.conn import async_connections

    await async_connections.close_pools()


def main() -> None:
    parser = argparse.ArgumentParser(description="django-aio demo")
    parser.add_argument(
        "--serve", action="store_true", help="serve the app with uvicorn after the tour"
    )
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    prepare_database()
    asyncio.run(tour())
    if args.serve:
        import uvicorn

        print(f"\nServing on http://127.0.0.1:{args.port}/accounts/ (Ctrl-C to stop)")
        uvicorn.run("demo.asgi:application", host="127.0.0.1", port=args.port, log_level="info")
    else:
        print("\nServe it yourself: uv run python examples/tour.py --serve")


if __name__ == "__main__":
    main()
