"""The roles a tenant user can hold. What each role may do is the matrix in apikit.policy."""

from django.db import models


class Role(models.TextChoices):
    TENANT_ADMIN = "tenant_admin", "Tenant admin"
    CLINICIAN = "clinician", "Clinician"
    NURSE = "nurse", "Nurse"
    RECEPTIONIST = "receptionist", "Receptionist"
    AGRONOMIST = "agronomist", "Agronomist"
    FIELD_AGENT = "field_agent", "Field agent"
    VIEWER = "viewer", "Viewer"
