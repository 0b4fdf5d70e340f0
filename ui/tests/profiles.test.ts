import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import Profiles from '../src/views/Profiles.vue'
import { state } from '../src/lib/store'
import { invalidPlan, json, mountPage, plan, problem, stubFetch } from './plans'

const NIGHT = { name: 'night', description: 'quiet at night', services: ['stt-worker', 'tts-worker'], created_at: '2026-12-05T10:00:00Z', created_by: 'admin' }
const DAY = { name: 'day', description: '', services: ['tts-worker'], created_at: '2026-12-05T09:00:00Z', created_by: 'ops' }
const list = () => json(200, { profiles: [DAY, NIGHT] })

afterEach(() => {
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
  state.toasts.splice(0)
})

const dialog = (title: string) => {
  const d = [...document.querySelectorAll('dialog')].find((x) => x.querySelector('h2')?.textContent === title)
  if (!d) throw new Error(`no dialog "${title}" among ${[...document.querySelectorAll('dialog h2')].map((h) => h.textContent)}`)
  return d
}
const button = (root: Element, name: string) => {
  const b = [...root.querySelectorAll('button')].find((x) => x.textContent?.trim() === name)
  if (!b) throw new Error(`no button "${name}"`)
  return b as HTMLButtonElement
}
const click = async (b: HTMLElement) => {
  b.click()
  await flushPromises()
}

