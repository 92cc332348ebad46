"""The FHIR R4 REST base of a clinic tenant's host, ``/fhir/R4/`` (issue 17; docs/fhir.md).

``negotiation`` (media types, ``_format``, ``fhirVersion``) and ``outcome`` (every error as an
OperationOutcome) are what any FHIR endpoint here uses, the Bulk Data ``$export`` included;
``urls`` is the base's URL conf (the Bulk Data routes are added there).
"""
