"""Settings of the pytest-django run started by test_pytest_django.py."""

from __future__ import annotations

import os

from django_aio.conn.testdb import database_settings

SECRET_KEY = "django-aio-atomic-pytest-django"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "atomic_testapp"]
DATABASES = {
    "default": database_settings(
        "django_aio_atomic_pd",
        TEST={"NAME": f"test_django_aio_atomic_pd_{os.environ['ATOMIC_PD_SUFFIX']}"},
    )
}
