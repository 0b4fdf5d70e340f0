// Browser tests of the web UI against the real release binary, a real Mosquitto and the
// example echo-service. Prints one line per test and a closing `N passed, N failed`; exits
// non-zero on any failure. The tests run in order and build on each other's state (versions).
//
//   node e2e/run.mjs            (DIALS_BIN, ECHO_BIN, CHROMIUM override the binaries)

import { readFileSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import assert from 'node:assert/strict'
import { REPO, api, newToken, signedIn, startSystem, stopSystem } from './fixture.mjs'

const require = createRequire(import.meta.url)
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')
const SHOTS = join(REPO, 'docs', 'screenshots')
mkdirSync(SHOTS, { recursive: true })

const tests = []
const test = (name, fn) => tests.push({ name, fn })

/** Runs axe-core in the page; fails on any serious or critical violation. */
async function axe(page, what) {
  await page.evaluate(AXE)
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] })
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }))
  })
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  assert.deepEqual(bad, [], `${what}: accessibility violations ${JSON.stringify(bad, null, 1)}`)
}

const field = (page, key) => page.locator(`[data-key="${key}"]`)

let sys
let admin // { context, page }

test('signs in with a token; a wrong token and a service token are refused with a clear message', async () => {
  const context = await sys.browser.newContext({ baseURL: sys.base })
  context.setDefaultTimeout(10000)
  const page = await context.newPage()
  await page.goto('/services/router')
  await page.waitForURL(/\/login\?next=/)
  await axe(page, 'login page')
  await page.screenshot({ path: join(SHOTS, 'login.png') })
  await page.getByLabel('Access token').fill('dials_not-a-token')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText('This token is not valid').waitFor()
  const service = (await api(sys, 'POST', '/api/v1/tokens', { name: 'router-svc', role: 'service', service: 'router' })).token
  await page.getByLabel('Access token').fill(service)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText('cannot sign in to the web UI').waitFor()
  await page.getByLabel('Access token').fill(sys.adminToken)
  await page.getByRole('button', { name: 'Sign in' }).click()
  // Back to the deep link it came from.
  await page.waitForURL(/\/services\/router$/)
  await field(page, '/router_wake_window_sec').waitFor()
  await context.close()
})

test('the fleet overview shows every service, its last change and its instances', async () => {
  admin = await signedIn(sys)
  const { page } = admin
  const cards = page.locator('li[data-service]')
  assert.equal(await cards.count(), 6, 'six services besides global')
  const tts = page.locator('li[data-service="tts-worker"]')
  await tts.getByText('1 of 1').waitFor()
  assert.match(await tts.innerText(), /v1[\s\S]*by admin/)
  await page.getByTestId('status').click()
  await page.getByRole('region', { name: 'Manager status' }).getByText('connected').first().waitFor()
  await page.getByTestId('status').click()
  await axe(page, 'fleet page')
  await page.screenshot({ path: join(SHOTS, 'fleet.png'), fullPage: true })
  await page.getByRole('link', { name: 'Global settings' }).first().click()
  await field(page, '/mqtt/host').waitFor()
})

test('an invalid value shows its error inline, as the manager would report it, and blocks saving', async () => {
  const { page } = admin
  await page.goto('/services/tts-worker')
  const input = field(page, '/volume_percent').locator('input[type="number"]')
  await input.fill('250')
  const error = field(page, '/volume_percent').getByTestId('field-error')
  await error.waitFor()
  assert.equal(await error.innerText(), 'must be at most 200')
  assert.equal(await page.getByTestId('save').isDisabled(), true)
  // The manager's own dry run finds the same key.
  const config = (await api(sys, 'GET', '/api/v1/services/tts-worker/config')).config
  const verdict = await api(sys, 'POST', '/api/v1/services/tts-worker/validate', { config: { ...config, volume_percent: 250, eleven_api_key: undefined } })
  assert.deepEqual(verdict.errors.map((e) => e.path), ['/volume_percent'])
  assert.match(verdict.errors[0].message, /^must be at most 200/)
  await page.getByRole('button', { name: 'Discard' }).click()
})

