import { describe, expect, it } from 'vitest'
import { staleness } from '../src/lib/instances'
import type { InstanceInfo } from '../src/lib/types'

const at = '2026-12-05T21:00:00Z'
const row = (over: Partial<InstanceInfo>): InstanceInfo => ({
  instance: 'pi-kitchen', version: 4, status: 'applied', current: true, reported_at: at, received_at: at, ...over,
})

describe('an instance badge', () => {
  it('is absent when the instance runs the current version', () => {
    expect(staleness(row({}), 4)).toBeNull()
  })
  it('says the signing key is untrusted when the client refused the envelope for it', () => {
    const error = 'untrusted signing key 1f2e3d4c5b6a7988: no rotation statement from a trusted key names it'
    expect(staleness(row({ status: 'rejected', version: 5, error, current: false }), 5)).toBe('stale: untrusted signing key')
  })
  it('names a rejection, a failure, an instance gone offline and an older version', () => {
    expect(staleness(row({ status: 'rejected', error: 'volume: 300 is above 200', current: false }), 4)).toBe('stale: rejected')
    expect(staleness(row({ status: 'failed', error: 'callback refused', current: false }), 4)).toBe('stale: failed')
    expect(staleness(row({ status: 'offline', current: false }), 4)).toBe('stale: offline')
    expect(staleness(row({ version: 3, current: false }), 4)).toBe('stale: runs v3, current is v4')
  })
})
