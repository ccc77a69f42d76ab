"""Whether functions are still the ones Django defines: nothing has wrapped them.

A shortcut that replaces a chain of Django's methods (Note [Direct inserts]
in django_aio.orm) must not skip a wrapper a profiler or a test put on one
of them (django-silk wraps ``SQLInsertCompiler.execute_sql``). A wrapper is
a function of its own, defined in another file, so each function's code must
come from the file of Django's that defines it. The last set of functions
found so is kept: a call that finds the same set again compares identities
only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["DjangoDefined"]


class DjangoDefined:
    """A check that functions come from the given files of Django's (paths under ``django/``)."""

    __slots__ = ("_files", "_verified")

    def __init__(self, *files: str) -> None:
        self._files = tuple(f"/django/{file}" for file in files)
        self._verified: tuple[Any, ...] = ()

    def __call__(self, functions: Sequence[Any]) -> bool:
        """Whether each of ``functions`` is defined in the file at the same position."""
        current = tuple(functions)
        if current == self._verified:
            return True
        for function, where in zip(current, self._files, strict=True):
            code = getattr(function, "__code__", None)
            if code is None or not code.co_filename.replace("\\", "/").endswith(where):
                return False
        self._verified = current
        return True
