import { admissionVerdict, epochKey, resetProven, resetToken, type NamespaceIdentity } from './admission.js';
import type { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding } from '../api/admissionregistration/v1.js';

const NAME = 'remediator-approvals';
const NS = 'team-a';
const labels = { 'kubernetes.io/metadata.name': NS, 'remediator.dev/scope': 'x' };

const policy = (over: Partial<NonNullable<ValidatingAdmissionPolicy['spec']>> = {}): ValidatingAdmissionPolicy => ({
  metadata: { name: NAME, uid: 'vap-uid', generation: 3 },
  spec: {
    failurePolicy: 'Fail',
    matchConstraints: {
      resourceRules: [
        { apiGroups: ['remediator.dev'], resources: ['remediationrequests', 'alertpolicies'], operations: ['CREATE', 'UPDATE'] },
      ],
    },
    validations: [
      { expression: 'object.spec.approval.planDigest == oldObject.status.plan.digest' },
      { expression: 'variables.tokenNow == oldObject.status.circuitBreaker.resetToken' },
      { expression: "object.metadata.annotations['remediator.dev/changed-by'] == variables.user" },
    ],
    ...over,
  },
});
const binding = (
  over: Partial<NonNullable<ValidatingAdmissionPolicyBinding['spec']>> = {},
  name = `${NAME}-binding`,
): ValidatingAdmissionPolicyBinding => ({
  metadata: { name, uid: `${name}-uid`, generation: 1 },
  spec: {
    policyName: NAME,
    validationActions: ['Deny'],
    matchResources: { namespaceSelector: { matchLabels: { 'remediator.dev/scope': 'x' } } },
    ...over,
  },
});
const ns = (l: Record<string, string>, resourceVersion = '7'): NamespaceIdentity => ({ labels: l, uid: 'ns-uid', resourceVersion });
const verdict = (
  p: ValidatingAdmissionPolicy | undefined,
  bs: ValidatingAdmissionPolicyBinding[],
  l: Record<string, string> | undefined = labels,
) => admissionVerdict(NAME, p, bs, NS, l && ns(l));

describe('admissionVerdict (fail closed)', () => {
  test('happy path: the policy fails closed, binds plans, and a Deny binding covers the namespace', () => {
    expect(verdict(policy(), [binding()])).toEqual({
      enforced: true,
      binding: `${NAME}-binding`,
      epoch: {
        policy: { uid: 'vap-uid', generation: 3 },
        binding: { name: `${NAME}-binding`, uid: `${NAME}-binding-uid`, generation: 1 },
        // Coverage hangs on the namespace's labels: its identity is part of the epoch.
        namespace: { uid: 'ns-uid', resourceVersion: '7' },
      },
    });
    // A binding without a namespaceSelector covers every namespace, whatever its labels.
    expect(verdict(policy(), [binding({ matchResources: {} })])).toMatchObject({
      enforced: true,
      binding: `${NAME}-binding`,
      epoch: { binding: { uid: `${NAME}-binding-uid` } },
    });
    const all = verdict(policy(), [binding({ matchResources: {} })]);
    expect(all.enforced && all.epoch.namespace).toBeUndefined();
    // Deny together with Audit is still Deny.
    expect(verdict(policy(), [binding({ validationActions: ['Deny', 'Audit'] })]).enforced).toBe(true);
  });

  test('a missing policy is not enforced', () => {
    expect(verdict(undefined, [binding()])).toMatchObject({ enforced: false, message: expect.stringContaining('not installed') });
  });

  test('failurePolicy Ignore is not enforced', () => {
    expect(verdict(policy({ failurePolicy: 'Ignore' }), [binding()])).toMatchObject({
      enforced: false,
      message: expect.stringContaining('failurePolicy Ignore'),
    });
  });

  test('a policy that does not bind approvals to plans (an older chart) is not enforced', () => {
    expect(verdict(policy({ validations: [{ expression: 'true' }] }), [binding()])).toMatchObject({
      enforced: false,
      message: expect.stringContaining('upgrade'),
    });
  });

  test('a policy that does not match requests is not enforced', () => {
    const p = policy({
      matchConstraints: {
        resourceRules: [{ apiGroups: ['remediator.dev'], resources: ['alertpolicies'], operations: ['CREATE', 'UPDATE'] }],
      },
    });
    expect(verdict(p, [binding()])).toMatchObject({ enforced: false });
    const createOnly = policy({
      matchConstraints: { resourceRules: [{ apiGroups: ['remediator.dev'], resources: ['remediationrequests'], operations: ['CREATE'] }] },
    });
    expect(verdict(createOnly, [binding()])).toMatchObject({ enforced: false });
  });

  test('no binding, or only Warn/Audit bindings, is not enforced', () => {
    expect(verdict(policy(), [])).toMatchObject({ enforced: false, message: expect.stringContaining('no binding refers to it') });
    const soft = verdict(policy(), [binding({ validationActions: ['Warn', 'Audit'] })]);
    expect(soft).toMatchObject({ enforced: false, message: expect.stringContaining('only Warn/Audit (it must Deny)') });
    // A Deny binding of another policy does not count.
    expect(verdict(policy(), [binding({ policyName: 'something-else' })]).enforced).toBe(false);
  });

  test('a binding whose namespaceSelector does not select the namespace is not enforced there', () => {
    expect(verdict(policy(), [binding()], { 'kubernetes.io/metadata.name': NS })).toMatchObject({
      enforced: false,
      message: expect.stringContaining('namespaceSelector does not select the namespace'),
    });
    // Unknown labels: only the name label is assumed.
    expect(admissionVerdict(NAME, policy(), [binding()], NS, undefined).enforced).toBe(false);
    const byName = binding({ matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } } } });
    expect(verdict(policy(), [byName], { 'kubernetes.io/metadata.name': NS }).enforced).toBe(true);
    // A selector decides, and the namespace's identity is unknown: no epoch, so not enforced.
    expect(admissionVerdict(NAME, policy(), [byName], NS, undefined).enforced).toBe(false);
  });

  test('the policy itself scoped away from the namespace is not enforced', () => {
    const p = policy();
    p.spec!.matchConstraints!.namespaceSelector = { matchLabels: { other: 'yes' } };
    expect(verdict(p, [binding()])).toMatchObject({ enforced: false, message: expect.stringContaining('does not cover namespace team-a') });
  });

  test('an objectSelector (which a requester can step around by labelling) is not enforced', () => {
    const b = binding({ matchResources: { objectSelector: { matchLabels: { guarded: 'true' } } } });
    expect(verdict(policy(), [b])).toMatchObject({ enforced: false, message: expect.stringContaining('objectSelector') });
    const p = policy();
    p.spec!.matchConstraints!.objectSelector = { matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] };
    expect(verdict(p, [binding()]).enforced).toBe(false);
    // An empty objectSelector selects everything and is harmless.
    expect(verdict(policy(), [binding({ matchResources: { objectSelector: {} } })]).enforced).toBe(true);
  });

  test('excludeResourceRules that exclude remediationrequests are not enforced', () => {
    const b = binding({
      matchResources: {
        excludeResourceRules: [{ apiGroups: ['remediator.dev'], resources: ['remediationrequests'], operations: ['UPDATE'] }],
      },
    });
    expect(verdict(policy(), [b])).toMatchObject({ enforced: false, message: expect.stringContaining('excludes remediationrequests') });
    const policies = binding({
      matchResources: { excludeResourceRules: [{ apiGroups: ['remediator.dev'], resources: ['alertpolicies'] }] },
    });
    expect(verdict(policy(), [policies]).enforced).toBe(false);
    const wildcard = binding({ matchResources: { excludeResourceRules: [{ apiGroups: ['*'], resources: ['*'] }] } });
    expect(verdict(policy(), [wildcard]).enforced).toBe(false);
  });

  test('a paramRef the policy does not use is not enforced; a second, good binding still counts', () => {
    expect(verdict(policy(), [binding({ paramRef: { name: 'x' } })]).enforced).toBe(false);
    expect(verdict(policy(), [binding({ validationActions: ['Warn'] }, 'soft'), binding({}, 'hard')])).toMatchObject({
      enforced: true,
      binding: 'hard',
    });
  });
});

