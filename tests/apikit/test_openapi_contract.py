"""The OpenAPI document as a generated client reads it (issue 17, item 5): valid under a strict
OpenAPI 3.0.3 validator, nullable references that accept ``null``, every non-JSON body
``OpenApiTypes.BINARY``, every query parameter a view reads declared, and a summary and a
description of its own on every operation."""

from __future__ import annotations

import ast
import collections
import inspect
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import OpenAPIV30SpecValidator
from rest_framework import serializers

from apikit import viewsets as apikit_viewsets
from apikit.schema import strict_nullable_refs

JSON_TYPES = ("application/json",)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    schema: dict[str, Any] = SchemaGenerator(api_version="v1").get_schema(request=None, public=True)
    return schema


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "patch", "delete", "head", "options"}:
                yield path, method, operation


def _is_json(media_type: str) -> bool:
    return media_type in JSON_TYPES or media_type.endswith("+json")


# --- strict OAS 3.0.3 --------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_0_3(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.0.3"
    errors = [error.message for error in OpenAPIV30SpecValidator(document).iter_errors()]
    assert errors == []


def test_no_nullable_allof_is_left(document: dict[str, Any]) -> None:
    """``{allOf: [$ref], nullable: true}`` has no ``type`` for ``nullable`` to widen, so a
    strict 3.0.3 validator refuses ``null`` there; the hook rewrites every one."""
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("nullable") and "allOf" in node:
                found.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(document, "#")
    assert found == []


