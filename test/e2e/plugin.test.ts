/**
 * The kubectl plugin as users run it: an executable `kubectl-remediator` on PATH that
 * kubectl dispatches `kubectl remediator ...` to, talking to the real API server as the
 * kubeconfig's user. approve and reject record that user (learnt from a
 * SelfSubjectReview) as the approver; the shipped admission policy's refusals reach
 * the user word for word, and the plugin's own checks say what to do.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan, RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { planDigest } from '../../src/controllers/plan-render.js';
import { repoRoot } from '../testbed/binaries.js';
import {
  grant,
  guardStatus,
  installChart,
  must,
  namespace,
  plugin,
  SCOPE_LABEL,
  serviceAccountKubeconfig,
  suffix,
  writeStatus,
  type InstalledChart,
  waitForAdmissionPolicy,
} from './install-chart.js';
import { Resources, restartRunbook, testbedFromEnv } from './harness.js';

const id = suffix();
const NS = `rmd-plugin-${id}`;
const RUNBOOK = `restart-service-plugin-${id}`;

/** The plan the controller would store for a request of `risk` (with its real digest). */
function plan(risk: Plan['risk']): Plan {
  const body: Omit<Plan, 'digest'> = {
    runbook: { name: RUNBOOK, generation: 1 },
    policyGeneration: 1,
    risk,
    targets: ['i-0123456789abcdef0'],
    region: 'eu-west-1',
    ssm: {
      documentName: 'AWS-RunShellScript',
      parameters: { commands: ['systemctl restart nginx'] },
      timeoutSeconds: 600,
      maxConcurrency: '50',
      maxErrors: '0',
    },
  };
  return { digest: planDigest(body), ...body };
}

