"""FHIR tests run on the clinical fixtures: two tenants (alpha, beta) with colliding ids; ``fc`` is
alpha with the FHIR tests' data on top (tests/fhir/world.py)."""

import pytest

from tests.clinical.conftest import Clinic, clinic, clinic_beta
from tests.fhir.world import FhirClinic, fhir_clinic

__all__ = ["clinic", "clinic_beta"]


@pytest.fixture
def fc(clinic: Clinic) -> FhirClinic:
    return fhir_clinic(clinic)
