"""Models as an application declares them for typed async access."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, ClassVar, Self

from django.db import models

from django_aio.orm import AsyncManager, AsyncMixin, AsyncRelatedManager

# ``objects: ClassVar[AsyncManager[Self]] = AsyncManager()`` is the form both
# checkers accept: django-stubs' mypy plugin binds ``Self`` to the model, and
# pyright reads ``Self`` the same way (it only objects that django-stubs
# declares ``Model.objects`` as a plain ``Manager``, hence its ignore).


class Box(AsyncMixin, models.Model):
    size = models.IntegerField()

    objects: ClassVar[AsyncManager[Self]] = AsyncManager()  # pyright: ignore[reportIncompatibleVariableOverride]

    if TYPE_CHECKING:
        # The async related manager ``AsyncMixin`` answers for ``box.apizza_set``.
        apizza_set: AsyncRelatedManager[Pizza]

    class Meta:
        app_label = "typing_example"


class Topping(AsyncMixin, models.Model):
    name = models.CharField(max_length=50)

    objects: ClassVar[AsyncManager[Self]] = AsyncManager()  # pyright: ignore[reportIncompatibleVariableOverride]

    class Meta:
        app_label = "typing_example"


class Pizza(AsyncMixin, models.Model):
    name = models.CharField(max_length=50)
    box = models.ForeignKey(Box, models.CASCADE)
    toppings = models.ManyToManyField(Topping)

    objects: ClassVar[AsyncManager[Self]] = AsyncManager()  # pyright: ignore[reportIncompatibleVariableOverride]

    if TYPE_CHECKING:
        # ``AsyncMixin`` answers ``a<relation>`` at run time; declaring them
        # gives ``await pizza.abox`` and ``pizza.atoppings`` their types.
        abox: Awaitable[Box]
        atoppings: AsyncRelatedManager[Topping]

    class Meta:
        app_label = "typing_example"