test('save: the echo-service applies it, the page shows "applied on 1/1", and a second browser sees it live', async () => {
  const { page } = admin
  const other = await signedIn(sys, await newToken(sys, 'bob', 'operator'))
  await other.page.goto('/services/tts-worker')
  const otherVolume = field(other.page, '/volume_percent').locator('input[type="number"]')
  await otherVolume.waitFor()
  assert.equal(await otherVolume.inputValue(), '80')

  await page.goto('/services/tts-worker')
  await page.getByTestId('version').getByText('v1').waitFor()
  await field(page, '/volume_percent').locator('input[type="number"]').fill('120')
  await page.getByRole('button', { name: /1 unsaved change/ }).click()
  const pending = page.getByRole('region', { name: 'Pending changes' })
  await pending.locator('tr[data-key="/volume_percent"]').getByText('120').waitFor()
  await page.getByLabel('Reason for this change (optional)').fill('louder in the kitchen')
  await page.getByTestId('save').click()
  await page.getByText('Saved tts-worker as v2.').waitFor()
  await page.getByTestId('rollout').getByText('Applied on 1/1').waitFor()
  const applied = await sys.echoApplies((v) => v.version === 2)
  assert.equal(applied.config.volume_percent, 120)
  await page.getByTestId('version').getByText('v2').waitFor()
  // The environment override the instance reports shows on its key.
  await page.getByRole('radio', { name: 'Advanced' }).check()
  await field(page, '/tts_concurrency').getByTestId('env-override').getByText('TTS_CONCURRENCY on pi-kitchen').waitFor()
  await axe(page, 'service page')
  await page.screenshot({ path: join(SHOTS, 'service.png'), fullPage: true })
  await page.getByRole('radio', { name: 'Simple' }).check()

  // The other browser got the change over the live stream, without a reload.
  await other.page.waitForFunction(() => document.querySelector('[data-key="/volume_percent"] input[type="number"]')?.value === '120')
  await other.page.getByTestId('version').getByText('v2').waitFor()
  await other.context.close()
})

test('editing a setting someone else just changed warns before it is lost', async () => {
  const { page } = admin
  await page.goto('/services/router')
  await field(page, '/router_wake_ack_text').locator('input').fill('Mine')
  await api(sys, 'PATCH', '/api/v1/services/router/config', { config: { router_wake_ack_text: 'Theirs' }, reason: 'elsewhere' })
  const warning = field(page, '/router_wake_ack_text').getByTestId('remote-change')
  await warning.getByText('Theirs', { exact: true }).waitFor()
  await warning.getByRole('button', { name: 'Use theirs' }).click()
  assert.equal(await field(page, '/router_wake_ack_text').locator('input').inputValue(), 'Theirs')
  await page.getByRole('region', { name: 'Pending changes' }).waitFor({ state: 'detached' })
})

test('a conflicting save opens the conflict dialog with the other change; "overwrite mine" saves', async () => {
  // This browser misses live updates (its stream is cut), so it saves on a stale version.
  const ctx = await signedIn(sys)
  const { page } = ctx
  await page.route('**/api/v1/watch**', (route) => route.abort())
  await page.goto('/services/memory-worker')
  await field(page, '/character_name').locator('input').fill('MARVIN')
  await api(sys, 'PATCH', '/api/v1/services/memory-worker/config', { config: { memory_top_k: 9 }, reason: 'someone else' })
  await page.getByTestId('save').click()
  const dialog = page.getByRole('dialog', { name: 'Someone saved this service first' })
  await dialog.waitFor()
  const theirs = dialog.getByTestId('their-change')
  assert.equal(await theirs.locator('tbody tr').count(), 1)
  await axe(page, 'conflict dialog')
  await page.screenshot({ path: join(SHOTS, 'conflict.png') })
  await dialog.getByRole('button', { name: 'Overwrite with mine' }).click()
  await page.getByText(/Saved memory-worker as v3/).waitFor()
  const now = await api(sys, 'GET', '/api/v1/services/memory-worker/config')
  assert.equal(now.config.character_name, 'MARVIN')
  assert.equal(now.config.memory_top_k, 9, 'their change is kept')
  assert.equal(now.version, 3)
  await ctx.context.close()
})

