"""FHIR R4 content of the clinical domain (issue 17, docs/fhir.md).

``clinical.fhir.resources`` builds the five resource types as plain dicts (Patient, Appointment,
Practitioner, Location, Organization); ``clinical.fhir_api`` serves them on the REST base
``/fhir/R4/`` and the Bulk Data export writes them as NDJSON. One builder per type, used by every
surface, so a resource reads the same wherever it leaves the server.
"""
