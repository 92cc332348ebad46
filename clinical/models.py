"""Clinical domain models (facilities, patients, appointments, prescriptions, documents)."""
