'use strict'
// The app's WatermelonDB schema and migrations at a given version, built from schema.json.
// Shared by device.js (the test device) and tests/benchmarks/first_sync_device.js; each passes
// the WatermelonDB it loaded, so both build with the same package instance.

const fs = require('node:fs')
const path = require('node:path')

const SPEC = JSON.parse(fs.readFileSync(path.join(__dirname, 'schema.json'), 'utf8'))

const since = (item) => item.since || 1

function columnSpec(column) {
  return {
    name: column.name,
    type: column.type,
    ...(column.optional ? { isOptional: true } : {}),
    ...(column.indexed ? { isIndexed: true } : {}),
  }
}

function tablesAt(version) {
  return Object.entries(SPEC.tables).filter(([, table]) => since(table) <= version)
}

function columnsAt(table, version) {
  return table.columns.filter((column) => since(column) <= version)
}

// `watermelon` is { appSchema, tableSchema, schemaMigrations, createTable, addColumns }.
function buildSchema(watermelon, version) {
  return watermelon.appSchema({
    version,
    tables: tablesAt(version).map(([name, table]) =>
      watermelon.tableSchema({ name, columns: columnsAt(table, version).map(columnSpec) }),
    ),
  })
}

// Migrations up to `version` (WatermelonDB requires migrations.maxVersion === schema.version, so
// a version-1 database has an empty migration list; sync migrations still need the object).
function buildMigrations(watermelon, version) {
  const migrations = []
  for (let to = 2; to <= version; to += 1) {
    const steps = []
    for (const [name, table] of Object.entries(SPEC.tables)) {
      if (since(table) === to) {
        steps.push(
          watermelon.createTable({ name, columns: columnsAt(table, to).map(columnSpec) }),
        )
      } else if (since(table) < to) {
        const added = table.columns.filter((column) => since(column) === to)
        if (added.length) {
          steps.push(watermelon.addColumns({ table: name, columns: added.map(columnSpec) }))
        }
      }
    }
    migrations.push({ toVersion: to, steps })
  }
  return watermelon.schemaMigrations({ migrations })
}

module.exports = { SPEC, since, tablesAt, columnsAt, buildSchema, buildMigrations }
