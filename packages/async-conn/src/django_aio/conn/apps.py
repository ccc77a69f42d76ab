"""The ``django_aio.conn`` Django app."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from ._bridgeable import bridgeable_engine
from ._settings import slow_bridge_threshold
from ._testcase_binding import install_testcase_binding
from ._units import install_bridge


class AsyncConnConfig(AppConfig):
    """Checks the ENGINE setting and installs the bridge's routing at start-up."""

    name = "django_aio.conn"
    label = "django_aio_conn"
    verbose_name = "django-aio connections"

    def ready(self) -> None:
        install_bridge()
        install_testcase_binding()
        checks.register(check_engines, checks.Tags.database)
        checks.register(check_slow_bridge_setting)


def check_engines(**kwargs: object) -> list[checks.CheckMessage]:
    """Warn when no database alias can be used by django_aio."""
    from django.conf import settings

    engine = "django_aio.conn.backends.postgresql"
    # settings.DATABASES, not connections.settings: the check may run under
    # override_settings(DATABASES=...), which Django's handler never sees.
    if any(bridgeable_engine(db.get("ENGINE", "")) for db in settings.DATABASES.values()):
        return []
    return [
        checks.Warning(
            "django_aio.conn is installed but no DATABASES entry uses its ENGINE.",
            hint=f"Set 'ENGINE': '{engine}' on the aliases async code should reach.",
            id="django_aio.W001",
        )
    ]


def check_slow_bridge_setting(**kwargs: object) -> list[checks.CheckMessage]:
    """Refuse a ``DJANGO_AIO_SLOW_BRIDGE_WARNING`` below what the bridge can time."""
    try:
        slow_bridge_threshold()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="django_aio.E001")]
    return []
