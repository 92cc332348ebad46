"""A platform operator signed in to the operators' admin on the bare base domain."""

from __future__ import annotations

from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User


def operator_client(*, email: str, password: str) -> Client:
    """Create the operator (a superuser of the public schema) and sign in as it."""
    with schema_context("public"):
        User.objects.create_superuser(email, password)
    client = Client(HTTP_HOST="verdant.test")
    response = client.post("/admin/login/?next=/admin/", {"username": email, "password": password})
    assert response.status_code == 302
    return client
