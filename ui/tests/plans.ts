// Fetch stubs and fixtures for the profile and fleet-restore pages.
import { vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createMemoryHistory, createRouter } from 'vue-router'
import type { Component } from 'vue'
import { auth, type Role } from '../src/lib/api'
import { state } from '../src/lib/store'
import type { Plan } from '../src/lib/types'

export const json = (status: number, body: unknown, type = 'application/json') =>
  new Response(body === null ? null : JSON.stringify(body), { status, headers: { 'Content-Type': type } })
export const problem = (status: number, detail: string, extra: Record<string, unknown> = {}) =>
  json(status, { type: `urn:dials:problem:${status === 409 ? 'conflict' : 'error'}`, title: detail, status, detail, ...extra }, 'application/problem+json')

export interface Call {
  method: string
  url: string
  body: any
  headers: Record<string, string>
}

/** Answers each request with the first route whose method and path match; records them all. */
export function stubFetch(routes: [string, RegExp, (call: Call, n: number) => Response][]) {
  const calls: Call[] = []
  const counts = new Map<number, number>()
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const call = { method: init.method ?? 'GET', url: String(url), body: init.body ? JSON.parse(String(init.body)) : undefined, headers: (init.headers ?? {}) as Record<string, string> }
    calls.push(call)
    const i = routes.findIndex(([m, re]) => m === call.method && re.test(call.url))
    if (i < 0) throw new Error(`unexpected ${call.method} ${call.url}`)
    counts.set(i, (counts.get(i) ?? 0) + 1)
    return routes[i][2](call, counts.get(i)!)
  })
  return calls
}

export const SERVICES = ['router', 'stt-worker', 'tts-worker'].map((name, i) => ({
  name, version: i + 2, updated_at: null, updated_by: null, has_schema: true, instances: { total: 0, current: 0 },
}))

export async function mountPage(page: Component, path: string, role: Role) {
  auth.session = { name: role === 'viewer' ? 'vera' : 'ops', role, csrf: 'csrf-1', expiresAt: '2099-01-01T00:00:00Z' }
  state.services = SERVICES.map((s) => ({ ...s }))
  // jsdom has <dialog> without its modal methods.
  HTMLDialogElement.prototype.showModal ??= function (this: HTMLDialogElement) {
    this.setAttribute('open', '')
  }
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path, component: page }, { path: '/:rest(.*)*', component: { template: '<div />' } }] })
  router.push(path)
  await router.isReady()
  const wrapper = mount({ template: '<RouterView />' }, { global: { plugins: [router] }, attachTo: document.body })
  await flushPromises()
  return wrapper
}

export const plan = (over: Partial<Plan> = {}): Plan => ({
  dry_run: true,
  ok: true,
  services: [
    { service: 'tts-worker', action: 'update', from_version: 7, version: 8, changes: [{ key: '/volume_percent', old: 120, new: 80 }, { key: '/eleven_api_key', old: '********', new: '********' }], errors: [] },
    { service: 'stt-worker', action: 'unchanged', from_version: 4, version: 4, changes: [], errors: [] },
    { service: 'router', action: 'create', from_version: 0, version: 1, changes: [{ key: '/router_wake_ack_text', new: 'Yes?' }], errors: [] },
  ],
  ...over,
})

export const invalidPlan = (): Plan => ({
  dry_run: true,
  ok: false,
  services: [
    { service: 'tts-worker', action: 'invalid', from_version: 7, version: 7, changes: [{ key: '/volume_percent', old: 120, new: 250 }], errors: [{ path: '/volume_percent', message: 'must be at most 200' }] },
    { service: 'stt-worker', action: 'unchanged', from_version: 4, version: 4, changes: [], errors: [] },
  ],
})
