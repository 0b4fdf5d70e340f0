import { describe, expect, it } from 'vitest'
import { nextTick } from 'vue'
import { mountForm } from './harness'
import { configOf, rawLeaves, schemaOf, services } from './tars'
import { MASK, getAt, setAt, type Json } from '../src/lib/schema'

/** The example document as the manager shows it: secrets masked. */
function masked(service: string): Json {
  const schema = schemaOf(service)
  let doc = configOf(service)
  for (const { key, s } of rawLeaves(schema)) if (s['x-secret'] && getAt(doc, key) != null) doc = setAt(doc, key, MASK)
  return doc
}

const typesOf = (s: Record<string, any>): string[] => (Array.isArray(s.type) ? s.type : [s.type])

describe('the form generated from each demo schema', () => {
  it('covers the 71 settings of the demo fleet', () => {
    expect(services).toHaveLength(7)
    expect(services.flatMap((s) => rawLeaves(schemaOf(s)))).toHaveLength(71)
  })

  for (const service of services) {
    it(`gives every setting of ${service} the control its type needs`, () => {
      const schema = schemaOf(service)
      const { wrapper } = mountForm(schema, masked(service))
      for (const { key, s } of rawLeaves(schema)) {
        const field = wrapper.find(`[data-key="${key}"]`)
        expect(field.exists(), `${service}${key} is rendered`).toBe(true)
        const types = typesOf(s)
        const nullable = types.includes('null')
        // The title is the visible label of the field.
        expect(field.find('.label').text()).toBe(s.title)
        if (s['x-secret']) {
          expect(field.find('[data-testid="secret-value"]').text()).toMatch(/•|not set/)
          const buttons = field.findAll('button').map((b) => b.text())
          expect(buttons).toContain('Reveal…')
          expect(buttons).toContain('Set secret…')
          expect(field.find('input[type="text"]').exists(), `${key}: a secret is not typed in the form`).toBe(false)
        } else if (s.enum) {
          const select = field.find('select')
          expect(select.exists(), `${key} is a select`).toBe(true)
          const labels = select.findAll('option').map((o) => o.text())
          for (const v of s.enum) expect(labels).toContain(String(v))
          expect(field.find('select').attributes('id')).toBe(field.find('label').attributes('for'))
        } else if (types.includes('boolean')) {
          const input = field.find('input[type="checkbox"][role="switch"]')
          expect(input.exists(), `${key} is a switch`).toBe(true)
          expect((input.element as HTMLInputElement).checked).toBe(getAt(configOf(service), key))
        } else if (types.includes('integer') || types.includes('number')) {
          const input = field.find('input[type="number"]')
          expect(input.exists(), `${key} is a number input`).toBe(true)
          expect(input.attributes('step')).toBe(types.includes('integer') ? '1' : (s.multipleOf ? String(s.multipleOf) : 'any'))
          if (s.minimum !== undefined) expect(input.attributes('min')).toBe(String(s.minimum))
          if (s.maximum !== undefined) expect(input.attributes('max')).toBe(String(s.maximum))
          expect(Number((input.element as HTMLInputElement).value)).toBe(getAt(configOf(service), key))
          expect(input.attributes('id')).toBe(field.find('label').attributes('for'))
        } else if (types.includes('string')) {
          const input = field.find('input[type="text"]')
          expect(input.exists(), `${key} is a text input`).toBe(true)
          const v = getAt(configOf(service), key)
          expect((input.element as HTMLInputElement).value).toBe(v === null ? '' : v)
          if (s.pattern) expect(field.text()).toContain(s.pattern)
        } else {
          throw new Error(`${key}: no expectation for ${JSON.stringify(s.type)}`)
        }
        if (nullable && !s['x-secret']) expect(field.text(), `${key} can be unset`).toContain('Not set')
        expect(field.text().includes('restart required'), `${key} restart badge`).toBe(s['x-restart-required'] === true)
        expect(field.find('.help-btn').exists(), `${key} help`).toBe(!!s['x-help'])
        if ('default' in s && !s['x-secret']) expect(field.text()).toContain('Reset to default')
      }
      wrapper.unmount()
    })
  }

  it('shows only the simple settings in simple mode (20 of 71)', () => {
    let shown = 0
    for (const service of services) {
      const schema = schemaOf(service)
      const { wrapper } = mountForm(schema, masked(service), { advanced: false })
      const keys = wrapper.findAll('.field').map((f) => f.attributes('data-key'))
      const simple = rawLeaves(schema).filter(({ s }) => s['x-complexity'] === 'simple').map(({ key }) => key)
      expect(keys.sort()).toEqual(simple.sort())
      shown += keys.length
      wrapper.unmount()
    }
    expect(shown).toBe(20)
  })

  it('validates as you type and shows the error on the field', async () => {
    const { wrapper, doc } = mountForm(schemaOf('tts-worker'), masked('tts-worker'))
    const input = wrapper.find('[data-key="/volume_percent"] input[type="number"]')
    await input.setValue('250')
    expect(getAt(doc.value, '/volume_percent')).toBe(250)
    await nextTick()
    expect(wrapper.find('[data-key="/volume_percent"] [data-testid="field-error"]').text()).toBe('must be at most 200')
    expect(input.attributes('aria-invalid')).toBe('true')
    await input.setValue('150')
    expect(wrapper.find('[data-key="/volume_percent"] [data-testid="field-error"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('resets a value to the schema default', async () => {
    const { wrapper, doc } = mountForm(schemaOf('router'), configOf('router'))
    const field = wrapper.find('[data-key="/router_wake_window_sec"]')
    const reset = field.findAll('button').find((b) => b.text() === 'Reset to default')!
    await reset.trigger('click')
    expect(getAt(doc.value, '/router_wake_window_sec')).toBe(schemaOf('router').properties.router_wake_window_sec.default)
    wrapper.unmount()
  })

  it('disables every control for a read-only role', () => {
    const { wrapper } = mountForm(schemaOf('global'), masked('global'), { readonly: 'viewer' })
    const controls = wrapper.findAll('input, select, textarea, .field button:not(.help-btn)')
    expect(controls.length).toBeGreaterThan(10)
    for (const c of controls) expect((c.element as HTMLInputElement).disabled, c.html()).toBe(true)
    wrapper.unmount()
  })
})

describe('controls for schema shapes the demo fleet does not use', () => {
  const schema = {
    $defs: { Level: { type: 'string', enum: ['low', 'high'] } },
    type: 'object',
    properties: {
      tags: { type: 'array', title: 'Tags', items: { type: 'string' }, default: [] },
      peers: {
        type: 'array',
        title: 'Peers',
        items: { type: 'object', properties: { host: { type: 'string', title: 'Host' }, port: { type: 'integer', minimum: 1 } } },
      },
      level: { $ref: '#/$defs/Level', title: 'Level' },
      limit: { anyOf: [{ type: 'number', maximum: 5 }, { type: 'null' }], title: 'Limit' },
      mode: { oneOf: [{ const: 'a', title: 'Mode A' }, { const: 'b', title: 'Mode B' }] },
    },
  }

  it('renders arrays of scalars and of objects, $ref enums, anyOf-null and const alternatives', async () => {
    const { wrapper, doc } = mountForm(schema, { tags: ['x'], peers: [{ host: 'a', port: 1 }], level: 'high', limit: null, mode: 'b' })
    expect(wrapper.find('[data-key="/tags/0"] input[type="text"]').exists()).toBe(true)
    expect(wrapper.find('[data-key="/peers/0"]').element.tagName).toBe('FIELDSET')
    expect(wrapper.find('[data-key="/peers/0/port"] input[type="number"]').exists()).toBe(true)
    expect(wrapper.findAll('[data-key="/level"] option').map((o) => o.text())).toEqual(['low', 'high'])
    expect(wrapper.findAll('[data-key="/mode"] option').map((o) => o.text())).toEqual(['Mode A', 'Mode B'])
    const limit = wrapper.find('[data-key="/limit"] input[type="number"]')
    expect((limit.element as HTMLInputElement).disabled).toBe(true)
    await wrapper.find('[data-key="/limit"] .unset input').setValue(false)
    expect(getAt(doc.value, '/limit')).not.toBe(null)

    const add = wrapper.find('[data-key="/tags"]').findAll('button').find((b) => b.text() === 'Add item')!
    await add.trigger('click')
    expect(getAt(doc.value, '/tags')).toEqual(['x', ''])
    const remove = wrapper.find('[data-key="/peers"]').findAll('button').find((b) => b.text() === 'Remove')!
    await remove.trigger('click')
    expect(getAt(doc.value, '/peers')).toEqual([])
    wrapper.unmount()
  })
})
