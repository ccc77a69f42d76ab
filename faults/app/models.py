"""Models of the fault suite (tables made by faults/server.py's SCHEMA)."""

from __future__ import annotations

from django.db import models


class Account(models.Model):
    """One account of the ledger: transfers move money, the total never changes."""

    id = models.BigIntegerField(primary_key=True)
    balance = models.IntegerField()

    class Meta:
        app_label = "faults"
        db_table = "faults_account"


class Transfer(models.Model):
    """A committed transfer; ``id`` is chosen by the client, so outcomes can be checked."""

    id = models.BigIntegerField(primary_key=True)
    source = models.BigIntegerField()
    target = models.BigIntegerField()
    amount = models.IntegerField()

    class Meta:
        app_label = "faults"
        db_table = "faults_transfer"


class Book(models.Model):
    """Rows for aiterator()."""

    title = models.CharField(max_length=100)

    class Meta:
        app_label = "faults"
        db_table = "faults_book"
