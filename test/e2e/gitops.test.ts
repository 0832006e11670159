/**
 * remediator run from Git, by a real Flux (source-controller and kustomize-controller,
 * built from the Go module proxy, test/testbed/flux.ts) against the real API server: a
 * Git repository served over smart HTTP holds the administrator's Runbook and the team's
 * AlertPolicies and requests; Flux applies them (the team's as its own ServiceAccount,
 * through the chart's editor role and admission policy); alerts arrive through the
 * intake; remediation runs on moto. And the verdicts a Kustomization with `wait: true`
 * gives through kstatus (src/controllers/kstatus.ts): healthy for a Succeeded or Skipped
 * request, failed at once (long before its timeout) for a Failed request or a policy that
 * cannot become Ready. A request kept in Git runs once: deleted and re-applied, the copy
 * is recognised from the ledger and ends Skipped (AlreadyRan) after the cooldown passed
 * (src/controllers/request/rerun.ts); retention leaves it to Git. First, the same
 * verdicts for every phase and kind, computed by the kstatus library Flux runs
 * (hack/kstatus) on the status the controller's code writes.
 */
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PHASES, type Phase, type RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { withReadinessKstatus, withRequestKstatus } from '../../src/controllers/kstatus.js';
import { Transitions } from '../../src/controllers/request/transition.js';
import { seedInstances } from '../testbed/aws.js';
import {
  ensureFlux,
  ensureKstatus,
  FLUX_BUILD_TIMEOUT_MS,
  startFlux,
  startGitServer,
  type GitServer,
  type RunningFlux,
} from '../testbed/flux.js';
import { Resources, ssmCommands, testbedFromEnv, waitFor } from './harness.js';
import { grant, installChart, must, namespace, SCOPE_LABEL, suffix, waitForAdmissionPolicy, type InstalledChart } from './install-chart.js';
import { postJson, setUpIntakeNamespaces, startIntakeController, type IntakeController, type IntakeNamespaces } from './intake-harness.js';

const REGION = 'us-west-2';
const id = suffix();
const NS = `gitops-${id}`;
const FLUX_NS = 'flux-system';
const RUNBOOK = `gitops-restart-${id}`;
/** docs/gitops.md's `healthCheckExprs` for the three kinds, as a user copies them. */
const REMEDIATOR_HEALTH_CHECKS = ['AlertPolicy', 'RemediationRequest', 'Runbook'].map((kind) => ({
  apiVersion: 'remediator.dev/v1alpha1',
  kind,
  current: "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
  failed: "status.conditions.exists(c, c.type == 'Stalled' && c.status == 'True')",
}));

/** The identity Flux applies the team's directory as (the team Kustomization's ServiceAccount). */
const APPLIER = `system:serviceaccount:${NS}:team-applier`;
const KS = { group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations' };
const SOURCE = { group: 'source.toolkit.fluxcd.io', version: 'v1', plural: 'gitrepositories' };

interface FluxObject {
  metadata: { name: string; namespace: string; annotations?: Record<string, string> };
  status?: {
    lastHandledReconcileAt?: string;
    lastAttemptedRevision?: string;
    artifact?: { revision?: string };
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
  };
}

const yaml = (o: unknown) => JSON.stringify(o, null, 2);

const runbook = {
  apiVersion: 'remediator.dev/v1alpha1',
  kind: 'Runbook',
  metadata: { name: RUNBOOK },
  spec: {
    minRisk: 'Low',
    namespaceSelector: { matchLabels: { [SCOPE_LABEL]: id } },
    inputs: [{ name: 'service', allowedPattern: 'nginx|php-fpm' }],
    action: {
      ssm: { documentName: 'AWS-RunShellScript', parameters: [{ name: 'commands', values: ['systemctl restart {{ inputs.service }}'] }] },
    },
  },
};

const policy = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'remediator.dev/v1alpha1',
  kind: 'AlertPolicy',
  metadata: { name, namespace: NS, annotations: { 'remediator.dev/changed-by': APPLIER } },
  spec: {
    runbookRef: { name: RUNBOOK },
    inputs: { service: '{{ labels.service }}' },
    targets: { fromLabels: ['instance_id'] },
    // Short windows, so that the test outlives them: the run guard must hold past the cooldown.
    safety: { cooldown: '5s' },
    retention: { ttlAfterFinished: '2s' },
    ...spec,
  },
});

