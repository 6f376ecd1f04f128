// Acceptance test: the official JS client, @textile/threads-client 2.3.4, unmodified, against
// two freshly started threadsd daemons on loopback (it speaks grpc-websockets to apiProxyAddr).
//
//   node acceptance.js <path to threadsd> [path to the threads CLI]
//
// With the CLI's path it also checks, against the same running daemon, that the `threads` CLI
// reads what the JS client wrote and that its writes reach the JS client.
// Every step asserts its result. The daemons get free ports and temporary repos and are
// stopped at the end, whatever happens; a watchdog bounds the whole run.
'use strict'

const assert = require('node:assert/strict')
const { execFileSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const { Client, Where } = require('@textile/threads-client')
const { Context } = require('@textile/context')
const { PrivateKey } = require('@textile/crypto')
const { ThreadID } = require('@textile/threads-id')

const RUN_LIMIT_MS = 180_000
const STARTUP_LIMIT_MS = 60_000
const POLL_LIMIT_MS = 30_000

const threadsd = process.argv[2]
const cli = process.argv[3]
if (!threadsd || !fs.existsSync(threadsd) || (cli && !fs.existsSync(cli))) {
  console.error('usage: node acceptance.js <path to threadsd> [path to the threads CLI]')
  process.exit(2)
}

const daemons = []

function stopDaemons () {
  for (const d of daemons) {
    if (d.child.exitCode === null) d.child.kill('SIGTERM')
  }
}

/**
 * `n` distinct free loopback TCP ports: all are bound at once before any is released, so the
 * OS cannot hand out the same port twice.
 */
async function freePorts (n) {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => resolve(srv))
  })))
  const ports = servers.map((srv) => srv.address().port)
  await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve))))
  return ports
}

/** Starts a daemon on the given loopback ports; resolves once it printed its welcome lines. */
async function startDaemon (name, [host, api, proxy]) {
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), `threadsd-js-${name}-`))
  const log = path.join(repo, 'stderr.log')
  const child = spawn(threadsd, [
    `-repo=${repo}`,
    `-hostAddr=/ip4/127.0.0.1/tcp/${host}`,
    `-apiAddr=/ip4/127.0.0.1/tcp/${api}`,
    `-apiProxyAddr=/ip4/127.0.0.1/tcp/${proxy}`,
    '-disableQuic',
    '-debug'
  ], { stdio: ['ignore', 'pipe', fs.openSync(log, 'w')] })
  const daemon = { name, child, repo, log, proxy, api }
  daemons.push(daemon)
  await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${name}: no welcome within ${STARTUP_LIMIT_MS} ms`)), STARTUP_LIMIT_MS)
    child.stdout.on('data', (chunk) => {
      out += chunk
      if (out.includes('Your peer ID is')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code} before it was ready`))
    })
  })
  return daemon
}

