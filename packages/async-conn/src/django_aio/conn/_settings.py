"""Settings read by django_aio.conn, with their defaults."""

from __future__ import annotations

from django.conf import settings

__all__ = ["slow_bridge_threshold"]


def slow_bridge_threshold() -> float | None:
    """Seconds of uninterrupted sync work in the bridge that log a warning.

    ``DJANGO_AIO_SLOW_BRIDGE_WARNING`` (seconds, or ``None`` to disable). The
    default warns after 0.1 s when ``DEBUG`` is on and never otherwise.
    """
    default = 0.1 if settings.DEBUG else None
    value = getattr(settings, "DJANGO_AIO_SLOW_BRIDGE_WARNING", default)
    return None if value is None else float(value)
