// The real system for browser tests: Mosquitto on a free port, the release `dials` binary on
// port 0 with a fresh data directory and the demo fleet, the example echo-service as the
// tts-worker instance `pi-kitchen`, and headless Chromium. Everything waits on events (a log
// line, a printed address, a selector), never on a timer.

import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

export const UI = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const REPO = resolve(UI, '..')
const bin = (env, fallback) => resolve(REPO, process.env[env] ?? fallback)
export const DIALS_BIN = bin('DIALS_BIN', 'target/release/dials')
export const ECHO_BIN = bin('ECHO_BIN', 'target/release/examples/echo-service')
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync',
]

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer()
    s.once('error', fail)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => ok(port))
    })
  })
}

/** Resolves with the first match of `re` in the process's stdout or stderr. */
function waitForLine(child, re, what) {
  return new Promise((ok, fail) => {
    let seen = ''
    const onData = (d) => {
      seen += d.toString()
      const m = seen.match(re)
      if (m) {
        child.stdout?.off('data', onData)
        child.stderr?.off('data', onData)
        ok(m)
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => fail(new Error(`${what} exited with ${code} before it was ready:\n${seen.slice(-2000)}`)))
  })
}

/** Lines the process prints on stdout, one callback per line. */
function lines(child, cb) {
  let buf = ''
  child.stdout.on('data', (d) => {
    buf += d.toString()
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      cb(buf.slice(0, i))
      buf = buf.slice(i + 1)
    }
  })
}

export async function startSystem() {
  for (const [what, path] of [['dials', DIALS_BIN], ['echo-service', ECHO_BIN], ['chromium', CHROMIUM]]) {
    if (!existsSync(path)) throw new Error(`${what} not found at ${path}`)
  }
  const dir = mkdtempSync(join(tmpdir(), 'dials-ui-e2e-'))
  const procs = []
  const sys = { dir, procs }

  // Mosquitto, with a config of its own; `user root` keeps it from switching to a user that
  // could not write the temp dir.
  const mqttPort = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(conf, `listener ${mqttPort} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\nset_tcp_nodelay true\nlog_dest stderr\n`)
  const mosquitto = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
  procs.push(mosquitto)
  await waitForLine(mosquitto, /running/, 'mosquitto')
  sys.mqtt = `mqtt://127.0.0.1:${mqttPort}`

  // The manager.
  const data = join(dir, 'data')
  const server = spawn(DIALS_BIN, ['serve', '--data-dir', data, '--http', '127.0.0.1:0', '--mqtt', sys.mqtt, '--log-format', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'warn' },
  })
  procs.push(server)
  const [, base] = await waitForLine(server, /listening on (http:\/\/[\d.:]+)/, 'dials serve')
  sys.base = base
  sys.adminToken = readFileSync(join(data, 'admin.token'), 'utf8').trim()
  // The binary must serve the UI built from this source (a release build embeds ui/dist).
  const served = await (await fetch(base + '/')).text()
  if (served !== readFileSync(join(UI, 'dist', 'index.html'), 'utf8')) {
    throw new Error(`${DIALS_BIN} serves another build of the UI than ui/dist: rebuild it (cargo build --release --workspace --bins --examples)`)
  }

  // The demo fleet.
  execFileSync(DIALS_BIN, ['seed', join(REPO, 'examples', 'tars'), '--server', base, '--token', sys.adminToken], { stdio: 'pipe' })

  // One running tts-worker instance, with one setting overridden by its environment.
  const serviceToken = (await api(sys, 'POST', '/api/v1/tokens', { name: 'tts-worker-pi', role: 'service', service: 'tts-worker' })).token
  const keys = await api(sys, 'GET', '/api/v1/keys')
  const echo = spawn(ECHO_BIN, [], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DIALS_SERVER: base,
      DIALS_TOKEN: serviceToken,
      DIALS_MQTT_URL: sys.mqtt,
      DIALS_PUBLIC_KEY: keys.public_key,
      DIALS_LKG_PATH: join(dir, 'tts-worker.lkg'),
      DIALS_INSTANCE: 'pi-kitchen',
      TTS_CONCURRENCY: '2',
    },
  })
  procs.push(echo)
  sys.echoVersions = []
  const versionWaiters = []
  lines(echo, (line) => {
    try {
      const v = JSON.parse(line)
      sys.echoVersions.push(v)
      for (const w of [...versionWaiters]) if (w.test(v)) {
        versionWaiters.splice(versionWaiters.indexOf(w), 1)
        w.ok(v)
      }
    } catch {
      // Not a config line.
    }
  })
  /** Resolves when the echo-service prints a config that passes `test`. */
  sys.echoApplies = (test) => {
    const seen = sys.echoVersions.find(test)
    if (seen) return Promise.resolve(seen)
    return new Promise((ok) => versionWaiters.push({ test, ok }))
  }
  await sys.echoApplies(() => true)

  sys.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
  return sys
}

export async function stopSystem(sys) {
  await sys?.browser?.close().catch(() => {})
  for (const p of [...(sys?.procs ?? [])].reverse()) {
    if (p.exitCode === null) {
      const gone = new Promise((ok) => p.once('exit', ok))
      p.kill('SIGTERM')
      await gone
    }
  }
  if (sys?.dir) rmSync(sys.dir, { recursive: true, force: true })
}

/** A REST call with the admin token (or `token`). */
export async function api(sys, method, path, body, token = sys.adminToken, headers = {}) {
  const r = await fetch(sys.base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await r.text()
  const data = text ? JSON.parse(text) : null
  if (!r.ok) throw Object.assign(new Error(`${method} ${path}: ${r.status} ${text}`), { status: r.status, data })
  return data
}

export async function newToken(sys, name, role) {
  return (await api(sys, 'POST', '/api/v1/tokens', { name, role })).token
}

/** A fresh browser context signed in through the login page. */
export async function signedIn(sys, token = sys.adminToken, options = {}) {
  const context = await sys.browser.newContext({ baseURL: sys.base, ...options })
  context.setDefaultTimeout(10000)
  const page = await context.newPage()
  await page.goto('/login')
  await page.getByLabel('Access token').fill(token)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForSelector('[data-service]')
  return { context, page }
}
