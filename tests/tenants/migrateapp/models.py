"""The model matches the migration stage in use, so migrate finds no unmigrated model changes."""

import os

from django.db import models

STAGE = int(os.environ.get("MIGRATEAPP_STAGE", "1"))


class Note(models.Model):
    title = models.CharField(max_length=100)
    if STAGE >= 2:
        priority = models.PositiveSmallIntegerField(default=3)

    class Meta:
        constraints = (
            [models.UniqueConstraint(fields=["title"], name="migrateapp_note_title_unique")]
            if STAGE >= 3
            else []
        )

    def __str__(self) -> str:
        return self.title
