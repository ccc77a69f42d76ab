"""One implementation, one process: the worker that bench/peers.py starts for each round.

Usage (peers.py does this):  python bench/peer_impls.py IMPL [--scale 1.0] [--setup]

Runs every workload for ``IMPL`` (warm-up, then a timed pass) and prints one
JSON line ``{"workload": ops_per_second, ...}``. ``--setup`` instead creates
and fills the tables. The server comes from ``DATABASE_URL`` (peers.py sets it).

Every implementation runs the same queries on the same tables, with a pool of
16 connections:

- get:      an item by primary key, sequentially;
- conc_get: the same from 32 concurrent tasks;
- io_conc:  50 concurrent tasks, each query takes 5 ms on the server (pg_sleep);
- list100:  a list of 100 items;
- join:     100 items with their author (select_related / joinedload / a JOIN);
- create:   one insert;
- atomic3:  three inserts in one transaction.

The parts live in modules of their own: what every implementation shares and
the ``Impl`` interface in peer_base.py, the Django-based implementations in
peer_django.py, raw psycopg and SQLAlchemy in peer_non_django.py, the
workloads and their timing in peer_workloads.py. This module puts them
together (``IMPLEMENTATIONS``), re-exports them for the other bench scripts
and is the worker's entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from peer_base import (  # noqa: E402
    AUTHORS,
    ITEMS,
    POOL_SIZE,
    SLEEP,
    SLEEP_SQL,
    Impl,
    database_url,
)
from peer_django import (  # noqa: E402
    DjangoAio,
    DjangoAioCompiled,
    DjangoAioUvloop,
    DjangoAsyncBackend,
    DjangoNative,
)
from peer_non_django import RawPsycopg, SQLAlchemyORM  # noqa: E402
from peer_workloads import WORKLOADS, Workload, run_all, run_workload, warm_up  # noqa: E402

__all__ = [
    "AUTHORS",
    "IMPLEMENTATIONS",
    "ITEMS",
    "POOL_SIZE",
    "SLEEP",
    "SLEEP_SQL",
    "WORKLOADS",
    "DjangoAio",
    "DjangoAioCompiled",
    "DjangoAioUvloop",
    "DjangoAsyncBackend",
    "DjangoNative",
    "Impl",
    "RawPsycopg",
    "SQLAlchemyORM",
    "Workload",
    "database_url",
    "main",
    "new_event_loop_factory",
    "run_all",
    "run_workload",
    "setup_database",
    "warm_up",
]

# -- implementations -----------------------------------------------------------

IMPLEMENTATIONS: dict[str, type[Impl]] = {
    cls.key: cls
    for cls in (
        RawPsycopg,
        DjangoNative,
        DjangoAsyncBackend,
        SQLAlchemyORM,
        DjangoAio,
        DjangoAioUvloop,
        DjangoAioCompiled,
    )
}


# -- set-up and entry point ----------------------------------------------------


def setup_database() -> None:
    """Create and fill the tables (Django's schema editor, stock backend)."""
    from django.db import connection
    from peerapp.models import Author, Item

    with connection.schema_editor() as editor:
        editor.execute("DROP TABLE IF EXISTS peer_item, peer_author")
        editor.create_model(Author)
        editor.create_model(Item)
    authors = Author.objects.bulk_create(Author(name=f"author {n}") for n in range(AUTHORS))
    Item.objects.bulk_create(
        Item(name=f"item {n}", value=n, author=authors[n % AUTHORS]) for n in range(ITEMS)
    )
    connection.close()


def new_event_loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop]:
    if use_uvloop:
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=IMPLEMENTATIONS)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", help="comma-separated workload keys")
    parser.add_argument("--setup", action="store_true", help="create and fill the tables")
    args = parser.parse_args()
    impl_class = IMPLEMENTATIONS[args.impl]
    if impl_class.flavour or args.setup:
        from peerapp.settings import configure

        configure(impl_class.flavour or "django")  # type: ignore[arg-type]
    if args.setup:
        setup_database()
        return
    only = args.only.split(",") if args.only else None
    with asyncio.Runner(loop_factory=new_event_loop_factory(impl_class.uvloop)) as runner:
        results = runner.run(run_all(impl_class(), args.scale, only))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
