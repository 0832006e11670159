import type { AlertPolicySpec, RemediationRequestSpec } from '../api/v1alpha1/index.js';
import { resolveTargets } from './targets.js';

const policy = (maxTargets = 3): AlertPolicySpec => ({
  targets: { fromLabels: ['instance_id', 'instances'], maxTargets },
  risk: 'Low',
  action: { ssm: { documentName: 'AWS-RunShellScript', parameters: [{ name: 'commands', values: ['true'] }], timeoutSeconds: 60, maxConcurrency: '1', maxErrors: '0' } },
});
const request = (labels: Record<string, string>, targets?: string[]): RemediationRequestSpec => ({
  policyRef: { name: 'p' },
  alert: { source: 'generic', name: 'A', status: 'firing', labels },
  ...(targets && { targets }),
});

describe('resolveTargets', () => {
  test('reads IDs from the named labels, splitting lists and removing duplicates', () => {
    expect(resolveTargets(request({ instance_id: 'i-0123456789abcdef0', instances: 'i-0123456789abcdef0, i-01234567' }), policy())).toEqual({
      ok: true,
      targets: ['i-01234567', 'i-0123456789abcdef0'],
    });
  });

  test('explicit spec.targets replace the labels', () => {
    expect(resolveTargets(request({ instance_id: 'i-0123456789abcdef0' }, ['i-aaaaaaaa']), policy())).toEqual({ ok: true, targets: ['i-aaaaaaaa'] });
  });

  test('fails when there are none, when they are malformed, and over maxTargets', () => {
    expect(resolveTargets(request({}), policy())).toMatchObject({ ok: false, reason: 'NoTargets' });
    expect(resolveTargets(request({ instance_id: 'i-1;reboot' }), policy())).toMatchObject({ ok: false, reason: 'InvalidTargets' });
    expect(resolveTargets(request({ instances: 'i-00000001,i-00000002,i-00000003,i-00000004' }), policy(3))).toMatchObject({
      ok: false,
      reason: 'TooManyTargets',
      message: expect.stringContaining('maxTargets of 3'),
    });
  });
});