describe('the profiles page', () => {
  it('lists each profile with its description, services, and who saved it when', async () => {
    stubFetch([['GET', /\/api\/v1\/profiles$/, list]])
    const wrapper = await mountPage(Profiles, '/profiles', 'operator')
    const night = wrapper.find('[data-profile="night"]')
    expect(night.text()).toContain('quiet at night')
    expect(night.text()).toContain('by admin')
    expect(night.findAll('.services li').map((l) => l.text())).toEqual(['stt-worker', 'tts-worker'])
    expect(wrapper.findAll('[data-profile]').map((l) => l.attributes('data-profile'))).toEqual(['day', 'night'])
    expect(night.find('button[aria-label="Apply night…"]').exists()).toBe(true)
    wrapper.unmount()
  })

  it('shows a viewer the profiles and their settings, with no button that writes', async () => {
    stubFetch([
      ['GET', /\/api\/v1\/profiles$/, list],
      ['GET', /\/api\/v1\/profiles\/night$/, () => json(200, { ...NIGHT, services: [{ service: 'tts-worker', version: 7, config: { volume_percent: 80, eleven_api_key: '********' } }] })],
    ])
    const wrapper = await mountPage(Profiles, '/profiles', 'viewer')
    expect(wrapper.find('[data-testid="readonly"]').text()).toContain('needs the operator role')
    const labels = wrapper.findAll('button').map((b) => b.text())
    expect(labels.some((t) => /Save|Apply|Delete/.test(t))).toBe(false)
    await wrapper.find('[data-profile="night"]').findAll('button').find((b) => b.text() === 'Show settings')!.trigger('click')
    await flushPromises()
    const d = dialog('Profile night')
    expect(d.querySelector('[data-key="/volume_percent"]')?.textContent).toContain('80')
    // The secret is masked, never its value.
    expect(d.querySelector('[data-key="/eleven_api_key"]')?.textContent).toContain('secret, hidden')
    expect([...d.querySelectorAll('button')].map((b) => b.textContent?.trim())).toEqual(['✕', 'Close'])
    wrapper.unmount()
  })

  it('saves chosen services; on 409 asks before overwriting, then sends overwrite', async () => {
    const calls = stubFetch([
      ['GET', /\/api\/v1\/profiles$/, list],
      ['POST', /\/api\/v1\/profiles$/, (c) => (c.body.overwrite ? json(201, { ...NIGHT, services: [{ service: 'tts-worker', version: 7, config: {} }] }) : problem(409, 'profile night exists'))],
    ])
    const wrapper = await mountPage(Profiles, '/profiles', 'operator')
    await click(button(document.body, 'Save profile…'))
    const d = dialog('Save profile')
    const input = (sel: string, v: string) => {
      const el = d.querySelector(sel) as HTMLInputElement
      el.value = v
      el.dispatchEvent(new Event('input'))
    }
    input('#p-name', 'night')
    input('#p-desc', ' quiet at night ')
    const some = d.querySelector('input[value="some"]') as HTMLInputElement
    some.checked = true
    some.dispatchEvent(new Event('change'))
    await flushPromises()
    const tts = d.querySelector('input[type="checkbox"][value="tts-worker"]') as HTMLInputElement
    tts.checked = true
    tts.dispatchEvent(new Event('change'))
    await flushPromises()
    await click(button(d, 'Save profile'))
    const posts = calls.filter((c) => c.method === 'POST')
    expect(posts).toHaveLength(1)
    expect(posts[0].body).toEqual({ name: 'night', description: 'quiet at night', services: ['tts-worker'] })
    expect(posts[0].headers['X-CSRF-Token']).toBe('csrf-1')
    // The name is taken: nothing was overwritten yet, the dialog asks.
    expect(d.querySelector('[data-testid="exists"]')?.textContent).toContain('already exists')
    expect(document.activeElement).toBe(d.querySelector('[data-testid="exists"]'))
    await click(button(d, 'Overwrite night'))
    const again = calls.filter((c) => c.method === 'POST')
    expect(again).toHaveLength(2)
    expect(again[1].body).toEqual({ name: 'night', description: 'quiet at night', services: ['tts-worker'], overwrite: true })
    expect(document.querySelectorAll('dialog')).toHaveLength(0)
    expect(state.toasts.map((t) => t.text)).toContain('Saved profile night (1 service).')
    wrapper.unmount()
  })

  it('refuses a bad name before asking the manager', async () => {
    const calls = stubFetch([['GET', /\/api\/v1\/profiles$/, list]])
    const wrapper = await mountPage(Profiles, '/profiles', 'operator')
    await click(button(document.body, 'Save profile…'))
    const d = dialog('Save profile')
    const name = d.querySelector('#p-name') as HTMLInputElement
    name.value = 'Night Mode'
    name.dispatchEvent(new Event('input'))
    await click(button(d, 'Save profile'))
    expect(d.querySelector('[role="alert"]')?.textContent).toContain('lowercase letters')
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(0)
    wrapper.unmount()
  })

  it('applies after a dry-run preview: per-service action, versions and key diff, then the real apply', async () => {
    const calls = stubFetch([
      ['GET', /\/api\/v1\/profiles$/, list],
      ['GET', /\/api\/v1\/services$/, () => json(200, { services: [] })],
      ['POST', /\/api\/v1\/profiles\/night\/apply$/, (c) => json(200, plan({ dry_run: c.body.dry_run }))],
    ])
    const wrapper = await mountPage(Profiles, '/profiles', 'operator')
    await click(document.querySelector('button[aria-label="Apply night…"]') as HTMLElement)
    const d = dialog('Apply profile night?')
    expect(calls.filter((c) => c.method === 'POST').map((c) => c.body)).toEqual([{ dry_run: true }])
    expect(d.querySelector('[data-testid="plan-summary"]')?.textContent).toBe('1 service changes, 1 service is created, 1 unchanged.')
    const tts = d.querySelector('[data-plan-service="tts-worker"]')!
    expect(tts.getAttribute('data-action')).toBe('update')
    expect(tts.querySelector('[data-testid="plan-versions"]')?.textContent).toBe('v7 → v8')
    const row = tts.querySelector('tr[data-key="/volume_percent"]')!
    expect(row.querySelector('.diff-old')?.textContent).toBe('120')
    expect(row.querySelector('.diff-new')?.textContent).toBe('80')
    const created = d.querySelector('[data-plan-service="router"]')!
    expect(created.querySelector('[data-testid="plan-versions"]')?.textContent).toBe('no document → v1')
    expect(created.querySelector('tr[data-key="/router_wake_ack_text"]')?.textContent).toContain('(not set)')
    expect(d.querySelector('[data-testid="plan-unchanged"]')?.textContent).toContain('stt-worker (v4)')
    const confirm = d.querySelector('[data-testid="plan-confirm"]') as HTMLButtonElement
    expect(confirm.disabled).toBe(false)
    const reason = d.querySelector('#plan-reason') as HTMLInputElement
    reason.value = 'bedtime'
    reason.dispatchEvent(new Event('input'))
    await click(confirm)
    const posts = calls.filter((c) => c.method === 'POST')
    expect(posts.map((c) => c.body)).toEqual([{ dry_run: true }, { dry_run: false, reason: 'bedtime' }])
    expect(document.querySelectorAll('dialog')).toHaveLength(0)
    expect(state.toasts.map((t) => t.text)).toContain('Applied profile night: 2 services changed.')
    wrapper.unmount()
  })

  it('shows invalid members with their errors and keeps Apply disabled', async () => {
    const calls = stubFetch([
      ['GET', /\/api\/v1\/profiles$/, list],
      ['POST', /\/api\/v1\/profiles\/night\/apply$/, () => json(200, invalidPlan())],
    ])
    const wrapper = await mountPage(Profiles, '/profiles', 'operator')
    await click(document.querySelector('button[aria-label="Apply night…"]') as HTMLElement)
    const d = dialog('Apply profile night?')
    const tts = d.querySelector('[data-plan-service="tts-worker"]')!
    expect(tts.getAttribute('data-action')).toBe('invalid')
    expect(tts.querySelector('[data-testid="plan-errors"]')?.textContent).toContain('/volume_percent must be at most 200')
    const confirm = d.querySelector('[data-testid="plan-confirm"]') as HTMLButtonElement
    expect(confirm.disabled).toBe(true)
    expect(d.querySelector(`#${confirm.getAttribute('aria-describedby')}`)?.textContent).toContain('would not validate')
    await click(confirm)
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(1)
    wrapper.unmount()
  })

  it('writes nothing when a member changed meanwhile (409): says so and previews again', async () => {
    const calls = stubFetch([
      ['GET', /\/api\/v1\/profiles$/, list],
      ['POST', /\/api\/v1\/profiles\/night\/apply$/, (c) => (c.body.dry_run ? json(200, plan()) : problem(409, 'tts-worker changed'))],
    ])
    const wrapper = await mountPage(Profiles, '/profiles', 'operator')
    await click(document.querySelector('button[aria-label="Apply night…"]') as HTMLElement)
    const d = dialog('Apply profile night?')
    await click(d.querySelector('[data-testid="plan-confirm"]') as HTMLElement)
    expect(d.querySelector('[data-testid="plan-error"]')?.textContent).toContain('changed while you were looking')
    expect(calls.filter((c) => c.method === 'POST').map((c) => c.body.dry_run)).toEqual([true, false, true])
    expect(document.querySelectorAll('dialog')).toHaveLength(1)
    wrapper.unmount()
  })

  it('maps a 422 on apply onto its services', async () => {
    stubFetch([
      ['GET', /\/api\/v1\/profiles$/, list],
      ['POST', /\/api\/v1\/profiles\/night\/apply$/, (c, n) =>
        c.body.dry_run ? json(200, n === 1 ? plan() : invalidPlan()) : problem(422, 'invalid', { errors: [{ service: 'tts-worker', path: '/volume_percent', message: 'must be at most 200' }] })],
    ])
    const wrapper = await mountPage(Profiles, '/profiles', 'operator')
    await click(document.querySelector('button[aria-label="Apply night…"]') as HTMLElement)
    const d = dialog('Apply profile night?')
    await click(d.querySelector('[data-testid="plan-confirm"]') as HTMLElement)
    expect(d.querySelector('[data-testid="plan-error"]')?.textContent).toMatch(/Nothing was written[\s\S]*tts-worker[\s\S]*\/volume_percent must be at most 200/)
    expect((d.querySelector('[data-testid="plan-confirm"]') as HTMLButtonElement).disabled).toBe(true)
    wrapper.unmount()
  })

  it('deletes after a confirmation', async () => {
    const calls = stubFetch([
      ['GET', /\/api\/v1\/profiles$/, (_c, n) => (n === 1 ? list() : json(200, { profiles: [NIGHT] }))],
      ['DELETE', /\/api\/v1\/profiles\/day$/, () => json(204, null)],
    ])
    const wrapper = await mountPage(Profiles, '/profiles', 'operator')
    await click(document.querySelector('button[aria-label="Delete day…"]') as HTMLElement)
    expect(calls.filter((c) => c.method === 'DELETE')).toHaveLength(0)
    await click(button(dialog('Delete profile day?'), 'Delete'))
    expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.url)).toEqual(['/api/v1/profiles/day'])
    expect(wrapper.findAll('[data-profile]').map((l) => l.attributes('data-profile'))).toEqual(['night'])
    wrapper.unmount()
  })
})
