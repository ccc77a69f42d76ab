"""What the runtests process is given: engine, extra apps, labels, environment.

aio_harness/settings.py and aio_harness/bootstrap.py read the environment
built here (``DJANGO_AIO_IT_*``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from .common import HERE, Broken, note

ENGINES = {
    "aio": "django_aio.conn.backends.postgresql",
    "stock": "django.db.backends.postgresql",
}
# Joined to INSTALLED_APPS with --engine aio, each only once it exists as an app.
AIO_APPS = ["django_aio.conn", "django_aio.atomic", "django_aio.orm"]

# Django test modules that exercise the ORM's async API and the machinery the
# drop-in must carry (relations, transactions, locking, auth and sessions).
ASYNC_LABELS = [
    "async",
    "async_queryset",
    "basic",
    "model_fields",
    "many_to_many",
    "many_to_one",
    "generic_relations",
    "get_or_create",
    "auth_tests",
    "sessions_tests",
    "prefetch_related",
    "select_related",
    "transactions",
    "transaction_hooks",
    "select_for_update",
    "pagination",
]

SELFTEST_LABEL = "aio_harness.selftest"

# Tests that cannot run inside run_sync() on a loop, with the reasons (and
# the self-test's own list).
THROUGH_BRIDGE_LIST = HERE / "through-bridge-list.txt"
SELFTEST_THROUGH_BRIDGE_LIST = HERE / "aio_harness" / "selftest" / "through-bridge-list.txt"


def present_labels(tests_dir: Path, labels: list[str]) -> list[str]:
    """The labels of ``labels`` that this Django's tests/ has."""
    return [label for label in labels if (tests_dir / label).is_dir()]


def aio_apps() -> list[str]:
    """The django_aio apps that exist in this environment, with a note for the rest."""
    if importlib.util.find_spec("django_aio.conn.backends.postgresql") is None:
        raise Broken(f"--engine aio needs {ENGINES['aio']}, which is not importable")
    apps = []
    for app in AIO_APPS:
        try:
            spec = importlib.util.find_spec(app)
        except ModuleNotFoundError:
            spec = None
        if spec is None or not spec.submodule_search_locations:
            note(f"skipping {app}: not installed")
        elif not any(
            (Path(folder) / "apps.py").is_file() for folder in spec.submodule_search_locations
        ):
            note(f"skipping {app}: it has no AppConfig (apps.py) yet")
        else:
            apps.append(app)
    return apps


def runtests_environment(
    args: argparse.Namespace,
    entry: dict[str, Any],
    apps: list[str],
    loop_check_labels: list[str],
) -> dict[str, str]:
    """The environment of the runtests process (and of its workers)."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.update(
        DJANGO_AIO_IT_ENGINE=args.engine,
        DJANGO_AIO_IT_DATABASE=json.dumps(entry),
        DJANGO_AIO_IT_DB_SUFFIX=str(os.getpid()),
        DJANGO_AIO_IT_APPS=",".join(apps),
        DJANGO_AIO_IT_DROP_IN="1" if args.drop_in else "0",
        PYTHONUNBUFFERED="1",
    )
    env.pop("DJANGO_AIO_IT_THROUGH_BRIDGE", None)
    if args.through_bridge:
        env["DJANGO_AIO_IT_THROUGH_BRIDGE"] = "1"
        listed = SELFTEST_THROUGH_BRIDGE_LIST if args.self_test else THROUGH_BRIDGE_LIST
        env["DJANGO_AIO_IT_THROUGH_BRIDGE_LIST"] = str(listed)
    env.pop("DJANGO_AIO_ASSERT_LOOP_THREAD", None)
    env.pop("DJANGO_AIO_ASSERT_LOOP_THREAD_SCOPE", None)
    if args.assert_loop_thread:
        env["DJANGO_AIO_ASSERT_LOOP_THREAD"] = args.assert_loop_thread
        # In a full-suite run the check covers the async-related modules: the
        # rest of the suite serves sync views through the async test client,
        # whose SQL runs in Django's thread by design.
        env["DJANGO_AIO_ASSERT_LOOP_THREAD_SCOPE"] = ",".join(loop_check_labels)
    return env
