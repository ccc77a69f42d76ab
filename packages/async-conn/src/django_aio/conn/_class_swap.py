"""The one place where django-aio changes the class of a live object.

Note [Class swaps]
~~~~~~~~~~~~~~~~~~
Twice a Django connection that already exists must behave differently for a
while, and nothing but its class can make it:

- a test case's own sync connection, lent to bridged code (Note [Test-case
  binding] in _testcase_binding.py), must skip Django's ``@async_unsafe``
  guard while lent, and only then (Note [async_unsafe] in _wrapper.py);
- a rollback test's connection in django_aio.testing must answer as
  production would outside any block of the code under test
  (``needs_rollback``, ``get_autocommit()``, ``close()``), for as long as the
  test runs (Note [Statements outside blocks] there).

A stand-in object would not do: Django's helpers (``ops``, ``features``,
``introspection``, ``creation``) and the test case keep a reference to the
wrapper itself and call its methods through it, and its state
(``atomic_blocks``, ``savepoint_ids``, ``run_on_commit``...) must stay one.
Instance attributes would not do either: Django sets ``needs_rollback`` as a
plain attribute, which only a property of the class can intercept, and
shadowing the guarded methods one by one would fight Django's own
instance-level stand-ins (``SimpleTestCase._add_databases_failures``). So
the class is swapped for a subclass that adds only those behaviours, on a
connection nothing else uses meanwhile, and swapped back after; both
callers go through ``swap_class()``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["swap_class"]


def swap_class(obj: Any, cls: type[Any]) -> type[Any]:
    """Give ``obj`` the class ``cls`` (Note [Class swaps]); returns its class before.

    ``cls`` must be the object's class, a subclass of it or a base it was
    swapped from: nothing else can keep its state meaningful.
    """
    before = type(obj)
    if not (issubclass(cls, before) or issubclass(before, cls)):
        raise TypeError(
            f"swap_class() swaps between a class and its subclasses only; "
            f"{before.__qualname__} and {cls.__qualname__} are unrelated."
        )
    obj.__class__ = cls
    return before
