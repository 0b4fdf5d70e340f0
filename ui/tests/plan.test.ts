import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import PlanView from '../src/components/PlanView.vue'
import type { Plan } from '../src/lib/types'

const member = (over: Partial<Plan['services'][number]>) => ({ service: 's', action: 'update' as const, from_version: 1, version: 2, changes: [], errors: [], ...over })

describe('a plan', () => {
  it('shows added, removed and changed keys, invalid members first, unchanged ones in one line', () => {
    const plan: Plan = {
      dry_run: true,
      ok: false,
      services: [
        member({ service: 'alpha', action: 'unchanged', from_version: 3, version: 3 }),
        member({ service: 'beta', changes: [{ key: '/gone', old: 1 }, { key: '/added', new: [1, 2] }, { key: '/null', old: null, new: 'x' }] }),
        member({ service: 'gamma', action: 'invalid', from_version: 5, version: 5, errors: [{ path: '', message: 'must be object' }] }),
        member({ service: 'delta', action: 'unchanged', from_version: 2, version: 2 }),
      ],
    }
    const w = mount(PlanView, { props: { plan } })
    expect(w.find('[data-testid="plan-summary"]').text()).toBe('1 service changes, 1 service is invalid, 2 unchanged.')
    expect(w.findAll('section').map((s) => s.attributes('data-plan-service'))).toEqual(['gamma', 'beta'])
    expect(w.find('[data-plan-service="gamma"] [data-testid="plan-errors"]').text()).toBe('/ must be object')
    const beta = w.find('[data-plan-service="beta"]')
    expect(beta.find('tr[data-key="/gone"]').text()).toContain('(removed)')
    expect(beta.find('tr[data-key="/added"]').text()).toContain('(not set)')
    expect(beta.find('tr[data-key="/added"] .diff-new').text()).toBe('[1,2]')
    expect(beta.find('tr[data-key="/null"] .diff-old').text()).toBe('null')
    expect(w.find('[data-testid="plan-unchanged"]').text()).toBe('Unchanged: alpha (v3), delta (v2)')
    // Keyboard users can scroll a long plan.
    expect(w.find('[data-testid="plan"]').attributes('tabindex')).toBe('0')
  })
})