test('revealing a secret needs a justification, shows the value, and is in the audit log', async () => {
  const { page } = admin
  await page.goto('/services/tts-worker')
  const secret = field(page, '/eleven_api_key')
  assert.equal(await secret.getByTestId('secret-value').innerText(), '••••••••')
  await secret.getByRole('button', { name: 'Reveal…' }).click()
  const dialog = page.getByRole('dialog', { name: /Reveal/ })
  await dialog.getByRole('button', { name: 'Reveal' }).click()
  await dialog.getByText('Say why you need to see it').waitFor()
  await dialog.getByLabel('Why do you need to see it?').fill('compare with the provider dashboard')
  await dialog.getByRole('button', { name: 'Reveal' }).click()
  assert.equal(await dialog.getByTestId('revealed').inputValue(), 'example-elevenlabs-key-not-real')
  await dialog.getByRole('button', { name: 'Hide and close' }).click()
  await page.getByRole('link', { name: 'Audit' }).click()
  const row = page.locator('tr[data-action*="reveal"]').first()
  await row.waitFor()
  assert.match(await row.innerText(), /admin[\s\S]*eleven_api_key/)
  await axe(page, 'audit page')
  await page.screenshot({ path: join(SHOTS, 'audit.png') })
})

test('restoring from history shows the diff first, then writes the old values as a new version', async () => {
  const { page } = admin
  await page.goto('/services/tts-worker/history')
  const v1 = page.locator('li[data-version="1"]')
  await v1.waitFor()
  await axe(page, 'history page')
  await page.screenshot({ path: join(SHOTS, 'history.png'), fullPage: true })
  // Side by side: v1 and v2.
  await page.locator('li[data-version="2"]').getByRole('button', { name: 'Compare' }).click()
  const compare = page.getByRole('dialog', { name: 'tts-worker: v1 and v2' })
  await compare.locator('tr[data-key="/volume_percent"]').getByText('120').waitFor()
  await compare.getByRole('button', { name: 'Close' }).click()
  await v1.getByRole('button', { name: 'Restore…' }).click()
  const confirm = page.getByRole('dialog', { name: 'Restore tts-worker v1?' })
  const row = confirm.locator('tr[data-key="/volume_percent"]')
  assert.match(await row.innerText(), /120[\s\S]*80/)
  await confirm.getByRole('button', { name: 'Restore v1' }).click()
  await page.getByText(/Restored tts-worker v1 as v3/).waitFor()
  const applied = await sys.echoApplies((v) => v.version === 3)
  assert.equal(applied.config.volume_percent, 80)
})

test('setting a secret writes a new version; only a reveal shows the new value', async () => {
  const { page } = admin
  await page.goto('/services/tts-worker')
  const secret = field(page, '/eleven_api_key')
  await secret.getByRole('button', { name: 'Set secret…' }).click()
  const dialog = page.getByRole('dialog', { name: 'Set ElevenLabs API key' })
  await dialog.getByLabel('New value').fill('sk-rotated-123')
  await dialog.getByLabel('Reason (optional)').fill('rotated')
  await dialog.getByRole('button', { name: 'Set secret', exact: true }).click()
  await page.getByText(/Set the secret ElevenLabs API key \(v4\)/).waitFor()
  await page.getByTestId('version').getByText('v4').waitFor()
  await sys.echoApplies((v) => v.version === 4)
  assert.equal(await secret.getByTestId('secret-value').innerText(), '••••••••')
  assert.ok(!(await page.content()).includes('sk-rotated-123'), 'the value is nowhere in the page')
  await secret.getByRole('button', { name: 'Reveal…' }).click()
  const reveal = page.getByRole('dialog', { name: /Reveal/ })
  await reveal.getByLabel('Why do you need to see it?').fill('check the rotation')
  await reveal.getByRole('button', { name: 'Reveal' }).click()
  assert.equal(await reveal.getByTestId('revealed').inputValue(), 'sk-rotated-123')
  await reveal.getByRole('button', { name: 'Hide and close' }).click()
})

