#!/usr/bin/env node
// One field device: the real WatermelonDB 0.28 (LokiJS, in memory) synchronising with a live
// Verdant server. Commands arrive as JSON lines on stdin; every command gets exactly one JSON line
// on stdout. Everything else (WatermelonDB's and LokiJS's logging, our own) goes to stderr.
// The protocol is described in README.md beside this file; tests/sync/wmdb.py drives it.
'use strict'

// stdout is the protocol channel: route every console method to stderr before anything logs.
const writeReply = process.stdout.write.bind(process.stdout)
for (const method of ['log', 'info', 'warn', 'debug', 'trace']) {
  console[method] = (...args) => console.error(...args)
}

const crypto = require('node:crypto')
const http = require('node:http')
const readline = require('node:readline')

const { Database, Model, Q, appSchema, tableSchema } = require('@nozbe/watermelondb')
const LokiJSAdapter = require('@nozbe/watermelondb/adapters/lokijs').default
const { synchronize, hasUnsyncedChanges } = require('@nozbe/watermelondb/sync')
const {
  schemaMigrations,
  createTable,
  addColumns,
} = require('@nozbe/watermelondb/Schema/migrations')
const { setGenerator } = require('@nozbe/watermelondb/utils/common/randomId')
const wmdbDefaultId = require('@nozbe/watermelondb/utils/common/randomId/randomId').default
const { field, date, json, readonly } = require('@nozbe/watermelondb/decorators')

const appSchemaModule = require('./app_schema')

const { SPEC, since, tablesAt, columnsAt } = appSchemaModule
const WATERMELON = { appSchema, tableSchema, schemaMigrations, createTable, addColumns }
const buildSchema = (version) => appSchemaModule.buildSchema(WATERMELON, version)
const buildMigrations = (version) => appSchemaModule.buildMigrations(WATERMELON, version)
const CURSOR_KEY = 'syncCursor'
// Server policy "reject": on a conflict the server's copy wins on the device.
const REJECT_TABLES = new Set(['patients', 'appointments'])
const DB_NAME = 'verdant-device'

// ---------------------------------------------------------------------------------------------
// Ids: canonical lower-case UUIDs (what the server's push accepts). `create` may name an id or
// ask for WatermelonDB's own 16-character default by swapping the generator for one call.

const uuidGenerator = () => crypto.randomUUID()
setGenerator(uuidGenerator)

function withGenerator(generator, fn) {
  setGenerator(generator)
  try {
    return fn()
  } finally {
    setGenerator(uuidGenerator)
  }
}

// ---------------------------------------------------------------------------------------------
// Schema, migrations and models, built from schema.json for a given schema version.

const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase())

// Typed accessors (what app code would read), named so that none is `createdAt` / `updatedAt`:
// WatermelonDB fills and touches created_at / updated_at itself when a model has properties by
// those names, and here both are the server's timestamps.
function typedAccessor(column) {
  if (column.wire === 'datetime') {
    const name = { created_at: 'serverCreatedAt', updated_at: 'serverUpdatedAt' }[column.name]
    return [name || camel(column.name), date(column.name), Boolean(name)]
  }
  if (column.wire === 'json') {
    return [`${camel(column.name)}Json`, json(column.name, (value) => value ?? null), false]
  }
  return null
}

// The documented decorator functions applied by hand (no Babel): a decorator receives the
// prototype, the property name and a legacy descriptor (with `initializer`, as Babel passes it)
// and returns the accessor descriptor to install.
function decorate(Class, property, ...decorators) {
  const proto = Class.prototype
  if (property in proto) {
    throw new Error(`${Class.table}.${property} would shadow a Model property`)
  }
  let descriptor = { configurable: true, enumerable: true, writable: true, initializer: undefined }
  for (const decorator of decorators.reverse()) {
    descriptor = decorator(proto, property, descriptor) || descriptor
  }
  Object.defineProperty(proto, property, descriptor)
}

