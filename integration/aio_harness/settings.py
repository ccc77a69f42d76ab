"""The ``--settings`` module for Django's runtests.py, on PostgreSQL.

Mirrors Django's own ``tests/test_sqlite.py``; run.py resolves the server once
and hands the connection entry over in ``DJANGO_AIO_IT_DATABASE`` (JSON), so
this module, its worker processes and any subprocess a test starts agree.
"""

from __future__ import annotations

import json
import os

import django

ENGINES = {
    "aio": "django_aio.conn.backends.postgresql",
    "stock": "django.db.backends.postgresql",
}

_engine = os.environ.get("DJANGO_AIO_IT_ENGINE", "aio")
_suffix = os.environ.get("DJANGO_AIO_IT_DB_SUFFIX", "0")
_server = json.loads(
    os.environ.get("DJANGO_AIO_IT_DATABASE")
    or '{"NAME": "postgres", "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}'
)


# A statement waiting longer than this for a lock fails instead of hanging the
# run: an async connection blocked by a row the test's own (sync) transaction
# holds would otherwise wait forever. No test of the suite waits this long on
# purpose. "0" turns it off.
_lock_timeout = os.environ.get("DJANGO_AIO_IT_LOCK_TIMEOUT", "10s")


def _alias(test_name: str) -> dict[str, object]:
    entry = {**_server, "ENGINE": ENGINES[_engine]}
    entry["OPTIONS"] = options = dict(entry.get("OPTIONS") or {})
    if _lock_timeout not in ("", "0"):
        libpq_options = f"{options.get('options', '')} -c lock_timeout={_lock_timeout}"
        options["options"] = libpq_options.strip()
    # Distinct test database names per alias (so "other" is a real second
    # database) and per run (so concurrent runs on one server don't collide).
    entry["TEST"] = {"NAME": f"test_djaio_{_engine}_{test_name}_{_suffix}"}
    return entry


DATABASES = {"default": _alias("default"), "other": _alias("other")}

SECRET_KEY = "django_tests_secret_key"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

USE_TZ = False

if django.VERSION < (6, 0):
    # Django's own test settings pin this before 6.0 (where the default became
    # BigAutoField and the line was dropped).
    DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

if os.environ.get("DJANGO_AIO_IT_DROP_IN") == "0":
    # run.py --no-drop-in: django_aio.orm stays installed, Django's a* methods
    # keep their own sync_to_async path.
    DJANGO_AIO_DROP_IN = False

# DiscoverRunner plus a JSON report of every outcome (see runner.py).
TEST_RUNNER = "aio_harness.runner.ReportingRunner"