test('a viewer sees every control disabled, with the reason', async () => {
  const viewer = await signedIn(sys, await newToken(sys, 'vera', 'viewer'))
  const { page } = viewer
  await page.goto('/services/tts-worker')
  await page.getByTestId('readonly').getByText('needs the operator role').waitFor()
  const volume = field(page, '/volume_percent').locator('input[type="number"]')
  assert.equal(await volume.isDisabled(), true)
  assert.equal(await field(page, '/eleven_api_key').getByRole('button', { name: 'Reveal…' }).isDisabled(), true)
  assert.equal(await page.getByRole('link', { name: 'Tokens' }).count(), 0, 'no admin pages')
  await page.goto('/services/tts-worker/history')
  assert.equal(await page.locator('li[data-version="1"]').getByRole('button', { name: 'Restore…' }).isDisabled(), true)
  await viewer.context.close()
})

test('search ("/" then type) jumps to the setting and highlights it', async () => {
  const { page } = admin
  await page.goto('/')
  await page.locator('li[data-service]').first().waitFor()
  await page.keyboard.press('/')
  await page.keyboard.type('wake window')
  const option = page.getByRole('option').first()
  await option.getByText('router', { exact: true }).waitFor()
  await page.keyboard.press('Enter')
  await page.waitForURL(/\/services\/router\?key=/)
  const target = field(page, '/router_wake_window_sec')
  await page.locator('[data-key="/router_wake_window_sec"].highlight').waitFor()
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'f-router_wake_window_sec')
  await target.locator('input[type="number"]').waitFor()
})

test('keyboard only: change a value and reach Save with Tab', async () => {
  const { page } = admin
  // Focus is on the field the search jumped to.
  await page.keyboard.press('Control+a')
  await page.keyboard.type('17')
  await page.getByRole('region', { name: 'Pending changes' }).waitFor()
  let reached = false
  for (let i = 0; i < 200 && !reached; i++) {
    await page.keyboard.press('Tab')
    reached = await page.evaluate(() => document.activeElement?.getAttribute('data-testid') === 'save')
  }
  assert.ok(reached, 'Save is in the tab order')
  await page.keyboard.press('Enter')
  await page.getByText(/Saved router as v\d+/).waitFor()
  const now = await api(sys, 'GET', '/api/v1/services/router/config')
  assert.equal(now.config.router_wake_window_sec, 17)
})

test('leaving with unsaved changes asks first', async () => {
  const { page } = admin
  await page.goto('/services/router')
  await field(page, '/router_wake_ack_text').locator('input').fill('Unsaved')
  const asked = new Promise((ok) => page.once('dialog', (d) => { ok(d.message()); d.dismiss() }))
  await page.getByRole('link', { name: 'Fleet' }).first().click()
  assert.match(await asked, /unsaved changes/)
  assert.match(page.url(), /\/services\/router$/)
  await page.getByRole('button', { name: 'Discard' }).click()
})

test('tokens: create one (shown once), then revoke it; a revoked session ends with a clear message', async () => {
  const { page } = admin
  await page.getByRole('link', { name: 'Tokens' }).click()
  await page.getByLabel('Name').fill('ci-reader')
  await page.getByLabel('Role').selectOption('viewer')
  await page.getByRole('button', { name: 'Create token' }).click()
  const created = page.getByRole('dialog', { name: 'Token ci-reader created' })
  const secret = await created.getByTestId('new-token').inputValue()
  assert.match(secret, /^dials_/)
  await axe(page, 'tokens page (new token dialog)')
  await created.getByRole('button', { name: 'Done' }).click()

  // Sign in with it elsewhere, then revoke it here.
  const reader = await signedIn(sys, secret)
  await page.locator('tr[data-token="ci-reader"]').getByRole('button', { name: 'Revoke ci-reader' }).click()
  await page.getByRole('dialog', { name: 'Revoke ci-reader?' }).getByRole('button', { name: 'Revoke' }).click()
  await page.locator('tr[data-token="ci-reader"]').waitFor({ state: 'detached' })
  await axe(page, 'tokens page')
  await page.screenshot({ path: join(SHOTS, 'tokens.png') })
  await reader.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'History' }).click()
  await reader.page.getByText('Your session has expired').waitFor()
  await reader.context.close()
})

