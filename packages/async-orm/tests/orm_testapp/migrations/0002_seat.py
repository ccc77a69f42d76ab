from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orm_testapp", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Seat",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "block",
                        "number",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("block", models.CharField(max_length=2)),
                ("number", models.IntegerField()),
                ("details", models.JSONField(default=dict)),
            ],
        ),
    ]
