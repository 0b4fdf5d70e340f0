import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createMemoryHistory, createRouter } from 'vue-router'
import Service from '../src/views/Service.vue'
import { auth } from '../src/lib/api'
import { configOf, schemaOf } from './tars'

const json = (status: number, body: unknown, type = 'application/json') =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': type } })

// What the instances endpoint answers.
let reported: unknown[] = []

async function open(onPut: (body: any, headers: Record<string, string>) => Response) {
  auth.session = { name: 'ops', role: 'operator', csrf: 'csrf-1', expiresAt: '2099-01-01T00:00:00Z' }
  const config = { ...(configOf('router') as object) }
  const puts: { body: any; headers: Record<string, string> }[] = []
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const u = String(url)
    if (u.endsWith('/schema')) return json(200, { service: 'router', hash: 'h', schema: schemaOf('router') })
    if (u.endsWith('/instances')) return json(200, { service: 'router', version: 4, instances: reported })
    if (u.endsWith('/config') && (init.method ?? 'GET') === 'GET')
      return json(200, { service: 'router', version: 4, revision: 9, epoch: 'e', updated_at: null, updated_by: null, config })
    if (u.endsWith('/config') && init.method === 'PUT') {
      const entry = { body: JSON.parse(String(init.body)), headers: init.headers as Record<string, string> }
      puts.push(entry)
      return onPut(entry.body, entry.headers)
    }
    throw new Error(`unexpected ${init.method ?? 'GET'} ${u}`)
  })
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/services/:name', component: Service }, { path: '/', component: { template: '<div />' } }] })
  router.push('/services/router')
  await router.isReady()
  const wrapper = mount({ template: '<RouterView />' }, { global: { plugins: [router] }, attachTo: document.body })
  await flushPromises()
  return { wrapper, puts }
}

afterEach(() => {
  reported = []
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('saving a service', () => {
  it('sends the version read as If-Match with the CSRF token, and maps a 422 onto its field', async () => {
    const { wrapper, puts } = await open(() =>
      json(422, { type: 'urn:dials:problem:validation-failed', status: 422, detail: 'invalid', errors: [{ path: '/router_wake_ack_text', message: 'is not allowed here (server)' }] }, 'application/problem+json'),
    )
    await wrapper.find('[data-key="/router_wake_ack_text"] input').setValue('Hm?')
    await vi.waitFor(() => expect(wrapper.find('[data-testid="save"]').attributes('disabled')).toBeUndefined())
    await wrapper.find('[data-testid="save"]').trigger('click')
    await flushPromises()
    expect(puts).toHaveLength(1)
    expect(puts[0].headers['If-Match']).toBe('"4"')
    expect(puts[0].headers['X-CSRF-Token']).toBe('csrf-1')
    expect(puts[0].body.config.router_wake_ack_text).toBe('Hm?')
    const error = wrapper.find('[data-key="/router_wake_ack_text"] [data-testid="field-error"]')
    expect(error.text()).toBe('is not allowed here (server)')
    // Editing the field again clears the manager's verdict on the old value.
    await wrapper.find('[data-key="/router_wake_ack_text"] input').setValue('Yes?')
    expect(wrapper.find('[data-key="/router_wake_ack_text"] [data-testid="field-error"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('lists the pending change with its old and new value, and sends the reason', async () => {
    const { wrapper, puts } = await open((body) =>
      json(200, { service: 'router', version: 5, revision: 10, epoch: 'e', updated_at: null, updated_by: 'ops', config: body.config }),
    )
    await wrapper.find('[data-key="/router_wake_ack_text"] input').setValue('Yes?')
    const bar = wrapper.find('[aria-label="Pending changes"]')
    expect(bar.text()).toContain('1 unsaved change')
    await bar.find('button').trigger('click')
    const row = wrapper.find('#pending-diff tr[data-key="/router_wake_ack_text"]')
    expect(row.text()).toContain(String((configOf('router') as any).router_wake_ack_text))
    expect(row.text()).toContain('Yes?')
    await wrapper.find('#reason').setValue('shorter')
    await vi.waitFor(() => expect(wrapper.find('[data-testid="save"]').attributes('disabled')).toBeUndefined())
    await wrapper.find('[data-testid="save"]').trigger('click')
    await flushPromises()
    expect(puts[0].body.reason).toBe('shorter')
    expect(wrapper.find('[data-testid="version"]').text()).toBe('v5')
    expect(wrapper.find('[aria-label="Pending changes"]').exists()).toBe(false)
    wrapper.unmount()
  })
})

describe('the instance list', () => {
  it('marks an instance that refused the update for its signing key as stale, with the reason', async () => {
    const at = new Date().toISOString()
    reported = [
      { instance: 'pi-kitchen', version: 3, status: 'rejected', current: false, reported_at: at, received_at: at,
        error: 'untrusted signing key 1f2e3d4c5b6a7988: no rotation statement from a trusted key names it' },
      { instance: 'pi-hall', version: 4, status: 'applied', current: true, reported_at: at, received_at: at },
    ]
    const { wrapper } = await open(() => json(500, {}))
    expect(wrapper.find('[data-instance="pi-kitchen"] [data-testid="stale"]').text()).toBe('stale: untrusted signing key')
    expect(wrapper.find('[data-instance="pi-hall"] [data-testid="stale"]').exists()).toBe(false)
    wrapper.unmount()
  })
})