test('profiles: save (asking before overwriting), change a setting, apply it back after a preview of the diff', async () => {
  const { page } = admin
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Profiles' }).click()
  await page.getByRole('heading', { name: 'Profiles', level: 1 }).waitFor()
  const before = (await api(sys, 'GET', '/api/v1/services/tts-worker/config')).config.volume_percent
  const saveAs = async (name, description) => {
    await page.getByRole('button', { name: 'Save profile…' }).click()
    const dialog = page.getByRole('dialog', { name: 'Save profile' })
    await dialog.getByLabel('Name').fill(name)
    await dialog.getByLabel('Description').fill(description)
    await dialog.getByRole('button', { name: 'Save profile' }).click()
    return dialog
  }
  await (await saveAs('kitchen-day', 'first try')).waitFor({ state: 'detached' })
  await page.locator('li[data-profile="kitchen-day"]').getByText('first try').waitFor()
  // The same name again: the manager refuses (409) and the dialog asks before overwriting.
  const again = await saveAs('kitchen-day', 'daytime in the kitchen')
  await again.getByTestId('exists').getByText('already exists').waitFor()
  await again.getByRole('button', { name: 'Overwrite kitchen-day' }).click()
  await again.waitFor({ state: 'detached' })
  const card = page.locator('li[data-profile="kitchen-day"]')
  await card.getByText('daytime in the kitchen').waitFor()
  assert.ok((await card.locator('.services li').allInnerTexts()).includes('tts-worker'))
  await axe(page, 'profiles page')
  await page.screenshot({ path: join(SHOTS, 'profiles.png') })

  // What it captured: the values, secrets masked.
  await card.getByRole('button', { name: 'Show settings' }).click()
  const shown = page.getByRole('dialog', { name: 'Profile kitchen-day' })
  const captured = shown.locator('[data-profile-service="tts-worker"]')
  assert.equal(await captured.locator('tr[data-key="/volume_percent"] td').nth(1).innerText(), String(before))
  await captured.locator('tr[data-key="/eleven_api_key"]').getByText('secret, hidden').waitFor()
  assert.ok(!(await page.content()).includes('sk-rotated-123'), 'no secret value in the page')
  await shown.getByRole('button', { name: 'Close' }).last().click()

  // Someone changes a setting.
  const changed = await api(sys, 'PATCH', '/api/v1/services/tts-worker/config', { config: { volume_percent: 95 }, reason: 'elsewhere' })
  await sys.echoApplies((v) => v.version === changed.version)

  // Apply: the dry run's plan first, with the key's diff (the saves' notices out of the way).
  const notices = page.getByRole('status').getByRole('button', { name: 'Dismiss' })
  while (await notices.count()) await notices.first().click({ timeout: 1000 }).catch(() => {})
  await card.getByRole('button', { name: 'Apply kitchen-day…' }).click()
  const preview = page.getByRole('dialog', { name: 'Apply profile kitchen-day?' })
  const tts = preview.locator('[data-plan-service="tts-worker"]')
  await tts.waitFor()
  assert.equal(await tts.getAttribute('data-action'), 'update')
  assert.equal(await tts.getByTestId('plan-versions').innerText(), `v${changed.version} → v${changed.version + 1}`)
  const row = tts.locator('tr[data-key="/volume_percent"]')
  assert.equal(await row.locator('.diff-old').innerText(), '95')
  assert.equal(await row.locator('.diff-new').innerText(), String(before))
  assert.equal(await preview.locator('[data-action="update"], [data-action="create"]').count(), 1, 'only tts-worker changes')
  assert.equal((await api(sys, 'GET', '/api/v1/services/tts-worker/config')).version, changed.version, 'the preview wrote nothing')
  await axe(page, 'profile apply preview')
  await page.screenshot({ path: join(SHOTS, 'profile-apply.png') })
  await preview.getByRole('button', { name: 'Apply profile' }).click()
  await page.getByText('Applied profile kitchen-day: 1 service changed.').waitFor()
  const now = await api(sys, 'GET', '/api/v1/services/tts-worker/config')
  assert.equal(now.config.volume_percent, before, 'the setting is back')
  assert.equal(now.version, changed.version + 1)
  const applied = await sys.echoApplies((v) => v.version === now.version)
  assert.equal(applied.config.volume_percent, before)
})

