from django.db import models


class Account(models.Model):
    owner = models.CharField(max_length=50, unique=True)
    balance = models.IntegerField(default=0)

    class Meta:
        app_label = "demo"

    def __str__(self) -> str:
        return f"{self.owner}: {self.balance}"
