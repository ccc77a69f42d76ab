"""Model instances built from rows with less work per instance, as Django builds them.

Note [Model building]
~~~~~~~~~~~~~~~~~~~~~
Every model instance a query returns is made by ``Model.from_db()``, which
calls ``cls(*values)``: ``Model.__init__`` sends ``pre_init``, makes the
``ModelState``, sets each field with ``setattr()`` through its descriptor,
calls ``super().__init__()`` and sends ``post_init``. For a list of a hundred
rows, or of a hundred rows with ``select_related``, that is about a quarter
of the CPU time of the whole query. For most models all that work amounts to
filling the instance's ``__dict__``: the descriptors of plain fields
(``DeferredAttribute``) have no ``__set__``, and a foreign key's
(``ForeignKeyDeferredAttribute``) only clears a cached related object, which
a new instance does not have.

So drop-in's ``Model.from_db()`` fills ``__dict__`` directly, leaving exactly
what Django's would leave (the same keys in the same order, in the instance
and in its ``ModelState``), when all of these hold, and calls Django's own
``from_db()`` otherwise:

- the model does not override ``__new__``, ``__init__`` or ``__setattr__``,
  its metaclass does not override ``__call__``, no class after ``Model`` in
  its MRO has an ``__init__`` (``Model.__init__`` calls ``super().__init__()``),
  and it is not abstract;
- every concrete field's attribute, as looked up on the class, is a
  ``DeferredAttribute`` or a ``ForeignKeyDeferredAttribute`` (not a subclass:
  a ``FileField``'s descriptor, for one, does more on ``__set__``), or is not
  a data descriptor at all;
- ``pre_init`` and ``post_init`` would reach no receiver for the model:
  checked on every call, with the test ``Signal.send()`` itself starts with;
- there is a value for every concrete field (``defer()`` and ``only()``
  querysets take Django's way).

What is checked of the class is kept per class, and forgotten whenever an
attribute of any model class is set or deleted (``ModelBase.__setattr__`` and
``__delattr__`` are hooked for that): a field added at run time, a
``mock.patch`` of a descriptor or of ``Model.__init__`` are seen at the next
row.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from django.db.models import Model
from django.db.models.base import DEFERRED, ModelBase, ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.dispatch import dispatcher

__all__ = ["fast_from_db", "forget_on_change"]

_NO_RECEIVERS = getattr(dispatcher, "NO_RECEIVERS", None)
_MODEL_INIT = Model.__dict__["__init__"]
_FK_SET = ForeignKeyDeferredAttribute.__dict__.get("__set__")


class _Plan:
    """What a row of a model needs to become an instance: its field names, in order."""

    __slots__ = ("attnames", "count", "foreign_keys")

    def __init__(self, attnames: tuple[str, ...], foreign_keys: tuple[int, ...]) -> None:
        self.attnames = attnames
        self.count = len(attnames)
        self.foreign_keys = foreign_keys


# model class -> _Plan, or None: Django's way. Cleared by forget_on_change().
_plans: dict[type[Any], _Plan | None] = {}
_generation = 0


def _plain_class(cls: Any) -> bool:
    if (
        cls.__new__ is not object.__new__
        or cls.__init__ is not _MODEL_INIT
        or cls.__setattr__ is not object.__setattr__
        or type(cls).__call__ is not type.__call__
        or cls._meta.abstract
    ):
        return False
    after_model = cls.__mro__[cls.__mro__.index(Model) + 1 :]
    return not any("__init__" in vars(klass) for klass in after_model if klass is not object)


def _make_plan(cls: Any) -> _Plan | None:
    if _NO_RECEIVERS is None or _FK_SET is None or hasattr(DeferredAttribute, "__set__"):
        return None  # a Django whose internals differ from the ones this relies on
    if not _plain_class(cls):
        return None
    attnames = []
    foreign_keys = []
    for index, field in enumerate(cls._meta.concrete_fields):
        attribute = inspect.getattr_static(cls, field.attname, None)
        kind = type(attribute)
        if kind is ForeignKeyDeferredAttribute:
            if kind.__dict__.get("__set__") is not _FK_SET:
                return None
            foreign_keys.append(index)
        elif kind is not DeferredAttribute and (
            hasattr(kind, "__set__") or hasattr(kind, "__delete__")
        ):
            return None
        attnames.append(field.attname)
    return _Plan(tuple(attnames), tuple(foreign_keys))


def _make_and_keep_plan(cls: type[Any]) -> _Plan | None:
    generation = _generation
    plan = _make_plan(cls)
    if generation == _generation:  # no class changed meanwhile (another thread)
        if len(_plans) >= 4096:  # models made at run time (tests) must not pile up
            _plans.clear()
        _plans[cls] = plan
    return plan


def _build(cls: type[Any], db: str | None, values: Sequence[Any]) -> Any:
    """``cls.from_db(db, ..., values)`` without ``__init__``; None where that differs."""
    try:
        plan = _plans[cls]
    except KeyError:
        plan = _make_and_keep_plan(cls)
    if (
        plan is None
        or len(values) != plan.count
        # Signal.send()'s own test for "no receiver to call".
        or (pre_init.receivers and pre_init.sender_receivers_cache.get(cls) is not _NO_RECEIVERS)
        or (post_init.receivers and post_init.sender_receivers_cache.get(cls) is not _NO_RECEIVERS)
    ):
        return None
    new = object.__new__(cls)
    state: Any = ModelState()
    attributes = new.__dict__
    attributes["_state"] = state
    deferred = DEFERRED
    for name, value in zip(plan.attnames, values):  # noqa: B905 (lengths checked)
        if value is not deferred:
            attributes[name] = value
    for index in plan.foreign_keys:
        value = values[index]
        # ForeignKeyDeferredAttribute.__set__ compares the old value (None on a
        # new instance) with the new one, and only then reads the state's
        # cache of related objects, which creates it.
        if value is not deferred and None != value:  # noqa: E711, SIM300 (its very test)
            state.fields_cache = {}
            break
    state.adding = False
    state.db = db
    return new


def fast_from_db(original: Any) -> classmethod[Any, Any, Any]:
    """``Model.from_db`` (the classmethod ``original``), building plain models directly."""
    django_from_db: Callable[..., Any] = original.__func__

    def from_db_5(cls: Any, db: Any, field_names: Any, values: Any) -> Any:
        new = _build(cls, db, values)
        if new is None:
            return django_from_db(cls, db, field_names, values)
        return new

    def from_db_6(
        cls: Any, db: Any, field_names: Any, values: Any, *, fetch_mode: Any = None
    ) -> Any:
        new = _build(cls, db, values)
        if new is None:
            return django_from_db(cls, db, field_names, values, fetch_mode=fetch_mode)
        if fetch_mode is not None:
            new._state.fetch_mode = fetch_mode
        return new

    # Django 6.0 added fetch_mode.
    with_fetch_mode = "fetch_mode" in inspect.signature(django_from_db).parameters
    from_db: Callable[..., Any] = from_db_6 if with_fetch_mode else from_db_5
    from_db.__doc__ = django_from_db.__doc__
    return classmethod(from_db)


def _forget() -> None:
    global _generation
    _generation += 1
    _plans.clear()


def forget_on_change() -> tuple[Callable[..., None], Callable[..., None]]:
    """``ModelBase.__setattr__`` and ``__delattr__`` that also drop what ``_plan`` kept."""
    set_attribute = ModelBase.__setattr__
    del_attribute = ModelBase.__delattr__

    def __setattr__(cls: Any, name: str, value: Any) -> None:
        _forget()
        set_attribute(cls, name, value)

    def __delattr__(cls: Any, name: str) -> None:
        _forget()
        del_attribute(cls, name)

    return __setattr__, __delattr__
