"""A client generated from the SERVED OpenAPI document by openapi-python-client (the real peer,
pinned in the dev dependencies) drives a session against a real gunicorn: log in, create, list
with the cursor, upload and download, revoke facility access, the exports and FHIR; every
response is validated against the document with openapi-core (strict OAS 3.0.3), and the second
tenant, holding the same ids, never sees the first's rows (issue 17, item 5).

The generator runs as a subprocess with the configuration shipped for integrators
(docs/openapi-python-client.yaml: binary media types mapped to application/octet-stream, no
ruff post-hooks) and ``--fail-on-warning``: a document it cannot fully map fails here."""

from __future__ import annotations

import datetime as dt
import importlib
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.db import connection
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request as WerkzeugRequest
from werkzeug.wrappers import Response as WerkzeugResponse

from tests.clinical.test_documents import PNG
from tests.security.live import LiveServer, live_gunicorn
from tests.security.world import SHARED, USER_IDS, World, pdf_bytes, world_create, world_drop

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "docs" / "openapi-python-client.yaml"
PREFIX = "oc"
PACKAGE = "verdant_client"


@dataclass
class Session:
    server: LiveServer
    world: World
    package: ModuleType
    spec: OpenAPI
    document: dict[str, Any]


@pytest.fixture(scope="module")
def session(
    django_db_setup: None,
    django_db_blocker: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Session]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        assert not connection.in_atomic_block
        world = world_create(PREFIX)
        try:
            with live_gunicorn(workers=2, name="openapi-client") as server:
                document = _served_document(server, world.a.host)
                package = _generate(document, tmp_path_factory.mktemp("generated"))
                yield Session(
                    server=server,
                    world=world,
                    package=package,
                    spec=OpenAPI.from_dict(document, config=_validator_config()),
                    document=document,
                )
        finally:
            connection.close()
            world_drop(PREFIX)
            for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
                del sys.modules[name]


def _served_document(server: LiveServer, host: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/api/v1/schema/",
        headers={"Host": host, "Accept": "application/vnd.oai.openapi+json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _generate(document: dict[str, Any], where: Path) -> ModuleType:
    schema_file = where / "openapi.json"
    schema_file.write_text(json.dumps(document))
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(schema_file),
            "--config",
            str(CONFIG),
            "--meta",
            "none",
            "--output-path",
            str(where / PACKAGE),
            "--fail-on-warning",
        ],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))


def _validator_config() -> Config:
    """openapi-core deserializes application/json itself; the +json types it is told are JSON
    (RFC 6838's structured suffix) so that their bodies are checked against their schemas."""
    return Config(
        extra_media_type_deserializers=dict.fromkeys(
            ("application/fhir+json", "application/geo+json"), json.loads
        )
    )


class Recorder:
    """Every response the generated client receives (read in full), for validation."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []
        self.opened: list[Any] = []

    def close(self) -> None:
        for client in self.opened:
            client.get_httpx_client().close()

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        response.request.read()  # a multipart upload's body is a stream (re-iterable)
        self.responses.append(response)


def _validate(spec: OpenAPI, response: httpx.Response) -> None:
    """openapi-core's strict response validation, through its werkzeug adapters."""
    request = response.request
    environ = EnvironBuilder(
        method=request.method,
        base_url=f"{request.url.scheme}://{request.headers['Host']}",
        path=request.url.path,
        query_string=request.url.query.decode(),
        headers=list(request.headers.items()),
        data=request.content,
    ).get_environ()
    spec.validate_response(
        WerkzeugOpenAPIRequest(WerkzeugRequest(environ)),
        WerkzeugOpenAPIResponse(
            WerkzeugResponse(
                response=response.content,
                status=response.status_code,
                headers=list(response.headers.items()),
            )
        ),
    )


def _api(session: Session, name: str) -> Any:
    group = name.split("_", 1)[0]
    return importlib.import_module(f"{PACKAGE}.api.{group}.{name}")


def _model(session: Session, name: str) -> Any:
    return getattr(importlib.import_module(f"{PACKAGE}.models"), name)


def _login(session: Session, host: str, password: str, recorder: Recorder) -> Any:
    """An AuthenticatedClient of the tenant's admin, logged in through the generated client;
    both clients close with ``recorder.close()``."""
    client_module = importlib.import_module(f"{PACKAGE}.client")
    hooks = {"event_hooks": {"response": [recorder]}}
    anonymous = client_module.Client(
        base_url=session.server.url, headers={"Host": host}, httpx_args=hooks
    )
    recorder.opened.append(anonymous)
    body = _model(session, "LoginInputRequest")(email="admin@example.com", password=password)
    answer = _api(session, "auth_token_create").sync_detailed(client=anonymous, body=body)
    assert answer.status_code == 200, answer.content
    authenticated = client_module.AuthenticatedClient(
        base_url=session.server.url,
        token=answer.parsed.access,
        headers={"Host": host},
        httpx_args=hooks,
        # A status the document does not list for the operation raises (UnexpectedStatus).
        raise_on_unexpected_status=True,
    )
    recorder.opened.append(authenticated)
    return authenticated


def _cursor(next_url: str) -> str:
    return parse_qs(urlsplit(next_url).query)["cursor"][0]


def test_a_generated_client_drives_a_session(session: Session) -> None:
    recorder = Recorder()
    try:
        _session(session, recorder)
    finally:
        recorder.close()


