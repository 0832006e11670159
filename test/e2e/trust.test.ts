/**
 * The trust model (docs/security.md), attacked the way users with ordinary rights would,
 * against the real kube-apiserver (with the chart's RBAC and admission policy) and moto:
 * each numbered attack of the trust-model issue is refused, and the emulator never
 * receives a command for it.
 *
 *   mallory  namespace editor in team-a (the chart's editor role), no approver role
 *   alice    approver in team-a
 *   bob      approver and editor in team-a
 *   the admin writes Runbooks; nobody else can.
 */
import type { AlertPolicy, RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { seedInstances } from '../testbed/aws.js';
import { Resources, restartRunbook, ssmCommands, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';
import { grant, installChart, namespace, SCOPE_LABEL, suffix, waitForAdmissionPolicy, type InstalledChart } from './install-chart.js';

const REGION = 'ap-southeast-5';
const id = suffix();
const TEAM_A = `team-a-${id}`;
const TEAM_B = `team-b-${id}`;
/** Watched by the controller, but outside the admission binding's selector. */
const UNGUARDED = `unguarded-${id}`;
const TENANT_LABEL = `tenant-${id}`;

describe('trust model: what a namespace editor cannot do', () => {
  const tb = testbedFromEnv();
  const admin = new Resources(tb.admin());
  const as = (user: string) => new Resources(tb.as(user));
  let chart: InstalledChart;
  let controller: RunningController;
  let n = 0;
  // Runbooks: restart (Low, scoped to the namespace's own team tag), reboot (High, never auto).
  const RESTART = `restart-${id}`;
  const REBOOT = `reboot-${id}`;

  const start = () =>
    startController(tb, {
      region: REGION,
      namespace: [TEAM_A, UNGUARDED],
      args: ['--admission-policy-name', `${chart.fullname}-approvals`],
    });

  async function instanceOf(team: string, tags: Record<string, string> = {}): Promise<string> {
    const [iid] = await seedInstances(tb.motoEndpoint, { region: REGION, tags: { team, ...tags } });
    return iid!;
  }

  async function policy(ns: string, spec: Partial<AlertPolicy['spec']>, user = 'bob'): Promise<string> {
    const name = `p${++n}`;
    await as(user).createPolicy(ns, name, {
      targets: { fromLabels: ['instance_id'] },
      runbookRef: { name: RESTART },
      inputs: { service: '{{ labels.service }}' },
      ...spec,
    });
    return name;
  }

  async function request(
    ns: string,
    policyName: string,
    labels: Record<string, string>,
    extra: Partial<RemediationRequest['spec']> = {},
    user = 'mallory',
  ) {
    return as(user).createRequest(ns, `r${++n}`, {
      policyRef: { name: policyName },
      alert: { source: 'alertmanager', name: 'NginxDown', status: 'firing', labels: { service: 'nginx', ...labels } },
      requestedBy: user,
      ...extra,
    });
  }

  async function commandsFor(rr: RemediationRequest) {
    return (await ssmCommands(tb, REGION)).filter((c) => c.Comment === `remediator:${rr.metadata?.uid}`);
  }

  async function readyOf(ns: string, name: string) {
    return waitFor(`Ready of ${ns}/${name}`, async () => {
      const got = await admin.getPolicy(ns, name);
      const c = got.status?.conditions?.find((x) => x.type === 'Ready');
      return c && c.observedGeneration === got.metadata?.generation ? c : undefined;
    });
  }

  beforeAll(async () => {
    chart = await installChart(tb, { release: `tr${id}`, namespace: `rmd-tr-system-${id}`, scope: id });
    await namespace(tb, TEAM_A, { [SCOPE_LABEL]: id, [TENANT_LABEL]: 'true' });
    await namespace(tb, TEAM_B, { [SCOPE_LABEL]: id, [TENANT_LABEL]: 'true' });
    await namespace(tb, UNGUARDED, { [TENANT_LABEL]: 'true' });
    for (const ns of [TEAM_A, UNGUARDED]) {
      for (const user of ['mallory', 'bob']) await grant(tb, ns, user, `${chart.fullname}-editor`);
      for (const user of ['alice', 'bob']) await grant(tb, ns, user, `${chart.fullname}-approver`);
    }
    await waitForAdmissionPolicy(tb, TEAM_A);
    const tenants = { matchLabels: { [TENANT_LABEL]: 'true' } };
    await admin.createRunbook(
      RESTART,
      restartRunbook({ namespaceSelector: tenants, scope: { tagSelector: { team: '{{ namespace }}' }, maxTargets: 5 } }),
    );
    await admin.createRunbook(REBOOT, {
      minRisk: 'High',
      maxAutoApprovedRisk: 'None',
      namespaceSelector: tenants,
      scope: { tagSelector: { team: '{{ namespace }}' } },
      action: { ssm: { documentName: 'AWS-RunShellScript', parameters: [{ name: 'commands', values: ['systemctl reboot'] }] } },
    });
    controller = await start();
  });

  afterAll(async () => {
    await controller?.stop();
    await admin.deleteRunbook(RESTART);
    await admin.deleteRunbook(REBOOT);
    await chart?.uninstall();
  });

  test('1a. an editor cannot write a Runbook: what runs, and where, is the cluster admin’s', async () => {
    const doc = { apiVersion: 'remediator.dev/v1alpha1', kind: 'Runbook', metadata: { name: `evil-${id}` }, spec: restartRunbook() };
    const created = await tb.kubectl(['create', '-f', '-'], { user: 'mallory', input: JSON.stringify(doc) });
    expect(created.code).not.toBe(0);
    expect(created.stderr).toMatch(/forbidden/i);
    const patched = await tb.kubectl(['patch', 'runbook', RESTART, '--type', 'merge', '-p', '{"spec":{"namespaceSelector":{}}}'], {
      user: 'bob',
    });
    expect(patched.code).not.toBe(0);
    expect(patched.stderr).toMatch(/forbidden/i);
  });

  test('1b. a policy may not declare a risk below its runbook’s floor, nor auto-approve above its ceiling', async () => {
    const low = await policy(TEAM_A, { runbookRef: { name: REBOOT }, inputs: {}, risk: 'Low' });
    expect(await readyOf(TEAM_A, low)).toMatchObject({ status: 'False', reason: 'RiskBelowRunbookMinimum' });
    const auto = await policy(TEAM_A, { runbookRef: { name: REBOOT }, inputs: {}, risk: 'Critical', approval: { mode: 'Auto' } });
    expect(await readyOf(TEAM_A, auto)).toMatchObject({ status: 'False', reason: 'AutoApprovalNotAllowed' });
    const iid = await instanceOf(TEAM_A);
    for (const [p, reason] of [
      [low, 'RiskBelowRunbookMinimum'],
      [auto, 'AutoApprovalNotAllowed'],
    ] as const) {
      const rr = await request(TEAM_A, p, { instance_id: iid });
      const done = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Failed');
      expect(done.status?.reason).toBe(reason);
      expect(await commandsFor(rr)).toHaveLength(0);
    }
  });

  test('1c. a namespace not granted a runbook cannot use it', async () => {
    const other = `other-${id}`;
    await admin.createRunbook(other, restartRunbook({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': TEAM_B } } }));
    try {
      const p = await policy(TEAM_A, { runbookRef: { name: other } });
      expect(await readyOf(TEAM_A, p)).toMatchObject({ status: 'False', reason: 'RunbookNotGranted' });
      const rr = await request(TEAM_A, p, { instance_id: await instanceOf(TEAM_A) });
      expect((await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Failed')).status?.reason).toBe('RunbookNotGranted');
      expect(await commandsFor(rr)).toHaveLength(0);
    } finally {
      await admin.deleteRunbook(other);
    }
  });

  test('1d. another team’s instance is outside the runbook scope, whether named in spec.targets or by an alert label', async () => {
    const p = await policy(TEAM_A, {});
    const theirs = await instanceOf(TEAM_B);
    const byTargets = await request(TEAM_A, p, { instance_id: theirs }, { targets: [theirs] });
    const byLabel = await request(TEAM_A, p, { instance_id: theirs });
    for (const rr of [byTargets, byLabel]) {
      const done = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Failed');
      expect(done.status?.reason).toBe('TargetOutOfScope');
      expect(done.status?.message).toContain(theirs);
      expect(done.status?.message).toContain(`team=${TEAM_A}`);
      expect(await commandsFor(rr)).toHaveLength(0);
    }
  });

  test('2. spec.targets can only narrow: an instance outside the policy’s own tag selector or label sources is refused', async () => {
    const web = await instanceOf(TEAM_A, { role: 'web' });
    const db = await instanceOf(TEAM_A, { role: 'db' });
    const bySelector = await policy(TEAM_A, { targets: { tagSelector: { role: 'web' } } });
    const rr = await request(TEAM_A, bySelector, {}, { targets: [db] });
    const done = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Failed');
    expect(done.status?.reason).toBe('TargetOutOfScope');
    expect(done.status?.message).toContain(db);
    expect(await commandsFor(rr)).toHaveLength(0);

    const byLabels = await policy(TEAM_A, {});
    const widened = await request(TEAM_A, byLabels, { instance_id: web }, { targets: [web, db] });
    const refused = await admin.waitForPhase(TEAM_A, widened.metadata!.name!, 'Failed');
    expect(refused.status?.reason).toBe('TargetNotAllowed');
    expect(refused.status?.message).toContain(db);
    expect(await commandsFor(widened)).toHaveLength(0);
  });

  test('3 and 5. an approval carries over neither to a changed plan nor past the deadline', async () => {
    const iid = await instanceOf(TEAM_A);
    const changed = await policy(TEAM_A, { risk: 'High' });
    const late = await policy(TEAM_A, { risk: 'High', approval: { mode: 'Manual', timeout: '4s' } });
    const a = await request(TEAM_A, changed, { instance_id: iid });
    const b = await request(TEAM_A, late, { instance_id: iid });
    await admin.waitForPhase(TEAM_A, a.metadata!.name!, 'AwaitingApproval');
    await admin.waitForPhase(TEAM_A, b.metadata!.name!, 'AwaitingApproval');
    // While the controller is down, alice approves both; then the team changes what a runs.
    await controller.stop();
    try {
      await as('alice').decide(TEAM_A, a.metadata!.name!, 'alice');
      await as('alice').decide(TEAM_A, b.metadata!.name!, 'alice');
      await as('bob').patchPolicySpec(TEAM_A, changed, { risk: 'Critical', inputs: { service: 'php-fpm' } });
      await new Promise((r) => setTimeout(r, 4_500));
    } finally {
      controller = await start();
    }
    const ranA = await admin.waitForPhase(TEAM_A, a.metadata!.name!, 'Failed');
    expect(ranA.status?.reason).toBe('PlanChanged');
    const ranB = await admin.waitForPhase(TEAM_A, b.metadata!.name!, 'Expired');
    expect(ranB.status?.message).toContain('too late');
    expect(await commandsFor(a)).toHaveLength(0);
    expect(await commandsFor(b)).toHaveLength(0);
  });

  test('4. where the admission policy does not guard the namespace, an approval is a string: it is not honoured', async () => {
    const iid = await instanceOf(UNGUARDED);
    const p = await policy(UNGUARDED, { risk: 'High' });
    // Forged at creation: "requested by bob, approved by alice" — no admission policy stops it here.
    const rr = await request(
      UNGUARDED,
      p,
      { instance_id: iid },
      { approval: { decision: 'Approved', approver: 'alice', planDigest: `sha256:${'0'.repeat(64)}` } },
      'mallory',
    );
    // An approval there before the plan was even rendered was not written against it: it never counts (ADR 0011).
    const refused = await admin.waitForPhase(UNGUARDED, rr.metadata!.name!, 'Failed');
    expect(refused.status?.reason).toBe('ApprovalNotProven');
    expect(await commandsFor(rr)).toHaveLength(0);
    // Given after the plan, it is not honoured either: the request waits (and would expire).
    const later = await request(UNGUARDED, p, { instance_id: iid });
    await admin.waitForPhase(UNGUARDED, later.metadata!.name!, 'AwaitingApproval');
    await as('mallory').decide(UNGUARDED, later.metadata!.name!, 'alice');
    const waiting = await waitFor('the approval to be refused as unguarded', async () => {
      const got = await admin.getRequest(UNGUARDED, later.metadata!.name!);
      const c = got.status?.conditions?.find((x) => x.type === 'Approved');
      return c?.reason === 'AdmissionPolicyNotEnforced' ? got : undefined;
    });
    expect(waiting.status?.phase).toBe('AwaitingApproval');
    expect(waiting.status?.message).toContain('not honoured');
    expect(await commandsFor(later)).toHaveLength(0);
  });

  test('6. an editor cannot reset a circuit breaker; only the approver verb can', async () => {
    const p = await policy(TEAM_A, { safety: { circuitBreaker: { maxConsecutiveFailures: 1 } } });
    const future = await tb.kubectl(['annotate', 'alertpolicy', p, '-n', TEAM_A, 'remediator.dev/circuit-reset-at=9999-12-31T00:00:00Z'], {
      user: 'mallory',
    });
    expect(future.code).not.toBe(0);
    expect(future.stderr).toContain('may not reset the circuit breaker');
    // The approver verb is not enough: a reset carries the token the controller issued in status (ADR 0011).
    const noToken = await tb.kubectl(
      ['annotate', 'alertpolicy', p, '-n', TEAM_A, `remediator.dev/circuit-reset-at=${new Date().toISOString()}`],
      { user: 'bob' },
    );
    expect(noToken.code).not.toBe(0);
    expect(noToken.stderr).toContain('must carry the token');
    const token = await waitFor('a reset token', async () => (await admin.getPolicy(TEAM_A, p)).status?.circuitBreaker?.resetToken);
    const byApprover = await tb.kubectl(
      [
        'annotate',
        'alertpolicy',
        p,
        '-n',
        TEAM_A,
        `remediator.dev/circuit-reset-at=${new Date().toISOString()}`,
        `remediator.dev/circuit-reset-token=${token}`,
      ],
      { user: 'bob' },
    );
    expect(byApprover.stderr).toBe('');
    expect(byApprover.code).toBe(0);
  });

  test('7. a label value that is an option or a path upwards never reaches the command', async () => {
    const iid = await instanceOf(TEAM_A);
    const p = await policy(TEAM_A, {});
    for (const value of ['--help', '../../etc/shadow']) {
      const rr = await request(TEAM_A, p, { instance_id: iid, service: value });
      const done = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Failed');
      expect(done.status?.reason).toBe('InvalidParameter');
      expect(await commandsFor(rr)).toHaveLength(0);
    }
  });

  test('8. the approver approves the rendered plan: a stale or forged digest is refused, a changed alert is planned again', async () => {
    const iid = await instanceOf(TEAM_A);
    const p = await policy(TEAM_A, { risk: 'Medium' });
    const rr = await request(TEAM_A, p, { instance_id: iid });
    const planned = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'AwaitingApproval');
    const first = planned.status?.plan;
    expect(first?.ssm?.parameters).toEqual({ commands: ['systemctl restart nginx'] });
    expect(first?.targets).toEqual([iid]);
    // The requester changes the alert after the plan was rendered: a new plan, a new digest.
    await as('mallory').updateRequestSpec(TEAM_A, rr.metadata!.name!, (spec) => ({
      ...spec,
      alert: { ...spec.alert, labels: { ...spec.alert.labels, service: 'sshd' } },
    }));
    const replanned = await waitFor('a new plan', async () => {
      const got = await admin.getRequest(TEAM_A, rr.metadata!.name!);
      return got.status?.plan?.digest !== first?.digest && got.status?.phase === 'AwaitingApproval' ? got : undefined;
    });
    expect(replanned.status?.plan?.ssm?.parameters).toEqual({ commands: ['systemctl restart sshd'] });
    // alice approving what she saw before is refused by the API server.
    await expect(
      as('alice').patchApproval(TEAM_A, rr.metadata!.name!, { decision: 'Approved', approver: 'alice', planDigest: first!.digest }),
    ).rejects.toMatchObject({ body: expect.stringContaining('planDigest must be the digest of the plan in status') });
    await as('alice').decide(TEAM_A, rr.metadata!.name!, 'alice');
    const done = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Succeeded');
    expect(done.status?.execution?.ssm?.parameters).toEqual({ commands: ['systemctl restart sshd'] });
    const [cmd] = await commandsFor(rr);
    expect(cmd?.Parameters).toEqual({ commands: ['systemctl restart sshd'] });
  });
});