/** Polls `probe` until it returns a truthy value or the limit passes. */
async function eventually (what, probe) {
  const deadline = Date.now() + POLL_LIMIT_MS
  let last
  while (Date.now() < deadline) {
    try {
      const v = await probe()
      if (v) return v
    } catch (e) {
      last = e
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${what}: not within ${POLL_LIMIT_MS} ms${last ? ` (last error: ${last.message})` : ''}`)
}

/** Expects `promise` to reject with a message containing `text`. */
async function rejects (promise, text) {
  await assert.rejects(promise, (e) => {
    assert.ok(e.message.includes(text), `expected an error containing "${text}", got "${e.message}"`)
    return true
  })
}

const schema = {
  title: 'Person',
  type: 'object',
  required: ['_id', 'name'],
  properties: {
    _id: { type: 'string' },
    name: { type: 'string' },
    age: { type: 'integer', minimum: 0 },
    secret: { type: 'string' }
  }
}

// Stored as function bodies by the client: the validator refuses Mallory, the filter hides
// `secret` and whole instances named Hidden.
function writeValidator (writer, event, instance) {
  var patch = event.patch.json_patch
  if (patch && patch.name === 'Mallory') {
    return false
  }
  return true
}
function readFilter (reader, instance) {
  if (instance.name === 'Hidden') {
    return null
  }
  delete instance.secret
  return instance
}

let step = 0
async function check (name, body) {
  step += 1
  await body()
  console.log(`ok ${step} - ${name}`)
}

async function main () {
  const ports = await freePorts(6)
  const one = await startDaemon('one', ports.slice(0, 3))
  const two = await startDaemon('two', ports.slice(3))
  const client = new Client(new Context(`http://127.0.0.1:${one.proxy}`))
  const other = new Client(new Context(`http://127.0.0.1:${two.proxy}`))
  const db = ThreadID.fromRandom()
  const ids = {}

  await check('getToken', async () => {
    const token = await client.getToken(PrivateKey.fromRandom())
    assert.equal(typeof token, 'string')
    assert.equal(token.split('.').length, 3, 'a JWT has three parts')
  })

  await check('newDB', async () => {
    const id = await client.newDB(db, 'acceptance')
    assert.equal(id.toString(), db.toString())
    await rejects(client.newDB(db, 'acceptance'), 'already exists')
  })

  await check('newCollection with a schema, a unique index, a validator and a filter', async () => {
    await client.newCollection(db, {
      name: 'Person',
      schema,
      indexes: [{ path: 'name', unique: true }],
      writeValidator,
      readFilter
    })
    const info = await client.getCollectionInfo(db, 'Person')
    assert.equal(info.name, 'Person')
    assert.deepEqual(info.indexes.map((i) => [i.path, i.unique]), [['name', true]])
    assert.deepEqual(info.schema.required, ['_id', 'name'])
    await rejects(client.newCollection(db, { name: 'Person', schema }), 'collection already registered')
  })

  await check('create', async () => {
    const created = await client.create(db, 'Person', [
      { _id: '', name: 'Alice', age: 30, secret: 'a' },
      { name: 'Bob', age: 45 }
    ])
    assert.equal(created.length, 2)
    assert.match(created[0], /^[0-9a-z]{26}$/)
    ids.alice = created[0]
    ids.bob = created[1]
    await rejects(client.create(db, 'Person', [{ _id: ids.alice, name: 'Again' }]), 'existing instance')
    await rejects(client.create(db, 'Person', [{ name: 'Alice' }]), 'unique constraint violation')
    await rejects(client.create(db, 'Person', [{ name: 'Neg', age: -1 }]), "instance doesn't correspond to schema")
  })

  await check('findByID, and the read filter hides a field', async () => {
    const alice = await client.findByID(db, 'Person', ids.alice)
    assert.equal(alice.name, 'Alice')
    assert.equal(alice.age, 30)
    assert.equal(alice._id, ids.alice)
    assert.equal(alice.secret, undefined, 'the read filter removed secret')
    await rejects(client.findByID(db, 'Person', 'nobody'), 'instance not found')
  })

  await check('has', async () => {
    assert.equal(await client.has(db, 'Person', [ids.alice, ids.bob]), true)
    assert.equal(await client.has(db, 'Person', [ids.alice, 'nobody']), false)
  })

  await check('save', async () => {
    const alice = await client.findByID(db, 'Person', ids.alice)
    alice.age = 31
    await client.save(db, 'Person', [alice])
    assert.equal((await client.findByID(db, 'Person', ids.alice)).age, 31)
  })

  await check('find with a query', async () => {
    const older = await client.find(db, 'Person', new Where('age').ge(40))
    assert.deepEqual(older.map((p) => p.name), ['Bob'])
    const all = await client.find(db, 'Person', {})
    assert.deepEqual(all.map((p) => p.name).sort(), ['Alice', 'Bob'])
  })

  await check('a read filter that hides whole instances', async () => {
    const [hidden] = await client.create(db, 'Person', [{ name: 'Hidden', age: 1 }])
    assert.equal(await client.has(db, 'Person', [hidden]), false)
    await rejects(client.findByID(db, 'Person', hidden), 'instance not found')
    const all = await client.find(db, 'Person', {})
    assert.ok(!all.some((p) => p.name === 'Hidden'))
    await client.delete(db, 'Person', [hidden])
  })

  await check('a write validator that rejects', async () => {
    await rejects(client.create(db, 'Person', [{ name: 'Mallory', age: 50 }]), 'app denied net record body')
    const all = await client.find(db, 'Person', {})
    assert.ok(!all.some((p) => p.name === 'Mallory'), 'the rejected create changed nothing')
  })

  await check('listen receives changes', async () => {
    // The listener is registered once its request reached the daemon, which the client does
    // not report: create a new Carol every 200 ms until the listener has seen one (bounded).
    const carols = []
    let closer
    let pending = Promise.resolve()
    const update = await new Promise((resolve, reject) => {
      const deadline = Date.now() + POLL_LIMIT_MS
      let done = false
      const finish = (f) => (v) => {
        if (!done) {
          done = true
          f(v)
        }
      }
      const ok = finish(resolve)
      const fail = finish(reject)
      closer = client.listen(db, [{ collectionName: 'Person' }], (u, err) => {
        if (err) fail(err)
        else if (u && u.instance && u.instance.name.startsWith('Carol')) ok(u)
      })
      const create = async () => {
        if (done) return
        if (Date.now() > deadline) return fail(new Error('the listener saw no change in time'))
        pending = client.create(db, 'Person', [{ name: `Carol${carols.length}`, age: 20 }])
        try {
          carols.push(...(await pending))
        } catch (e) {
          return fail(e)
        }
        setTimeout(create, 200)
      }
      create()
    })
    closer.close()
    // The change may arrive before the create's own reply: let that finish.
    carols.push(...(await pending.catch(() => [])).filter((id) => !carols.includes(id)))
    assert.equal(update.collectionName, 'Person')
    assert.equal(update.action, 'CREATE')
    assert.ok(carols.includes(update.instanceID), 'the change names an instance we created')
    assert.equal(update.instance._id, update.instanceID)
    const stored = await client.findByID(db, 'Person', update.instanceID)
    assert.equal(stored.name, update.instance.name)
    ids.carols = carols
  })

  await check('delete', async () => {
    await client.delete(db, 'Person', ids.carols)
    assert.equal(await client.has(db, 'Person', [ids.carols[0]]), false)
    assert.equal(await client.has(db, 'Person', [ids.alice]), true)
  })

  await check('listDBs', async () => {
    const dbs = await client.listDBs()
    const ours = dbs.find((d) => d.id.toString() === db.toString())
    assert.ok(ours, 'the new DB is listed')
    assert.equal(ours.name, 'acceptance')
  })

  if (cli) {
    await check('the threads CLI reads and writes the same database', async () => {
      const threads = (...args) => JSON.parse(execFileSync(cli, ['--api', `127.0.0.1:${one.api}`, '--json', ...args], {
        encoding: 'utf8',
        timeout: POLL_LIMIT_MS
      }))
      const listed = threads('db', 'list')
      assert.ok(listed.some((d) => d.id === db.toString() && d.name === 'acceptance'), JSON.stringify(listed))
      const bob = threads('instance', 'get', db.toString(), 'Person', ids.bob)
      assert.equal(bob.name, 'Bob')
      const { ids: [zed] } = threads('instance', 'create', db.toString(), 'Person', '{"name":"Zed","age":70}')
      assert.equal((await client.findByID(db, 'Person', zed)).name, 'Zed')
      await client.delete(db, 'Person', [zed])
      assert.throws(() => execFileSync(cli, ['--api', `127.0.0.1:${one.api}`, 'instance', 'get', db.toString(), 'Person', zed], {
        stdio: 'pipe',
        timeout: POLL_LIMIT_MS
      }), (e) => e.status === 1 && e.stderr.toString().includes('instance not found'))
    })
  }

  let info
  await check('getDBInfo', async () => {
    info = await client.getDBInfo(db)
    assert.equal(typeof info.key, 'string')
    assert.ok(info.addrs.length > 0)
    for (const a of info.addrs) {
      assert.ok(a.includes(`/thread/${db.toString()}`), a)
    }
  })

  await check('readTransaction', async () => {
    const txn = client.readTransaction(db, 'Person')
    await txn.start()
    assert.equal(await txn.has([ids.alice]), true)
    assert.equal((await txn.findByID(ids.alice)).name, 'Alice')
    const found = await txn.find({})
    assert.deepEqual(found.map((p) => p.name).sort(), ['Alice', 'Bob'])
    await txn.end()
  })

  await check('writeTransaction', async () => {
    const txn = client.writeTransaction(db, 'Person')
    await txn.start()
    const [eve] = await txn.create([{ name: 'Eve', age: 22 }])
    assert.match(eve, /^[0-9a-z]{26}$/)
    const bob = await txn.findByID(ids.bob)
    bob.age = 46
    await txn.save([bob])
    await txn.end()
    ids.eve = eve
    assert.equal((await client.findByID(db, 'Person', eve)).name, 'Eve')
    assert.equal((await client.findByID(db, 'Person', ids.bob)).age, 46)
  })

  await check('newDBFromAddr on a second daemon receives the documents', async () => {
    const addr = info.addrs.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))
    assert.ok(addr, `a loopback address among ${info.addrs}`)
    const joined = await other.newDBFromAddr(addr, info.key, [
      { name: 'Person', schema, indexes: [{ path: 'name', unique: true }] }
    ])
    assert.equal(joined.toString(), db.toString())
    const people = await eventually('the documents reach the second daemon', async () => {
      const found = await other.find(db, 'Person', {})
      return found.length === 3 ? found : undefined
    })
    assert.deepEqual(people.map((p) => p.name).sort(), ['Alice', 'Bob', 'Eve'])
    const eve = await other.findByID(db, 'Person', ids.eve)
    assert.equal(eve.age, 22)
  })

  await check('deleteDB', async () => {
    await client.deleteDB(db)
    await rejects(client.getDBInfo(db), 'thread not found')
  })
}

const watchdog = setTimeout(() => {
  console.error(`not ok - the run took longer than ${RUN_LIMIT_MS} ms`)
  stopDaemons()
  process.exit(1)
}, RUN_LIMIT_MS)

main().then(
  () => {
    console.log(`all ${step} steps passed`)
    return 0
  },
  (e) => {
    console.error(`not ok ${step + 1} - ${e.stack || e}`)
    for (const d of daemons) {
      const tail = fs.readFileSync(d.log, 'utf8').split('\n').slice(-30).join('\n')
      console.error(`--- ${d.name} stderr (last lines):\n${tail}`)
    }
    return 1
  }
).then((code) => {
  clearTimeout(watchdog)
  stopDaemons()
  for (const d of daemons) fs.rmSync(d.repo, { recursive: true, force: true })
  process.exit(code)
})
