// From a service's JSON Schema to the tree of fields the service page renders: one node per
// property, with the control it needs and the dials annotations it carries.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
export type Schema = Record<string, any>

export type Kind = 'number' | 'integer' | 'string' | 'boolean' | 'enum' | 'object' | 'array' | 'json'

export interface EnumOption {
  value: Json
  label: string
}

export interface FieldNode {
  /** JSON Pointer of the value. */
  key: string
  /** Property name (or item index). */
  name: string
  kind: Kind
  /** The schema of the value (the non-null branch, `$ref`s resolved). */
  schema: Schema
  nullable: boolean
  title: string
  description?: string
  help?: string
  secret: boolean
  restart: boolean
  env?: string
  complexity: 'simple' | 'advanced'
  hasDefault: boolean
  default?: Json
  options?: EnumOption[]
  min?: number
  max?: number
  exclusiveMin?: number
  exclusiveMax?: number
  step?: string
  pattern?: string
  minLength?: number
  maxLength?: number
  format?: string
  /** Nested properties of an object. */
  children?: FieldNode[]
  /** The schema of each item of an array. */
  itemSchema?: Schema
  itemKind?: Kind
}

/** `~` and `/` escaped as JSON Pointer wants. */
export function escapeToken(t: string): string {
  return t.replace(/~/g, '~0').replace(/\//g, '~1')
}

export function parsePointer(p: string): string[] {
  if (p === '') return []
  return p
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
}

/** A deep copy of a JSON value (also of a reactive proxy of one). */
export function clone<T>(v: T): T {
  return v === undefined ? v : JSON.parse(JSON.stringify(v))
}

export function getAt(doc: Json | undefined, pointer: string): Json | undefined {
  let cur: any = doc
  for (const t of parsePointer(pointer)) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = Array.isArray(cur) ? cur[Number(t)] : cur[t]
  }
  return cur
}

/** A copy of `doc` with `value` at `pointer` (objects created on the way). */
export function setAt(doc: Json, pointer: string, value: Json | undefined): Json {
  const tokens = parsePointer(pointer)
  if (tokens.length === 0) return value as Json
  const root: any = clone(doc ?? {})
  let cur = root
  for (let i = 0; i < tokens.length - 1; i++) {
    const t = tokens[i]
    if (cur[t] === null || typeof cur[t] !== 'object') cur[t] = {}
    cur = cur[t]
  }
  const last = tokens[tokens.length - 1]
  if (value === undefined) {
    if (Array.isArray(cur)) cur.splice(Number(last), 1)
    else delete cur[last]
  } else if (Array.isArray(cur)) cur[Number(last)] = value
  else cur[last] = value
  return root
}

function resolveRef(schema: Schema, root: Schema): Schema {
  let s = schema
  for (let guard = 0; s && typeof s.$ref === 'string' && guard < 20; guard++) {
    const ref: string = s.$ref
    if (!ref.startsWith('#')) break
    const target = getAt(root as Json, ref.slice(1)) as Schema | undefined
    if (!target) break
    const { $ref: _ignored, ...rest } = s
    s = { ...target, ...rest }
  }
  if (s && Array.isArray(s.allOf) && s.allOf.length === 1) {
    const { allOf, ...rest } = s
    s = { ...resolveRef(allOf[0], root), ...rest }
  }
  return s
}

const isNullSchema = (s: Schema) => s && (s.type === 'null' || (s.const === null && !s.type))

/** The value's schema without its "or null" part, and whether null is allowed. */
export function splitNullable(schema: Schema, root: Schema): { schema: Schema; nullable: boolean } {
  let s = resolveRef(schema, root)
  let nullable = false
  for (const kw of ['anyOf', 'oneOf'] as const) {
    const alts = s[kw]
    if (Array.isArray(alts) && alts.some(isNullSchema)) {
      const real = alts.filter((a: Schema) => !isNullSchema(a))
      if (real.length === 1) {
        const { [kw]: _drop, ...rest } = s
        s = { ...resolveRef(real[0], root), ...rest }
        nullable = true
      }
    }
  }
  if (Array.isArray(s.type)) {
    const types = s.type.filter((t: string) => t !== 'null')
    if (types.length < s.type.length) nullable = true
    s = { ...s, type: types.length === 1 ? types[0] : types }
  }
  if (Array.isArray(s.enum) && s.enum.includes(null)) {
    nullable = true
    s = { ...s, enum: s.enum.filter((v: Json) => v !== null) }
  }
  return { schema: s, nullable }
}

