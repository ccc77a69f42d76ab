"""Settings read by django_aio.conn, with their defaults."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["SLOW_BRIDGE_MINIMUM", "slow_bridge_threshold"]

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