test('a viewer reads profiles without a button that writes, and cannot open fleet restore', async () => {
  const viewer = await signedIn(sys, await newToken(sys, 'vic', 'viewer'), { viewport: { width: 375, height: 812 } })
  const { page } = viewer
  await page.goto('/profiles')
  const card = page.locator('li[data-profile="kitchen-day"]')
  await card.waitFor()
  await page.getByTestId('readonly').getByText('needs the operator role').waitFor()
  assert.equal(await page.getByRole('button', { name: /^(Save profile|Apply|Delete)/ }).count(), 0)
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  assert.ok(overflow <= 0, `no horizontal scroll at 375 px (overflow ${overflow}px)`)
  await axe(page, 'profiles page, viewer on a phone')
  await page.goto('/restore')
  await page.waitForURL((u) => u.pathname === '/')
  await viewer.context.close()
})

test('fleet restore: pick a point in time, preview the plan, restore', async () => {
  const { page } = admin
  // The form is to the second; keep the chosen second clear of the changes on either side.
  await new Promise((ok) => setTimeout(ok, 1100))
  const at = new Date(Math.floor(Date.now() / 1000) * 1000)
  await new Promise((ok) => setTimeout(ok, 1100))
  const base = {
    tts: (await api(sys, 'GET', '/api/v1/services/tts-worker/config')).config.volume_percent,
    router: (await api(sys, 'GET', '/api/v1/services/router/config')).config.router_wake_ack_text,
  }
  await api(sys, 'PATCH', '/api/v1/services/tts-worker/config', { config: { volume_percent: 111 }, reason: 'tuning' })
  await api(sys, 'PATCH', '/api/v1/services/router/config', { config: { router_wake_ack_text: 'Speak.' }, reason: 'tuning' })

  await page.goto('/history')
  await page.getByRole('link', { name: 'Restore the fleet to a point in time…' }).click()
  await page.waitForURL(/\/restore$/)
  const when = page.getByLabel('Restore to')
  await page.getByRole('group', { name: 'Quick picks' }).getByRole('button', { name: '1 hour ago' }).click()
  assert.match(await when.inputValue(), /^\d{4}-\d\d-\d\dT\d\d:\d\d/)
  await axe(page, 'fleet restore page')
  const local = await page.evaluate((iso) => {
    const d = new Date(iso)
    const p = (n) => String(n).padStart(2, '0')
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
  }, at.toISOString())
  await when.fill(local)
  await page.getByLabel('Only these:').check()
  const services = page.getByRole('group', { name: 'Services to restore' })
  await services.getByLabel('tts-worker').check()
  await services.getByLabel('router').check()
  await page.getByLabel('Reason (optional)').fill('undo the tuning')
  await page.getByRole('button', { name: 'Preview restore…' }).click()

  const preview = page.getByRole('dialog', { name: /^Restore the fleet to / })
  const tts = preview.locator('[data-plan-service="tts-worker"]')
  await tts.waitFor()
  assert.equal(await tts.getAttribute('data-action'), 'update')
  assert.equal(await tts.locator('tr[data-key="/volume_percent"] .diff-old').innerText(), '111')
  assert.equal(await tts.locator('tr[data-key="/volume_percent"] .diff-new').innerText(), String(base.tts))
  const router = preview.locator('[data-plan-service="router"]')
  assert.equal(await router.locator('tr[data-key="/router_wake_ack_text"] .diff-new').innerText(), String(base.router))
  assert.equal(await preview.locator('[data-plan-service="memory-worker"]').count(), 0, 'only the chosen services')
  await axe(page, 'fleet restore preview')
  await page.screenshot({ path: join(SHOTS, 'restore.png') })
  await preview.getByRole('button', { name: 'Restore', exact: true }).click()
  await page.getByText(/Restored the fleet to .*: 2 services changed\./).waitFor()
  const tts2 = await api(sys, 'GET', '/api/v1/services/tts-worker/config')
  assert.equal(tts2.config.volume_percent, base.tts)
  assert.equal((await api(sys, 'GET', '/api/v1/services/router/config')).config.router_wake_ack_text, base.router)
  const applied = await sys.echoApplies((v) => v.version === tts2.version)
  assert.equal(applied.config.volume_percent, base.tts)
})

