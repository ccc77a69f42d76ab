"""The settings of the explicit API's after-commit behaviour.

Each has a django-aio name and, so that a project moving from
django-subatomic keeps its settings file, django-subatomic's name. They are
read on every use, so ``override_settings`` works per test.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["AfterCommitSettings", "after_commit_settings"]

_UNSET = object()

#: (attribute, django-aio name, django-subatomic name); every default is True.
_NAMES = (
    (
        "needs_transaction",
        "DJANGO_AIO_AFTER_COMMIT_NEEDS_TRANSACTION",
        "SUBATOMIC_AFTER_COMMIT_NEEDS_TRANSACTION",
    ),
    (
        "run_in_tests",
        "DJANGO_AIO_RUN_AFTER_COMMIT_CALLBACKS_IN_TESTS",
        "SUBATOMIC_RUN_AFTER_COMMIT_CALLBACKS_IN_TESTS",
    ),
    (
        "catch_unhandled_in_tests",
        "DJANGO_AIO_CATCH_UNHANDLED_AFTER_COMMIT_CALLBACKS_IN_TESTS",
        "SUBATOMIC_CATCH_UNHANDLED_AFTER_COMMIT_CALLBACKS_IN_TESTS",
    ),
    (
        "ambiguity_error_in_tests",
        "DJANGO_AIO_AFTER_COMMIT_AMBIGUITY_ERROR_IN_TESTS",
        "SUBATOMIC_AFTER_COMMIT_AMBIGUITY_ERROR_IN_TESTS",
    ),
)


@dataclass(frozen=True)
class AfterCommitSettings:
    """The current values of the four after-commit settings (all ``True`` by default).

    - ``needs_transaction``: ``run_after_commit()`` outside a transaction
      raises ``TransactionRequired`` (else it runs the callback at once).
    - ``run_in_tests``: in a test case's transaction, after-commit callbacks
      run when the ``transaction()`` that registered them exits.
    - ``catch_unhandled_in_tests``: in tests, ``transaction()`` and
      ``part_of_a_transaction()`` refuse to start while callbacks nothing will
      run are pending (else they run them when they exit).
    - ``ambiguity_error_in_tests``: in tests, ``run_after_commit()`` inside a
      plain ``atomic()`` block that no commit will end raises.
    """

    needs_transaction: bool = True
    run_in_tests: bool = True
    catch_unhandled_in_tests: bool = True
    ambiguity_error_in_tests: bool = True


def _flag(ours: str, theirs: str) -> bool:
    mine = getattr(settings, ours, _UNSET)
    other = getattr(settings, theirs, _UNSET)
    for name, value in ((ours, mine), (theirs, other)):
        if value is not _UNSET and not isinstance(value, bool):
            raise ImproperlyConfigured(f"settings.{name} must be True or False, not {value!r}.")
    if mine is not _UNSET and other is not _UNSET and mine != other:
        raise ImproperlyConfigured(
            f"settings.{ours} = {mine!r} and settings.{theirs} = {other!r} disagree; "
            f"keep one of them (django_aio.atomic reads both)."
        )
    if mine is not _UNSET:
        return bool(mine)
    if other is not _UNSET:
        return bool(other)
    return True


def after_commit_settings() -> AfterCommitSettings:
    """Read the after-commit settings now, under either name.

    Raises ``ImproperlyConfigured`` for a value that is not a bool, or when a
    setting is given under both names with different values.
    """
    return AfterCommitSettings(**{attr: _flag(ours, theirs) for attr, ours, theirs in _NAMES})