def test_a_nullable_reference_accepts_null_and_the_object(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    patient = schemas["PatientDetailOutput"]
    clinician = patient["properties"]["assigned_clinician"]
    assert clinician["oneOf"][0] == {"$ref": "#/components/schemas/UserBrief"}
    validator = OAS30Validator(
        {"components": {"schemas": schemas}, **clinician}, format_checker=None
    )
    assert validator.is_valid(None)
    assert validator.is_valid({"id": "01900000-0000-7000-8000-000000000001", "full_name": "A"})
    assert not validator.is_valid("not an object")


def test_the_hook_rewrites_what_drf_spectacular_emits() -> None:
    """What drf-spectacular 0.30 writes for a nullable nested serializer, before and after."""
    emitted = {"allOf": [{"$ref": "#/components/schemas/UserBrief"}], "nullable": True}
    user_brief = {
        "type": "object",
        "properties": {"id": {"type": "string"}},
        "required": ["id"],
    }
    components = {"components": {"schemas": {"UserBrief": user_brief}}}
    assert not OAS30Validator({**components, **emitted}).is_valid(None)
    rewritten = strict_nullable_refs({"x": dict(emitted)})["x"]
    assert OAS30Validator({**components, **rewritten}).is_valid(None)
    assert OAS30Validator({**components, **rewritten}).is_valid({"id": "x"})
    assert not OAS30Validator({**components, **rewritten}).is_valid({})


def test_the_document_describes_the_rest_api_only(document: dict[str, Any]) -> None:
    """The FHIR base answers OperationOutcomes, not the envelope documented here; its own
    CapabilityStatement describes it (apikit.schema.rest_api_only)."""
    assert all(path.startswith("/api/v1/") for path in document["paths"])
    assert "/api/v1/clinical/fhir/export/" in document["paths"]


# --- bodies --------------------------------------------------------------------------------------


def test_every_non_json_body_is_binary(document: dict[str, Any]) -> None:
    non_json: dict[str, set[str]] = collections.defaultdict(set)
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                if _is_json(media_type):
                    continue
                assert content["schema"] == {"type": "string", "format": "binary"}, (
                    method,
                    path,
                    status,
                    media_type,
                )
                non_json[f"{method} {path}"].add(media_type)
    documents = "get /api/v1/clinical/patients/{patient_pk}/documents/{id}/download/"
    assert non_json[documents] == {"application/pdf", "image/png", "image/jpeg"}
    assert non_json["get /api/v1/clinical/fhir/export/"] == {
        "application/fhir+ndjson",
        "application/ndjson",
    }
    assert non_json["get /api/v1/farms/observations/export/"] == {"text/csv"}


@pytest.mark.parametrize(
    ("path", "media_types"),
    [
        ("/api/v1/clinical/patients/{id}/fhir/", {"application/fhir+json", "application/json"}),
        (
            "/api/v1/clinical/appointments/{id}/fhir/",
            {"application/fhir+json", "application/json"},
        ),
        ("/api/v1/farms/fields/geojson/", {"application/geo+json", "application/json"}),
    ],
)
def test_json_bodies_under_their_own_types(
    document: dict[str, Any], path: str, media_types: set[str]
) -> None:
    responses = document["paths"][path]["get"]["responses"]
    assert set(responses["200"]["content"]) == media_types
    # Errors stay the JSON envelope, and 406 is documented.
    assert set(responses["406"]["content"]) == {"application/json"}
    assert set(responses["500"]["content"]) == {"application/json"}


# --- summaries and descriptions ------------------------------------------------------------------


def _mixin_docstrings() -> set[str]:
    """The docstrings of apikit's base classes and mixins: each describes many operations."""
    docs = set()
    for _, cls in inspect.getmembers(apikit_viewsets, inspect.isclass):
        if cls.__module__ == apikit_viewsets.__name__ and cls.__doc__:
            docs.add(inspect.cleandoc(cls.__doc__).split("\n")[0])
    assert any("list_serializer_class" in doc for doc in docs)
    return docs


def test_every_operation_has_its_own_summary_and_description(document: dict[str, Any]) -> None:
    by_description: dict[str, list[str]] = collections.defaultdict(list)
    by_summary: dict[str, list[str]] = collections.defaultdict(list)
    mixins = _mixin_docstrings()
    for path, method, operation in _operations(document):
        where = f"{method.upper()} {path}"
        description = operation.get("description", "").strip()
        summary = operation.get("summary", "").strip()
        assert description, f"{where} has no description"
        assert summary, f"{where} has no summary"
        assert not any(doc in description for doc in mixins), (where, description)
        by_description[description].append(where)
        by_summary[summary].append(where)
    shared = {text[:60]: where for text, where in by_description.items() if len(where) > 1}
    assert shared == {}, "operations sharing one description"
    shared = {text[:60]: where for text, where in by_summary.items() if len(where) > 1}
    assert shared == {}, "operations sharing one summary"


# --- query parameters ----------------------------------------------------------------------------

# Reads the AST cannot attribute to one method, with the reason they need no declaration.
UNDECLARED_BY_DESIGN = {
    # access() reads ``request.data or request.query_params`` only for POST / DELETE; the DELETE
    # declares user and level, POST sends them in its JSON body.
    ("GET", "/api/v1/clinical/facilities/{id}/access/"): {"user", "level"},
    ("POST", "/api/v1/clinical/facilities/{id}/access/"): {"user", "level"},
}


def _module_constants(module: Any) -> dict[str, str]:
    return {name: value for name, value in vars(module).items() if isinstance(value, str)}


def _serializer_fields(module: Any, node: ast.expr) -> set[str]:
    """The fields of the serializer named by ``node`` (``io.Foo`` or ``Foo``) in ``module``."""
    target: Any = module
    for part in ast.unparse(node).split("."):
        target = getattr(target, part, None)
    if isinstance(target, type) and issubclass(target, serializers.BaseSerializer):
        return set(target().fields)  # type: ignore[attr-defined]
    return set()


class _QueryReads(ast.NodeVisitor):
    """Collects the query parameters one function's source reads, and its ``self.x()`` calls."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.constants = _module_constants(module)
        self.aliases = {"query_params"}
        self.reads: set[str] = set()
        self.calls: set[str] = set()

    def is_query_params(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "query_params":
            return True
        return isinstance(node, ast.Name) and node.id in self.aliases

    def name_of(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.constants.get(node.id)
        return None

    def read(self, node: ast.AST) -> None:
        name = self.name_of(node)
        if name:
            self.reads.add(name)

    def visit_Assign(self, node: ast.Assign) -> None:  # params = request.query_params
        if self.is_query_params(node.value):
            self.aliases.update(t.id for t in node.targets if isinstance(t, ast.Name))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in {"get", "getlist"} and self.is_query_params(func.value) and node.args:
                self.read(node.args[0])
            if isinstance(func.value, ast.Name) and func.value.id == "self":
                self.calls.add(func.attr)
        if isinstance(func, ast.Name) and func.id == "validated" and len(node.args) == 2:
            source = node.args[1]
            parts = source.values if isinstance(source, ast.BoolOp) else [source]
            if any(self.is_query_params(part) for part in parts):
                self.reads |= _serializer_fields(self.module, node.args[0])
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:  # query_params["x"]
        if self.is_query_params(node.value):
            self.read(node.slice)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:  # "x" in query_params
        if any(self.is_query_params(c) for c in node.comparators):
            self.read(node.left)
        self.generic_visit(node)


def _reads_in(function: Any) -> tuple[set[str], set[str]]:
    """Query parameters ``function`` reads itself, and the ``self.<method>`` names it calls."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return set(), set()
    visitor = _QueryReads(inspect.getmodule(function))
    tree = ast.parse(source)
    # Aliases first (``params = request.query_params`` precedes its reads).
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and visitor.is_query_params(node.value):
            visitor.aliases.update(t.id for t in node.targets if isinstance(t, ast.Name))
    visitor.visit(tree)
    return visitor.reads, visitor.calls


def _reads_of(view_class: type, handler_name: str) -> set[str]:
    """Query parameters the handler and the view methods it calls (transitively) read."""
    seen: set[str] = set()
    pending = [handler_name]
    reads: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        function = getattr(view_class, name, None)
        if not callable(function) or getattr(function, "__module__", "").startswith(
            ("rest_framework", "django")
        ):
            continue
        found, calls = _reads_in(inspect.unwrap(function))
        reads |= found
        pending.extend(calls)
    return reads


def _schema_path(path: str) -> str:
    return path.replace("{version}", "v1").replace("{pk}", "{id}")


def test_every_query_parameter_a_view_reads_is_declared(document: dict[str, Any]) -> None:
    missing: dict[str, set[str]] = {}
    checked = 0
    for path, _, method, callback in EndpointEnumerator().get_api_endpoints():
        view_class = getattr(callback, "cls", None)
        if view_class is None:
            continue
        actions = getattr(callback, "actions", None) or {}
        handler = actions.get(method.lower(), method.lower())
        reads = _reads_of(view_class, handler)
        if not reads:
            continue
        schema_path = _schema_path(path)
        operation = document["paths"][schema_path][method.lower()]
        declared = {
            parameter["name"]
            for parameter in operation.get("parameters", [])
            if parameter["in"] == "query"
        }
        undeclared = reads - declared - UNDECLARED_BY_DESIGN.get((method, schema_path), set())
        checked += 1
        if undeclared:
            missing[f"{method} {schema_path}"] = undeclared
    assert missing == {}
    assert checked >= 5  # the scan finds the views that read the query (not a vacuous pass)


def test_the_revoke_and_export_parameters_are_declared(document: dict[str, Any]) -> None:
    revoke = document["paths"]["/api/v1/clinical/facilities/{id}/access/"]["delete"]
    parameters = {p["name"]: p for p in revoke["parameters"] if p["in"] == "query"}
    assert parameters["user"]["required"]
    assert parameters["level"]["required"]
    assert set(parameters["level"]["schema"]["enum"]) == {"view", "manage"}
    geojson = document["paths"]["/api/v1/farms/fields/geojson/"]["get"]
    assert {"bbox", "farm", "search", "ordering"} <= {p["name"] for p in geojson["parameters"]}
    export = document["paths"]["/api/v1/farms/observations/export/"]["get"]
    assert {"farm", "field", "kind", "observed_after", "observed_before"} <= {
        p["name"] for p in export["parameters"]
    }
