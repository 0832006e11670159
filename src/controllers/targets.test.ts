import type { AlertPolicySpec, RemediationRequestSpec } from '../api/v1alpha1/index.js';
import type { InstanceFacts } from '../cloud/types.js';
import { candidates, checkTargets, namedTargets, outsideScope, renderSelector } from './targets.js';

const policy = (maxTargets = 3, extra: Partial<AlertPolicySpec['targets']> = {}): AlertPolicySpec => ({
  targets: { fromLabels: ['instance_id', 'instances'], maxTargets, ...extra },
  risk: 'Low',
  runbookRef: { name: 'rb' },
});
const request = (
  labels: Record<string, string>,
  targets?: string[],
  source: 'generic' | 'cloudwatch' = 'generic',
): RemediationRequestSpec => ({
  policyRef: { name: 'p' },
  alert: { source, name: 'A', status: 'firing', labels },
  ...(targets && { targets }),
});
const ids = (ids: readonly string[], spec = policy(), max = 3) => checkTargets(ids, spec, max);
const facts = (instanceId: string, tags: Record<string, string>): InstanceFacts => ({ instanceId, tags }) as InstanceFacts;

describe('namedTargets and checkTargets', () => {
  test('reads IDs from the named labels, splitting lists and removing duplicates', () => {
    const named = namedTargets(request({ instance_id: 'i-0123456789abcdef0', instances: 'i-0123456789abcdef0, i-01234567' }), policy());
    expect(ids(named)).toEqual({ ok: true, targets: ['i-01234567', 'i-0123456789abcdef0'] });
  });

  test('dimensions are read from cloudwatch alerts only', () => {
    const spec = policy(3, { fromLabels: [], fromDimensions: ['InstanceId'] });
    expect(namedTargets(request({ InstanceId: 'i-00000001' }, undefined, 'cloudwatch'), spec)).toEqual(['i-00000001']);
    expect(namedTargets(request({ InstanceId: 'i-00000001' }), spec)).toEqual([]);
  });

  test('fails when there are none, when they are malformed, and over maxTargets', () => {
    expect(ids(namedTargets(request({}), policy()))).toMatchObject({ ok: false, reason: 'NoTargets' });
    expect(ids(namedTargets(request({ instance_id: 'i-1;reboot' }), policy()))).toMatchObject({ ok: false, reason: 'InvalidTargets' });
    expect(ids(namedTargets(request({ instances: 'i-00000001,i-00000002,i-00000003,i-00000004' }), policy(3)))).toMatchObject({
      ok: false,
      reason: 'TooManyTargets',
      message: expect.stringContaining('maxTargets 3'),
    });
  });
});

describe('candidates: spec.targets may only narrow', () => {
  test('explicit targets named by the alert are kept', () => {
    expect(candidates(request({ instances: 'i-00000001,i-00000002' }, ['i-00000001']), policy(), undefined, undefined)).toEqual({
      ok: true,
      ids: ['i-00000001'],
    });
  });

  test('explicit targets the alert does not name are refused, naming them, before any AWS call', () => {
    const c = candidates(request({ instance_id: 'i-0123456789abcdef0' }, ['i-aaaaaaaa']), policy(), undefined, undefined);
    expect(c).toMatchObject({ ok: false, reason: 'TargetNotAllowed', message: expect.stringContaining('i-aaaaaaaa') });
  });

  test('targets from labels plus a tag selector: explicit targets are still bounded by what the alert names', () => {
    const both = policy(3, { tagSelector: { role: 'web' } });
    expect(candidates(request({ instance_id: 'i-00000001' }, ['i-00000002']), both, { role: 'web' }, undefined)).toMatchObject({
      ok: false,
      reason: 'TargetNotAllowed',
      message: expect.stringContaining('i-00000002'),
    });
    expect(candidates(request({ instance_id: 'i-00000001' }, ['i-00000001']), both, { role: 'web' }, undefined)).toEqual({
      ok: true,
      ids: ['i-00000001'],
    });
    const dims = policy(3, { fromLabels: [], fromDimensions: ['InstanceId'], tagSelector: { role: 'web' } });
    expect(candidates(request({ InstanceId: 'i-00000001' }, ['i-00000002'], 'cloudwatch'), dims, { role: 'web' }, undefined)).toMatchObject(
      { ok: false, reason: 'TargetNotAllowed' },
    );
  });

  test('with a policy tag selector, explicit targets are left to the tag checks', () => {
    expect(candidates(request({}, ['i-aaaaaaaa']), policy(3, { fromLabels: [] }), { role: 'web' }, undefined)).toEqual({
      ok: true,
      ids: ['i-aaaaaaaa'],
    });
  });

  test('label sources name the targets; a tag selector alone selects them, merged with the runbook scope', () => {
    expect(candidates(request({ instance_id: 'i-00000001' }), policy(), { role: 'web' }, { team: 'a' })).toEqual({
      ok: true,
      ids: ['i-00000001'],
    });
    const tagOnly = policy(3, { fromLabels: [] });
    expect(candidates(request({}), tagOnly, { role: 'web' }, { team: 'a' })).toEqual({ ok: true, selector: { role: 'web', team: 'a' } });
    expect(candidates(request({}), tagOnly, { team: 'b' }, { team: 'a' })).toMatchObject({ ok: false, reason: 'NoTargets' });
    expect(candidates(request({}), tagOnly, undefined, { team: 'a' })).toMatchObject({ ok: false, reason: 'NoTargets' });
  });
});

describe('renderSelector and outsideScope', () => {
  test('selector templates use the namespace and alert, with the default allowlist', () => {
    const ctx = { alert: { name: 'A', source: 'generic' }, labels: { svc: 'web', bad: '--x' }, annotations: {}, namespace: 'team-a' };
    expect(renderSelector({ team: '{{ namespace }}', role: '{{ labels.svc }}' }, ctx)).toEqual({ team: 'team-a', role: 'web' });
    expect(renderSelector(undefined, ctx)).toBeUndefined();
    expect(() => renderSelector({ role: '{{ labels.bad }}' }, ctx)).toThrow();
  });

  test("every target must carry every rule's tags; the first outside is named", () => {
    const rules: Array<{ what: string; tags: Record<string, string> }> = [
      { what: 'the policy tagSelector', tags: { role: 'web' } },
      { what: 'the scope of Runbook "rb"', tags: { team: 'team-a' } },
    ];
    expect(outsideScope([facts('i-00000001', { role: 'web', team: 'team-a' })], rules)).toBeUndefined();
    expect(
      outsideScope([facts('i-00000001', { role: 'web', team: 'team-a' }), facts('i-00000002', { role: 'db', team: 'team-a' })], rules),
    ).toMatchObject({
      ok: false,
      reason: 'TargetOutOfScope',
      message: expect.stringMatching(/i-00000002 is outside the policy tagSelector: it needs role=web and has role=db/),
    });
    expect(outsideScope([facts('i-00000003', { role: 'web' })], rules)).toMatchObject({ message: expect.stringContaining('no tag team') });
  });
});
