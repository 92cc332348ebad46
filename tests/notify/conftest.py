"""The clinical fixtures (facilities, patients, clinician) for the reminder delivery tests."""

from tests.clinical.conftest import clinic, clinic_beta  # noqa: F401
