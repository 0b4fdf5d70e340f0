// Mounts the fields of a schema the way the service page does, with an editable document.
import { defineComponent, h, provide, reactive, shallowRef } from 'vue'
import { mount } from '@vue/test-utils'
import Field from '../src/components/Field.vue'
import { FORM, visible, type FormContext } from '../src/components/form'
import { clone, formOf, getAt, setAt, type Json, type Schema } from '../src/lib/schema'
import { validate } from '../src/lib/validate'

export function mountForm(schema: Schema, config: Json, opts: { advanced?: boolean; readonly?: string | null } = {}) {
  const doc = shallowRef<Json>(clone(config))
  const errors = () => Object.fromEntries(validate(schema, doc.value).map((e) => [e.path, e.message]))
  const ctx = reactive({
    root: schema,
    get: (k: string) => getAt(doc.value, k),
    set: (k: string, v: Json | undefined) => (doc.value = setAt(doc.value, k, v)),
    original: (k: string) => getAt(config, k),
    error: (k: string) => errors()[k],
    readonly: opts.readonly ?? null,
    overrides: {},
    remote: {},
    advanced: opts.advanced ?? true,
    highlight: '',
    reveal: () => {},
    setSecret: () => {},
  }) as unknown as FormContext
  const nodes = formOf(schema)
  const Host = defineComponent({
    setup() {
      provide(FORM, ctx)
      return () => h('form', nodes.filter((n) => visible(n, ctx)).map((n) => h(Field, { node: n, key: n.key })))
    },
  })
  const wrapper = mount(Host, { attachTo: document.body })
  return { wrapper, doc, ctx }
}
