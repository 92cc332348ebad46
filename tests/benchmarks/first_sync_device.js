#!/usr/bin/env node
// The first-sync benchmark's device (tests/benchmarks/bench_first_sync.py): an EMPTY WatermelonDB
// 0.28 database (LokiJS in memory) brought up to date with the documented synchronize() loop of
// docs/sync.md §4, timed phase by phase. One run per process:
//
//   node first_sync_device.js '{"base_url": "http://127.0.0.1:PORT", "host": "<tenant host>",
//                               "token": "<access JWT>", "schema_version": 2,
//                               "cursor": null, "limit": null, "label": "A"}'
//
// With "cursor" the device starts from that stored cursor (the paging baseline); without it the
// first pull carries no cursor (the streamed first sync). stdout: one JSON line, the result;
// stderr: progress. WatermelonDB comes from tests/sync/wmdb_client (its node_modules and
// schema.json): device.js there is the test suite's driver and is not used.
'use strict'

const crypto = require('node:crypto')
const http = require('node:http')
const path = require('node:path')
const { createRequire } = require('node:module')
const { performance } = require('node:perf_hooks')

const writeResult = process.stdout.write.bind(process.stdout)
// WatermelonDB's and LokiJS's chatter (console.log: "[Loki] Initializing IndexedDB", ...) is
// dropped; warnings and errors go to stderr.
for (const method of ['log', 'info', 'debug', 'trace']) console[method] = () => {}
console.warn = (...args) => console.error(...args)

const CLIENT_DIR = path.resolve(__dirname, '..', 'sync', 'wmdb_client')
const requireClient = createRequire(path.join(CLIENT_DIR, 'package.json'))
const { Database, Model, appSchema, tableSchema } = requireClient('@nozbe/watermelondb')
const LokiJSAdapter = requireClient('@nozbe/watermelondb/adapters/lokijs').default
const { synchronize } = requireClient('@nozbe/watermelondb/sync')
const {
  schemaMigrations,
  createTable,
  addColumns,
} = requireClient('@nozbe/watermelondb/Schema/migrations')
const { setGenerator } = requireClient('@nozbe/watermelondb/utils/common/randomId')

// LokiJS's memory adapter (LokiJS under Node has no IndexedDB) autosaves every 500 ms by
// serialising the WHOLE database to one string, synchronously: the event loop stalls for that long
// and a response arriving meanwhile is read late. Timed here (a wrapper that only measures), so
// the report can tell these stalls from the server's time: a phone on SQLite has no such save.
const Loki = requireClient('lokijs')
const autosave = { count: 0, ms: 0 }
const saveDatabaseInternal = Loki.prototype.saveDatabaseInternal
Loki.prototype.saveDatabaseInternal = function timedSave(...args) {
  const started = performance.now()
  try {
    return saveDatabaseInternal.apply(this, args)
  } finally {
    autosave.count += 1
    autosave.ms += performance.now() - started
  }
}

const appSchemaModule = require(path.join(CLIENT_DIR, 'app_schema.js'))

const { SPEC, tablesAt, columnsAt } = appSchemaModule
const WATERMELON = { appSchema, tableSchema, schemaMigrations, createTable, addColumns }
const CURSOR_KEY = 'syncCursor'
const MAX_ROUNDS = 1000
const PROGRESS_EVERY = 10

setGenerator(() => crypto.randomUUID())

// --- schema (the same construction as tests/sync/wmdb_client/device.js) ---------------------------

// Sync works on raw records: plain models (no decorated accessors) are all it needs.
function buildModels(version) {
  return tablesAt(version).map(([name]) => {
    const Class = { [name]: class extends Model {} }[name]
    Class.table = name
    return Class
  })
}

async function openDatabase(version) {
  const setUpErrors = []
  const adapter = new LokiJSAdapter({
    schema: appSchemaModule.buildSchema(WATERMELON, version),
    migrations: appSchemaModule.buildMigrations(WATERMELON, version),
    dbName: `bench-first-sync-${process.pid}`,
    useWebWorker: false,
    useIncrementalIndexedDB: false,
    onSetUpError: (error) => setUpErrors.push(error),
  })
  const database = new Database({ adapter, modelClasses: buildModels(version) })
  await database.localStorage.get(CURSOR_KEY) // queues behind set-up
  if (setUpErrors.length) throw setUpErrors[0]
  return database
}

