// State the whole app shares: the fleet list, the manager's health, toasts, and the live
// change stream (Server-Sent Events, resumed by revision after a drop).

import { reactive } from 'vue'
import { get, auth } from './api'
import type { ServiceInfo, Status, WatchEvent, InstancesResponse } from './types'

export interface Toast {
  id: number
  kind: 'ok' | 'error' | 'info'
  text: string
}

export const state = reactive({
  services: [] as ServiceInfo[],
  instances: {} as Record<string, InstancesResponse>,
  status: null as Status | null,
  statusError: '' as string,
  toasts: [] as Toast[],
  revision: 0,
  live: false,
  lastEvents: {} as Record<string, WatchEvent>,
})

let toastId = 0
export function toast(kind: Toast['kind'], text: string, ms = 5000) {
  const t = { id: ++toastId, kind, text }
  state.toasts.push(t)
  setTimeout(() => dismiss(t.id), ms)
}
export function dismiss(id: number) {
  const i = state.toasts.findIndex((t) => t.id === id)
  if (i >= 0) state.toasts.splice(i, 1)
}

let servicesInFlight: Promise<ServiceInfo[]> | null = null
/** The fleet list; callers at the same time share one request. */
export function loadServices(): Promise<ServiceInfo[]> {
  servicesInFlight ??= get<{ services: ServiceInfo[] }>('/api/v1/services')
    .then(({ services }) => (state.services = services))
    .finally(() => (servicesInFlight = null))
  return servicesInFlight
}

export async function loadInstances(service: string) {
  try {
    state.instances[service] = await get<InstancesResponse>(`/api/v1/services/${encodeURIComponent(service)}/instances`)
  } catch {
    // A service nobody reported on yet.
  }
  return state.instances[service]
}

export async function loadStatus() {
  try {
    state.status = await get<Status>('/api/v1/status')
    state.statusError = ''
    if (!state.revision) state.revision = state.status.revision
  } catch (e) {
    state.status = null
    state.statusError = (e as Error).message
  }
}

type ChangeListener = (e: WatchEvent) => void
const listeners = new Set<ChangeListener>()
export function onChange(l: ChangeListener) {
  listeners.add(l)
  return () => listeners.delete(l)
}

let source: EventSource | null = null
let statusTimer: ReturnType<typeof setInterval> | null = null

/** Starts the change stream from the latest revision known, and the health polling. */
export async function startLive() {
  if (source || !auth.session) return
  await loadStatus()
  const since = state.revision
  // EventSource resends the last `id:` (the revision) as Last-Event-ID when it reconnects.
  source = new EventSource(`/api/v1/watch?since=${since}`)
  source.onopen = () => (state.live = true)
  source.onerror = () => {
    state.live = false
    if (!auth.session) stopLive()
  }
  source.addEventListener('change', (m) => {
    const e = JSON.parse((m as MessageEvent).data) as WatchEvent
    state.revision = Math.max(state.revision, e.revision)
    state.lastEvents[e.service] = e
    const s = state.services.find((x) => x.name === e.service)
    if (s) {
      s.version = e.version
      s.updated_at = e.at
      s.updated_by = e.actor
    } else if (e.kind !== 'delete') {
      loadServices().catch(() => {})
    }
    if (e.kind === 'delete') state.services = state.services.filter((x) => x.name !== e.service)
    listeners.forEach((l) => l(e))
  })
  statusTimer = setInterval(() => {
    if (document.visibilityState === 'visible') loadStatus()
  }, 10000)
}

export function stopLive() {
  source?.close()
  source = null
  state.live = false
  if (statusTimer) clearInterval(statusTimer)
  statusTimer = null
}
