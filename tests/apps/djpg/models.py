"""One model; its table is made by the test (no migrations)."""
from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=100)

    class Meta:
        app_label = "djpg"
        db_table = "djpg_note"