const request = (name: string, policyName: string, labels: Record<string, string>) => ({
  apiVersion: 'remediator.dev/v1alpha1',
  kind: 'RemediationRequest',
  metadata: { name, namespace: NS },
  spec: {
    policyRef: { name: policyName },
    alert: { source: 'generic', name: 'Maintenance', status: 'firing', labels: { service: 'nginx', ...labels } },
    requestedBy: APPLIER,
  },
});

describe('kstatus verdicts, by the rules Flux runs (hack/kstatus)', () => {
  let bin = '';
  const NOW = '2026-12-01T00:00:00Z';
  const t = new Transitions({ now: () => Date.parse(NOW) });

  beforeAll(async () => {
    bin = await ensureKstatus();
  }, FLUX_BUILD_TIMEOUT_MS);

  function verdicts(objects: unknown[]): string[] {
    const out = spawnSync(bin, [], { input: JSON.stringify(objects), encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`kstatus exited ${out.status}: ${out.stderr}`);
    return (JSON.parse(out.stdout) as Array<{ status: string }>).map((v) => v.status);
  }

  /** A request in `phase` with the status the reconciler writes: entered by Transitions, derived by kstatus.ts. */
  const requestIn = (phase: Phase, generation = 2) => {
    const rr: RemediationRequest = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'RemediationRequest',
      metadata: { name: phase.toLowerCase(), namespace: 'web', generation },
      spec: { policyRef: { name: 'p' }, alert: { source: 'generic', name: 'Down' } },
    };
    const { status } = t.enter({ ...rr, metadata: { ...rr.metadata, generation: 2 } }, {}, phase, 'Because', 'details');
    return { ...rr, status: withRequestKstatus(status, NOW) };
  };

  test('every phase of a RemediationRequest: healthy ends Current, Failed and Expired Failed, the rest InProgress', () => {
    const expected: Record<Phase, string> = {
      Pending: 'InProgress',
      Enriching: 'InProgress',
      AwaitingApproval: 'InProgress',
      Approved: 'InProgress',
      Executing: 'InProgress',
      Succeeded: 'Current',
      Skipped: 'Current',
      Cancelled: 'Current',
      Rejected: 'Current',
      Failed: 'Failed',
      Expired: 'Failed',
    };
    const got = verdicts(PHASES.map((p) => requestIn(p)));
    expect(Object.fromEntries(PHASES.map((p, i) => [p, got[i]]))).toEqual(expected);
  });

  test('the status written before kstatus.ts kept a GitOps tool waiting on a Skipped or Failed request', () => {
    const old = (phase: Phase) => ({
      ...requestIn(phase),
      status: {
        phase,
        observedGeneration: 2,
        conditions: [
          { type: 'Ready', status: phase === 'Succeeded' ? 'True' : 'False', reason: 'X', message: '', lastTransitionTime: NOW },
        ],
      },
    });
    expect(verdicts([old('Skipped'), old('Failed')])).toEqual(['InProgress', 'InProgress']);
  });

  test('a status behind the spec is InProgress whatever it says; AWS denying a call is Failed', () => {
    const denied = requestIn('Executing');
    denied.status.conditions?.push({
      type: 'CloudAccess',
      status: 'False',
      reason: 'AccessDenied',
      message: 'grant it',
      lastTransitionTime: NOW,
    });
    withRequestKstatus(denied.status, NOW);
    expect(verdicts([requestIn('Succeeded', 3), requestIn('Failed', 3), denied])).toEqual(['InProgress', 'InProgress', 'Failed']);
  });

  test('AlertPolicy and Runbook: Ready=True Current, Ready=False Failed, a stale status InProgress', () => {
    const obj = (kind: string, ready: 'True' | 'False', generation = 4) => ({
      apiVersion: 'remediator.dev/v1alpha1',
      kind,
      metadata: { name: 'x', generation },
      spec: {},
      status: withReadinessKstatus(
        {
          conditions: [
            { type: 'Ready', status: ready, reason: ready === 'True' ? 'Valid' : 'InvalidSpec', message: 'm', lastTransitionTime: NOW },
          ],
        },
        4,
        NOW,
      ),
    });
    expect(
      verdicts([
        obj('AlertPolicy', 'True'),
        obj('AlertPolicy', 'False'),
        obj('Runbook', 'True'),
        obj('Runbook', 'False'),
        obj('Runbook', 'True', 5),
      ]),
    ).toEqual(['Current', 'Failed', 'Current', 'Failed', 'InProgress']);
  });
});

