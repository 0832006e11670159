import { admissionVerdict, type ValidatingAdmissionPolicy, type ValidatingAdmissionPolicyBinding } from './admission.js';

const NAME = 'remediator-approvals';
const NS = 'team-a';
const labels = { 'kubernetes.io/metadata.name': NS, 'remediator.dev/scope': 'x' };

const policy = (over: Partial<NonNullable<ValidatingAdmissionPolicy['spec']>> = {}): ValidatingAdmissionPolicy => ({
  metadata: { name: NAME },
  spec: {
    failurePolicy: 'Fail',
    matchConstraints: {
      resourceRules: [
        { apiGroups: ['remediator.dev'], resources: ['remediationrequests', 'alertpolicies'], operations: ['CREATE', 'UPDATE'] },
      ],
    },
    validations: [{ expression: 'object.spec.approval.planDigest == oldObject.status.plan.digest' }],
    ...over,
  },
});
const binding = (
  over: Partial<NonNullable<ValidatingAdmissionPolicyBinding['spec']>> = {},
  name = `${NAME}-binding`,
): ValidatingAdmissionPolicyBinding => ({
  metadata: { name },
  spec: {
    policyName: NAME,
    validationActions: ['Deny'],
    matchResources: { namespaceSelector: { matchLabels: { 'remediator.dev/scope': 'x' } } },
    ...over,
  },
});
const verdict = (
  p: ValidatingAdmissionPolicy | undefined,
  bs: ValidatingAdmissionPolicyBinding[],
  l: Record<string, string> | undefined = labels,
) => admissionVerdict(NAME, p, bs, NS, l);

describe('admissionVerdict (fail closed)', () => {
  test('happy path: the policy fails closed, binds plans, and a Deny binding covers the namespace', () => {
    expect(verdict(policy(), [binding()])).toEqual({ enforced: true, binding: `${NAME}-binding` });
    // A binding without a namespaceSelector covers every namespace.
    expect(verdict(policy(), [binding({ matchResources: {} })])).toEqual({ enforced: true, binding: `${NAME}-binding` });
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
    expect(admissionVerdict(NAME, policy(), [byName], NS, undefined).enforced).toBe(true);
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
    const wildcard = binding({ matchResources: { excludeResourceRules: [{ apiGroups: ['*'], resources: ['*'] }] } });
    expect(verdict(policy(), [wildcard]).enforced).toBe(false);
  });

  test('a paramRef the policy does not use is not enforced; a second, good binding still counts', () => {
    expect(verdict(policy(), [binding({ paramRef: { name: 'x' } })]).enforced).toBe(false);
    expect(verdict(policy(), [binding({ validationActions: ['Warn'] }, 'soft'), binding({}, 'hard')])).toEqual({
      enforced: true,
      binding: 'hard',
    });
  });
});
