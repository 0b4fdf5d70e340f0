// Bodies of /api/v1, as the manager sends them.

import type { Json, Schema } from './schema'

export interface InstancesSummary {
  total: number
  current: number
}
export interface ServiceInfo {
  name: string
  version: number
  updated_at: string | null
  updated_by: string | null
  has_schema: boolean
  instances: InstancesSummary
}
export interface ConfigResponse {
  service: string
  version: number
  revision: number
  epoch: string
  updated_at: string | null
  updated_by: string | null
  config: Json
  secrets?: Record<string, number>
}
export interface SchemaResponse {
  service: string
  hash: string
  schema: Schema
}
export interface InstanceInfo {
  instance: string
  version: number
  status: 'applied' | 'rejected' | 'failed' | 'offline'
  error?: string
  current: boolean
  overrides?: string[] | null
  reported_at: string
  received_at: string
}
export interface InstancesResponse {
  service: string
  version: number
  instances: InstanceInfo[]
}
export interface WatchEvent {
  revision: number
  service: string
  version: number
  kind: string
  actor: string
  reason?: string | null
  at: string
  config: Json
}
export interface HistoryEntry {
  revision: number
  service: string
  version: number
  key: string
  kind: string
  old?: Json
  new?: Json
  actor: string
  reason?: string | null
  at: string
}
export interface KeyDiff {
  key: string
  op: 'added' | 'removed' | 'changed'
  old?: Json
  new?: Json
}
export interface DiffResponse {
  service: string
  from: number
  to: number
  changes: KeyDiff[]
}
export interface VersionResponse {
  service: string
  version: number
  revision: number
  kind: string
  at: string
  actor: string
  reason?: string | null
  config: Json
}
export interface Status {
  mode: string
  database: { backend: string; ok: boolean; schema_version: number }
  broker: { mode?: string; url?: string; connected?: boolean; last_error?: string | null; published?: number }
  epoch: string
  revision: number
  outbox_backlog: number
  uptime_seconds: number
  version: string
}
export interface SearchItem {
  service: string
  key: string
  title?: string
  description?: string
  type?: string
  complexity?: string
  secret?: boolean
  restart_required?: boolean
  value?: Json
  is_default?: boolean
}
export interface TokenInfo {
  id: string
  name: string
  role: string
  service?: string
  created_at: string
  created_by: string
  expires_at?: string | null
  last_used_at?: string | null
  revoked_at?: string | null
}
export interface AuditEntry {
  id: number
  at: string
  actor: string
  action: string
  target?: string
  address?: string
  outcome: string
  reason?: string
}
export interface ProfileSummary {
  name: string
  description: string
  services: string[]
  created_at: string
  created_by: string
}
export interface ProfileMember {
  service: string
  version: number
  config: Json
}
export interface Profile {
  name: string
  description: string
  created_at: string
  created_by: string
  services: ProfileMember[]
}
export type PlanAction = 'create' | 'update' | 'unchanged' | 'skipped' | 'invalid'
export interface PlanChange {
  key: string
  old?: Json
  new?: Json
}
export interface PlanService {
  service: string
  action: PlanAction
  from_version: number
  version: number
  changes: PlanChange[]
  errors: { path: string; message: string }[]
}
/** What applying a profile, restoring the fleet or importing a file does (or would do). */
export interface Plan {
  dry_run: boolean
  ok: boolean
  services: PlanService[]
}
