// Why an instance does not run the service's current config, in a few words for its badge.
import type { InstanceInfo } from './types'

// The reasons a client gives, shortened; the full text stays beside the badge.
const known: [RegExp, string][] = [
  [/untrusted signing key|not trusted/i, 'untrusted signing key'],
  [/checksum/i, 'bad checksum'],
  [/signature/i, 'bad signature'],
  [/epoch/i, 'other epoch'],
]

/** `null` when the instance runs the current version; else "stale: <reason>". */
export function staleness(i: InstanceInfo, current: number): string | null {
  if (i.status === 'offline') return 'stale: offline'
  if (i.status === 'rejected' || i.status === 'failed') {
    const hit = known.find(([re]) => re.test(i.error ?? ''))
    return `stale: ${hit ? hit[1] : i.status}`
  }
  if (i.version < current) return `stale: runs v${i.version}, current is v${current}`
  return null
}
