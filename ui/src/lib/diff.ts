// Key-by-key differences between two documents: what the pending-changes bar, the conflict
// dialog and the history pages show.

import { escapeToken, type Json } from './schema'

export interface Change {
  key: string
  op: 'added' | 'removed' | 'changed'
  old?: Json
  new?: Json
}

const isObject = (v: unknown): v is Record<string, Json> => v !== null && typeof v === 'object' && !Array.isArray(v)

export function equal(a: Json | undefined, b: Json | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/** Leaf-level changes from `a` to `b` (arrays compare as a whole), ordered by key. */
export function diff(a: Json | undefined, b: Json | undefined, base = ''): Change[] {
  const out: Change[] = []
  if (isObject(a) && isObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)])
    for (const k of [...keys].sort()) out.push(...diff(a[k], b[k], `${base}/${escapeToken(k)}`))
    return out
  }
  if (a === undefined && b === undefined) return out
  if (a === undefined) {
    if (isObject(b)) return diff({}, b, base)
    return [{ key: base, op: 'added', new: b }]
  }
  if (b === undefined) {
    if (isObject(a)) return diff(a, {}, base)
    return [{ key: base, op: 'removed', old: a }]
  }
  if (!equal(a, b)) out.push({ key: base, op: 'changed', old: a, new: b })
  return out
}