// --- HTTP: node:http (Host picks the tenant), a fresh connection per request ----------------------

function get(config, pathAndQuery) {
  return new Promise((resolve, reject) => {
    const url = new URL(pathAndQuery, config.base_url)
    const started = performance.now()
    const savedBefore = autosave.ms
    let headersAt = null
    const request = http.request(
      {
        hostname: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: 'GET',
        agent: false,
        timeout: 600_000,
        headers: {
          Host: config.host,
          Accept: 'application/json',
          Authorization: `Bearer ${config.token}`,
        },
      },
      (response) => {
        headersAt = performance.now()
        const chunks = []
        let chunkCount = 0
        response.on('data', (chunk) => {
          chunks.push(chunk)
          chunkCount += 1
        })
        response.on('error', reject)
        response.on('end', () => {
          const endedAt = performance.now()
          const buffer = Buffer.concat(chunks)
          resolve({
            status: response.statusCode,
            buffer,
            http_ms: endedAt - started,
            ttfb_ms: headersAt - started,
            autosave_ms: autosave.ms - savedBefore,
            chunks: chunkCount,
          })
        })
      },
    )
    request.on('timeout', () => request.destroy(new Error('timeout')))
    request.on('error', reject)
    request.end()
  })
}

// --- the sync loop of docs/sync.md §4, timed ----------------------------------------------------

function changeCount(changes) {
  let count = 0
  for (const set of Object.values(changes || {})) {
    count += (set.created || []).length + (set.updated || []).length + (set.deleted || []).length
  }
  return count
}

async function runSync(config, database) {
  if (config.cursor) await database.localStorage.set(CURSOR_KEY, config.cursor)
  const rounds = []
  const savedAtStart = { ...autosave }
  const started = performance.now()
  let hasMore = true
  while (hasMore) {
    if (rounds.length >= MAX_ROUNDS) throw new Error(`still has_more after ${MAX_ROUNDS} rounds`)
    const round = { pushes: 0 }
    let pulledCursor = null
    let cursorSaved = null
    const syncStarted = performance.now()
    await synchronize({
      database,
      sendCreatedAsUpdated: true,
      migrationsEnabledAtVersion: 1,
      pullChanges: async ({ schemaVersion, migration }) => {
        const cursor = await database.localStorage.get(CURSOR_KEY)
        const params = new URLSearchParams({ format: 'wmdb', schema_version: String(schemaVersion) })
        if (config.limit != null) params.set('limit', String(config.limit))
        if (cursor) params.set('cursor', cursor)
        if (migration) params.set('migration', JSON.stringify(migration))
        const response = await get(config, `/api/v1/sync/pull/?${params}`)
        const parseStarted = performance.now()
        const text = response.buffer.toString('utf8')
        if (response.status !== 200) {
          throw new Error(`pull answered ${response.status}: ${text.slice(0, 500)}`)
        }
        const body = JSON.parse(text)
        Object.assign(round, {
          http_ms: response.http_ms,
          ttfb_ms: response.ttfb_ms,
          http_autosave_ms: response.autosave_ms,
          parse_ms: performance.now() - parseStarted,
          bytes: response.buffer.length,
          http_chunks: response.chunks,
          rows: changeCount(body.changes),
          strategy: body.experimentalStrategy ?? null,
          sent_cursor: Boolean(cursor),
        })
        hasMore = Boolean(body.has_more)
        pulledCursor = body.cursor ?? null
        return {
          changes: body.changes,
          timestamp: body.timestamp,
          experimentalStrategy: body.experimentalStrategy,
        }
      },
      onWillApplyRemoteChanges: () => {
        round.apply_started = performance.now()
      },
      // Called (not awaited) once the page is in the local database, inside the writer.
      onDidPullChanges: () => {
        round.apply_ms = performance.now() - round.apply_started
        cursorSaved = database.localStorage.set(CURSOR_KEY, pulledCursor)
      },
      pushChanges: async () => {
        round.pushes += 1 // a fresh device has nothing to push
        return {}
      },
    })
    if (cursorSaved) await cursorSaved
    round.sync_ms = performance.now() - syncStarted
    delete round.apply_started
    rounds.push(round)
    if (rounds.length % PROGRESS_EVERY === 0 || !hasMore) {
      const rows = rounds.reduce((sum, r) => sum + r.rows, 0)
      const httpMs = rounds.reduce((sum, r) => sum + r.http_ms, 0)
      const applyMs = rounds.reduce((sum, r) => sum + r.apply_ms, 0)
      console.error(
        `[bench] device ${config.label}: ${rounds.length} pull(s), ${rows.toLocaleString('en')} rows, ` +
          `HTTP ${(httpMs / 1000).toFixed(1)} s, apply ${(applyMs / 1000).toFixed(1)} s, ` +
          `wall ${((performance.now() - started) / 1000).toFixed(1)} s`,
      )
    }
  }
  return {
    rounds,
    wall_ms: performance.now() - started,
    autosave_ms: autosave.ms - savedAtStart.ms,
    autosaves: autosave.count - savedAtStart.count,
  }
}

