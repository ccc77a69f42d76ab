"""``create()`` of a plain model inserts its row without ``save()``'s chain around it.

Note [Direct creates]
~~~~~~~~~~~~~~~~~~~~~
``QuerySet.create(**kwargs)`` (``acreate()``, ``Manager.create()``, the
related managers' ``create()``) builds the object and calls
``save(force_insert=True)``, which goes through ``save_base()`` (signals,
``mark_for_rollback_on_error``, parents) and ``_save_table()`` (the primary
key, the fields to insert and to return) to ``_do_insert()``. For a new row
of a plain model, all that decides nothing: each step takes its one obvious
branch. Walking it still costs about a tenth of an ``acreate()``'s
instructions. Drop-in's ``create()`` takes those branches itself when the
outcome is Django's by construction:

- Django's own ``save()``, ``save_base()``, ``_save_table()``,
  ``_save_parents()``, ``_validate_force_insert()``, ``_is_pk_set()``,
  ``_get_pk_val()``, the primary key's ``get_pk_value_on_save()`` and
  ``mark_for_rollback_on_error()`` are in place, from Django's files (none
  overridden, none wrapped), and ``_do_insert()`` is drop-in's (Note
  [Direct inserts]). The signals and ``transaction`` are looked up in
  ``django.db.models.base`` on each call, as ``save_base()`` does, so a
  test that patches them there sends every create Django's way;
- the model is concrete, not a proxy, not auto-created (a many-to-many
  table), has no parents and no ``order_with_respect_to``, and its primary
  key is an auto field with no default, left unset by the arguments (so
  ``get_pk_value_on_save()`` gives ``None``);
- ``pre_save`` and ``post_save`` have no receiver for the model, checked the
  way ``Signal.send()`` checks, and ``send()`` is Django's;
- the insert itself would run directly (Note [Direct inserts]): among
  others, every field's ``pre_save`` is Django's plain one or the date
  fields' (``auto_now``), which runs as often as in Django, below.

Then, in ``save()``'s order: ``_prepare_related_fields_for_save()`` (an
unsaved related object raises Django's error); inside what
``mark_for_rollback_on_error()`` does (an error marks an open transaction for
rollback), the primary key set to ``None`` as ``_save_table()`` sets it;
on Django 6, ``_save_table()``'s own pass over the values (each field's
``pre_save()``, so an ``auto_now`` field takes the time twice, as there; an
expression among them is returned by the INSERT, so from there Django's
``_do_insert()`` runs with those returned fields); the insert (each field's
``pre_save()`` again, on every version);
the returned values assigned as ``_save_table()`` assigns them. Then
``_state.db`` and ``_state.adding``, ``post_save`` if a receiver appeared
meanwhile, and (Django 6.1) the queryset's fetch mode. Anything else calls
``obj.save(force_insert=True, using=...)`` on the object built once, so
``pre_init``/``post_init`` never run twice; ``DJANGO_AIO_QUERY_CACHE = False``
turns this off with direct inserts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django
from django.db import connections
from django.db.models import base as django_base
from django.dispatch.dispatcher import NO_RECEIVERS

from django_aio.conn.layers import DjangoDefined, query_cache_enabled

from ._direct_insert import insert_row, kept_for

__all__ = ["direct_create", "direct_creates_run"]

# Django 6.0's _save_table() calls each field's pre_save() itself, returns
# the columns of expression values, and assigns with a method of its own.
_DJANGO_6_SAVE = django.VERSION >= (6, 0)
_MAX_MODELS = 1024
# What save() and the signals' send() are made of, where Django defines it.
_djangos_save = DjangoDefined(
    "db/models/base.py",  # save
    "db/models/base.py",  # save_base
    "db/models/base.py",  # _save_table
    "db/models/base.py",  # _save_parents
    "db/models/base.py",  # _validate_force_insert
    "db/models/base.py",  # _is_pk_set
    "db/models/base.py",  # _get_pk_val
    "db/models/fields/__init__.py",  # the primary key's get_pk_value_on_save
    "db/transaction.py",  # mark_for_rollback_on_error, under @contextmanager
    "dispatch/dispatcher.py",  # pre_save.send
    "dispatch/dispatcher.py",  # post_save.send
)
_djangos_create = DjangoDefined("db/models/query.py")
# save_base() reads the signals and ``transaction`` from its module's globals.
base: Any = django_base
# model -> (local concrete fields, returned fields, fields to insert or None)
_plans: dict[type[Any], tuple[Any, Any, list[Any] | None]] = {}
_runs = 0


def direct_creates_run() -> int:
    """How many ``create()`` calls took the direct way since the process started (for tests)."""
    return _runs


def _function(method: Any) -> Any:
    return getattr(method, "__func__", method)


def _plan(model: type[Any]) -> tuple[Any, Any, list[Any] | None]:
    meta: Any = model._meta
    plan = _plans.get(model)
    # Options' cached lists are new objects after the app registry changes.
    if (
        plan is not None
        and plan[0] is meta.local_concrete_fields
        and plan[1] is meta.db_returning_fields
    ):
        return plan
    pk = meta.pk
    fields: list[Any] | None = None
    if not (
        meta.proxy
        or meta.auto_created
        or meta.parents
        or meta.order_with_respect_to
        or pk is None
        or pk is not meta.auto_field
        or pk.has_default()
        or pk.has_db_default()
    ):
        fields = [f for f in meta.local_concrete_fields if not f.generated and f is not pk]
    if len(_plans) >= _MAX_MODELS:
        _plans.clear()
    plan = _plans[model] = (meta.local_concrete_fields, meta.db_returning_fields, fields)
    return plan


def _quiet(signal: Any, sender: type[Any]) -> bool:
    # Signal.send()'s own test for nothing to call.
    return not signal.receivers or signal.sender_receivers_cache.get(sender) is NO_RECEIVERS


def _saves_plainly(obj: Any, model: type[Any], do_insert: Any) -> bool:
    kind: Any = model
    pk = kind._meta.pk
    return (
        kind._do_insert is do_insert
        and _djangos_save(
            (
                kind.save,
                kind.save_base,
                kind._save_table,
                kind._save_parents,
                _function(kind._validate_force_insert),
                kind._is_pk_set,
                kind._get_pk_val,
                _function(pk.get_pk_value_on_save),
                getattr(base.transaction.mark_for_rollback_on_error, "__wrapped__", None),
                _function(base.pre_save.send),
                _function(base.post_save.send),
            )
        )
        and _quiet(base.pre_save, model)
        and _quiet(base.post_save, model)
        and getattr(obj, pk.attname) is None
    )


def _insert(
    obj: Any,
    model: type[Any],
    connection: Any,
    using: str,
    fields: list[Any],
    returning_fields: Any,
    kept: Any,
) -> None:
    # save(), save_base() and _save_table() of a new plain row, in their order.
    obj._prepare_related_fields_for_save(operation_name="save")
    kind: Any = model
    try:
        # The key's get_pk_value_on_save() gives None (it has no default).
        setattr(obj, kind._meta.pk.attname, None)
        returning = returning_fields
        if _DJANGO_6_SAVE:
            returning = list(returning_fields)
            for field in fields:
                value = field.pre_save(obj, add=True)
                if hasattr(value, "resolve_expression") and field not in returning:
                    returning.append(field)
        if len(returning) == len(returning_fields):
            results = insert_row(obj, connection, kind, using, fields, returning_fields, kept)
        else:
            # Django 6 returns the columns of expression values: a statement
            # of another shape, which its _do_insert() runs.
            results = obj._do_insert(kind._base_manager, using, fields, returning, False)
        if results:
            if _DJANGO_6_SAVE:
                obj._assign_returned_values(results[0], returning)
            else:
                for value, field in zip(results[0], returning, strict=False):
                    setattr(obj, field.attname, value)
    except Exception as exc:
        # What mark_for_rollback_on_error() does, without a generator per call.
        if connection.in_atomic_block:
            connection.needs_rollback = True
            connection.rollback_exc = exc
        raise
    obj._state.db = using
    obj._state.adding = False


def direct_create(original: Callable[..., Any], do_insert: Any) -> Callable[..., Any]:
    """``QuerySet.create`` that saves plain new rows directly (Note [Direct creates]).

    ``do_insert`` is drop-in's ``Model._do_insert``; ``original`` is returned
    unchanged unless it is Django's own ``create()``.
    """
    if not _djangos_create((original,)):
        return original
    # Django 6.1 hands the queryset's fetch mode to the new object.
    sets_fetch_mode = "_fetch_mode" in original.__code__.co_names

    def create(self: Any, **kwargs: Any) -> Any:
        global _runs
        model = self.model
        if not query_cache_enabled() or model._meta._reverse_one_to_one_field_names.intersection(
            kwargs
        ):
            return original(self, **kwargs)  # Django's error, or Django's way
        obj = model(**kwargs)
        self._for_write = True
        using = self.db
        kind = obj.__class__
        _, returning_fields, fields = _plan(kind)
        connection: Any = None
        kept: Any = None
        if fields is not None and _saves_plainly(obj, kind, do_insert):
            connection = connections[using]
            kept = kept_for(kind._base_manager, connection, fields, returning_fields)
        if kept is None or fields is None:
            obj.save(force_insert=True, using=using)
        else:
            _insert(obj, kind, connection, using, fields, returning_fields, kept)
            _runs += 1
            post_save = base.post_save
            if not _quiet(post_save, kind):  # a receiver connected meanwhile
                post_save.send(
                    sender=kind,
                    instance=obj,
                    created=True,
                    update_fields=None,
                    raw=False,
                    using=using,
                )
        if sets_fetch_mode:
            obj._state.fetch_mode = self._fetch_mode
        return obj

    create.__doc__ = original.__doc__
    create.__name__ = original.__name__
    create.__qualname__ = original.__qualname__
    create.alters_data = True  # type: ignore[attr-defined]
    return create
