"""Models for django_aio.atomic's tests."""

from __future__ import annotations

from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=100, unique=True)
    quantity = models.IntegerField(default=0)

    class Meta:
        app_label = "atomic_testapp"


class Note(models.Model):
    """Written by signal receivers and callbacks."""

    text = models.CharField(max_length=200)

    class Meta:
        app_label = "atomic_testapp"
