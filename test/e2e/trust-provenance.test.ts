/**
 * A decision counts only if it was checked when it was made (ADR 0011), attacked the way
 * users with ordinary rights would, against the real kube-apiserver (the chart's RBAC and
 * admission policy) and moto: approvals and breaker resets written while admission did
 * not cover the namespace, policies re-created or swapped under an approval, and an
 * approver who changed the policy himself. Each attack is refused, and the emulator never
 * receives a SendCommand (nor a Publish) for it.
 *
 *   mallory  namespace editor (the chart's editor role), no approver role
 *   alice    approver only (the chart's approver role)
 *   bob      approver and editor
 *   the admin writes Runbooks and the admission binding, and labels namespaces.
 */
import type { AlertPolicy, RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { seedInstances } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy } from '../testbed/faultproxy.js';
import { Resources, restartRunbook, ssmCommands, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';
import { grant, installChart, must, namespace, SCOPE_LABEL, suffix, waitForAdmissionPolicy, type InstalledChart } from './install-chart.js';

const REGION = 'mx-central-1';
const id = suffix();
/** Selected by the admission binding from the start. */
const TEAM = `prov-${id}`;
/** Granted the runbooks, watched by the controller, but selected by the binding only later. */
const LATE = `prov-late-${id}`;
const TENANT_LABEL = `prov-tenant-${id}`;

describe('trust provenance: a decision counts only if admission checked it when it was written', () => {
  const tb = testbedFromEnv();
  const admin = new Resources(tb.admin());
  const as = (user: string) => new Resources(tb.as(user));
  let chart: InstalledChart;
  let proxy: FaultProxy;
  let controller: RunningController | undefined;
  let n = 0;
  const REBOOT = `prov-reboot-${id}`;
  const RESTART = `prov-restart-${id}`;

  const start = async () => {
    controller = await startController(tb, {
      region: REGION,
      namespace: [TEAM, LATE],
      name: `provenance-${id}`,
      awsEndpoint: proxy.endpoint,
      args: ['--admission-policy-name', `${chart.fullname}-approvals`],
    });
  };
  const stop = async () => {
    await controller?.stop();
    controller = undefined;
  };

  async function instanceIn(ns: string): Promise<string> {
    const [iid] = await seedInstances(tb.motoEndpoint, { region: REGION, tags: { team: ns } });
    return iid!;
  }

  /** A High risk reboot policy (manual approval), written by `user` (recorded as its writer). */
  async function rebootPolicy(ns: string, spec: Partial<AlertPolicy['spec']> = {}, user = 'mallory', name = `p${++n}`): Promise<string> {
    await as(user).createPolicy(ns, name, {
      targets: { fromLabels: ['instance_id'] },
      runbookRef: { name: REBOOT },
      risk: 'High',
      ...spec,
    });
    return name;
  }

  async function request(ns: string, policyName: string, user = 'mallory'): Promise<RemediationRequest> {
    return as(user).createRequest(ns, `r${++n}`, {
      policyRef: { name: policyName },
      alert: { source: 'alertmanager', name: 'HostDown', status: 'firing', labels: { instance_id: await instanceIn(ns) } },
      requestedBy: user,
    });
  }

  /** The emulator received nothing for this request: no command carries its uid, and nothing was published. */
  async function nothingSent(rr: RemediationRequest): Promise<void> {
    const commands = (await ssmCommands(tb, REGION)).filter((c) => c.Comment?.startsWith(`remediator:${rr.metadata?.uid}`));
    expect(commands).toHaveLength(0);
    expect(proxy.calls('SendCommand').filter((c) => c.body.includes(`remediator:${rr.metadata?.uid}`))).toHaveLength(0);
    expect(proxy.calls('Publish')).toHaveLength(0);
  }

  /** mallory writes "approved by alice" naming the plan in status: only a gap in admission lets her. */
  async function forge(ns: string, name: string): Promise<void> {
    const digest = (await admin.getRequest(ns, name)).status?.plan?.digest;
    await as('mallory').patchApproval(ns, name, { decision: 'Approved', approver: 'alice', reason: 'forged', planDigest: digest });
  }

  const binding = () => chart.find('ValidatingAdmissionPolicyBinding');
  async function deleteBinding(): Promise<void> {
    must(await tb.kubectl(['delete', 'validatingadmissionpolicybinding', binding().metadata.name, '--wait=true']), 'delete the binding');
  }
  async function restoreBinding(ns: string): Promise<void> {
    must(await tb.kubectl(['apply', '-f', '-'], { input: JSON.stringify(binding()) }), 're-create the binding');
    await waitForAdmissionPolicy(tb, ns);
  }

  /** Waits until the API server no longer enforces the policy in `ns` (the reverse of waitForAdmissionPolicy). */
  async function waitUnenforced(ns: string): Promise<void> {
    const doc = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'RemediationRequest',
      metadata: { name: 'gap-probe', namespace: ns },
      spec: { policyRef: { name: 'probe' }, alert: { source: 'generic', name: 'Probe' }, requestedBy: 'not-the-caller' },
    };
    await waitFor(`admission to stop in ${ns}`, async () => {
      const probe = await tb.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(doc) });
      return probe.code === 0 || undefined;
    });
  }

  async function labelNamespace(ns: string, value: string | undefined): Promise<void> {
    const label = value === undefined ? `${SCOPE_LABEL}-` : `${SCOPE_LABEL}=${value}`;
    must(await tb.kubectl(['label', '--overwrite', 'namespace', ns, label]), `label ${ns}`);
  }

  async function waitForCondition(ns: string, name: string, reason: string): Promise<RemediationRequest> {
    return waitFor(`${ns}/${name} Approved=${reason}`, async () => {
      const got = await admin.getRequest(ns, name);
      return got.status?.conditions?.find((c) => c.type === 'Approved')?.reason === reason ? got : undefined;
    });
  }

  async function recreatePolicy(ns: string, name: string, spec: Partial<AlertPolicy['spec']>, user = 'mallory'): Promise<void> {
    must(await tb.kubectl(['delete', 'alertpolicy', name, '-n', ns, '--wait=true'], { user }), 'delete the policy');
    await rebootPolicy(ns, spec, user, name);
  }

  beforeAll(async () => {
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
    chart = await installChart(tb, { release: `pv${id}`, namespace: `rmd-pv-system-${id}`, scope: id });
    await namespace(tb, TEAM, { [SCOPE_LABEL]: id, [TENANT_LABEL]: 'true' });
    await namespace(tb, LATE, { [TENANT_LABEL]: 'true' });
    for (const ns of [TEAM, LATE]) {
      for (const user of ['mallory', 'bob']) await grant(tb, ns, user, `${chart.fullname}-editor`);
      for (const user of ['alice', 'bob']) await grant(tb, ns, user, `${chart.fullname}-approver`);
    }
    await waitForAdmissionPolicy(tb, TEAM);
    const tenants = { matchLabels: { [TENANT_LABEL]: 'true' } };
    await admin.createRunbook(REBOOT, {
      minRisk: 'High',
      maxAutoApprovedRisk: 'None',
      namespaceSelector: tenants,
      scope: { tagSelector: { team: '{{ namespace }}' } },
      action: { ssm: { documentName: 'AWS-RunShellScript', parameters: [{ name: 'commands', values: ['systemctl reboot'] }] } },
    });
    await admin.createRunbook(
      RESTART,
      restartRunbook({
        namespaceSelector: tenants,
        inputs: [],
        scope: { tagSelector: { team: '{{ namespace }}' } },
        action: { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart nginx'] }] } },
      }),
    );
    await start();
  }, 120_000);

  afterAll(async () => {
    await stop();
    await proxy?.stop();
    await admin.deleteRunbook(REBOOT);
    await admin.deleteRunbook(RESTART);
    await chart?.uninstall();
  });

  test('1a. an approval forged before the namespace was covered does not count once the admin onboards it', async () => {
    const p = await rebootPolicy(LATE);
    const rr = await request(LATE, p);
    await admin.waitForPhase(LATE, rr.metadata!.name!, 'AwaitingApproval');
    // Nothing checks writes here yet: mallory approves in alice's name, naming the plan in status.
    await forge(LATE, rr.metadata!.name!);
    await waitForCondition(LATE, rr.metadata!.name!, 'AdmissionPolicyNotEnforced');
    // The admin onboards the namespace, as docs/security.md says: by labelling it.
    await labelNamespace(LATE, id);
    await waitForAdmissionPolicy(tb, LATE);
    const done = await admin.waitForPhase(LATE, rr.metadata!.name!, 'Failed');
    expect(done.status?.reason).toBe('ApprovalNotProven');
    await nothingSent(rr);
  }, 120_000);

  test('1b. an approval forged while the binding was deleted (controller running) does not count once it is back', async () => {
    const p = await rebootPolicy(TEAM);
    const rr = await request(TEAM, p);
    await admin.waitForPhase(TEAM, rr.metadata!.name!, 'AwaitingApproval');
    await deleteBinding();
    try {
      await waitUnenforced(TEAM);
      await forge(TEAM, rr.metadata!.name!);
    } finally {
      await restoreBinding(TEAM);
    }
    const done = await admin.waitForPhase(TEAM, rr.metadata!.name!, 'Failed');
    expect(done.status?.reason).toBe('ApprovalNotProven');
    await nothingSent(rr);
  }, 120_000);

  test('1c. the same with the controller down during the gap', async () => {
    const p = await rebootPolicy(TEAM);
    const rr = await request(TEAM, p);
    await admin.waitForPhase(TEAM, rr.metadata!.name!, 'AwaitingApproval');
    await stop();
    try {
      await deleteBinding();
      try {
        await waitUnenforced(TEAM);
        await forge(TEAM, rr.metadata!.name!);
      } finally {
        await restoreBinding(TEAM);
      }
    } finally {
      await start();
    }
    const done = await admin.waitForPhase(TEAM, rr.metadata!.name!, 'Failed');
    expect(done.status?.reason).toBe('ApprovalNotProven');
    expect(done.status?.message).toContain('admission enforcement changed');
    await nothingSent(rr);
  }, 120_000);

  test('1c′. a namespace unlabelled and labelled again while the controller is down: same binding, still refused', async () => {
    const p = await rebootPolicy(TEAM);
    const rr = await request(TEAM, p);
    await admin.waitForPhase(TEAM, rr.metadata!.name!, 'AwaitingApproval');
    await stop();
    try {
      await labelNamespace(TEAM, undefined);
      try {
        await waitUnenforced(TEAM);
        await forge(TEAM, rr.metadata!.name!);
      } finally {
        await labelNamespace(TEAM, id);
        await waitForAdmissionPolicy(tb, TEAM);
      }
    } finally {
      await start();
    }
    const done = await admin.waitForPhase(TEAM, rr.metadata!.name!, 'Failed');
    expect(done.status?.reason).toBe('ApprovalNotProven');
    await nothingSent(rr);
  }, 120_000);

  test('1d. a breaker reset set during a gap does not close the breaker after it; the approver resets it with the token', async () => {
    const p = `breaker-${id}`;
    await as('mallory').createPolicy(TEAM, p, {
      targets: { fromLabels: ['instance_id'] },
      runbookRef: { name: RESTART },
      safety: { circuitBreaker: { maxConsecutiveFailures: 1 } },
    });
    proxy.addRule({
      kind: 'rewrite',
      operation: 'GetCommandInvocation',
      transform: (body: Record<string, unknown>) => ({ ...body, Status: 'Failed', StatusDetails: 'Failed', ResponseCode: 1 }),
    });
    let opened: AlertPolicy;
    try {
      const first = await request(TEAM, p);
      await admin.waitForPhase(TEAM, first.metadata!.name!, 'Failed');
      opened = await waitFor('the breaker to open, with a reset token', async () => {
        const got = await admin.getPolicy(TEAM, p);
        return got.status?.circuitBreaker?.open && got.status.circuitBreaker.resetToken ? got : undefined;
      });
    } finally {
      proxy.clearRules();
    }
    const token = opened.status!.circuitBreaker!.resetToken!;
    // mallory may not reset it while admission holds: no approve verb.
    const annotate = (user: string, at: string, tok: string) =>
      tb.kubectl(
        [
          'annotate',
          '--overwrite',
          'alertpolicy',
          p,
          '-n',
          TEAM,
          `remediator.dev/circuit-reset-at=${at}`,
          `remediator.dev/circuit-reset-token=${tok}`,
        ],
        { user },
      );
    const refused = await annotate('mallory', new Date().toISOString(), token);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('may not reset the circuit breaker');
    // The gap: the binding is deleted; mallory resets with the very token in status.
    await deleteBinding();
    try {
      await waitUnenforced(TEAM);
      must(await annotate('mallory', new Date().toISOString(), token), 'mallory resets during the gap');
    } finally {
      await restoreBinding(TEAM);
    }
    const after = await waitFor('a new reset token under the new binding', async () => {
      const got = await admin.getPolicy(TEAM, p);
      const t = got.status?.circuitBreaker?.resetToken;
      return t && t !== token ? got : undefined;
    });
    expect(after.status?.circuitBreaker?.open).toBe(true);
    const blocked = await request(TEAM, p);
    expect((await admin.waitForPhase(TEAM, blocked.metadata!.name!, 'Skipped')).status?.reason).toBe('CircuitOpen');
    await nothingSent(blocked);
    // The old token no longer passes admission either.
    const stale = await annotate('alice', new Date().toISOString(), token);
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toContain('must carry the token');
    // alice, an approver and nothing else, resumes it with the current token (item 8: the role allows it).
    must(await annotate('alice', new Date(Date.now() + 1_000).toISOString(), after.status!.circuitBreaker!.resetToken!), 'alice resumes');
    await waitFor('the breaker to close', async () => (await admin.getPolicy(TEAM, p)).status?.circuitBreaker?.open === false || undefined);
    const runs = await request(TEAM, p);
    await admin.waitForPhase(TEAM, runs.metadata!.name!, 'Succeeded');
  }, 180_000);

  test('2a. approved under a dry-run policy; the editor re-creates it without dryRun while the controller is down: nothing runs', async () => {
    const p = await rebootPolicy(TEAM, { safety: { dryRun: true } });
    const rr = await request(TEAM, p);
    const planned = await admin.waitForPhase(TEAM, rr.metadata!.name!, 'AwaitingApproval');
    expect(planned.status?.plan).toMatchObject({ dryRun: true, policy: { name: p } });
    await stop();
    try {
      await as('alice').decide(TEAM, rr.metadata!.name!, 'alice');
      await recreatePolicy(TEAM, p, {});
    } finally {
      await start();
    }
    const done = await admin.waitForPhase(TEAM, rr.metadata!.name!, 'Failed');
    expect(done.status?.reason).toBe('PlanChanged');
    expect(done.status?.message).toContain('re-created');
    await nothingSent(rr);
  }, 120_000);

  test('2b. approved after the timeout; the editor re-creates the policy with a 24 h timeout while the controller is down: expired', async () => {
    const p = await rebootPolicy(TEAM, { approval: { mode: 'Manual', timeout: '5s' } });
    const rr = await request(TEAM, p);
    await admin.waitForPhase(TEAM, rr.metadata!.name!, 'AwaitingApproval');
    await stop();
    try {
      await new Promise((r) => setTimeout(r, 6_000));
      await as('alice').decide(TEAM, rr.metadata!.name!, 'alice');
      await recreatePolicy(TEAM, p, { approval: { mode: 'Manual', timeout: '24h' } });
    } finally {
      await start();
    }
    const done = await admin.waitForPhase(TEAM, rr.metadata!.name!, 'Expired');
    expect(done.status?.message).toContain('too late');
    await nothingSent(rr);
  }, 120_000);

  test('2c. spec.policyRef switched from a dry-run policy to an identical live one: a new plan, and the old approval is refused', async () => {
    const dry = await rebootPolicy(TEAM, { safety: { dryRun: true } });
    const live = await rebootPolicy(TEAM, {});
    const rr = await request(TEAM, dry);
    const planned = await admin.waitForPhase(TEAM, rr.metadata!.name!, 'AwaitingApproval');
    const reviewed = planned.status!.plan!.digest;
    await as('mallory').updateRequestSpec(TEAM, rr.metadata!.name!, (spec) => ({ ...spec, policyRef: { name: live } }));
    const replanned = await waitFor('the request planned again under the live policy', async () => {
      const got = await admin.getRequest(TEAM, rr.metadata!.name!);
      return got.status?.observedGeneration === got.metadata?.generation && got.status?.phase === 'AwaitingApproval' ? got : undefined;
    });
    expect(replanned.status?.plan?.digest).not.toBe(reviewed);
    expect(replanned.status?.plan?.dryRun).toBe(false);
    // alice approves what she reviewed (the dry run): the API server refuses it.
    await expect(
      as('alice').patchApproval(TEAM, rr.metadata!.name!, { decision: 'Approved', approver: 'alice', planDigest: reviewed }),
    ).rejects.toMatchObject({ body: expect.stringContaining('planDigest must be the digest of the plan in status') });
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await admin.getRequest(TEAM, rr.metadata!.name!)).status?.phase).toBe('AwaitingApproval');
    await nothingSent(rr);
  }, 120_000);

  test('7c. four eyes: bob changes the policy, then may not approve the High request under it', async () => {
    const p = await rebootPolicy(TEAM, {}, 'mallory');
    // A policy change must record its writer: bob cannot hide behind someone else's name, nor leave it out.
    const hidden = await tb.kubectl(
      ['patch', 'alertpolicy', p, '-n', TEAM, '--type', 'merge', '-p', JSON.stringify({ spec: { approval: { timeout: '2h' } } })],
      { user: 'bob' },
    );
    expect(hidden.code).not.toBe(0);
    expect(hidden.stderr).toContain('remediator.dev/changed-by');
    const disguised = await tb.kubectl(
      [
        'patch',
        'alertpolicy',
        p,
        '-n',
        TEAM,
        '--type',
        'merge',
        '-p',
        JSON.stringify({ metadata: { annotations: { 'remediator.dev/changed-by': 'mallory' } }, spec: { approval: { timeout: '2h' } } }),
      ],
      { user: 'bob' },
    );
    expect(disguised.code).not.toBe(0);
    await as('bob').patchPolicySpec(TEAM, p, { approval: { mode: 'Manual', timeout: '2h' } });
    const rr = await request(TEAM, p);
    const planned = await admin.waitForPhase(TEAM, rr.metadata!.name!, 'AwaitingApproval');
    expect(planned.status?.plan?.policy?.changedBy).toBe('bob');
    await expect(as('bob').decide(TEAM, rr.metadata!.name!, 'bob')).rejects.toMatchObject({
      body: expect.stringContaining('last changed the policy'),
    });
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await admin.getRequest(TEAM, rr.metadata!.name!)).status?.phase).toBe('AwaitingApproval');
    await nothingSent(rr);
    // Someone else may.
    await as('alice').decide(TEAM, rr.metadata!.name!, 'alice');
    await admin.waitForPhase(TEAM, rr.metadata!.name!, 'Succeeded');
  }, 120_000);

  test('8. the approver role may resume a breaker (patch on policies), and the docs say so', async () => {
    const can = await tb.kubectl(['auth', 'can-i', 'patch', 'alertpolicies.remediator.dev', '-n', TEAM], { user: 'alice' });
    expect(can.stdout.trim()).toBe('yes');
    const approve = await tb.kubectl(['auth', 'can-i', 'approve', 'remediationrequests.remediator.dev', '-n', TEAM], { user: 'alice' });
    expect(approve.stdout.trim()).toBe('yes');
  });
});
