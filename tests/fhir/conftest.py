"""FHIR tests run on the clinical fixtures: two tenants (alpha, beta) with colliding ids."""

from tests.clinical.conftest import clinic, clinic_beta

__all__ = ["clinic", "clinic_beta"]
