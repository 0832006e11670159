import type { Plan } from '../../api/v1alpha1/index.js';
import { diffPlans, PlanMemory } from './plan-memory.js';

const plan = (digest: string, command: string, targets = ['i-0123456789abcdef0']): Plan => ({
  digest: `sha256:${digest.repeat(64)}`,
  runbook: { name: 'restart', generation: 1 },
  policyGeneration: 1,
  risk: 'Medium',
  targets,
  region: 'eu-west-1',
  ssm: {
    documentName: 'AWS-RunShellScript',
    parameters: { commands: [command] },
    timeoutSeconds: 600,
    maxConcurrency: '50',
    maxErrors: '0',
  },
});

describe('what changed since a previous plan', () => {
  test('diffPlans names each differing field, never the digest', () => {
    expect(diffPlans(plan('a', 'systemctl restart nginx'), plan('b', 'reboot', ['i-0123456789abcdef0', 'i-0fedcba9876543210']))).toEqual([
      { field: 'ssm.parameters.commands', before: 'systemctl restart nginx', after: 'reboot' },
      { field: 'targets', before: 'i-0123456789abcdef0', after: 'i-0123456789abcdef0\ni-0fedcba9876543210' },
    ]);
    const { ssm: _, ...noSsm } = plan('c', 'x');
    expect(diffPlans(plan('a', 'x'), noSsm).map((c) => [c.field, c.after])).toContainEqual(['ssm.documentName', '(none)']);
  });

  test('the memory compares the newest plan shown with the one shown before it, per request', () => {
    const m = new PlanMemory(2);
    expect(m.show('uid-1', plan('a', 'one'), 1)).toEqual({ changes: [] });
    expect(m.show('uid-1', plan('a', 'one'), 2)).toEqual({ changes: [] });
    expect(m.show('uid-2', plan('b', 'two'), 3)).toEqual({ changes: [] });
    const changed = m.show('uid-1', plan('c', 'three'), 4);
    expect(changed.previous).toEqual({ plan: plan('a', 'one'), seenAt: 1 });
    expect(changed.changes).toEqual([{ field: 'ssm.parameters.commands', before: 'one', after: 'three' }]);
    // Shown again unchanged: still says what changed since the one before.
    expect(m.show('uid-1', plan('c', 'three'), 5).previous?.plan.digest).toBe(plan('a', 'x').digest);
    // It keeps a few per request.
    m.show('uid-1', plan('d', 'four'), 6);
    expect(m.show('uid-1', plan('d', 'four'), 7).previous?.plan.digest).toBe(plan('c', 'x').digest);
  });
});
