"""Hooks for django-aio's own upper layers (django-aio-atomic, -orm, -testing).

Not for application code. These names are stable within a minor version of
django-aio-conn only, which is why the upper layers pin ``<0.2``; they are
collected here so that what the layers rely on is explicit and tested.
"""

from ._callbacks import Callback, as_sync_callback
from ._greenlet import drive
from ._lease import Lease
from ._scope import _lending_var as lending_var
from ._scope import current_scope, find_borrowable, lending
from ._units import Unit

__all__ = [
    "Callback",
    "Lease",
    "Unit",
    "as_sync_callback",
    "current_scope",
    "drive",
    "find_borrowable",
    "lending",
    "lending_var",
]
