/**
 * The chart installed the way users install it, proved on the real kube-apiserver:
 * `helm template` output applied with kubectl (its Deployment passing the restricted
 * Pod Security Standard), then the controller started with the chart's own
 * ServiceAccount token and the environment of the chart's Deployment. It completes a
 * remediation, records Events, holds its Lease and writes only status — so the shipped
 * RBAC is enough — while the shipped admission policy keeps a High risk request from
 * being approved by its own requester. Runbooks are the cluster admin's: a team editor
 * cannot write one. The samples in config/samples apply (Runbooks by the admin, policies
 * by the team), and re-applying them (or a request) changes nothing, as a GitOps sync expects.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AlertPolicy, RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { DEFAULT_ROLE_ARN, seedInstances } from '../testbed/aws.js';
import { repoRoot } from '../testbed/binaries.js';
import { freePort } from '../testbed/procs.js';
import {
  deploymentEnv,
  grant,
  guardStatus,
  installChart,
  must,
  namespace,
  plugin,
  SCOPE_LABEL,
  serviceAccountKubeconfig,
  suffix,
  type InstalledChart,
  waitForAdmissionPolicy,
} from './install-chart.js';
import { Resources, restartRunbook, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';

const REGION = 'eu-north-1';
const id = suffix();
const SYSTEM_NS = `rmd-system-${id}`;
const APPS_NS = `rmd-apps-${id}`;
const POD = `rmd-${id}-pod-0`;
/** This file's runbooks (cluster-scoped: names unique to the file). */
const RESTART = `restart-service-install-${id}`;
const REBOOT = `reboot-install-${id}`;
/** The label the sample Runbooks grant themselves to. */
const TENANT = { 'remediator.dev/tenant': 'true' };