def _session(session: Session, recorder: Recorder) -> None:
    a, b = session.world.a, session.world.b
    client = _login(session, a.host, a.password, recorder)
    types = importlib.import_module(f"{PACKAGE}.types")

    # Who am I, through the generated model.
    me = _api(session, "auth_me_retrieve").sync_detailed(client=client)
    assert me.status_code == 200
    assert me.parsed.email == "admin@example.com"

    # Create three patients.
    create = _api(session, "clinical_patients_create")
    patient_input = _model(session, "PatientCreateInputRequest")
    created = []
    for n in range(3):
        answer = create.sync_detailed(
            client=client,
            body=patient_input(
                facility=SHARED["clinical.facility"],
                mrn=f"GEN-{n}",
                given_name="Generated",
                family_name=f"Client{n}",
                birth_date=dt.date(1990, 1, n + 1),
            ),
            idempotency_key=str(uuid.uuid4()),
        )
        assert answer.status_code == 201, answer.content
        assert answer.parsed.assigned_clinician is None
        created.append(str(answer.parsed.id))

    # List with the cursor, two per page, to the end.
    list_patients = _api(session, "clinical_patients_list")
    seen: list[str] = []
    cursor: Any = types.UNSET
    pages = 0
    while True:
        page = list_patients.sync_detailed(client=client, page_size=2, cursor=cursor)
        assert page.status_code == 200, page.content
        seen += [str(row.id) for row in page.parsed.results]
        pages += 1
        if not page.parsed.next_:
            break
        cursor = _cursor(page.parsed.next_)
    assert pages >= 3
    assert len(seen) == len(set(seen))
    assert set(created) <= set(seen)
    # The seeded patient with a clinician: the nullable reference as an object.
    detail = _api(session, "clinical_patients_retrieve").sync_detailed(
        id=SHARED["clinical.patient"], client=client
    )
    assert detail.parsed.assigned_clinician.id == USER_IDS["clinician"]

    # Upload a PNG and download it, and the seeded PDF: a File each.
    upload = _api(session, "clinical_patients_documents_create").sync_detailed(
        patient_pk=created[0],
        client=client,
        body=_model(session, "DocumentUploadInputRequest")(
            file=types.File(payload=io.BytesIO(PNG), file_name="scan.png", mime_type="image/png"),
            title="generated scan",
        ),
    )
    assert upload.status_code == 201, upload.content
    download = _api(session, "clinical_patients_documents_download_retrieve")
    png = download.sync_detailed(patient_pk=created[0], id=upload.parsed.id, client=client)
    assert png.status_code == 200
    assert png.parsed.payload.read() == PNG
    pdf = download.sync_detailed(
        patient_pk=str(SHARED["clinical.patient"]),
        id=SHARED["clinical.patientdocument"],
        client=client,
    )
    assert pdf.parsed.payload.read() == pdf_bytes(a.marker)

    # Grant, then revoke, a facility access (the DELETE's ?user=&level= from the document).
    nurse, facility = USER_IDS["nurse"], SHARED["clinical.facility#2"]
    level = _model(session, "LevelEnum")
    granted = _api(session, "clinical_facilities_access_create").sync_detailed(
        id=facility,
        client=client,
        body=_model(session, "FacilityAccessInputRequest")(user=nurse, level=level.VIEW),
    )
    assert nurse in {row.user.id for row in granted.parsed}
    revoke_level = importlib.import_module(f"{PACKAGE}.models").ClinicalFacilitiesAccessDestroyLevel
    revoked = _api(session, "clinical_facilities_access_destroy").sync_detailed(
        id=facility, client=client, user=nurse, level=revoke_level.VIEW
    )
    assert revoked.status_code == 200, revoked.content
    assert nurse not in {row.user.id for row in revoked.parsed}

    # The exports and FHIR, each in its own media type.
    ndjson = _api(session, "clinical_fhir_export_retrieve").sync_detailed(client=client)
    lines = [json.loads(line) for line in ndjson.parsed.payload.read().splitlines()]
    assert set(created) <= {line["id"] for line in lines}
    csv_export = _api(session, "farms_observations_export_retrieve").sync_detailed(client=client)
    assert csv_export.parsed.payload.read().startswith(b"id,farm,field")
    geojson = _api(session, "farms_fields_geojson_retrieve").sync_detailed(client=client)
    assert geojson.status_code == 200
    assert json.loads(geojson.content)["type"] == "FeatureCollection"
    patient_fhir = _api(session, "clinical_patients_fhir_retrieve").sync_detailed(
        id=created[0], client=client
    )
    assert patient_fhir.headers["content-type"].startswith("application/fhir+json")
    assert json.loads(patient_fhir.content)["resourceType"] == "Patient"

    # Beta, with the same ids, sees none of it; alpha's new ids are 404 there.
    beta = _login(session, b.host, b.password, recorder)
    beta_rows = list_patients.sync_detailed(client=beta, page_size=200).parsed.results
    assert not {str(row.id) for row in beta_rows} & set(created)
    assert all(a.marker not in row.given_name for row in beta_rows)
    beta = _login(session, b.host, b.password, recorder)
    missing = download.sync_detailed(patient_pk=created[0], id=upload.parsed.id, client=beta)
    assert missing.status_code == 404
    assert missing.parsed.error.code == "not_found"

    # Every response of the session, valid against the served document.
    assert len(recorder.responses) >= 20
    for response in recorder.responses:
        _validate(session.spec, response)
