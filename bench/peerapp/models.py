from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "peerapp"
        db_table = "peer_author"


class Item(models.Model):
    name = models.CharField(max_length=50)
    value = models.IntegerField()
    author = models.ForeignKey(Author, models.CASCADE, related_name="items")

    class Meta:
        app_label = "peerapp"
        db_table = "peer_item"