test('deleting a profile asks first; cancelling returns focus to the button', async () => {
  const { page } = admin
  await page.goto('/profiles')
  await page.locator('li[data-profile="kitchen-day"]').getByRole('button', { name: 'Delete kitchen-day…' }).click()
  const confirm = page.getByRole('dialog', { name: 'Delete profile kitchen-day?' })
  // Cancelling puts focus back on the button that opened it; Enter opens it again.
  await confirm.getByRole('button', { name: 'Cancel' }).click()
  await page.waitForFunction(() => document.activeElement?.getAttribute('aria-label') === 'Delete kitchen-day…')
  await page.keyboard.press('Enter')
  await confirm.getByRole('button', { name: 'Delete' }).click()
  await page.locator('li[data-profile="kitchen-day"]').waitFor({ state: 'detached' })
  await assert.rejects(api(sys, 'GET', '/api/v1/profiles/kitchen-day'), (e) => e.status === 404)
})

test('a 375-px phone screen shows the service page without horizontal scrolling', async () => {
  const phone = await signedIn(sys, sys.adminToken, { viewport: { width: 375, height: 812 }, deviceScaleFactor: 2 })
  const { page } = phone
  await page.screenshot({ path: join(SHOTS, 'phone-fleet.png') })
  await page.goto('/services/tts-worker')
  await field(page, '/volume_percent').waitFor()
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  assert.ok(overflow <= 0, `no horizontal scroll (overflow ${overflow}px)`)
  await field(page, '/volume_percent').locator('input[type="number"]').fill('90')
  await page.getByRole('region', { name: 'Pending changes' }).waitFor()
  await page.screenshot({ path: join(SHOTS, 'phone-service.png') })
  await axe(page, 'service page on a phone')
  await phone.context.close()
})

test('dark theme follows the system', async () => {
  const dark = await signedIn(sys, sys.adminToken, { colorScheme: 'dark' })
  const bg = await dark.page.evaluate(() => getComputedStyle(document.body).backgroundColor)
  assert.notEqual(bg, 'rgb(246, 247, 249)')
  await axe(dark.page, 'fleet page, dark')
  await dark.page.goto('/services/global')
  await field(dark.page, '/mqtt/host').waitFor()
  await axe(dark.page, 'global settings, dark')
  await dark.page.screenshot({ path: join(SHOTS, 'dark-global.png'), fullPage: true })
  await dark.page.goto('/profiles')
  await dark.page.getByRole('heading', { name: 'Profiles', level: 1 }).waitFor()
  await axe(dark.page, 'profiles page, dark')
  await dark.page.goto('/restore')
  await dark.page.getByLabel('Restore to').waitFor()
  await axe(dark.page, 'fleet restore page, dark')
  await dark.context.close()
})

test('signing out ends the session', async () => {
  const { page } = admin
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByText('You are signed out.').waitFor()
  await page.goto('/tokens')
  await page.waitForURL(/\/login/)
  const status = await page.evaluate(async () => (await fetch('/api/v1/services')).status)
  assert.equal(status, 401, 'the cookie no longer works')
  await admin.context.close()
})

let passed = 0
let failed = 0
try {
  sys = await startSystem()
  for (const t of tests) {
    const start = Date.now()
    try {
      await t.fn()
      passed++
      console.log(`  ✓ ${t.name} (${Date.now() - start} ms)`)
    } catch (e) {
      failed++
      console.log(`  ✗ ${t.name}\n    ${String(e?.stack ?? e).split('\n').slice(0, 8).join('\n    ')}`)
    }
  }
} catch (e) {
  failed++
  console.log(`  ✗ setting up the system: ${e?.stack ?? e}`)
} finally {
  await stopSystem(sys)
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