describe('enforcement epochs (ADR 0011)', () => {
  const key = (v: ReturnType<typeof verdict>) => (v.enforced ? epochKey(v.epoch) : '');

  test('every change that could hide a gap changes the epoch, and none comes back', () => {
    const base = key(verdict(policy(), [binding()]));
    expect(base).not.toBe('');
    const recreated = binding();
    recreated.metadata!.uid = 'another';
    expect(key(verdict(policy(), [recreated]))).not.toBe(base);
    const edited = binding();
    edited.metadata!.generation = 2;
    expect(key(verdict(policy(), [edited]))).not.toBe(base);
    const p = policy();
    p.metadata!.generation = 4;
    expect(key(verdict(p, [binding()]))).not.toBe(base);
    // Relabelled away and back: same labels, a new resourceVersion.
    expect(key(admissionVerdict(NAME, policy(), [binding()], NS, ns(labels, '9')))).not.toBe(base);
  });

  test('objects without identities give no epoch: not enforced', () => {
    const b = binding();
    delete b.metadata!.uid;
    expect(verdict(policy(), [b]).enforced).toBe(false);
  });

  test('a policy that does not check reset tokens or record policy writers (an older chart) is not enforced', () => {
    expect(verdict(policy({ validations: [{ expression: 'oldObject.status.plan.digest' }] }), [binding()])).toMatchObject({
      enforced: false,
      message: expect.stringContaining('circuitBreaker.resetToken, remediator.dev/changed-by'),
    });
  });

  test('a breaker reset counts only with the token issued under the current epoch', () => {
    const v = verdict(policy(), [binding()]);
    const token = resetToken(undefined, v)!;
    expect(token).toMatch(/^[0-9a-f]{16}\.[0-9a-f]{32}$/);
    expect(resetToken(token, v)).toBe(token);
    const withToken = (given: string, inStatus: string | undefined) => ({
      metadata: { annotations: { 'remediator.dev/circuit-reset-token': given } },
      spec: { targets: {}, runbookRef: { name: 'r' } },
      status: { circuitBreaker: { open: true, resetToken: inStatus } },
    });
    expect(resetProven(withToken(token, token) as never, v)).toBe(true);
    expect(resetProven(withToken('guess', token) as never, v)).toBe(false);
    expect(resetProven(withToken(token, undefined) as never, v)).toBe(false);
    // The binding re-created: a new token is issued, and the old one stops counting.
    const b = binding();
    b.metadata!.uid = 'another';
    const after = verdict(policy(), [b]);
    expect(resetToken(token, after)).not.toBe(token);
    expect(resetProven(withToken(token, token) as never, after)).toBe(false);
    expect(resetToken(token, verdict(undefined, [b]))).toBeUndefined();
    expect(resetProven(withToken(token, token) as never, verdict(undefined, [b]))).toBe(false);
  });
});
