// Validation as you type, with the same JSON Schema (draft 2020-12) the manager checks on every
// write, reported per key the way the manager reports it (the path of the key to fix).

import Ajv2020 from 'ajv/dist/2020'
import type { ErrorObject, ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import { MASK, clone, getAt, secretKeys, type Json, type Schema } from './schema'

export interface FieldError {
  path: string
  message: string
}

function newAjv() {
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: true })
  addFormats(ajv)
  return ajv
}

const cache = new WeakMap<Schema, { fn: ValidateFunction; secrets: string[] }>()

function compiled(schema: Schema) {
  let c = cache.get(schema)
  if (!c) {
    const { $id: _id, ...rest } = schema
    c = { fn: newAjv().compile(rest), secrets: secretKeys(schema) }
    cache.set(schema, c)
  }
  return c
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`

function message(e: ErrorObject): string {
  const p = e.params as Record<string, any>
  switch (e.keyword) {
    case 'maximum':
      return `must be at most ${p.limit}`
    case 'minimum':
      return `must be at least ${p.limit}`
    case 'exclusiveMaximum':
      return `must be less than ${p.limit}`
    case 'exclusiveMinimum':
      return `must be greater than ${p.limit}`
    case 'type':
      return `must be ${String(p.type).split(',').filter((t) => t !== 'null').map((t) => (t === 'integer' ? 'a whole number' : t === 'number' ? 'a number' : t === 'boolean' ? 'true or false' : t === 'string' ? 'text' : `a${/^[aeiou]/.test(t) ? 'n' : ''} ${t}`)).join(' or ')}`
    case 'enum':
      return `must be one of ${(p.allowedValues as Json[]).map((v) => JSON.stringify(v)).join(', ')}`
    case 'const':
      return `must be ${JSON.stringify(p.allowedValue)}`
    case 'pattern':
      return `must match the pattern ${p.pattern}`
    case 'format':
      return `must be a valid ${p.format}`
    case 'minLength':
      return `must be at least ${plural(p.limit, 'character')} long`
    case 'maxLength':
      return `must be at most ${plural(p.limit, 'character')} long`
    case 'additionalProperties':
      return 'is not a known setting'
    case 'required':
      return 'is required'
    case 'multipleOf':
      return `must be a multiple of ${p.multipleOf}`
    case 'minItems':
      return `must have at least ${plural(p.limit, 'item')}`
    case 'maxItems':
      return `must have at most ${plural(p.limit, 'item')}`
    case 'uniqueItems':
      return 'must not repeat an item'
    default:
      return e.message ?? 'is not valid'
  }
}

function pathOf(e: ErrorObject): string {
  const p = e.params as Record<string, any>
  if (e.keyword === 'additionalProperties') return `${e.instancePath}/${p.additionalProperty}`
  if (e.keyword === 'required') return `${e.instancePath}/${p.missingProperty}`
  return e.instancePath
}

/** Every rule `doc` breaks, at most one message per key, ordered by key. */
export function validate(schema: Schema, doc: Json): FieldError[] {
  const { fn, secrets } = compiled(schema)
  // A masked secret stands for the stored value, which the manager keeps: it is not checked here.
  let subject = doc
  for (const key of secrets) {
    if (getAt(doc, key) === MASK) subject = withoutKey(subject, key)
  }
  if (fn(subject)) return []
  const out = new Map<string, string>()
  for (const e of fn.errors ?? []) {
    // "matches none of anyOf" and "is not null" say nothing the real branch does not.
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf' || e.keyword === 'if') continue
    if (e.keyword === 'type' && e.params && (e.params as any).type === 'null') continue
    const path = pathOf(e)
    if (!out.has(path)) out.set(path, message(e))
  }
  return [...out.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([path, message]) => ({ path, message }))
}

function withoutKey(doc: Json, pointer: string): Json {
  const tokens = pointer.slice(1).split('/')
  const root: any = clone(doc)
  let cur = root
  for (let i = 0; i < tokens.length - 1; i++) {
    cur = cur?.[tokens[i]]
    if (cur === null || typeof cur !== 'object') return root
  }
  delete cur[tokens[tokens.length - 1]]
  return root
}
