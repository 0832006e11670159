import type { Plan } from '../api/v1alpha1/index.js';
import { canonicalJson, planDigest } from './plan-render.js';

type Body = Omit<Plan, 'digest'>;

const base = (): Body => ({
  runbook: { name: 'restart', generation: 3 },
  policyGeneration: 2,
  risk: 'High',
  targets: ['i-00000001', 'i-00000002'],
  region: 'eu-west-1',
  ssm: {
    documentName: 'AWS-RunShellScript',
    parameters: { commands: ['systemctl restart nginx'], workingDirectory: ['/'] },
    timeoutSeconds: 600,
    maxConcurrency: '50',
    maxErrors: '0',
  },
});

/** The same object with its keys in reverse order at every level. */
function reversed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversed);
  if (value && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value)
        .reverse()
        .map(([k, v]) => [k, reversed(v)]),
    );
  return value;
}

describe('planDigest', () => {
  test('is a sha256 and stable under key order', () => {
    const d = planDigest(base());
    expect(d).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(planDigest(reversed(base()) as Body)).toBe(d);
    expect(canonicalJson(reversed(base()))).toBe(canonicalJson(base()));
  });

  test('undefined fields do not count; present ones do', () => {
    expect(planDigest({ ...base(), roleArn: undefined })).toBe(planDigest(base()));
    expect(planDigest({ ...base(), roleArn: 'arn:aws:iam::222222222222:role/x' })).not.toBe(planDigest(base()));
  });

  const changes: Array<[string, (b: Body) => void]> = [
    ['a parameter value', (b) => (b.ssm!.parameters.commands = ['systemctl restart nginx; reboot'])],
    ['another parameter', (b) => (b.ssm!.parameters.workingDirectory = ['/tmp'])],
    ['a parameter added', (b) => (b.ssm!.parameters.extra = ['x'])],
    ['the document', (b) => (b.ssm!.documentName = 'AWS-RunPowerShellScript')],
    ['the timeout', (b) => (b.ssm!.timeoutSeconds = 601)],
    ['a target', (b) => (b.targets = ['i-00000001', 'i-00000003'])],
    ['a target added', (b) => b.targets.push('i-00000003')],
    ['target order', (b) => b.targets.reverse()],
    ['the runbook generation', (b) => (b.runbook.generation = 4)],
    ['the runbook', (b) => (b.runbook.name = 'reboot')],
    ['the policy generation', (b) => (b.policyGeneration = 3)],
    ['the risk', (b) => (b.risk = 'Low')],
    ['the region', (b) => (b.region = 'us-east-1')],
  ];
  test.each(changes)('changes with %s', (_what, change) => {
    const b = base();
    change(b);
    expect(planDigest(b)).not.toBe(planDigest(base()));
  });

  test('an sns plan digests its message hash', () => {
    const sns = (messageSha256: string): Body => ({
      ...base(),
      ssm: undefined,
      sns: { topicArn: 'arn:aws:sns:eu-west-1:123456789012:t', messageSha256, messagePreview: 'x' },
    });
    expect(planDigest(sns('a'))).not.toBe(planDigest(sns('b')));
  });
});
