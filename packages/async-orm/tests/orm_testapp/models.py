"""Models of django_aio.orm's tests: every relation kind, inheritance, proxies."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models

from django_aio.orm import AsyncManager, AsyncMixin, AsyncQuerySet

# -- plain Django models (drop-in) -----------------------------------------


class Author(models.Model):
    name = models.CharField(max_length=100, unique=True)
    age = models.IntegerField(default=30)

    class Meta:
        ordering = ["name"]


class Profile(models.Model):
    author = models.OneToOneField(Author, models.CASCADE, related_name="profile")
    bio = models.TextField(default="")


class Tag(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        ordering = ["name"]


class BookQuerySet(models.QuerySet["Book"]):
    def published(self) -> BookQuerySet:
        return self.filter(published=True)


class PublishedManager(models.Manager["Book"]):
    def get_queryset(self) -> Any:
        return super().get_queryset().filter(published=True)


class TaggedItem(models.Model):
    label = models.CharField(max_length=50)
    content_type = models.ForeignKey(ContentType, models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")

    class Meta:
        ordering = ["label"]


class Book(models.Model):
    title = models.CharField(max_length=100)
    author = models.ForeignKey(Author, models.CASCADE, related_name="books")
    editor = models.ForeignKey(
        Author, models.SET_NULL, null=True, blank=True, related_name="edited"
    )
    tags = models.ManyToManyField(Tag, related_name="books", blank=True)
    published = models.BooleanField(default=False)
    pages = models.IntegerField(default=100)
    written = models.DateField(null=True)
    items = GenericRelation(TaggedItem)

    objects = BookQuerySet.as_manager()
    published_books = PublishedManager()

    class Meta:
        ordering = ["title"]
        base_manager_name = "objects"


class AuthorProxy(Author):
    class Meta:
        proxy = True

    def shout(self) -> str:
        return self.name.upper()


# -- multi-table inheritance -------------------------------------------------


class Place(models.Model):
    name = models.CharField(max_length=50)


class Restaurant(Place):
    serves_pizza = models.BooleanField(default=False)


# -- on_delete variants ------------------------------------------------------


class Owner(models.Model):
    name = models.CharField(max_length=50)


class Pet(models.Model):
    owner = models.ForeignKey(Owner, models.CASCADE, related_name="pets")


class Collar(models.Model):
    pet = models.ForeignKey(Pet, models.SET_NULL, null=True, related_name="collars")


class Leash(models.Model):
    owner = models.ForeignKey(Owner, models.PROTECT, related_name="leashes")


class Vet(models.Model):
    owner = models.ForeignKey(Owner, models.RESTRICT, related_name="vets")


# -- many rows (iteration) ---------------------------------------------------


class Row(models.Model):
    n = models.IntegerField()
    payload = models.CharField(max_length=100, default="")


# -- the seed APIs: AsyncManager and AsyncMixin --------------------------------


class ToppingQuerySet(AsyncQuerySet["Topping"]):
    def vegetarian(self) -> ToppingQuerySet:
        return self.filter(vegetarian=True)


class Topping(AsyncMixin, models.Model):
    name = models.CharField(max_length=50)
    vegetarian = models.BooleanField(default=True)

    objects: AsyncManager[Topping] = AsyncManager.from_queryset(ToppingQuerySet)()

    class Meta:
        ordering = ["name"]


class Box(AsyncMixin, models.Model):
    size = models.IntegerField(default=30)

    objects: AsyncManager[Box] = AsyncManager()


class Pizza(AsyncMixin, models.Model):
    name = models.CharField(max_length=50)
    box = models.ForeignKey(Box, models.SET_NULL, null=True, blank=True)
    toppings = models.ManyToManyField(Topping, related_name="pizzas", blank=True)
    labels = GenericRelation(TaggedItem)

    objects: AsyncManager[Pizza] = AsyncManager()

    class Meta:
        ordering = ["name"]


class Recipe(AsyncMixin, models.Model):
    pizza = models.OneToOneField(Pizza, models.CASCADE, related_name="recipe")
    text = models.TextField(default="")

    objects: AsyncManager[Recipe] = AsyncManager()


class Sticker(AsyncMixin, models.Model):
    text = models.CharField(max_length=50)
    content_type = models.ForeignKey(ContentType, models.CASCADE, null=True)
    object_id = models.PositiveIntegerField(null=True)
    target = GenericForeignKey("content_type", "object_id")

    objects: AsyncManager[Sticker] = AsyncManager()


class Seat(models.Model):
    """A composite primary key, and a column Django converts (JSON)."""

    pk = models.CompositePrimaryKey("block", "number")
    block = models.CharField(max_length=2)
    number = models.IntegerField()
    details = models.JSONField(default=dict)


class Note(models.Model):
    """A creation time that ``pre_save()`` sets (``auto_now_add``)."""

    text = models.CharField(max_length=50)
    created = models.DateTimeField(auto_now_add=True)


class Token(models.Model):
    """A primary key with a default, made by Python before the insert."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    label = models.CharField(max_length=50)


class Stamped(models.Model):
    """A ``save()`` of its own."""

    label = models.CharField(max_length=50)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.label = f"{self.label} (saved)"
        super().save(*args, **kwargs)