function buildModels(version) {
  const models = {}
  for (const [name, table] of tablesAt(version)) {
    const Class = { [name]: class extends Model {} }[name]
    Class.table = name
    const associations = SPEC.associations[name] || {}
    Class.associations = Object.fromEntries(
      Object.entries(associations).filter(([other]) => since(SPEC.tables[other]) <= version),
    )
    const typed = []
    for (const column of columnsAt(table, version)) {
      // Raw column access under the column's own name: values are stored as given (sanitised to
      // the column type), which is what the create / update commands need.
      decorate(Class, column.name, field(column.name))
      const accessor = typedAccessor(column)
      if (accessor) {
        const [property, decorator, isReadonly] = accessor
        if (isReadonly) {
          decorate(Class, property, readonly, decorator)
        } else {
          decorate(Class, property, decorator)
        }
        typed.push(property)
      }
    }
    Class.typedAccessors = typed
    models[name] = Class
  }
  return models
}

// ---------------------------------------------------------------------------------------------
// HTTP: node:http, because fetch (undici) does not let a request set Host, and the server routes
// tenants by Host (django-tenants). A fresh connection per request: no stale keep-alive sockets.

const state = {
  baseUrl: null,
  host: null,
  token: null,
  limit: null,
  schemaVersion: null,
  database: null,
  adapter: null,
  models: null,
  generation: 0,
}

const NETWORK_RETRY_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED'])

function requestOnce(method, pathAndQuery, { body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const url = new URL(pathAndQuery, state.baseUrl)
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body))
    const request = http.request(
      {
        hostname: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method,
        agent: false,
        timeout: 60_000,
        headers: {
          Host: state.host,
          Accept: 'application/json',
          ...(state.token ? { Authorization: `Bearer ${state.token}` } : {}),
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
          ...headers,
        },
      },
      (response) => {
        const chunks = []
        response.on('data', (chunk) => chunks.push(chunk))
        response.on('error', reject)
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let parsed = text
          try {
            parsed = text ? JSON.parse(text) : null
          } catch (_) {
            // not JSON: keep the text
          }
          resolve({ status: response.statusCode, headers: response.headers, body: parsed })
        })
      },
    )
    request.on('timeout', () => request.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })))
    request.on('error', reject)
    if (payload) request.write(payload)
    request.end()
  })
}

// One retry on a broken connection, with the same headers (so a push retry reuses its key).
async function request(method, pathAndQuery, options) {
  try {
    return await requestOnce(method, pathAndQuery, options)
  } catch (error) {
    if (!NETWORK_RETRY_CODES.has(error.code)) throw error
    console.error(`[device] ${method} ${pathAndQuery}: ${error.code}, retrying once`)
    return requestOnce(method, pathAndQuery, options)
  }
}

function httpError(what, response) {
  const error = new Error(`${what} answered ${response.status}: ${JSON.stringify(response.body)}`)
  error.status = response.status
  error.body = response.body
  return error
}

// ---------------------------------------------------------------------------------------------
// Database lifecycle

async function waitUntilReady(database, setUpErrors) {
  // Any adapter call queues behind setUp; its failure is reported through onSetUpError.
  await database.localStorage.get(CURSOR_KEY)
  if (setUpErrors.length) throw setUpErrors[0]
}

async function openDatabase(version, makeAdapter) {
  const schema = buildSchema(version)
  const migrations = buildMigrations(version)
  const setUpErrors = []
  const options = {
    schema,
    migrations,
    onSetUpError: (error) => setUpErrors.push(error),
  }
  const adapter = await makeAdapter(options)
  const models = buildModels(version)
  const database = new Database({ adapter, modelClasses: Object.values(models) })
  await waitUntilReady(database, setUpErrors)
  state.database = database
  state.adapter = adapter
  state.models = models
  state.schemaVersion = version
}

function collection(table) {
  const found = state.database && state.database.get(table)
  if (!found) throw new Error(`unknown table ${table} at schema version ${state.schemaVersion}`)
  return found
}