describe('GitOps with Flux', () => {
  const tb = testbedFromEnv();
  const admin = tb.admin();
  const res = new Resources(admin);
  const api = admin.makeApiClient(CustomObjectsApi);
  let flux: RunningFlux | undefined;
  let git: GitServer | undefined;
  let chart: InstalledChart | undefined;
  let intakeNs: IntakeNamespaces | undefined;
  let intake: IntakeController | undefined;
  let instances: string[] = [];

  const getFlux = async (kind: typeof KS, ns: string, name: string) =>
    (await api.getNamespacedCustomObject({ ...kind, namespace: ns, name })) as FluxObject;

  /** Asks Flux to fetch and apply now (what `flux reconcile` does), instead of waiting for the interval. */
  async function requestReconcile(kind: typeof KS, ns: string, name: string): Promise<string> {
    const token = new Date().toISOString();
    await api.patchNamespacedCustomObject(
      { ...kind, namespace: ns, name, body: { metadata: { annotations: { 'reconcile.fluxcd.io/requestedAt': token } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    return token;
  }

  /**
   * Commits `files`, has Flux fetch the commit and the team Kustomization apply it, and
   * returns the verdict it reached on that commit (its Ready condition) and how long it took.
   */
  async function sync(files: Record<string, string | null>, message: string, kustomization = 'team', ns = NS) {
    const sha = git!.commit(files, message);
    const started = Date.now();
    await requestReconcile(SOURCE, FLUX_NS, 'fleet');
    await waitFor(
      `GitRepository to fetch ${sha}`,
      async () => (await getFlux(SOURCE, FLUX_NS, 'fleet')).status?.artifact?.revision?.endsWith(sha),
      60_000,
      500,
    );
    const token = await requestReconcile(KS, ns, kustomization);
    const ks = await waitFor(
      `Kustomization ${kustomization} to give a verdict on ${sha}`,
      async () => {
        const k = await getFlux(KS, ns, kustomization);
        const ready = k.status?.conditions?.find((c) => c.type === 'Ready');
        return k.status?.lastHandledReconcileAt === token && k.status.lastAttemptedRevision?.endsWith(sha) && ready?.status !== 'Unknown'
          ? k
          : undefined;
      },
      240_000,
      500,
    );
    const ready = ks.status?.conditions?.find((c) => c.type === 'Ready');
    return { sha, ready, seconds: (Date.now() - started) / 1000 };
  }

  const commandsFor = async (rr: RemediationRequest) =>
    (await ssmCommands(tb, REGION)).filter((c) => c.Comment === `remediator:${rr.metadata?.uid}`);

  beforeAll(async () => {
    const bins = await ensureFlux();
    chart = await installChart(tb, { release: `go${id}`, namespace: `rmd-go-system-${id}`, scope: id });
    await namespace(tb, NS, { [SCOPE_LABEL]: id });
    intakeNs = await setUpIntakeNamespaces(admin, [NS]);
    await tb.cluster.ensureServiceAccount(NS, 'team-applier');
    await grant(tb, NS, APPLIER, `${chart.fullname}-editor`);
    await grant(tb, NS, 'alice', `${chart.fullname}-approver`);
    await waitForAdmissionPolicy(tb, NS);
    instances = await seedInstances(tb.motoEndpoint, { region: REGION, count: 3, tags: { Service: 'nginx' } });
    git = await startGitServer(join(tb.dir, `git-${id}`));
    git.commit(
      { 'admin/runbook.yaml': yaml(runbook), 'team/policy.yaml': yaml(policy('restart-nginx', { match: { sources: ['generic'] } })) },
      'initial',
    );
    flux = await startFlux(tb, bins);
    intake = await startIntakeController(tb, intakeNs, {
      region: REGION,
      name: `controller-gitops-${id}`,
      args: ['--admission-policy-name', `${chart.fullname}-approvals`],
    });
    const source = {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata: { name: 'fleet', namespace: FLUX_NS },
      spec: { url: git.url, interval: '1m', ref: { branch: 'main' } },
    };
    const kustomization = (name: string, ns: string, path: string, extra: Record<string, unknown> = {}) => ({
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { name, namespace: ns },
      spec: { interval: '1m', path, prune: true, sourceRef: { kind: 'GitRepository', name: 'fleet', namespace: FLUX_NS }, ...extra },
    });
    const objects = [
      source,
      // The administrator's Runbooks, as Flux's own identity.
      kustomization(`admin-${id}`, FLUX_NS, './admin', { wait: true, timeout: '2m', healthCheckExprs: REMEDIATOR_HEALTH_CHECKS }),
      // The team's directory, as the team's ServiceAccount (editor in its namespace only).
      kustomization('team', NS, './team', {
        serviceAccountName: 'team-applier',
        dependsOn: [{ name: `admin-${id}`, namespace: FLUX_NS }],
        wait: true,
        // As docs/gitops.md advises: without these, kstatus counts an object the controller
        // has not written a status for yet as Current, and a slow first reconcile passes.
        healthCheckExprs: REMEDIATOR_HEALTH_CHECKS,
        timeout: '3m',
        retryInterval: '10s',
      }),
      // Requests that wait for a person: applied, not waited on.
      kustomization('approvals', NS, './approvals', { serviceAccountName: 'team-applier', dependsOn: [{ name: 'team' }] }),
    ];
    must(
      await tb.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) }),
      'Flux objects',
    );
  }, FLUX_BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await tb.kubectl(['delete', 'kustomizations.kustomize.toolkit.fluxcd.io', '--all', '-n', NS, '--wait=false']);
    await tb.kubectl(['delete', 'kustomizations.kustomize.toolkit.fluxcd.io', `admin-${id}`, '-n', FLUX_NS, '--wait=false']);
    await tb.kubectl(['delete', 'gitrepositories.source.toolkit.fluxcd.io', 'fleet', '-n', FLUX_NS, '--wait=false']);
    await flux?.stop();
    await intake?.stop();
    await git?.stop();
    await res.deleteRunbook(RUNBOOK);
    await intakeNs?.cleanup();
    await chart?.uninstall();
  });

  test('Flux applies the Runbook (admin) and the AlertPolicy (team) from Git; both Kustomizations are Ready', async () => {
    const team = await waitFor(
      'the team Kustomization to be Ready',
      async () => {
        const k = await getFlux(KS, NS, 'team');
        return k.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? k : undefined;
      },
      180_000,
      500,
    );
    expect(team.status?.conditions?.find((c) => c.type === 'Ready')?.message).toMatch(/^Applied revision: main@sha1:/);
    const admin = await getFlux(KS, FLUX_NS, `admin-${id}`);
    expect(admin.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    const p = await res.getPolicy(NS, 'restart-nginx');
    // Applied as the team's ServiceAccount, which the admission policy checked against the annotation.
    expect(p.metadata?.labels?.['kustomize.toolkit.fluxcd.io/name']).toBe('team');
    expect(p.status?.observedGeneration).toBe(p.metadata?.generation);
    expect(p.status?.conditions?.map((c) => `${c.type}=${c.status}`).sort()).toEqual(['Ready=True', 'Suspended=False']);
    const rb = await res.getRunbook(RUNBOOK);
    expect(rb.status?.observedGeneration).toBe(rb.metadata?.generation);
  });

  test('an alert through the intake is remediated; retention deletes that request after its TTL', async () => {
    const answer = await postJson(
      intake!.url,
      `/v1/alerts?namespace=${NS}`,
      { name: 'NginxDown', labels: { instance_id: instances[0]!, service: 'nginx' }, fingerprint: `gitops-${id}` },
      intakeNs!.token,
    );
    expect(answer.json?.created).toHaveLength(1);
    const name = (answer.json?.created as string[])[0]!.split('/')[1]!;
    const done = await res.waitForPhase(NS, name, 'Succeeded');
    expect(await commandsFor(done)).toHaveLength(1);
    await waitFor(
      `${name} deleted by retention`,
      async () =>
        res.getRequest(NS, name).then(
          () => false,
          () => true,
        ),
      30_000,
    );
  });

  test('a request kept in Git runs once; the Kustomization is healthy at once; retention leaves it to Git', async () => {
    const verdict = await sync(
      { 'team/maintenance.yaml': yaml(request('maintenance', 'restart-nginx', { instance_id: instances[1]! })) },
      'maintenance run',
    );
    expect(verdict.ready).toMatchObject({ status: 'True', reason: 'ReconciliationSucceeded' });
    const rr = await res.getRequest(NS, 'maintenance');
    expect(rr.status?.phase).toBe('Succeeded');
    expect(rr.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(await commandsFor(rr)).toHaveLength(1);
    // Past its TTL (2s) it is still there: Git owns it.
    await new Promise((r) => setTimeout(r, 4_000));
    expect((await res.getRequest(NS, 'maintenance')).metadata?.uid).toBe(rr.metadata?.uid);
    console.log(`gitops: commit to healthy Kustomization with a Succeeded request: ${verdict.seconds}s`);
  });

  test('deleted and re-applied by Flux after the cooldown, the same request is recognised and never runs twice', async () => {
    const first = await res.getRequest(NS, 'maintenance');
    const sentBefore = (await ssmCommands(tb, REGION)).length;
    must(await tb.kubectl(['delete', 'remediationrequest', 'maintenance', '-n', NS]), 'kubectl delete');
    // Flux's next sync applies the same file again; the policy's 5s cooldown is long over.
    await new Promise((r) => setTimeout(r, 6_000));
    const verdict = await sync({}, 're-sync');
    expect(verdict.ready?.status).toBe('True');
    const copy = await res.getRequest(NS, 'maintenance');
    expect(copy.metadata?.uid).not.toBe(first.metadata?.uid);
    expect(copy.status?.phase).toBe('Skipped');
    expect(copy.status?.reason).toBe('AlreadyRan');
    expect(copy.status?.message).toContain(`already ran as UID ${first.metadata?.uid}`);
    expect(await commandsFor(copy)).toHaveLength(0);
    expect(await ssmCommands(tb, REGION)).toHaveLength(sentBefore);
  });

  test('a policy that cannot become Ready fails the Kustomization at once, not at its timeout', async () => {
    const broken = policy('broken', { match: { labels: [{ name: 'alertname', op: '=~', value: '(unclosed' }] } });
    const verdict = await sync({ 'team/broken.yaml': yaml(broken) }, 'a broken policy');
    expect(verdict.ready).toMatchObject({ status: 'False', reason: 'HealthCheckFailed' });
    expect(verdict.ready?.message).toContain('AlertPolicy/');
    expect(verdict.seconds).toBeLessThan(60);
    const p = await res.getPolicy(NS, 'broken');
    expect(p.status?.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    console.log(`gitops: commit to failed Kustomization (not-Ready policy): ${verdict.seconds}s (timeout 180s)`);
    // Removed from Git, pruned: healthy again.
    expect((await sync({ 'team/broken.yaml': null }, 'remove the broken policy')).ready?.status).toBe('True');
  });

  test('a Failed request fails the Kustomization at once; a change in Git re-plans a waiting one', async () => {
    const failing = request('ghost', 'restart-nginx', { instance_id: 'i-0000000000000dead' });
    const verdict = await sync({ 'team/ghost.yaml': yaml(failing) }, 'a request for an instance that does not exist');
    expect(verdict.ready).toMatchObject({ status: 'False', reason: 'HealthCheckFailed' });
    expect(verdict.ready?.message).toContain('ghost');
    expect(verdict.seconds).toBeLessThan(60);
    const ghost = await res.getRequest(NS, 'ghost');
    expect(ghost.status).toMatchObject({ phase: 'Failed', reason: 'InstancesNotFound' });
    console.log(`gitops: commit to failed Kustomization (Failed request): ${verdict.seconds}s (timeout 180s)`);
    expect((await sync({ 'team/ghost.yaml': null }, 'remove the ghost request')).ready?.status).toBe('True');

    // A Manual policy and a request that waits for a person (under the Kustomization that does not wait).
    const manual = policy('restart-manual', { risk: 'Medium', approval: { mode: 'Manual' } });
    await sync({ 'team/manual.yaml': yaml(manual) }, 'a manual policy');
    const waiting = request('patch-window', 'restart-manual', { instance_id: instances[2]! });
    await sync({ 'approvals/patch.yaml': yaml(waiting) }, 'a request to approve', 'approvals');
    const planned = await res.waitForPhase(NS, 'patch-window', 'AwaitingApproval');
    expect(planned.status?.plan?.ssm?.parameters).toEqual({ commands: ['systemctl restart nginx'] });
    expect(planned.status?.conditions?.find((c) => c.type === 'Reconciling')?.status).toBe('True');
    const changed = request('patch-window', 'restart-manual', { instance_id: instances[2]!, service: 'php-fpm' });
    await sync({ 'approvals/patch.yaml': yaml(changed) }, 'restart php-fpm instead', 'approvals');
    const replanned = await waitFor('a new plan for the changed request', async () => {
      const r = await res.getRequest(NS, 'patch-window');
      return r.status?.plan?.digest !== planned.status?.plan?.digest && r.status?.phase === 'AwaitingApproval' ? r : undefined;
    });
    expect(replanned.status?.plan?.ssm?.parameters).toEqual({ commands: ['systemctl restart php-fpm'] });
    await new Resources(tb.as('alice')).decide(NS, 'patch-window', 'alice');
    const done = await res.waitForPhase(NS, 'patch-window', 'Succeeded');
    const sent = await commandsFor(done);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.Parameters).toEqual({ commands: ['systemctl restart php-fpm'] });
  });
});
