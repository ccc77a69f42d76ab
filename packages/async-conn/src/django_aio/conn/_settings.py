"""Settings read by django_aio.conn, with their defaults."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

__all__ = [
    "SLOW_BRIDGE_MINIMUM",
    "query_cache_enabled",
    "slow_bridge_threshold",
    "time_zone_settings",
]

#: The bridge times stretches of sync work only when they last this long (so
#: that a fast unit never reads the settings): a smaller threshold is refused.
SLOW_BRIDGE_MINIMUM = 0.1


def slow_bridge_threshold() -> float | None:
    """Seconds of uninterrupted sync work in the bridge that log a warning.

    ``DJANGO_AIO_SLOW_BRIDGE_WARNING`` (seconds, at least
    ``SLOW_BRIDGE_MINIMUM`` = 0.1, or ``None`` to disable). The default warns
    after 0.1 s when ``DEBUG`` is on and never otherwise. Raises
    ``ImproperlyConfigured`` for a value below the minimum.
    """
    default = SLOW_BRIDGE_MINIMUM if settings.DEBUG else None
    value = getattr(settings, "DJANGO_AIO_SLOW_BRIDGE_WARNING", default)
    if value is None:
        return None
    threshold = float(value)
    if threshold < SLOW_BRIDGE_MINIMUM:
        raise ImproperlyConfigured(
            f"DJANGO_AIO_SLOW_BRIDGE_WARNING must be None or at least {SLOW_BRIDGE_MINIMUM} "
            f"(seconds; shorter stretches of sync work are not timed), got {value!r}."
        )
    return threshold


# DJANGO_AIO_QUERY_CACHE, read on every query: an unset setting costs Django
# an exception per read (about 2 us), so the value is kept until a
# ``setting_changed`` (``override_settings``) says otherwise.
_query_cache: bool | None = None


def query_cache_enabled() -> bool:
    """``DJANGO_AIO_QUERY_CACHE`` (default True): whether compiled SQL is reused."""
    global _query_cache
    enabled = _query_cache
    if enabled is None:
        enabled = _query_cache = bool(getattr(settings, "DJANGO_AIO_QUERY_CACHE", True))
    return enabled


# USE_TZ and TIME_ZONE, read on every checkout from a pool (their connections
# are set up for them): kept, as reading a setting costs Django's lazy
# settings object a Python-level __getattribute__ each.
_time_zone: tuple[bool, str] | None = None


def time_zone_settings() -> tuple[bool, str]:
    """``(USE_TZ, TIME_ZONE)``, read again after a ``setting_changed`` of either."""
    global _time_zone
    current = _time_zone
    if current is None:
        current = _time_zone = (bool(settings.USE_TZ), str(settings.TIME_ZONE))
    return current


def _forget(*, setting: str, **kwargs: Any) -> None:
    global _query_cache, _time_zone
    if setting == "DJANGO_AIO_QUERY_CACHE":
        _query_cache = None
    elif setting in ("USE_TZ", "TIME_ZONE"):
        _time_zone = None


setting_changed.connect(_forget, dispatch_uid="django_aio_conn_query_cache")