function checkColumns(table, values) {
  const columns = collection(table).schema.columns
  for (const key of Object.keys(values)) {
    if (!Object.prototype.hasOwnProperty.call(columns, key)) {
      throw new Error(`${table} has no column ${key} at schema version ${state.schemaVersion}`)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sync

function tableCounts(changes) {
  const counts = {}
  for (const [table, set] of Object.entries(changes || {})) {
    counts[table] = {
      created: (set.created || []).length,
      updated: (set.updated || []).length,
      deleted: (set.deleted || []).length,
    }
  }
  return counts
}

function plainLog(log) {
  return {
    lastPulledAt: log.lastPulledAt ?? null,
    newLastPulledAt: log.newLastPulledAt ?? null,
    lastPulledSchemaVersion: log.lastPulledSchemaVersion ?? null,
    migration: log.migration ?? null,
    resolvedConflicts: log.resolvedConflicts || [],
    rejectedIds: log.rejectedIds || {},
    remoteChangeCount: log.remoteChangeCount ?? 0,
    localChangeCount: log.localChangeCount ?? 0,
    phase: log.phase ?? null,
    error: log.error ? String(log.error.message || log.error) : null,
  }
}

function mergeLogs(logs) {
  const merged = { resolvedConflicts: [], rejectedIds: {}, remoteChangeCount: 0, localChangeCount: 0 }
  for (const log of logs) {
    merged.resolvedConflicts.push(...log.resolvedConflicts)
    for (const [table, ids] of Object.entries(log.rejectedIds)) {
      merged.rejectedIds[table] = [...(merged.rejectedIds[table] || []), ...ids]
    }
    merged.remoteChangeCount += log.remoteChangeCount || 0
    merged.localChangeCount += log.localChangeCount || 0
  }
  return merged
}

function conflictResolver(table, local, remote, resolved) {
  if (REJECT_TABLES.has(table) && typeof remote.version === 'number' && remote.version > (local.version || 0)) {
    return { ...local, ...remote, id: local.id, _status: 'synced', _changed: '' }
  }
  return resolved
}

async function runSync({
  max_rounds: maxRounds = 20,
  drop_push_response: dropPush = false,
  replay_push: replayPush = false,
  pause_before_push: pauseBeforePush = false,
  push_only: pushOnly = false,
} = {}) {
  const database = state.database
  const pulls = []
  const pushes = []
  const logs = []
  let dropPending = Boolean(dropPush)
  let rounds = 0
  const report = () => ({ rounds, log: mergeLogs(logs), logs, pulls, pushes })

  for (; rounds < maxRounds; ) {
    rounds += 1
    let hasMore = false
    let pulledCursor = null
    let cursorSaved = null
    const log = {}
    try {
      await synchronize({
        database,
        sendCreatedAsUpdated: true,
        migrationsEnabledAtVersion: 1,
        log,
        conflictResolver,
        pullChanges: async ({ lastPulledAt, schemaVersion, migration }) => {
          if (pushOnly) {
            // Push without pulling (e.g. before resetting an expired cursor): WatermelonDB always
            // pulls first, so the pull is local and empty and keeps lastPulledAt as it was.
            if (lastPulledAt == null) throw new Error('push_only needs a previous sync (lastPulledAt)')
            if (migration) throw new Error('push_only would mark a pending migration as pulled')
            return { changes: {}, timestamp: lastPulledAt }
          }
          const cursor = await database.localStorage.get(CURSOR_KEY)
          const params = new URLSearchParams({ format: 'wmdb', schema_version: String(schemaVersion) })
          if (state.limit != null) params.set('limit', String(state.limit))
          if (cursor) params.set('cursor', cursor)
          if (migration) params.set('migration', JSON.stringify(migration))
          const response = await request('GET', `/api/v1/sync/pull/?${params}`)
          const body = response.body || {}
          pulls.push({
            status: response.status,
            lastPulledAt: lastPulledAt ?? null,
            schemaVersion,
            migration: migration ?? null,
            sent_cursor: Boolean(cursor),
            experimentalStrategy: body.experimentalStrategy ?? null,
            has_more: body.has_more ?? null,
            counts: tableCounts(body.changes),
          })
          if (response.status !== 200) throw httpError('pull', response)
          hasMore = Boolean(body.has_more)
          pulledCursor = body.cursor ?? null
          return {
            changes: body.changes,
            timestamp: body.timestamp,
            experimentalStrategy: body.experimentalStrategy,
          }
        },
        // Called (not awaited) by synchronize() after the page was applied, inside its writer.
        onDidPullChanges: () => {
          if (pushOnly) return
          cursorSaved = pulledCursor
            ? database.localStorage.set(CURSOR_KEY, pulledCursor)
            : database.localStorage.remove(CURSOR_KEY)
        },
        pushChanges: async ({ changes, lastPulledAt }) => {
          const cursor = (await database.localStorage.get(CURSOR_KEY)) ?? null
          const idempotencyKey = crypto.randomUUID()
          const options = {
            body: { changes, lastPulledAt, cursor },
            headers: { 'Idempotency-Key': idempotencyKey },
          }
          const send = async () => {
            const response = await request('POST', '/api/v1/sync/push/?format=wmdb', options)
            pushes.push({
              status: response.status,
              idempotency_key: idempotencyKey,
              replayed: response.headers['idempotent-replayed'] === 'true',
              dropped: dropPending,
              counts: tableCounts(changes),
              body: response.body,
            })
            return response
          }
          if (pauseBeforePush) {
            // The driver may change the server between this sync's pull and its push.
            await waitForContinue({ event: 'before_push', round: rounds, counts: tableCounts(changes) })
          }
          let response = await send()
          if (replayPush) response = await send()
          if (dropPending) {
            dropPending = false
            throw Object.assign(new Error('push response dropped (simulated connection loss)'), {
              dropped: true,
            })
          }
          if (response.status !== 200) throw httpError('push', response)
          return { experimentalRejectedIds: response.body.experimentalRejectedIds }
        },
      })
      if (cursorSaved) await cursorSaved
    } catch (error) {
      if (cursorSaved) await cursorSaved.catch(() => {})
      logs.push(plainLog(log))
      return {
        ok: false,
        status: error.status ?? null,
        error: error.body ?? String(error.message || error),
        dropped: Boolean(error.dropped),
        ...report(),
      }
    }
    logs.push(plainLog(log))
    if (!hasMore) break
  }
  return { ok: true, ...report() }
}

// ---------------------------------------------------------------------------------------------
// Commands

function stripLoki(doc) {
  const { $loki, meta, ...raw } = doc
  return raw
}

async function dump() {
  const tables = {}
  for (const table of Object.keys(state.models)) {
    // unsafeFetchRaw() answers the adapter's documents as stored; the Loki-specific transform
    // returns the whole collection, so records marked as deleted (pending push) are included.
    const raws = await collection(table)
      .query(Q.unsafeLokiTransform((_raws, loki) => loki.getCollection(table).data))
      .unsafeFetchRaw()
    tables[table] = raws.map(stripLoki).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }
  return tables
}

const commands = {
  async init({ base_url: baseUrl, host, token, schema_version: version = 2, limit = null }) {
    if (state.database) throw new Error('already initialised')
    Object.assign(state, { baseUrl, host, token, limit })
    await openDatabase(version, (options) =>
      new LokiJSAdapter({
        ...options,
        dbName: DB_NAME,
        useWebWorker: false,
        useIncrementalIndexedDB: false,
      }),
    )
    return { schema_version: version, tables: Object.keys(state.models) }
  },

  // A new device in the same process (the driver reuses idle processes): a new, empty database
  // on a fresh in-memory adapter, and these connection settings; nothing of the previous
  // device is kept (its database is reset and dropped).
  async reset({ base_url: baseUrl, host, token, schema_version: version = 2, limit = null }) {
    if (!state.database) throw new Error('init first')
    const previous = state.database
    await previous.write(() => previous.unsafeResetDatabase())
    Object.assign(state, { baseUrl, host, token, limit })
    state.generation += 1
    await openDatabase(version, (options) =>
      new LokiJSAdapter({
        ...options,
        dbName: `${DB_NAME}-${state.generation}`,
        useWebWorker: false,
        useIncrementalIndexedDB: false,
      }),
    )
    return { schema_version: version, tables: Object.keys(state.models) }
  },

  async migrate_to({ schema_version: version }) {
    if (!(version > state.schemaVersion)) throw new Error(`already at ${state.schemaVersion}`)
    // LokiJS in memory: testClone() closes the database (saving it into its in-memory
    // persistence adapter) and opens a new adapter on the same saved data with the new schema
    // and migrations; WatermelonDB then runs the schema migration on set-up.
    const previous = state.adapter
    await openDatabase(version, (options) => previous.testClone(options))
    return { schema_version: version, tables: Object.keys(state.models) }
  },

  async set_token({ token }) {
    state.token = token
    return {}
  },

  async set_limit({ limit }) {
    state.limit = limit
    return {}
  },

  async sync(options) {
    return runSync(options)
  },

  async reset_cursor() {
    await state.database.localStorage.remove(CURSOR_KEY)
    return {}
  },

  async status() {
    const database = state.database
    return {
      schema_version: state.schemaVersion,
      cursor: (await database.localStorage.get(CURSOR_KEY)) ?? null,
      has_unsynced_changes: await hasUnsyncedChanges({ database }),
    }
  },

  async create({ table, raw = {}, id = null, id_style: idStyle = 'uuid' }) {
    checkColumns(table, raw)
    const generator = id ? () => id : idStyle === 'wmdb' ? wmdbDefaultId : uuidGenerator
    const record = await state.database.write(() =>
      withGenerator(generator, () =>
        collection(table).create((r) => {
          for (const [column, value] of Object.entries(raw)) r[column] = value
        }),
      ),
    )
    return { id: record.id }
  },

  async update({ table, id, set = {} }) {
    checkColumns(table, set)
    const record = await collection(table).find(id)
    await state.database.write(() =>
      record.update((r) => {
        for (const [column, value] of Object.entries(set)) r[column] = value
      }),
    )
    return { id }
  },

  async delete({ table, id }) {
    const record = await collection(table).find(id)
    await state.database.write(() => record.markAsDeleted())
    return { id }
  },

  // What app code reads through the typed accessors (date → ISO and ms, json → parsed).
  async read({ table, id }) {
    const record = await collection(table).find(id)
    const values = {}
    for (const property of state.models[table].typedAccessors) {
      const value = record[property]
      values[property] = value instanceof Date ? { iso: value.toISOString(), ms: value.getTime() } : value
    }
    return { values }
  },

  async dump() {
    return { tables: await dump() }
  },

  async quit() {
    return {}
  },
}

// ---------------------------------------------------------------------------------------------
// Protocol loop: one command at a time, in order. Lines are read while a command runs, so a
// command waiting for the driver (pause_before_push) receives its {"cmd":"continue"} line.

process.on('unhandledRejection', (error) => console.error('[device] unhandled rejection', error))

function reply(message) {
  return new Promise((resolve) => writeReply(`${JSON.stringify(message)}\n`, resolve))
}

let continueWaiter = null

// Write an event line and wait for the driver's {"cmd":"continue"}.
async function waitForContinue(event) {
  const resumed = new Promise((resolve) => {
    continueWaiter = resolve
  })
  await reply(event)
  return resumed
}

async function handle(line) {
  let message
  try {
    message = JSON.parse(line)
  } catch (error) {
    return { ok: false, error: `not JSON: ${error.message}` }
  }
  if (message.cmd === 'continue') return { ok: false, error: 'nothing is waiting for continue' }
  const handler = commands[message.cmd]
  if (!handler) return { ok: false, error: `unknown command ${message.cmd}` }
  if (message.cmd !== 'init' && !state.database) return { ok: false, error: 'init first' }
  try {
    const result = await handler(message)
    return 'ok' in result ? result : { ok: true, ...result }
  } catch (error) {
    console.error(`[device] ${message.cmd} failed`, error)
    return { ok: false, status: error.status ?? null, error: error.body ?? String(error.message || error) }
  }
}

function isContinue(line) {
  try {
    return JSON.parse(line).cmd === 'continue'
  } catch (_) {
    return false
  }
}

async function main() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  const queued = []
  let wake = null
  let closed = false
  lines.on('line', (line) => {
    if (!line.trim()) return
    if (continueWaiter && isContinue(line)) {
      const resume = continueWaiter
      continueWaiter = null
      resume()
      return
    }
    queued.push(line)
    if (wake) wake()
  })
  lines.on('close', () => {
    closed = true
    if (continueWaiter) continueWaiter() // the driver is gone: let the running command end
    if (wake) wake()
  })
  for (;;) {
    if (!queued.length) {
      if (closed) break
      await new Promise((resolve) => {
        wake = resolve
      })
      wake = null
      continue
    }
    const line = queued.shift()
    const answer = await handle(line)
    await reply(answer)
    if (answer.ok && JSON.parse(line).cmd === 'quit') break
  }
  process.exit(0)
}

main().catch((error) => {
  console.error('[device] fatal', error)
  process.exit(1)
})
