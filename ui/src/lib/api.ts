// The manager's REST API as the browser uses it: the session cookie, the CSRF token on every
// write, problem+json errors, and one place that notices an expired session.

import { reactive } from 'vue'
import type { Plan, Profile, ProfileSummary } from './types'

export type Role = 'viewer' | 'operator' | 'admin' | 'service'

export interface Session {
  name: string
  role: Role
  csrf: string
  expiresAt: string
}

const STORAGE = 'dials.session'

function load(): Session | null {
  try {
    const s = JSON.parse(localStorage.getItem(STORAGE) ?? 'null')
    return s && typeof s.csrf === 'string' ? s : null
  } catch {
    return null
  }
}

export const auth = reactive<{ session: Session | null; expired: boolean }>({ session: load(), expired: false })

const RANK: Record<string, number> = { viewer: 1, operator: 2, admin: 3 }

/** Whether the signed-in role may do what `role` may. */
export function can(role: 'viewer' | 'operator' | 'admin'): boolean {
  return (RANK[auth.session?.role ?? ''] ?? 0) >= RANK[role]
}

/** Why a control is disabled for this role, or null when it is not. */
export function denied(role: 'operator' | 'admin'): string | null {
  if (can(role)) return null
  return `Your token (${auth.session?.role ?? 'none'}) is read-only here: this needs the ${role} role.`
}

export interface FieldProblem {
  path: string
  message: string
}

export class ApiError extends Error {
  status: number
  detail: string
  errors: FieldProblem[]
  body: Record<string, any>
  constructor(status: number, body: Record<string, any>) {
    super(body.detail ?? body.title ?? `HTTP ${status}`)
    this.status = status
    this.detail = body.detail ?? body.title ?? `HTTP ${status}`
    this.errors = Array.isArray(body.errors) ? body.errors : []
    this.body = body
  }
}

type Listener = () => void
const expiredListeners: Listener[] = []
export function onExpired(l: Listener) {
  expiredListeners.push(l)
}

function setSession(s: Session | null) {
  auth.session = s
  if (s) localStorage.setItem(STORAGE, JSON.stringify(s))
  else localStorage.removeItem(STORAGE)
}

export interface RequestOptions {
  method?: string
  body?: unknown
  headers?: Record<string, string>
}

export interface Answer<T> {
  data: T
  headers: Headers
}

export async function request<T>(path: string, opts: RequestOptions = {}): Promise<Answer<T>> {
  const method = opts.method ?? 'GET'
  const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers }
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json'
  if (method !== 'GET' && method !== 'HEAD' && auth.session) headers['X-CSRF-Token'] = auth.session.csrf
  let res: Response
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    })
  } catch {
    throw new ApiError(0, { detail: 'The manager cannot be reached. Check that it is running.' })
  }
  const text = await res.text()
  let body: any = null
  try {
    body = text ? JSON.parse(text) : null
  } catch {
    body = { detail: text }
  }
  if (!res.ok) {
    if (res.status === 401 && auth.session && path !== '/api/v1/session') {
      setSession(null)
      auth.expired = true
      expiredListeners.forEach((l) => l())
    }
    throw new ApiError(res.status, body ?? {})
  }
  return { data: body as T, headers: res.headers }
}

export const get = async <T>(path: string) => (await request<T>(path)).data

export async function login(token: string): Promise<Session> {
  const { data } = await request<{ csrf_token: string; expires_at: string; name: string; role: Role }>(
    '/api/v1/session',
    { method: 'POST', body: { token } },
  )
  const s: Session = { name: data.name, role: data.role, csrf: data.csrf_token, expiresAt: data.expires_at }
  auth.expired = false
  setSession(s)
  return s
}

export async function logout() {
  try {
    await request('/api/v1/session', { method: 'DELETE' })
  } catch {
    // Signed out either way.
  }
  setSession(null)
}

/** Forget a session the manager no longer knows. */
export function dropSession() {
  setSession(null)
}

export const enc = encodeURIComponent
/** A JSON Pointer key in a URL path (its slashes stay path separators). */
export const keyPath = (key: string) => key.split('/').map(enc).join('/').replace(/^\//, '')

// Profiles and fleet restore: every write answers with a plan; a dry run answers the same plan
// without writing anything, which is what the preview shows.

export interface SaveProfile {
  name: string
  description: string
  services?: string[]
  overwrite?: boolean
}

export const listProfiles = async () => (await get<{ profiles: ProfileSummary[] }>('/api/v1/profiles')).profiles
export const getProfile = (name: string) => get<Profile>(`/api/v1/profiles/${enc(name)}`)
export const saveProfile = async (body: SaveProfile) =>
  (await request<Profile>('/api/v1/profiles', { method: 'POST', body })).data
export const deleteProfile = async (name: string) => {
  await request(`/api/v1/profiles/${enc(name)}`, { method: 'DELETE' })
}
export const applyProfile = async (name: string, dryRun: boolean, reason?: string) =>
  (await request<Plan>(`/api/v1/profiles/${enc(name)}/apply`, { method: 'POST', body: { dry_run: dryRun, reason: reason || undefined } })).data
export const restoreFleet = async (at: string, services: string[] | undefined, dryRun: boolean, reason?: string) =>
  (await request<Plan>('/api/v1/restore', { method: 'POST', body: { at, services, dry_run: dryRun, reason: reason || undefined } })).data
