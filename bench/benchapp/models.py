from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=50)
    value = models.IntegerField()

    class Meta:
        app_label = "benchapp"
        db_table = "bench_item"
