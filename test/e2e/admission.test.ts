/**
 * The shipped ValidatingAdmissionPolicy, enforced by the real kube-apiserver: each way
 * of forging an approval (SPEC §1) is refused by the API server itself, whatever the
 * client, while honest requests and approvals pass. The users are static-token users
 * bound to the chart's own editor and approver ClusterRoles, and they act through
 * kubectl, as people do.
 *
 * The controller's risk assessment (status.risk, written through the status
 * subresource, which the policy never sees) is written here by the admin, so these
 * checks do not depend on a controller run; install.test.ts shows the real one.
 */
import {
  grant,
  guardStatus,
  installChart,
  must,
  namespace,
  SCOPE_LABEL,
  serviceAccountKubeconfig,
  suffix,
  waitForAdmissionPolicy,
  writeStatus,
  type InstalledChart,
} from './install-chart.js';
import { testbedFromEnv } from './harness.js';
import type { RunResult } from '../testbed/tools.js';

const id = suffix();
const NS = `rmd-adm-${id}`;

describe('the approval admission policy', () => {
  const tb = testbedFromEnv();
  let chart: InstalledChart;
  let saKubeconfig: string;
  let unguard: (() => Promise<void>) | undefined;
  let n = 0;

  function requestDoc(name: string, extra: Record<string, unknown> = {}) {
    return {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'RemediationRequest',
      metadata: { name, namespace: NS },
      spec: {
        policyRef: { name: 'restart-nginx' },
        alert: { source: 'generic', name: 'NginxDown', labels: { instance_id: 'i-0123456789abcdef0' } },
        ...extra,
      },
    };
  }

  const create = (user: string, doc: object) => tb.kubectl(['create', '-f', '-'], { user, input: JSON.stringify(doc) });
  const patch = (user: string, name: string, body: object, type = 'merge') =>
    tb.kubectl(['patch', 'remediationrequest', name, '-n', NS, '--type', type, '-p', JSON.stringify(body)], { user });
  /** The digest of the plan every assessed request carries here (as the controller would have rendered it). */
  const DIGEST = `sha256:${'ab'.repeat(32)}`;
  const approval = (decision: 'Approved' | 'Rejected', approver: string, reason?: string, planDigest = DIGEST) => ({
    spec: { approval: { decision, approver, ...(reason ? { reason } : {}), ...(decision === 'Approved' ? { planDigest } : {}) } },
  });

  /** A request created honestly by `requester`, with the risk the controller would have assessed. */
  async function assessed(requester: string, risk: 'Low' | 'Medium' | 'High' | 'Critical'): Promise<string> {
    const name = `rr-${++n}`;
    must(await create(requester, requestDoc(name, { requestedBy: requester })), `create ${name}`);
    const plan = {
      digest: DIGEST,
      runbook: { name: 'restart-service', generation: 1 },
      policyGeneration: 1,
      risk,
      targets: ['i-0123456789abcdef0'],
      region: 'eu-west-1',
    };
    await writeStatus(saKubeconfig, NS, name, { phase: 'AwaitingApproval', risk, plan });
    return name;
  }

  function refusedByPolicy(result: RunResult, message: string | RegExp): void {
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      `ValidatingAdmissionPolicy '${chart.fullname}-approvals' with binding '${chart.fullname}-approvals' denied request`,
    );
    expect(result.stderr).toMatch(message);
  }

  async function approvalOf(name: string): Promise<unknown> {
    const r = must(await tb.kubectl(['get', 'remediationrequest', name, '-n', NS, '-o', 'jsonpath={.spec.approval}']), 'read approval');
    return r.stdout ? JSON.parse(r.stdout) : undefined;
  }

  beforeAll(async () => {
    chart = await installChart(tb, { release: `adm${id}`, namespace: `rmd-adm-system-${id}`, scope: id });
    await namespace(tb, NS, { [SCOPE_LABEL]: id });
    // Status is written as the chart's ServiceAccount, the controller's identity, and no
    // other controller of the suite may write it here (see guardStatus).
    saKubeconfig = await serviceAccountKubeconfig(tb, chart);
    unguard = await guardStatus(tb, id, chart.serviceAccountUser);
    // alice and bob: editors and approvers; mallory: editor only; carol: approver only.
    for (const user of ['alice', 'bob', 'mallory']) await grant(tb, NS, user, `${chart.fullname}-editor`);
    for (const user of ['alice', 'bob', 'carol']) await grant(tb, NS, user, `${chart.fullname}-approver`);
    await waitForAdmissionPolicy(tb, NS);
  });

  afterAll(async () => {
    await unguard?.();
    await chart?.uninstall();
  });

  test("a user cannot create a request in someone else's name, or in no name", async () => {
    refusedByPolicy(
      await create('alice', requestDoc('forged-requester', { requestedBy: 'bob' })),
      'spec.requestedBy must name who creates the request: set it to "alice"',
    );
    refusedByPolicy(await create('alice', requestDoc('anonymous')), 'set it to "alice"');
    const honest = must(await create('alice', requestDoc('honest', { requestedBy: 'alice' })), 'honest create');
    expect(honest.stdout).toContain('remediationrequest.remediator.dev/honest created');
  });

  test('a request cannot be created already approved', async () => {
    const doc = requestDoc('pre-approved', {
      requestedBy: 'alice',
      approval: { decision: 'Approved', approver: 'alice', planDigest: DIGEST },
    });
    refusedByPolicy(await create('alice', doc), 'spec.approval cannot be set when a request is created');
  });

  test('a user without the approver role cannot approve (or reject), even with the right to patch', async () => {
    const name = await assessed('alice', 'Medium');
    refusedByPolicy(
      await patch('mallory', name, approval('Approved', 'mallory')),
      'user "mallory" may not approve or reject remediationrequests',
    );
    refusedByPolicy(
      await patch('mallory', name, approval('Rejected', 'mallory')),
      `that needs the "approve" verb (ClusterRole ${chart.fullname}-approver)`,
    );
    expect(await approvalOf(name)).toBeUndefined();
  });

  test("a user with the approver role cannot approve in someone else's name", async () => {
    const name = await assessed('alice', 'Medium');
    refusedByPolicy(
      await patch('carol', name, approval('Approved', 'bob')),
      'spec.approval.approver must be your own user name "carol", not "bob"',
    );
    must(await patch('carol', name, approval('Approved', 'carol', 'in my own name')), 'carol approves as carol');
    expect(await approvalOf(name)).toEqual({ decision: 'Approved', approver: 'carol', reason: 'in my own name', planDigest: DIGEST });
  });

  test.each(['High', 'Critical'] as const)('for %s risk the requester cannot approve their own request; someone else can', async (risk) => {
    const name = await assessed('alice', risk);
    refusedByPolicy(
      await patch('alice', name, approval('Approved', 'alice')),
      `${risk} risk needs four eyes: "alice" requested this remediation`,
    );
    must(await patch('bob', name, approval('Approved', 'bob')), 'bob approves');
    expect(await approvalOf(name)).toEqual({ decision: 'Approved', approver: 'bob', planDigest: DIGEST });
  });

  test('for Medium risk the requester may approve their own request, and any requester who is an approver may reject their own', async () => {
    must(await patch('alice', await assessed('alice', 'Medium'), approval('Approved', 'alice')), 'self approval of Medium');
    must(await patch('alice', await assessed('alice', 'High'), approval('Rejected', 'alice', 'false alarm')), 'self rejection of High');
  });

  test('an approval cannot be changed or removed once given', async () => {
    const name = await assessed('alice', 'High');
    must(await patch('bob', name, approval('Approved', 'bob')), 'bob approves');
    // Schema validation (the CRD's CEL rule) runs before admission, so its message is the
    // one a user sees; the policy carries the same rule for a CRD installed without it.
    const changed = await patch('bob', name, approval('Rejected', 'bob'));
    expect(changed.code).not.toBe(0);
    expect(changed.stderr).toContain('spec.approval cannot be changed or removed once given');
    const overwritten = await patch('carol', name, approval('Approved', 'carol'));
    expect(overwritten.code).not.toBe(0);
    expect(overwritten.stderr).toContain('spec.approval cannot be changed or removed once given');
    const removed = await patch('bob', name, [{ op: 'remove', path: '/spec/approval' }], 'json');
    expect(removed.code).not.toBe(0);
    expect(removed.stderr).toContain('cannot be changed or removed once given');
    expect(await approvalOf(name)).toEqual({ decision: 'Approved', approver: 'bob', planDigest: DIGEST });
  });

  test('an approval waits for the risk assessment and changes nothing else in the request', async () => {
    const name = `rr-${++n}`;
    must(await create('alice', requestDoc(name, { requestedBy: 'alice' })), 'create');
    refusedByPolicy(await patch('bob', name, approval('Approved', 'bob')), "the controller has not assessed this request's risk yet");
    const assessedName = await assessed('alice', 'High');
    const sneaky = { spec: { targets: ['i-0fedcba9876543210'], approval: { decision: 'Approved', approver: 'bob', planDigest: DIGEST } } };
    refusedByPolicy(await patch('bob', assessedName, sneaky), 'an approval must not change anything else in spec');
  });

  test('an approval names the stored plan: another digest is refused, whatever status the request carries', async () => {
    const name = await assessed('alice', 'Medium');
    const other = `sha256:${'cd'.repeat(32)}`;
    refusedByPolicy(
      await patch('bob', name, approval('Approved', 'bob', undefined, other)),
      `planDigest must be the digest of the plan in status (${DIGEST})`,
    );
    // A forged status in the same write is reset to the stored one before admission.
    const forged = { ...approval('Approved', 'bob', undefined, other), status: { plan: { digest: other } } };
    refusedByPolicy(await patch('bob', name, forged), 'planDigest must be the digest of the plan in status');
    must(await patch('bob', name, approval('Approved', 'bob')), 'bob approves the stored plan');
  });

  test('only the approver verb may set or change the circuit-breaker reset annotation', async () => {
    const policy = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'AlertPolicy',
      metadata: { name: 'breaker', namespace: NS, annotations: { 'remediator.dev/changed-by': 'mallory' } },
      spec: { targets: { fromLabels: ['instance_id'] }, runbookRef: { name: 'restart-service' } },
    };
    must(await create('mallory', policy), 'create policy');
    const reset = (user: string, at: string, token = '') =>
      tb.kubectl(
        [
          'annotate',
          '--overwrite',
          'alertpolicy',
          'breaker',
          '-n',
          NS,
          `remediator.dev/circuit-reset-at=${at}`,
          ...(token ? [`remediator.dev/circuit-reset-token=${token}`] : []),
        ],
        { user },
      );
    refusedByPolicy(await reset('mallory', '9999-12-31T00:00:00Z'), 'may not reset the circuit breaker of AlertPolicy breaker');
    // The verb alone is not enough: a reset names the token the controller issued in status (ADR 0011).
    refusedByPolicy(await reset('alice', new Date().toISOString()), 'must carry the token in status.circuitBreaker.resetToken');
    const token = `0123456789abcdef.${'ab'.repeat(16)}`;
    await writeStatus(saKubeconfig, NS, 'breaker', { circuitBreaker: { open: true, resetToken: token } }, 'alertpolicies');
    refusedByPolicy(await reset('alice', new Date().toISOString(), 'guessed'), 'must carry the token');
    must(await reset('alice', new Date().toISOString(), token), 'alice (editor and approver) resets');
    const withReset = {
      ...policy,
      metadata: {
        ...policy.metadata,
        name: 'born-reset',
        annotations: { ...policy.metadata.annotations, 'remediator.dev/circuit-reset-at': '9999-12-31T00:00:00Z' },
      },
    };
    refusedByPolicy(await create('mallory', withReset), 'may not reset the circuit breaker');
  });

  test('spec.requestedBy cannot be added to a request that was created without one', async () => {
    // A request from before the policy was installed: created where no binding applied yet.
    const legacy = await namespace(tb, `rmd-adm-legacy-${id}`);
    must(
      await tb.kubectl(['create', '-f', '-'], {
        input: JSON.stringify({ ...requestDoc('legacy'), metadata: { name: 'legacy', namespace: legacy } }),
      }),
      'legacy create',
    );
    await namespace(tb, legacy, { [SCOPE_LABEL]: id });
    await grant(tb, legacy, 'mallory', `${chart.fullname}-editor`);
    const r = await tb.kubectl(
      ['patch', 'remediationrequest', 'legacy', '-n', legacy, '--type=merge', '-p', JSON.stringify({ spec: { requestedBy: 'mallory' } })],
      { user: 'mallory' },
    );
    refusedByPolicy(r, 'spec.requestedBy is recorded when a request is created and cannot be added later');
  });

  test('the policy binds only the selected namespaces', async () => {
    const elsewhere = await namespace(tb, `rmd-adm-unbound-${id}`);
    const doc = { ...requestDoc('free'), metadata: { name: 'free', namespace: elsewhere } };
    must(await tb.kubectl(['create', '-f', '-'], { input: JSON.stringify(doc) }), 'create outside the selector');
  });
});
