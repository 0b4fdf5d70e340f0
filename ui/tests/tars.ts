// The demo fleet's schemas, example documents and invalid documents, read from examples/tars.
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Json, Schema } from '../src/lib/schema'

export const TARS = join(__dirname, '..', '..', 'examples', 'tars')
export const services = readdirSync(TARS)
  .filter((f) => f.endsWith('.schema.json'))
  .map((f) => f.replace('.schema.json', ''))
  .sort()
export const schemaOf = (s: string): Schema => JSON.parse(readFileSync(join(TARS, `${s}.schema.json`), 'utf8'))
export const configOf = (s: string): Json => JSON.parse(readFileSync(join(TARS, `${s}.config.json`), 'utf8'))
export const invalid = readdirSync(join(TARS, 'invalid'))
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ file: f, service: f.replace(/\.\d+\.json$/, ''), doc: JSON.parse(readFileSync(join(TARS, 'invalid', f), 'utf8')) as Json }))

/** Every leaf of a schema, found by walking the raw JSON (independently of the form code). */
export function rawLeaves(schema: Schema, base = ''): { key: string; s: Schema }[] {
  const out: { key: string; s: Schema }[] = []
  for (const [k, v] of Object.entries<Schema>(schema.properties ?? {})) {
    if (v.type === 'object') out.push(...rawLeaves(v, `${base}/${k}`))
    else out.push({ key: `${base}/${k}`, s: v })
  }
  return out
}
