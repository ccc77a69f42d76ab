"""Settings of the demo project: our ENGINE, a pool, and the demo app."""

from __future__ import annotations

import importlib.util
import json
import os

from django_aio.conn.testdb import database_settings

DEBUG = True
SECRET_KEY = "demo-only-not-secret"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "demo.views"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django_aio.conn", "demo"]
# The higher layers are optional: the demo uses them when they are installed.
for _layer in ("django_aio.atomic", "django_aio.orm"):
    try:
        if importlib.util.find_spec(f"{_layer}.apps"):
            INSTALLED_APPS.append(_layer)
    except ImportError:
        pass

# DATABASE_URL / PG* when set, else an embedded PostgreSQL. DJANGO_AIO_DEMO_POOL
# (JSON) replaces the pool options, e.g. '{"min_size": 1, "max_size": 3}'.
POOL = json.loads(os.environ.get("DJANGO_AIO_DEMO_POOL") or '{"min_size": 2, "max_size": 10}')
DATABASES = {"default": database_settings("django_aio_demo", OPTIONS={"pool": POOL})}
