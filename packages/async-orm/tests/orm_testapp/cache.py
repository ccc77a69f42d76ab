"""A cache backend whose close() does something, as a memcached or Redis client's does."""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.locmem import LocMemCache


class ClosingCache(LocMemCache):
    """Records the thread of each ``close()``."""

    closed_in: list[int] = []

    def close(self, **kwargs: Any) -> None:
        ClosingCache.closed_in.append(threading.get_ident())
