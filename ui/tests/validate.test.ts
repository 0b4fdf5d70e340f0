import { describe, expect, it } from 'vitest'
import { validate } from '../src/lib/validate'
import { diff } from '../src/lib/diff'
import { MASK, setAt } from '../src/lib/schema'
import { configOf, invalid, schemaOf, services } from './tars'

// The key each invalid document breaks (examples/tars/README.md), where the manager reports
// its error.
const expected: Record<string, { path: string; message: RegExp }> = {
  'global.1.json': { path: '/mqtt/port', message: /at most 65535/ },
  'global.2.json': { path: '/mqtt/client_id', message: /not a known setting/ },
  'stt-worker.1.json': { path: '/whisper_model', message: /one of/ },
  'stt-worker.2.json': { path: '/ws_url', message: /pattern/ },
  'tts-worker.1.json': { path: '/volume_percent', message: /at most 200/ },
  'tts-worker.2.json': { path: '/tts_provider', message: /one of/ },
  'router.1.json': { path: '/router_stream_min_chars', message: /whole number/ },
  'router.2.json': { path: '/router_wake_window_sec', message: /at most 60/ },
  'llm-worker.1.json': { path: '/llm_provider', message: /one of/ },
  'llm-worker.2.json': { path: '/llm_max_tokens', message: /not a known setting/ },
  'memory-worker.1.json': { path: '/memory_file', message: /pattern/ },
  'memory-worker.2.json': { path: '/memory_top_k', message: /whole number/ },
  'wake-activation.1.json': { path: '/wake_detection_threshold', message: /at most 1/ },
  'wake-activation.2.json': { path: '/wake_speex_noise_suppression', message: /true or false/ },
}

describe('validation in the browser agrees with the manager', () => {
  it('has an expectation for every invalid document', () => {
    expect(invalid.map((i) => i.file).sort()).toEqual(Object.keys(expected).sort())
  })

  for (const { file, service, doc } of invalid) {
    it(`finds exactly the one broken key of invalid/${file}`, () => {
      const errors = validate(schemaOf(service), doc)
      expect(errors).toHaveLength(1)
      expect(errors[0].path).toBe(expected[file].path)
      expect(errors[0].message).toMatch(expected[file].message)
    })
  }

  for (const service of services) {
    it(`accepts the example document of ${service}, and an empty one`, () => {
      expect(validate(schemaOf(service), configOf(service))).toEqual([])
      expect(validate(schemaOf(service), {})).toEqual([])
    })
  }

  it('does not check a masked secret (the manager keeps the stored value)', () => {
    const doc = setAt(configOf('global'), '/mqtt/url', MASK)
    expect(validate(schemaOf('global'), doc)).toEqual([])
    expect(validate(schemaOf('global'), setAt(doc, '/mqtt/url', 'http://x'))[0].path).toBe('/mqtt/url')
  })
})

describe('the key-by-key diff', () => {
  it('lists added, removed and changed leaves with their pointers', () => {
    expect(diff({ a: 1, m: { x: 1, y: 2 }, gone: true }, { a: 2, m: { x: 1, z: 3 }, added: 'n' })).toEqual([
      { key: '/a', op: 'changed', old: 1, new: 2 },
      { key: '/added', op: 'added', new: 'n' },
      { key: '/gone', op: 'removed', old: true },
      { key: '/m/y', op: 'removed', old: 2 },
      { key: '/m/z', op: 'added', new: 3 },
    ])
  })
})
