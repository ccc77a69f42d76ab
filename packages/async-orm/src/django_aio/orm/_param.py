"""``Param``: the values of a compiled query, where they may go and how they are bound.

See Note [Compiled queries] in _compiled.py.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db.models.expressions import Col, Value
from django.db.models.lookups import Lookup
from django.db.models.sql.where import WhereNode

__all__ = [
    "Param",
    "Unbindable",
    "compiling",
    "no_params_in",
    "params_in",
    "prepared",
    "stray",
    "substituted",
]

# Set while a template compiles: a Param compiled at any other time has no value.
compiling: ContextVar[bool] = ContextVar("django_aio_compiling", default=False)

# Comparisons whose SQL does not depend on their value: ``= %s``, ``> %s``...
_BINDABLE = frozenset({"exact", "gt", "gte", "lt", "lte"})


class Param(Value):
    """A named value of a ``CompiledQuery``, given each time it runs.

    ``Book.objects.filter(author=Param("author"), pages__gte=Param("pages"))``
    """

    # A Value to Django: a lookup then writes ``= %s`` as for a plain value,
    # not ``= (%s)`` as for other expressions, so the SQL is Django's own.

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(
                f"Param() takes the name of a keyword argument of the compiled query's "
                f"methods, such as Param('pk'); got {name!r}."
            )
        super().__init__(None)
        self.name = name

    def __repr__(self) -> str:
        return f"Param({self.name!r})"

    def resolve_expression(self, *args: Any, **kwargs: Any) -> Param:
        """The Param itself: it has nothing to resolve until it gets its value."""
        return self

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        """A placeholder whose parameter is the Param, replaced by its value on each run."""
        # The Param itself stands for its value in the compiled parameters;
        # CompiledQuery binds it. Run any other way, it has no value.
        if not compiling.get():
            raise TypeError(
                f"{self!r} has no value: a queryset with Param() runs through "
                f"CompiledQuery(queryset).aget(...)/.alist(...)/.afirst(...)."
            )
        return "%s", [self]


def params_in(node: Any, found: dict[int, Lookup[Any]]) -> None:
    """Record the lookups of ``node`` (a WHERE tree) whose value is a ``Param``.

    Refuses a Param anywhere else in it: inside an expression, on a transform,
    as the value of a lookup whose SQL depends on its value.
    """
    if isinstance(node, WhereNode):
        for child in node.children:
            params_in(child, found)
        return
    if isinstance(node, Lookup) and isinstance(node.rhs, Param):
        _check_bindable(node)
        if id(node.rhs) in found:
            raise TypeError(
                f"{node.rhs!r} is the value of two lookups: use a new "
                f"Param({node.rhs.name!r}) for each (they may share the name)."
            )
        found[id(node.rhs)] = node
        no_params_in(node.lhs)
        return
    no_params_in(node)


def _check_bindable(lookup: Lookup[Any]) -> None:
    param = lookup.rhs
    if lookup.lookup_name not in _BINDABLE or not isinstance(lookup.lhs, Col):
        raise TypeError(
            f"{param!r} is the value of a {lookup.lookup_name!r} lookup on "
            f"{type(lookup.lhs).__name__}: a Param can only be the value of "
            f"{', '.join(sorted(_BINDABLE))} on a model field (field=Param(...), "
            f"field__gte=Param(...)), where the SQL does not depend on the value."
        )
    if lookup.lookup_name == "exact" and getattr(lookup.lhs, "conditional", False):
        raise TypeError(
            f"{param!r} is the value of a boolean field, {lookup.lhs.target}: Django "
            f"writes WHERE field or WHERE NOT field, without the value, so the SQL "
            f"depends on it; compile one query for each value."
        )


def no_params_in(expression: Any) -> None:
    if isinstance(expression, Param):
        raise stray(expression)
    for source in getattr(expression, "get_source_expressions", list)():
        if source is not None:
            no_params_in(source)


def stray(param: Param) -> TypeError:
    return TypeError(
        f"{param!r} is not the value of a lookup on a model field (it is in an "
        f"expression, annotation or subquery): a Param can only be the value of "
        f"{', '.join(sorted(_BINDABLE))} on a field, where the SQL does not depend "
        f"on the value."
    )


class Unbindable(Exception):
    """This value changes the statement: run the queryset Django's way, with the values in."""


def lookup_with(lookup: Lookup[Any], name: str, value: Any, query: Any) -> Lookup[Any]:
    """The lookup Django builds for ``value`` where ``lookup`` has a Param."""
    if value is None:
        raise ValueError(
            f"Param({name!r}) got None: Django turns field=None into IS NULL, another "
            f"statement; compile a queryset with field__isnull=True for that."
        )
    if hasattr(value, "resolve_expression"):
        raise TypeError(
            f"Param({name!r}) got {value!r}: a Param takes plain values; write "
            f"expressions in the queryset."
        )
    field = lookup.lhs.output_field
    if field.is_relation:
        # As Django's filter(): instances of the wrong model are refused
        # ("Cannot query ...: Must be ... instance.") before any lookup.
        query.check_related_objects(field, value, field.related_model._meta)
    return type(lookup)(lookup.lhs, value)


def prepared(lookup: Lookup[Any], name: str, value: Any, compiler: Any, connection: Any) -> Any:
    """``value`` as Django would send it in ``lookup`` (Note [Compiled queries])."""
    fresh = lookup_with(lookup, name, value, compiler.query)
    try:
        sql, params = fresh.process_rhs(compiler, connection)
    except (EmptyResultSet, FullResultSet) as exc:
        # An integer out of the column's range: Django drops the condition
        # or the whole WHERE clause.
        raise Unbindable from exc
    if sql != "%s" or len(params) != 1:
        raise Unbindable  # a value Django writes as more SQL (an array's items)
    return params[0]


def substituted(where: Any, values: dict[str, Any], query: Any) -> None:
    """Put into ``where`` (a clone's) the lookups Django builds for ``values``."""
    for index, child in enumerate(where.children):
        if isinstance(child, WhereNode):
            substituted(child, values, query)
        elif isinstance(child, Lookup) and isinstance(child.rhs, Param):
            name = child.rhs.name
            where.children[index] = lookup_with(child, name, values[name], query)
