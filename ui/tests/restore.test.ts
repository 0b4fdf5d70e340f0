import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import Restore from '../src/views/Restore.vue'
import { state } from '../src/lib/store'
import { localInput } from '../src/lib/format'
import { invalidPlan, json, mountPage, plan, stubFetch } from './plans'

afterEach(() => {
  vi.unstubAllGlobals()
  vi.useRealTimers()
  document.body.innerHTML = ''
  state.toasts.splice(0)
})

const set = async (el: HTMLInputElement, v: string | boolean) => {
  if (typeof v === 'boolean') {
    el.checked = v
    el.dispatchEvent(new Event('change'))
  } else {
    el.value = v
    el.dispatchEvent(new Event('input'))
  }
  await flushPromises()
}
const byText = (name: string) => [...document.querySelectorAll('button')].find((b) => b.textContent?.trim() === name) as HTMLButtonElement

describe('fleet restore', () => {
  it('a quick pick fills in the time; the preview sends it as UTC with the chosen services, then restores', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-12-05T15:30:00Z') })
    const calls = stubFetch([
      ['POST', /\/api\/v1\/restore$/, (c) => json(200, plan({ dry_run: c.body.dry_run }))],
      ['GET', /\/api\/v1\/services$/, () => json(200, { services: [] })],
    ])
    const wrapper = await mountPage(Restore, '/restore', 'admin')
    await byText('1 hour ago').click()
    await flushPromises()
    const at = document.querySelector('#r-at') as HTMLInputElement
    expect(new Date(at.value).toISOString()).toBe('2026-12-05T14:30:00.000Z')
    await set(document.querySelector('input[value="some"]') as HTMLInputElement, true)
    await set(document.querySelector('input[type="checkbox"][value="tts-worker"]') as HTMLInputElement, true)
    await set(document.querySelector('input[type="checkbox"][value="router"]') as HTMLInputElement, true)
    await set(document.querySelector('#r-reason') as HTMLInputElement, 'undo the tuning')
    byText('Preview restore…').click()
    await flushPromises()
    const posts = () => calls.filter((c) => c.method === 'POST').map((c) => c.body)
    expect(posts()).toEqual([{ at: '2026-12-05T14:30:00.000Z', services: ['router', 'tts-worker'], dry_run: true, reason: 'undo the tuning' }])
    const d = document.querySelector('dialog')!
    expect(d.querySelector('h2')?.textContent).toMatch(/^Restore the fleet to /)
    expect(d.querySelector('[data-plan-service="tts-worker"] tr[data-key="/volume_percent"]')?.textContent).toMatch(/120[\s\S]*80/)
    await (d.querySelector('[data-testid="plan-confirm"]') as HTMLButtonElement).click()
    await flushPromises()
    expect(posts()[1]).toEqual({ at: '2026-12-05T14:30:00.000Z', services: ['router', 'tts-worker'], dry_run: false, reason: 'undo the tuning' })
    expect(document.querySelector('dialog')).toBeNull()
    expect(state.toasts[0].text).toMatch(/^Restored the fleet to .*: 2 services changed\.$/)
    wrapper.unmount()
  })

  it('restores every service when none is chosen, and lists skipped ones', async () => {
    const calls = stubFetch([
      ['POST', /\/api\/v1\/restore$/, () => json(200, { dry_run: true, ok: true, services: [
        { service: 'tts-worker', action: 'update', from_version: 3, version: 4, changes: [{ key: '/volume_percent', old: 90, new: 80 }], errors: [] },
        { service: 'newcomer', action: 'skipped', from_version: 2, version: 2, changes: [], errors: [] },
      ] })],
    ])
    const wrapper = await mountPage(Restore, '/restore', 'admin')
    await set(document.querySelector('#r-at') as HTMLInputElement, '2026-12-01T08:00:00')
    byText('Preview restore…').click()
    await flushPromises()
    const body = calls[0].body
    expect(body.services).toBeUndefined()
    expect(body.at).toBe(new Date('2026-12-01T08:00:00').toISOString())
    const skipped = document.querySelector('[data-plan-service="newcomer"]')!
    expect(skipped.getAttribute('data-action')).toBe('skipped')
    expect(skipped.textContent).toContain('never deleted')
    wrapper.unmount()
  })

  it('asks for a time, refuses one in the future, and writes nothing', async () => {
    const calls = stubFetch([])
    const wrapper = await mountPage(Restore, '/restore', 'admin')
    byText('Preview restore…').click()
    await flushPromises()
    expect(document.querySelector('[role="alert"]')?.textContent).toContain('Choose the point in time')
    await set(document.querySelector('#r-at') as HTMLInputElement, localInput(new Date(Date.now() + 3600e3)))
    byText('Preview restore…').click()
    await flushPromises()
    expect(document.querySelector('[role="alert"]')?.textContent).toContain('in the future')
    expect(calls).toHaveLength(0)
    wrapper.unmount()
  })

  it('keeps Restore disabled while a member is invalid', async () => {
    stubFetch([['POST', /\/api\/v1\/restore$/, () => json(200, invalidPlan())]])
    const wrapper = await mountPage(Restore, '/restore', 'admin')
    await byText('1 day ago').click()
    await flushPromises()
    byText('Preview restore…').click()
    await flushPromises()
    expect(document.querySelector('[data-plan-service="tts-worker"] [data-testid="plan-errors"]')?.textContent).toContain('must be at most 200')
    expect((document.querySelector('[data-testid="plan-confirm"]') as HTMLButtonElement).disabled).toBe(true)
    wrapper.unmount()
  })
})
