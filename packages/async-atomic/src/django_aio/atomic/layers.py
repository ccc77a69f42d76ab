"""Hooks for django-aio's upper layers (django-aio-testing).

Not for application code. These names are stable within a minor version of
django-aio-atomic only; they are collected here so that what the layers rely
on is explicit and tested.
"""

from ._callbacks import run_callback

__all__ = ["run_callback"]
