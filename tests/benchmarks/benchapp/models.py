"""The model matches the migration stage in use, so migrate finds no unmigrated model changes."""

import os

from django.db import models

STAGE = os.environ.get("BENCH_MIGRATION_STAGE", "1")


class Note(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    if STAGE == "2":
        priority = models.PositiveSmallIntegerField(default=3, db_index=True)

    def __str__(self) -> str:
        return self.title
