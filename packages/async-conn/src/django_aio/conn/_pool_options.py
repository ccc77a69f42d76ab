"""``OPTIONS["pool"]``: checked once, with errors that say what to write instead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured

__all__ = ["DEFAULT_POOL_OPTIONS", "pool_options"]

#: Used when ``OPTIONS["pool"]`` is absent or ``True``; a dict is laid over it.
DEFAULT_POOL_OPTIONS: Mapping[str, Any] = {"min_size": 1, "max_size": 10, "timeout": 30.0}

# Defaults of the options DEFAULT_POOL_OPTIONS leaves out (psycopg_pool's).
_MORE_DEFAULTS: Mapping[str, Any] = {
    "max_waiting": 0,
    "max_lifetime": 3600.0,
    "max_idle": 600.0,
    "reconnect_timeout": 300.0,
    "num_workers": 3,
}

_NUMBER = (int, float)
_TYPES: Mapping[str, tuple[type, ...]] = {
    "min_size": (int,),
    "max_size": (int,),
    "timeout": _NUMBER,
    "max_waiting": (int,),
    "max_lifetime": _NUMBER,
    "max_idle": _NUMBER,
    "reconnect_timeout": _NUMBER,
    "num_workers": (int,),
    "name": (str,),
}
# What each number must be; the reason is part of the message.
_POSITIVE = ("timeout", "max_lifetime", "max_idle", "reconnect_timeout")
_SYNC_ONLY = ("check", "configure", "reset", "reconnect_failed", "connection_class")


def pool_options(
    alias: str, settings_dict: Mapping[str, Any], *, for_sync: bool = False
) -> dict[str, Any]:
    """The validated pool options of ``alias``, defaults filled in.

    The same set serves django_aio's async pool and, through the ENGINE,
    Django's own sync pool, so both sides agree on the sizes. ``for_sync``
    keeps the callbacks only Django's sync pool can call (``check``,
    ``configure``, ...); the async pool refuses them.
    """
    raw = settings_dict.get("OPTIONS", {}).get("pool")
    where = f"DATABASES[{alias!r}]['OPTIONS']['pool']"
    options = {**DEFAULT_POOL_OPTIONS, **_MORE_DEFAULTS}
    if raw is None or isinstance(raw, bool):
        return options
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(
            f"{where} must be True or a dict of psycopg_pool "
            f"options (e.g. {{'min_size': 1, 'max_size': 10, 'timeout': 30.0}}), "
            f"got {type(raw).__name__} {raw!r}."
        )
    for key, value in raw.items():
        if key in _SYNC_ONLY:
            if for_sync:
                options[key] = value
                continue
            raise ImproperlyConfigured(
                f"{where}[{key!r}] is a callback for Django's sync pool; django_aio's "
                f"async pool cannot call it. Remove it (set CONN_HEALTH_CHECKS = True "
                f"to check connections before use)."
            )
        types_ = _TYPES.get(key)
        if types_ is None:
            raise ImproperlyConfigured(
                f"{where} has an unknown option {key!r}; the options are: "
                f"{', '.join(sorted(_TYPES))}."
            )
        if isinstance(value, bool) or not isinstance(value, types_):
            expected = " or ".join(t.__name__ for t in types_)
            raise ImproperlyConfigured(
                f"{where}[{key!r}] must be {expected}, got {type(value).__name__} {value!r}."
            )
        number = cast(float, value)
        if key in _POSITIVE and number <= 0:
            raise ImproperlyConfigured(
                f"{where}[{key!r}] must be a number of seconds above 0, got {value!r}."
            )
        if key == "max_waiting" and number < 0:
            raise ImproperlyConfigured(
                f"{where}['max_waiting'] must be 0 (no limit) or more, got {value!r}."
            )
        if key == "num_workers" and number < 1:
            raise ImproperlyConfigured(
                f"{where}['num_workers'] must be 1 or more (Django's sync pool needs a "
                f"worker), got {value!r}."
            )
        options[key] = value
    if "max_size" not in raw and options["min_size"] > options["max_size"]:
        options["max_size"] = options["min_size"]
    if options["min_size"] < 0 or options["max_size"] < max(options["min_size"], 1):
        raise ImproperlyConfigured(
            f"{where} needs 0 <= min_size <= max_size and max_size >= 1, got "
            f"min_size={options['min_size']} and max_size={options['max_size']}."
        )
    return options
