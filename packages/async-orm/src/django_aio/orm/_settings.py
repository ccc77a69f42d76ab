"""Settings read by django_aio.orm, with their defaults."""

from __future__ import annotations

from django.conf import settings

__all__ = ["drop_in_setting"]


def drop_in_setting() -> bool:
    """``DJANGO_AIO_DROP_IN`` (default ``True``): route Django's own async ORM API
    through the bridge.
    """
    return bool(getattr(settings, "DJANGO_AIO_DROP_IN", True))