// --- what the device holds: counts and a digest of every record per table -----------------------

async function contents(database, version) {
  const tables = {}
  for (const [name, table] of tablesAt(version)) {
    const columns = ['id', ...columnsAt(table, version).map((c) => c.name)]
    const raws = await database.get(name).query().unsafeFetchRaw()
    raws.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const hash = crypto.createHash('sha256')
    let notSynced = 0
    for (const raw of raws) {
      if (raw._status !== 'synced') notSynced += 1
      hash.update(JSON.stringify(columns.map((column) => raw[column])))
      hash.update('\n')
    }
    tables[name] = { count: raws.length, not_synced: notSynced, digest: hash.digest('hex') }
  }
  return tables
}

// The first autosave after the loop (the whole database, now full): what a device on this
// adapter pays once more, after synchronize() resolved. Waits at most two intervals.
async function nextAutosave() {
  const before = { ...autosave }
  const deadline = performance.now() + 1200
  while (autosave.count === before.count && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return autosave.count === before.count ? null : autosave.ms - before.ms
}

async function main() {
  const config = JSON.parse(process.argv[2])
  const version = config.schema_version || SPEC.version
  const database = await openDatabase(version)
  const { rounds, wall_ms: wallMs, autosave_ms: autosaveMs, autosaves } = await runSync(
    config,
    database,
  )
  const afterSyncAutosaveMs = await nextAutosave()
  const sum = (key) => rounds.reduce((total, r) => total + (r[key] || 0), 0)
  const result = {
    label: config.label,
    node_env: process.env.NODE_ENV || null,
    schema_version: version,
    requests: rounds.length,
    rows_received: sum('rows'),
    bytes: sum('bytes'),
    http_ms: sum('http_ms'),
    ttfb_ms: sum('ttfb_ms'),
    http_autosave_ms: sum('http_autosave_ms'),
    autosave_ms: autosaveMs,
    autosaves,
    after_sync_autosave_ms: afterSyncAutosaveMs,
    parse_ms: sum('parse_ms'),
    apply_ms: sum('apply_ms'),
    sync_ms: sum('sync_ms'),
    pushes: sum('pushes'),
    wall_ms: wallMs,
    strategies: [...new Set(rounds.map((r) => r.strategy))],
    first_sent_cursor: rounds.length ? rounds[0].sent_cursor : null,
    rounds,
    final_cursor: (await database.localStorage.get(CURSOR_KEY)) ?? null,
    tables: await contents(database, version),
    node_max_rss_mib: process.resourceUsage().maxRSS / 1024,
  }
  writeResult(`${JSON.stringify(result)}\n`, () => process.exit(0))
}

main().catch((error) => {
  console.error('[bench] device failed', error)
  process.exit(1)
})