describe('the chart, installed with helm template | kubectl apply', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  let chart: InstalledChart;
  let controller: RunningController;
  let intakeUrl: string;
  let unguard: (() => Promise<void>) | undefined;
  /** Sample Runbook files applied (cluster-scoped: removed again after the file). */
  const sampleRunbooks: string[] = [];

  const applyAs = (user: string, file: string) => tb.kubectl(['apply', '-n', APPS_NS, '-f', file], { user });

  beforeAll(async () => {
    chart = await installChart(tb, {
      release: `rmd${id}`,
      namespace: SYSTEM_NS,
      scope: id,
      values: { serviceAccount: { roleArn: DEFAULT_ROLE_ARN }, controller: { pollIntervalMs: 200 } },
      namespaceLabels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/warn': 'restricted' },
    });
    await namespace(tb, APPS_NS, { [SCOPE_LABEL]: id, ...TENANT });
    await waitForAdmissionPolicy(tb, APPS_NS);
    // What may run is the cluster admin's to say.
    const granted = { namespaceSelector: { matchLabels: { [SCOPE_LABEL]: id } } };
    await res.createRunbook(
      RESTART,
      restartRunbook({ ...granted, inputs: [{ name: 'service', allowedPattern: 'nginx|php-fpm' }], scope: { maxTargets: 3 } }),
    );
    await res.createRunbook(REBOOT, {
      ...granted,
      minRisk: 'High',
      maxAutoApprovedRisk: 'None',
      action: { ssm: { documentName: 'AWS-RunShellScript', parameters: [{ name: 'commands', values: ['systemctl reboot'] }] } },
    });
    // Only this controller may write status here (see guardStatus): its status writes
    // are provably its own.
    unguard = await guardStatus(tb, id, chart.serviceAccountUser);
    for (const user of ['alice', 'bob']) {
      await grant(tb, APPS_NS, user, `${chart.fullname}-editor`);
      await grant(tb, APPS_NS, user, `${chart.fullname}-approver`);
    }

    const intakePort = await freePort();
    intakeUrl = `http://127.0.0.1:${intakePort}`;
    controller = await startController(tb, {
      region: REGION,
      // Like every controller of the suite it watches only its test's namespace (files run
      // in parallel); the chart's ClusterRole is what it would watch all of them with.
      namespace: APPS_NS,
      name: `controller-install-${id}`,
      kubeconfig: await serviceAccountKubeconfig(tb, chart),
      // Exactly what the kubelet would give the chart's pod; only the listen address
      // differs (a fixed port would clash with other tests on this machine).
      extraEnv: { ...deploymentEnv(chart.find('Deployment'), POD), INTAKE_BIND_ADDRESS: `127.0.0.1:${intakePort}` },
    });
  });

  afterAll(async () => {
    await controller?.stop();
    await unguard?.();
    await res.deleteRunbook(RESTART);
    await res.deleteRunbook(REBOOT);
    if (sampleRunbooks.length > 0) await tb.kubectl(['delete', '--ignore-not-found', ...sampleRunbooks.flatMap((f) => ['-f', f])]);
    await chart?.uninstall();
  });

  test('applies cleanly; the Deployment meets the restricted Pod Security Standard', () => {
    // The release namespace warns on and enforces `restricted`: a Deployment short of it
    // would draw "Warning: would violate PodSecurity" here.
    expect(chart.applied.stderr).not.toMatch(/PodSecurity/);
    expect(chart.applied.stderr).not.toMatch(/warning/i);
    const kinds = chart.objects.map((o) => o.kind).sort();
    expect(new Set(kinds)).toEqual(
      new Set([
        'ClusterRole',
        'ClusterRoleBinding',
        'Deployment',
        'NetworkPolicy',
        'PodDisruptionBudget',
        'Role',
        'RoleBinding',
        'Secret',
        'Service',
        'ServiceAccount',
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicyBinding',
      ]),
    );
  });

  test('the controller runs as the chart ServiceAccount, leads through its Lease, and can do nothing else', async () => {
    const env = deploymentEnv(chart.find('Deployment'), POD);
    expect(env['LEADER_ELECT']).toBe('true');
    const lease = await waitFor('the Lease', async () => {
      const r = await tb.kubectl(['get', 'lease', env['LEADER_ELECTION_ID']!, '-n', SYSTEM_NS, '-o', 'jsonpath={.spec.holderIdentity}']);
      return r.code === 0 && r.stdout === POD ? r.stdout : undefined;
    });
    expect(lease).toBe(POD);
    expect(await (await fetch(`${controller.metricsUrl}/metrics`)).text()).toMatch(/^remediator_leader 1$/m);

    // Least privilege, asked of the API server's authorizer.
    const can = async (...args: string[]) =>
      (await tb.kubectl(['auth', 'can-i', ...args, `--as=${chart.serviceAccountUser}`])).stdout.trim();
    expect(await can('list', 'remediationrequests.remediator.dev', '-A')).toBe('yes');
    expect(await can('list', 'secrets', '-A')).toBe('no');
    expect(await can('get', 'secrets/some-other-secret', '-n', SYSTEM_NS)).toBe('no');
    expect(await can('get', `secrets/${chart.fullname}-intake-token`, '-n', SYSTEM_NS)).toBe('yes');
    expect(await can('update', 'remediationrequests.remediator.dev', '-n', APPS_NS)).toBe('no');
    // Retention deletes finished requests; the execution finalizer is a metadata patch.
    expect(await can('delete', 'remediationrequests.remediator.dev', '-n', APPS_NS)).toBe('yes');
    expect(await can('patch', 'remediationrequests.remediator.dev', '-n', APPS_NS)).toBe('yes');
    expect(await can('update', 'remediationrequests.remediator.dev', '--subresource=status', '-n', APPS_NS)).toBe('yes');
    // The execution ledger: ConfigMaps in the controller's own namespace only.
    expect(await can('update', 'configmaps', '-n', SYSTEM_NS)).toBe('yes');
    expect(await can('update', 'configmaps', '-n', APPS_NS)).toBe('no');
    // A team editor and approver cannot touch it: safety state is not theirs to erase.
    for (const verb of ['update', 'delete', 'create']) {
      expect((await tb.kubectl(['auth', 'can-i', verb, 'configmaps', '-n', SYSTEM_NS, '--as=alice'])).stdout.trim()).toBe('no');
    }
    expect(await can('approve', 'remediationrequests.remediator.dev', '-n', APPS_NS)).toBe('no');
    expect(await can('update', 'leases.coordination.k8s.io/other-lease', '-n', SYSTEM_NS)).toBe('no');
    expect(await can('create', 'leases.coordination.k8s.io', '-n', APPS_NS)).toBe('no');
    // Trust reads (which runbooks a namespace is granted, whether the admission policy covers
    // it), and nothing more: the controller cannot widen its own trust.
    expect(await can('list', 'runbooks.remediator.dev')).toBe('yes');
    expect(await can('list', 'namespaces')).toBe('yes');
    expect(await can('list', 'validatingadmissionpolicies.admissionregistration.k8s.io')).toBe('yes');
    expect(await can('list', 'validatingadmissionpolicybindings.admissionregistration.k8s.io')).toBe('yes');
    for (const verb of ['create', 'update', 'patch', 'delete']) {
      expect(await can(verb, 'runbooks.remediator.dev')).toBe('no');
      expect(await can(verb, 'validatingadmissionpolicybindings.admissionregistration.k8s.io')).toBe('no');
      expect(await can(verb, 'namespaces')).toBe('no');
    }
    // It reports each Runbook's validity in the Runbook's status, and that is all it writes there.
    expect(await can('update', 'runbooks.remediator.dev', '--subresource=status')).toBe('yes');
  });

  test("Runbooks are the cluster admin's: a namespace editor (and approver) cannot write them", async () => {
    const userCan = async (user: string, ...args: string[]) => (await tb.kubectl(['auth', 'can-i', ...args, `--as=${user}`])).stdout.trim();
    for (const verb of ['create', 'update', 'patch', 'delete']) expect(await userCan('alice', verb, 'runbooks.remediator.dev')).toBe('no');
    const doc = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'Runbook',
      metadata: { name: `evil-install-${id}` },
      spec: restartRunbook(),
    };
    const created = await tb.kubectl(['create', '-f', '-'], { user: 'alice', input: JSON.stringify(doc) });
    expect(created.code).not.toBe(0);
    expect(created.stderr).toMatch(/forbidden/i);
  });

  test('a request applied by a user is remediated under the shipped RBAC, and re-applying it changes nothing', async () => {
    const [instance] = await seedInstances(tb.motoEndpoint, { region: REGION, tags: { Name: 'web-1', Service: 'nginx' } });
    const dir = join(tb.dir, `install-${id}`);
    writeManifest(dir, 'policy.yaml', policy('restart-nginx', 'Low', RESTART));
    writeManifest(dir, 'request.yaml', request('nginx-down-1', 'restart-nginx', 'alice', instance!));
    must(await applyAs('alice', join(dir, 'policy.yaml')), 'apply policy');
    must(await applyAs('alice', join(dir, 'request.yaml')), 'apply request');

    const rr = await res.waitForPhase(APPS_NS, 'nginx-down-1', 'Succeeded');
    expect(rr.spec.requestedBy).toBe('alice');
    // Status is the controller's: the editor cannot forge verification evidence (or anything else there).
    const forged = await tb.kubectl(
      ['patch', 'remediationrequest', 'nginx-down-1', '-n', APPS_NS, '--subresource=status', '--type=merge', '-p'].concat([
        JSON.stringify({ status: { verification: { alertResolvedAt: '2026-01-01T00:00:00Z' } } }),
      ]),
      { user: 'alice' },
    );
    expect(forged.code).not.toBe(0);
    expect(forged.stderr).toMatch(/forbidden/i);
    expect(rr.status?.execution?.ssm?.invocations).toEqual([expect.objectContaining({ instanceId: instance, status: 'Success' })]);
    // Events were recorded (RBAC: create events) ...
    // (each is recorded just after the status write it describes, so wait for the last one).
    const reasons = await waitFor('the Events', async () => {
      const r = (await res.events(APPS_NS, 'nginx-down-1')).map((e) => e.reason);
      return r.includes('CommandSucceeded') ? r : undefined;
    });
    expect(reasons).toEqual(expect.arrayContaining(['CommandSucceeded']));
    expect(rr.status?.plan?.ssm?.parameters).toEqual({ commands: ['systemctl restart nginx'] });
    // ... and the policy's status too (RBAC: alertpolicies/status).
    await waitFor('policy status', async () => ((await res.getPolicy(APPS_NS, 'restart-nginx')).status?.succeeded ?? 0) >= 1);

    // The controller never wrote the spec: every field manager other than the user's apply
    // touched the status subresource, or only the execution finalizer in metadata.
    const managers = (rr.metadata?.managedFields ?? []) as Array<{
      manager: string;
      operation: string;
      subresource?: string;
      fieldsV1?: Record<string, unknown>;
    }>;
    for (const m of managers.filter((f) => f.manager !== 'kubectl-client-side-apply')) {
      if (m.subresource === 'status') continue;
      expect(Object.keys(m.fieldsV1 ?? {})).toEqual(['f:metadata']);
      expect(Object.keys((m.fieldsV1?.['f:metadata'] ?? {}) as object)).toEqual(['f:finalizers']);
    }

    // GitOps re-applies the same files: nothing changes.
    for (const file of ['policy.yaml', 'request.yaml']) {
      expect(must(await applyAs('alice', join(dir, file)), `re-apply ${file}`).stdout).toMatch(/ unchanged$/m);
    }
    expect((await tb.kubectl(['diff', '-n', APPS_NS, '-f', dir], { user: 'alice' })).code).toBe(0);
  });

  test('a High risk request needs four eyes: its requester is refused by the API server, another approver succeeds (kubectl plugin)', async () => {
    const [instance] = await seedInstances(tb.motoEndpoint, { region: REGION, tags: { Name: 'db-1' } });
    const dir = join(tb.dir, `install-${id}`);
    writeManifest(dir, 'policy-high.yaml', policy('reboot', 'High', REBOOT));
    writeManifest(dir, 'request-high.yaml', request('db-stuck-1', 'reboot', 'alice', instance!));
    must(await applyAs('alice', join(dir, 'policy-high.yaml')), 'apply policy');
    must(await applyAs('alice', join(dir, 'request-high.yaml')), 'apply request');
    const waiting = await res.waitForPhase(APPS_NS, 'db-stuck-1', 'AwaitingApproval');
    expect(waiting.status?.risk).toBe('High');

    const self = await plugin(tb, 'alice', ['approve', 'db-stuck-1', '-n', APPS_NS]);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain('High risk needs four eyes');
    expect(self.stderr).toContain(`ValidatingAdmissionPolicy '${chart.fullname}-approvals'`);

    const ok = must(
      await plugin(tb, 'bob', ['approve', 'db-stuck-1', '-n', APPS_NS, '--reason', 'checked the dashboards']),
      'bob approves',
    );
    expect(ok.stdout).toContain('approved by bob');
    const done = await res.waitForPhase(APPS_NS, 'db-stuck-1', 'Succeeded');
    expect(done.spec.approval).toEqual({
      decision: 'Approved',
      approver: 'bob',
      reason: 'checked the dashboards',
      planDigest: waiting.status?.plan?.digest,
    });
    expect(done.status?.plan?.ssm?.parameters).toEqual({ commands: ['systemctl reboot'] });
    expect(done.status?.approval?.approver).toBe('bob');
  });

  test('the intake, under the chart RBAC, turns an alert into a request the admission policy accepts', async () => {
    const [instance] = await seedInstances(tb.motoEndpoint, { region: REGION, tags: { Name: 'web-2' } });
    must(
      await applyAs('alice', writeManifest(join(tb.dir, `install-${id}`), 'policy-intake.yaml', policy('intake-restart', 'Low', RESTART))),
      'apply policy',
    );
    const secret = await tb.kubectl(['get', 'secret', `${chart.fullname}-intake-token`, '-n', SYSTEM_NS, '-o', 'jsonpath={.data.token}']);
    const token = Buffer.from(must(secret, 'read intake token').stdout, 'base64').toString('utf8');
    const response = await fetch(`${intakeUrl}/v1/alerts?namespace=${APPS_NS}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'IntakeProbe', labels: { instance_id: instance, service: 'nginx', route: 'intake-restart' } }),
    });
    expect(response.status).toBeLessThan(300);
    const name = await waitFor('the request the intake created', async () => {
      const list = (await res.api.listNamespacedCustomObject({
        group: 'remediator.dev',
        version: 'v1alpha1',
        namespace: APPS_NS,
        plural: 'remediationrequests',
      })) as { items: RemediationRequest[] };
      return list.items.find((r) => r.spec.policyRef.name === 'intake-restart')?.metadata?.name;
    });
    const rr = await res.waitForPhase(APPS_NS, name, 'Succeeded');
    expect(rr.spec.requestedBy).toBe(chart.serviceAccountUser);
  });

  test('kubectl apply -f config/samples/ works (Runbooks by the admin, policies by the team), and re-applying changes nothing', async () => {
    const samples = join(repoRoot(), 'config', 'samples');
    const files = readdirSync(samples).filter((f) => f.endsWith('.yaml'));
    const runbooks = files.filter((f) => f.includes('_runbook_')).map((f) => join(samples, f));
    sampleRunbooks.push(...runbooks);
    const policies = files.filter((f) => f.includes('_alertpolicy_')).map((f) => join(samples, f));
    expect(runbooks.length).toBeGreaterThan(0);
    expect(runbooks.length + policies.length).toBe(files.length);
    // The team cannot apply the Runbooks; the cluster admin does.
    const byTeam = await tb.kubectl(['apply', ...runbooks.flatMap((f) => ['-f', f])], { user: 'alice' });
    expect(byTeam.code).not.toBe(0);
    expect(byTeam.stderr).toMatch(/forbidden/i);
    must(await tb.kubectl(['apply', ...runbooks.flatMap((f) => ['-f', f])]), 'admin applies the sample runbooks');
    // Each sample names its writer with a placeholder (the admission policy requires the writer's own name).
    const samplePolicies = policies.map((f) => readFileSync(f, 'utf8').replaceAll('YOUR-USER-NAME', 'alice')).join('\n---\n');
    const applyPolicies = () => tb.kubectl(['apply', '-n', APPS_NS, '-f', '-'], { user: 'alice', input: samplePolicies });
    const first = must(await applyPolicies(), 'apply sample policies');
    expect(first.stdout.trim().split('\n')).toHaveLength(policies.length);
    // The controller has seen each policy and written its status...
    for (const line of first.stdout.trim().split('\n')) {
      const name = /^alertpolicy\.remediator\.dev\/(\S+) /.exec(line)?.[1];
      expect(name).toBeDefined();
      await waitFor(`status of ${name}`, async () => {
        const p = (await res.getPolicy(APPS_NS, name!)) as AlertPolicy;
        return p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
      });
    }
    // ... which a re-apply neither sees nor undoes.
    const again = must(await applyPolicies(), 're-apply sample policies');
    for (const line of again.stdout.trim().split('\n')) expect(line).toMatch(/ unchanged$/);
    expect((await tb.kubectl(['diff', '-n', APPS_NS, '-f', '-'], { user: 'alice', input: samplePolicies })).code).toBe(0);
    const runbooksAgain = must(await tb.kubectl(['apply', ...runbooks.flatMap((f) => ['-f', f])]), 're-apply sample runbooks');
    for (const line of runbooksAgain.stdout.trim().split('\n')) expect(line).toMatch(/ unchanged$/);
  });
});

/** A policy that matches only alerts labelled route=<its name>, so the intake's alert picks exactly one. */
function policy(name: string, risk: 'Low' | 'High', runbook: string) {
  return {
    apiVersion: 'remediator.dev/v1alpha1',
    kind: 'AlertPolicy',
    // alice applies every policy here; the admission policy makes her writes say so.
    metadata: { name, annotations: { 'remediator.dev/changed-by': 'alice' } },
    spec: {
      match: { labels: [{ name: 'route', op: '=', value: name }] },
      targets: { fromLabels: ['instance_id'], maxTargets: 3 },
      risk,
      runbookRef: { name: runbook },
      ...(runbook === RESTART && { inputs: { service: '{{ labels.service }}' } }),
    },
  };
}

function request(name: string, policyName: string, requestedBy: string, instance: string) {
  return {
    apiVersion: 'remediator.dev/v1alpha1',
    kind: 'RemediationRequest',
    metadata: { name },
    spec: {
      policyRef: { name: policyName },
      requestedBy,
      alert: { source: 'generic', name: 'ServiceDown', status: 'firing', labels: { instance_id: instance, service: 'nginx' } },
    },
  };
}

function writeManifest(dir: string, file: string, obj: object): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  writeFileSync(path, JSON.stringify(obj, null, 2));
  return path;
}
