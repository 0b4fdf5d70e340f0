// Measures the web UI's budgets in headless Chromium on loopback, against the release binary
// with the demo fleet and one echo-service instance, and prints a Markdown table.
//
//   node e2e/budgets.mjs        (same environment variables as e2e/run.mjs)

import { readdirSync, readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { join } from 'node:path'
import { UI, signedIn, startSystem, stopSystem } from './fixture.mjs'

const RUNS = Number(process.env.RUNS ?? 7)
const finite = (xs) => xs.filter(Number.isFinite)
const median = (xs) => [...finite(xs)].sort((a, b) => a - b)[Math.floor(finite(xs).length / 2)]
const max = (xs) => Math.max(...finite(xs))
const missed = (xs) => (xs.length - finite(xs).length ? ` (${xs.length - finite(xs).length} of ${xs.length} timed out)` : '')

/** In the page: run `act`, then resolve with the ms until `done()` holds after a DOM change. */
const timeUntil = (page, act, done, arg) =>
  page.evaluate(
    ([actSrc, doneSrc, a]) =>
      new Promise((resolve) => {
        const act = new Function('a', actSrc)
        const done = new Function('a', doneSrc)
        const t0 = performance.now()
        setTimeout(() => resolve(Number.NaN), 10000)
        const obs = new MutationObserver(() => {
          if (done(a)) {
            obs.disconnect()
            resolve(performance.now() - t0)
          }
        })
        obs.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true })
        act(a)
      }),
    [act, done, arg],
  )

const sys = await startSystem()
const rows = []
const step = (what) => console.error(`.. ${what}`)
try {
  const { context, page } = await signedIn(sys)
  const state = await context.storageState()

  step('first load')
  // 1. First load, cold cache, to the fleet overview rendered with its data.
  const loads = []
  for (let i = 0; i < RUNS; i++) {
    const ctx = await sys.browser.newContext({ baseURL: sys.base, storageState: state })
    const p = await ctx.newPage()
    await p.addInitScript(() => {
      new MutationObserver((_, obs) => {
        if (document.querySelector('li[data-service] [data-testid="instances"]')) {
          window.__ready = performance.now()
          obs.disconnect()
        }
      }).observe(document, { subtree: true, childList: true })
    })
    await p.goto('/')
    await p.waitForFunction(() => window.__ready)
    loads.push(await p.evaluate(() => window.__ready))
    await ctx.close()
  }
  rows.push(['First load to interactive (fleet page, cold cache)', loads, 300])

  // 2. JavaScript shipped, gzip.
  const dir = join(UI, 'dist', 'assets')
  const js = readdirSync(dir).filter((f) => f.endsWith('.js'))
  const gz = js.reduce((n, f) => n + gzipSync(readFileSync(join(dir, f)), { level: 9 }).length, 0)

  step('service page')
  // 3. Service page render: click in the fleet page until its settings are on screen.
  const renders = []
  for (let i = 0; i < RUNS; i++) {
    await page.goto('/')
    await page.waitForSelector('li[data-service="tts-worker"]')
    renders.push(
      await timeUntil(
        page,
        `document.querySelector('li[data-service="tts-worker"] a.name').click()`,
        `return !!document.querySelector('.field[data-key="/volume_percent"] input')`,
      ),
    )
  }
  rows.push(['Service page render (click → settings shown)', renders, 50])

  step('search')
  // 4. Search: one keystroke to updated results.
  await page.focus('#global-search')
  await page.waitForFunction(() => true)
  await page.keyboard.type('w')
  await page.waitForSelector('#search-results [role="option"]')
  const keystrokes = []
  const words = ['wa', 'wak', 'wake', 'wake w', 'v', 'vo', 'vol', 'm', 'mq', 'mqtt p']
  for (const w of words) {
    // Vue renders in a microtask after the input event; a zero timeout runs after it.
    keystrokes.push(
      await page.evaluate(
        (q) =>
          new Promise((resolve) => {
            const i = document.getElementById('global-search')
            const t0 = performance.now()
            i.value = q
            i.dispatchEvent(new Event('input'))
            setTimeout(() => {
              const first = document.querySelector('#search-results [role="option"]')
              const t = performance.now() - t0
              resolve(first && first.textContent.toLowerCase().includes(q.split(' ')[0]) ? t : Number.NaN)
            }, 0)
          }),
        w,
      ),
    )
  }
  step(`search ${JSON.stringify(keystrokes.map((k, i) => [words[i], k]))}`)
  rows.push(['Search keystroke → results', keystrokes, 16])
  await page.keyboard.press('Escape')

  step('save')
  // 5. Save → "Applied on 1/1": the manager publishes, the echo-service applies and reports.
  await page.goto('/services/tts-worker')
  await page.waitForSelector('[data-key="/volume_percent"] input')
  const saves = []
  for (let i = 0; i < RUNS; i++) {
    await page.fill('[data-key="/volume_percent"] input[type="number"]', String(100 + i))
    await page.waitForSelector('[data-testid="save"]:not([disabled])')
    saves.push(
      await timeUntil(
        page,
        `document.querySelector('[data-testid="save"]').click()`,
        `const r = document.querySelector('[data-testid="rollout"]'); return !!r && r.textContent.includes('Applied on 1/1') && !document.querySelector('[data-testid="save"]')`,
      ),
    )
  }
  rows.push(['Save → "Applied on 1/1" (echo-service over Mosquitto)', saves, 50])

  console.log('| budget | limit | median | max |')
  console.log('|---|---|---|---|')
  for (const [what, xs, limit] of rows) {
    console.log(`| ${what} | ≤ ${limit} ms | ${median(xs).toFixed(1)} ms | ${max(xs).toFixed(1)} ms${missed(xs)} |`)
  }
  console.log(`| JavaScript, all chunks, gzip | ≤ 150 KB | ${(gz / 1024).toFixed(1)} KB (${js.length} files) | |`)
  console.log(`\n${RUNS} runs each; Chromium ${sys.browser.version()}.`)
} finally {
  await stopSystem(sys)
}