describe('kubectl remediator', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  let chart: InstalledChart;
  let saKubeconfig: string;
  let unguard: (() => Promise<void>) | undefined;

  async function request(requester: string, name: string, status: Record<string, unknown>): Promise<void> {
    const doc = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'RemediationRequest',
      metadata: { name, namespace: NS },
      spec: {
        policyRef: { name: 'restart-nginx' },
        requestedBy: requester,
        alert: { source: 'alertmanager', name: 'NginxDown', labels: { instance_id: 'i-0123456789abcdef0', service: 'nginx' } },
      },
    };
    must(await tb.kubectl(['create', '-f', '-'], { user: requester, input: JSON.stringify(doc) }), `create ${name}`);
    // The controller's part (status subresource), written by the admin here.
    await writeStatus(saKubeconfig, NS, name, status);
  }

  const awaiting = (risk: Plan['risk']) => ({
    phase: 'AwaitingApproval',
    reason: 'ApprovalRequired',
    risk,
    targets: ['i-0123456789abcdef0'],
    targetCount: 1,
    plan: plan(risk),
  });

  beforeAll(async () => {
    chart = await installChart(tb, { release: `plg${id}`, namespace: `rmd-plugin-system-${id}`, scope: id });
    await namespace(tb, NS, { [SCOPE_LABEL]: id });
    await waitForAdmissionPolicy(tb, NS);
    await res.createRunbook(RUNBOOK, restartRunbook());
    // Status is written as the chart's ServiceAccount, the controller's identity, and no
    // other controller of the suite may write it here (see guardStatus).
    saKubeconfig = await serviceAccountKubeconfig(tb, chart);
    unguard = await guardStatus(tb, id, chart.serviceAccountUser);
    for (const user of ['alice', 'bob', 'mallory']) await grant(tb, NS, user, `${chart.fullname}-editor`);
    for (const user of ['alice', 'bob']) await grant(tb, NS, user, `${chart.fullname}-approver`);
    // alice may also read Events (describe shows them); bob may not.
    must(await tb.kubectl(['create', 'role', 'event-reader', '--verb=get,list,watch', '--resource=events', '-n', NS]), 'event-reader role');
    must(
      await tb.kubectl(['create', 'rolebinding', 'event-reader-alice', '--role=event-reader', '--user=alice', '-n', NS]),
      'event-reader binding',
    );
    await request('alice', 'db-reboot', awaiting('High'));
    await request('bob', 'web-restart', awaiting('Medium'));
    await request('alice', 'cache-flush', awaiting('Low'));
    await request('alice', 'done-already', {
      phase: 'Succeeded',
      risk: 'Low',
      targets: ['i-0123456789abcdef0'],
      targetCount: 1,
      message: 'all invocations succeeded',
      execution: {
        ssm: {
          documentName: 'AWS-RunShellScript',
          comment: 'remediator:x',
          intentRecordedAt: '2026-01-01T00:00:00Z',
          commandId: 'c0ffee00-0000-4000-8000-000000000001',
          invocations: [{ instanceId: 'i-0123456789abcdef0', status: 'Success', responseCode: 0, stdoutTail: 'active' }],
        },
      },
    });
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `db-reboot.${id}`, namespace: NS },
      involvedObject: { apiVersion: 'remediator.dev/v1alpha1', kind: 'RemediationRequest', name: 'db-reboot', namespace: NS },
      type: 'Normal',
      reason: 'ApprovalRequired',
      message: 'AwaitingApproval: High risk: approve with kubectl remediator approve db-reboot',
      firstTimestamp: new Date().toISOString(),
      lastTimestamp: new Date().toISOString(),
      count: 1,
      source: { component: 'remediator' },
    };
    must(await tb.kubectl(['create', '-f', '-'], { input: JSON.stringify(event) }), 'event');
  });

  afterAll(async () => {
    await res.deleteRunbook(RUNBOOK);
    await unguard?.();
    await chart?.uninstall();
  });

  test('is the package bin, found by kubectl on PATH; whoami names the kubeconfig user', async () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin['kubectl-remediator']).toBe('dist/src/cli/kubectl-remediator.js');
    expect(readFileSync(join(repoRoot(), pkg.bin['kubectl-remediator']!), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const r = must(await plugin(tb, 'alice', ['whoami']), 'whoami');
    expect(r.stdout.trim()).toBe('alice (groups: sre, system:authenticated)');
    expect(must(await plugin(tb, 'alice', ['--help']), 'help').stdout).toContain('kubectl remediator approve NAME');
  });

  test('list shows phase, risk, requester and decision; filters by phase; prints names and JSON', async () => {
    const table = must(await plugin(tb, 'alice', ['list', '-n', NS]), 'list')
      .stdout.trim()
      .split('\n');
    expect(table[0]).toMatch(/^NAME\s+POLICY\s+PHASE\s+RISK\s+REQUESTED BY\s+DECISION\s+TARGETS\s+AGE$/);
    expect(table.slice(1).map((l) => l.split(/\s+/).slice(0, 7))).toEqual([
      ['cache-flush', 'restart-nginx', 'AwaitingApproval', 'Low', 'alice', '-', '1'],
      ['db-reboot', 'restart-nginx', 'AwaitingApproval', 'High', 'alice', '-', '1'],
      ['done-already', 'restart-nginx', 'Succeeded', 'Low', 'alice', '-', '1'],
      ['web-restart', 'restart-nginx', 'AwaitingApproval', 'Medium', 'bob', '-', '1'],
    ]);
    const waiting = must(await plugin(tb, 'alice', ['list', '-n', NS, '--phase', 'AwaitingApproval', '-o', 'name']), 'list names')
      .stdout.trim()
      .split('\n');
    expect(waiting).toEqual([
      'remediationrequest.remediator.dev/cache-flush',
      'remediationrequest.remediator.dev/db-reboot',
      'remediationrequest.remediator.dev/web-restart',
    ]);
    const json = JSON.parse(must(await plugin(tb, 'bob', ['ls', '-n', NS, '-o', 'json']), 'list json').stdout) as {
      items: RemediationRequest[];
    };
    expect(json.items).toHaveLength(4);
    // RBAC applies: mallory may list here but not across the cluster.
    const everywhere = await plugin(tb, 'mallory', ['list', '-A']);
    expect(everywhere.code).toBe(1);
    expect(everywhere.stderr).toContain('cannot list resource "remediationrequests" in API group "remediator.dev" at the cluster scope');
  });

  test('describe shows the request, what it ran and its events', async () => {
    const page = must(await plugin(tb, 'alice', ['describe', 'db-reboot', '-n', NS]), 'describe').stdout;
    expect(page).toMatch(/^Phase:\s+AwaitingApproval \(ApprovalRequired\)$/m);
    expect(page).toMatch(/^Risk:\s+High$/m);
    expect(page).toMatch(/^Requested by:\s+alice$/m);
    expect(page).toMatch(/^Decision:\s+<none>$/m);
    expect(page).toMatch(/Normal\s+ApprovalRequired\s+\d+s\s+AwaitingApproval: High risk/);
    // The plan a person approves, exactly as it will run.
    expect(page).toContain(`Digest:       ${plan('High').digest}`);
    expect(page).toContain(`Runbook:      ${RUNBOOK} (generation 1); policy generation 1`);
    expect(page).toContain('systemctl restart nginx');
    const done = must(await plugin(tb, 'alice', ['describe', 'rr/done-already', '-n', NS]), 'describe done').stdout;
    expect(done).toContain('Command:      c0ffee00-0000-4000-8000-000000000001');
    expect(done).toContain('i-0123456789abcdef0: Success (exit 0)');
    // Without the right to list Events, describe still works and says so.
    expect(must(await plugin(tb, 'bob', ['describe', 'db-reboot', '-n', NS]), 'describe as bob').stdout).toContain(
      '<cannot list events in this namespace>',
    );
  });

  test('approve records the current kubeconfig user as the approver', async () => {
    const r = must(await plugin(tb, 'bob', ['approve', 'db-reboot', '-n', NS, '--reason', 'disk check done']), 'bob approves');
    // The approver is shown the plan, and the approval names its digest.
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('Plan (what an approval approves, exactly):');
    expect(r.stdout).toContain(`Digest:       ${plan('High').digest}`);
    expect(lines.at(-1)).toBe(`remediationrequest ${NS}/db-reboot approved by bob (disk check done)`);
    const rr = await res.getRequest(NS, 'db-reboot');
    expect(rr.spec.approval).toEqual({ decision: 'Approved', approver: 'bob', reason: 'disk check done', planDigest: plan('High').digest });
    expect(rr.metadata?.managedFields?.some((f) => (f as { manager?: string }).manager === 'kubectl-remediator')).toBe(true);
  });

  test('reject records the current kubeconfig user too', async () => {
    must(await plugin(tb, 'alice', ['reject', 'web-restart', '-n', NS, '--reason', 'not during the sale']), 'alice rejects');
    expect((await res.getRequest(NS, 'web-restart')).spec.approval).toEqual({
      decision: 'Rejected',
      approver: 'alice',
      reason: 'not during the sale',
    });
  });

  test("the API server's refusals reach the user: no approver role, or approving one's own High risk request", async () => {
    const mallory = await plugin(tb, 'mallory', ['approve', 'cache-flush', '-n', NS]);
    expect(mallory.code).toBe(1);
    expect(mallory.stderr).toContain(`error: the API server refused to approve remediationrequest ${NS}/cache-flush as mallory`);
    expect(mallory.stderr).toContain(`ValidatingAdmissionPolicy '${chart.fullname}-approvals'`);
    expect(mallory.stderr).toContain('user "mallory" may not approve or reject');

    await request('alice', 'db-reboot-2', awaiting('Critical'));
    const self = await plugin(tb, 'alice', ['approve', 'db-reboot-2', '-n', NS]);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain('Critical risk needs four eyes: "alice" requested this remediation');
    expect((await res.getRequest(NS, 'db-reboot-2')).spec.approval).toBeUndefined();
  });

  test('a request without a plan in status cannot be approved: there is nothing to show the approver', async () => {
    await request('alice', 'no-plan', { phase: 'AwaitingApproval', reason: 'ApprovalRequired', risk: 'Medium' });
    const r = await plugin(tb, 'bob', ['approve', 'no-plan', '-n', NS]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`error: remediationrequest ${NS}/no-plan has no plan in status yet; wait until it is AwaitingApproval`);
    expect((await res.getRequest(NS, 'no-plan')).spec.approval).toBeUndefined();
  });

  test("the plugin's own checks: decided, ended, unknown, and usage errors", async () => {
    const again = await plugin(tb, 'alice', ['reject', 'db-reboot', '-n', NS]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(`error: remediationrequest ${NS}/db-reboot is already approved by bob; a decision cannot be changed`);
    const ended = await plugin(tb, 'bob', ['approve', 'done-already', '-n', NS]);
    expect(ended.stderr.trim()).toBe(`error: remediationrequest ${NS}/done-already has ended (Succeeded); there is nothing to approve`);
    const missing = await plugin(tb, 'bob', ['approve', 'nope', '-n', NS]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe(`error: remediationrequest "nope" not found in namespace "${NS}"`);
    const usage = await plugin(tb, 'bob', ['approve', '-n', NS]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('approve takes exactly one RemediationRequest name');
  });

  test("resume marks an AlertPolicy's circuit breaker for reset, with the token the controller issued", async () => {
    const policy = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'AlertPolicy',
      metadata: { name: 'circuit-demo', namespace: NS, annotations: { 'remediator.dev/changed-by': 'alice' } },
      spec: { targets: { fromLabels: ['instance_id'] }, runbookRef: { name: RUNBOOK }, inputs: { service: '{{ labels.service }}' } },
    };
    must(await tb.kubectl(['create', '-f', '-'], { user: 'alice', input: JSON.stringify(policy) }), 'policy');
    // No token issued (no controller here): nothing to resume with, and the plugin says why.
    const early = await plugin(tb, 'alice', ['resume', 'circuit-demo', '-n', NS]);
    expect(early.code).toBe(1);
    expect(early.stderr).toContain('has no reset token in status.circuitBreaker');
    const token = `0123456789abcdef.${'cd'.repeat(16)}`;
    await writeStatus(saKubeconfig, NS, 'circuit-demo', { circuitBreaker: { open: true, resetToken: token } }, 'alertpolicies');
    const before = Date.now();
    const r = must(await plugin(tb, 'alice', ['resume', 'circuit-demo', '-n', NS]), 'resume');
    expect(r.stdout).toContain(`alertpolicy ${NS}/circuit-demo resumed`);
    const annotations = (await res.getPolicy(NS, 'circuit-demo')).metadata?.annotations ?? {};
    expect(Date.parse(annotations['remediator.dev/circuit-reset-at'] ?? '')).toBeGreaterThanOrEqual(before - 1000);
    expect(annotations['remediator.dev/circuit-reset-token']).toBe(token);
  });
});
