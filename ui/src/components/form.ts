// What every field of a service form shares with the page that holds it.

import type { InjectionKey } from 'vue'
import type { FieldNode, Json, Schema } from '../lib/schema'

export interface RemoteChange {
  value: Json | undefined
  actor: string
  version: number
}

export interface FormContext {
  root: Schema
  get(key: string): Json | undefined
  set(key: string, value: Json | undefined): void
  original(key: string): Json | undefined
  error(key: string): string | undefined
  /** Why the form is read-only, or null. */
  readonly: string | null
  /** Instances whose environment overrides each key. */
  overrides: Record<string, string[]>
  remote: Record<string, RemoteChange>
  advanced: boolean
  highlight: string
  reveal(node: FieldNode): void
  setSecret(node: FieldNode): void
}

export const FORM: InjectionKey<FormContext> = Symbol('form')

/** An element id for a key. */
export const fieldId = (key: string) => `f${key.replace(/[^A-Za-z0-9_-]/g, '-')}`

export function visible(node: FieldNode, ctx: FormContext): boolean {
  return ctx.advanced || node.complexity === 'simple' || (!!ctx.highlight && (ctx.highlight === node.key || ctx.highlight.startsWith(node.key + '/')))
}
