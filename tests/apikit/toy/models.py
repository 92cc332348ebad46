from django.db import models

from apikit.models import TenantModel


class Site(TenantModel):
    """A container, like a Facility or a Farm."""

    name = models.CharField(max_length=100)

    class Meta:
        permissions = [("manage_site", "Can manage the site and everything under it")]


class Item(TenantModel):
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="items")
    name = models.CharField(max_length=100)
    quantity = models.IntegerField(default=0)
    colour = models.CharField(max_length=20, blank=True)


class Attachment(TenantModel):
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="attachments")
    path = models.CharField(max_length=300)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    original_name = models.CharField(max_length=200)