function enumOptions(s: Schema): EnumOption[] | undefined {
  if (Array.isArray(s.enum)) return s.enum.map((v: Json) => ({ value: v, label: String(v) }))
  const alts = s.oneOf ?? s.anyOf
  if (Array.isArray(alts) && alts.length > 0 && alts.every((a: Schema) => a && 'const' in a)) {
    return alts.map((a: Schema) => ({ value: a.const, label: a.title ?? String(a.const) }))
  }
  if ('const' in s) return [{ value: s.const, label: String(s.const) }]
  return undefined
}

export function kindOf(s: Schema): Kind {
  if (enumOptions(s)) return 'enum'
  const t = Array.isArray(s.type) ? undefined : s.type
  if (t === 'object' || (!t && s.properties)) return 'object'
  if (t === 'array') return 'array'
  if (t === 'integer') return 'integer'
  if (t === 'number') return 'number'
  if (t === 'boolean') return 'boolean'
  if (t === 'string') return 'string'
  return 'json'
}

function humanize(name: string): string {
  const s = name.replace(/[_-]+/g, ' ').trim()
  return s.charAt(0).toUpperCase() + s.slice(1)
}

/** One field of the form, for `schema` at `key`. */
export function buildNode(schemaIn: Schema, root: Schema, key: string, name: string): FieldNode {
  const raw = resolveRef(schemaIn ?? {}, root)
  const { schema: s, nullable } = splitNullable(raw, root)
  const kind = kindOf(s)
  const node: FieldNode = {
    key,
    name,
    kind,
    schema: s,
    nullable,
    title: s.title ?? humanize(name),
    description: s.description,
    help: s['x-help'],
    secret: s['x-secret'] === true,
    restart: s['x-restart-required'] === true,
    env: s['x-env'],
    complexity: s['x-complexity'] === 'simple' ? 'simple' : 'advanced',
    hasDefault: 'default' in s,
    default: s.default,
  }
  if (kind === 'enum') node.options = enumOptions(s)
  if (kind === 'number' || kind === 'integer') {
    node.min = s.minimum
    node.max = s.maximum
    if (typeof s.exclusiveMinimum === 'number') node.exclusiveMin = s.exclusiveMinimum
    if (typeof s.exclusiveMaximum === 'number') node.exclusiveMax = s.exclusiveMaximum
    node.step = typeof s.multipleOf === 'number' ? String(s.multipleOf) : kind === 'integer' ? '1' : 'any'
  }
  if (kind === 'string') {
    node.pattern = s.pattern
    node.minLength = s.minLength
    node.maxLength = s.maxLength
    node.format = s.format
  }
  if (kind === 'object') {
    const props: Schema = s.properties ?? {}
    node.children = Object.entries(props).map(([k, v]) =>
      buildNode(v as Schema, root, `${key}/${escapeToken(k)}`, k),
    )
    // A section is simple when anything in it is.
    node.complexity = node.children.some((c) => c.complexity === 'simple') ? 'simple' : node.complexity
  }
  if (kind === 'array') {
    const items = resolveRef(s.items ?? {}, root)
    node.itemSchema = items
    node.itemKind = kindOf(splitNullable(items, root).schema)
  }
  return node
}

/** The top-level fields of a service's schema. */
export function formOf(schema: Schema): FieldNode[] {
  const node = buildNode(schema, schema, '', '')
  return node.children ?? []
}

/** Every leaf (not object) field, depth first. */
export function leaves(nodes: FieldNode[]): FieldNode[] {
  const out: FieldNode[] = []
  const walk = (n: FieldNode) => (n.kind === 'object' && n.children ? n.children.forEach(walk) : out.push(n))
  nodes.forEach(walk)
  return out
}

/** Keys of every secret leaf. */
export function secretKeys(schema: Schema): string[] {
  return leaves(formOf(schema))
    .filter((n) => n.secret)
    .map((n) => n.key)
}

export const MASK = '********'

/** A value read as a string for display. */
export function show(v: Json | undefined): string {
  if (v === undefined) return '—'
  if (typeof v === 'string') return v
  return JSON.stringify(v)
}
