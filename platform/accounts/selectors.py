"""Reads for accounts."""

from django.db.models import QuerySet

from accounts.models import Invitation, User


def user_list() -> QuerySet[User]:
    return User.objects.all().order_by("email")


def invitation_list() -> QuerySet[Invitation]:
    """Every invitation of the tenant, newest first (open, accepted, revoked and expired)."""
    return Invitation.objects.all().order_by("-created_at")
