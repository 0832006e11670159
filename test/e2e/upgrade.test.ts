/**
 * Upgrading a real installation, on a kube-apiserver of its own (CRDs are cluster-wide:
 * installing the old ones on the shared test bed would break every other test file).
 *
 * The previous chart is built from git history: commit b9539a7, the last before Runbooks
 * replaced the AlertPolicy's inline action (66bb7e7). It is installed with helm, and
 * AlertPolicies (the samples of that commit, as users applied them) and a request are
 * created under its schema. Then the current chart is installed over it with `helm
 * upgrade`, as docs/upgrading.md says: the CRDs are upgraded (the old chart had them in
 * crds/, which Helm never upgrades), the stored policies keep their inline action, the
 * controller runs as the chart's ServiceAccount and gives each old policy Ready=False
 * (MigrationRequired) and the old request a Failed end, never a crash; the old YAML
 * re-applies; `kubectl remediator migrate` turns a policy into a Runbook (created only by
 * an administrator) and the policy using it, which becomes Ready.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CHART_DIR, parseManifests } from '../../hack/chart/render.js';
import { repoRoot } from '../testbed/binaries.js';
import { freePort } from '../testbed/procs.js';
import { startControlPlane, type ControlPlane } from '../testbed/controlplane.js';
import type { RunResult } from '../testbed/tools.js';
import { deploymentEnv, must, plugin, suffix } from './install-chart.js';
import { startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';

/** The previous chart: the last commit before Runbooks (see above). */
const PREVIOUS = 'b9539a7';
const REGION = 'eu-south-2';
const id = suffix();
const SYSTEM_NS = 'remediator-system';
const APPS_NS = `team-${id}`;
const RELEASE = 'remediator';
const POD = `remediator-${id}-0`;
const OLD_SAMPLES = ['restart-nginx', 'reboot-unresponsive', 'page-disk-full'];

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

describe('helm upgrade from the previous chart, with objects stored under its schema', () => {
  const tb = testbedFromEnv();
  let cp: ControlPlane;
  let dir: string;
  let controller: RunningController | undefined;
  const kubectl = (args: string[], opts: { input?: string; user?: string } = {}): Promise<RunResult> =>
    tb.kubectl(args, { input: opts.input, kubeconfig: opts.user ? cp.kubeconfigForUser(opts.user) : cp.adminKubeconfig });
  const helm = (args: string[]) => tb.helm(args, { kubeconfig: cp.adminKubeconfig });
  const getJson = async <T>(...args: string[]): Promise<T> =>
    JSON.parse(must(await kubectl(['get', ...args, '-o', 'json']), 'get').stdout) as T;
  const ready = async (name: string): Promise<Condition | undefined> =>
    (await getJson<{ status?: { conditions?: Condition[] } }>('alertpolicy', name, '-n', APPS_NS)).status?.conditions?.find(
      (c) => c.type === 'Ready',
    );

  beforeAll(async () => {
    cp = await startControlPlane({ binaries: tb.binaries });
    dir = mkdtempSync(join(tb.dir, `upgrade-${id}-`));
    // The previous chart and samples exactly as committed (git archive, not a copy kept here).
    const tar = execFileSync('git', ['archive', '--format=tar', PREVIOUS, 'charts/remediator', 'config/samples'], {
      cwd: repoRoot(),
      maxBuffer: 64 * 1024 * 1024,
    });
    execFileSync('tar', ['-x', '-C', dir], { input: tar });
  }, 120_000);

  afterAll(async () => {
    await controller?.stop();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the previous chart installs, and policies and a request are stored under its schema', async () => {
    const installed = must(
      await helm(['install', RELEASE, join(dir, 'charts', 'remediator'), '-n', SYSTEM_NS, '--create-namespace']),
      'helm install (previous chart)',
    );
    expect(installed.stdout).toContain('STATUS: deployed');
    // Its CRDs came from crds/: no Runbook kind, and a policy with an inline action.
    expect((await kubectl(['get', 'crd', 'runbooks.remediator.dev'])).code).not.toBe(0);
    must(await kubectl(['create', 'namespace', APPS_NS]), 'namespace');
    for (const sample of OLD_SAMPLES) {
      const file = join(dir, 'config', 'samples', `remediator_v1alpha1_alertpolicy_${sample}.yaml`);
      must(await kubectl(['apply', '-n', APPS_NS, '-f', file]), `apply old sample ${sample}`);
    }
    const stored = await getJson<{ spec: Record<string, unknown> }>('alertpolicy', 'restart-nginx', '-n', APPS_NS);
    expect(stored.spec['action']).toBeDefined();
    expect(stored.spec['runbookRef']).toBeUndefined();
    // A request of the old schema, waiting to be planned.
    const me = must(await kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']), 'whoami').stdout;
    const request = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'RemediationRequest',
      metadata: { name: 'nginx-down-old', namespace: APPS_NS },
      spec: {
        policyRef: { name: 'restart-nginx' },
        alert: { source: 'generic', name: 'NginxDown', labels: { service: 'nginx', instance_id: 'i-0123456789abcdef0' } },
        requestedBy: me,
      },
    };
    must(await kubectl(['create', '-f', '-'], { input: JSON.stringify(request) }), 'old request');
  });

  test('helm upgrade to the current chart takes over and upgrades the CRDs; the inline actions stay stored', async () => {
    // Helm never upgrades crds/; the current chart renders its CRDs as templates, which
    // Helm refuses to adopt without being told (docs/upgrading.md).
    const plain = await helm(['upgrade', RELEASE, CHART_DIR, '-n', SYSTEM_NS]);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(
      /CustomResourceDefinition "[a-z.]+" in namespace "" exists and cannot be imported into the current release/,
    );
    const upgraded = must(
      await helm(['upgrade', RELEASE, CHART_DIR, '-n', SYSTEM_NS, '--take-ownership']),
      'helm upgrade --take-ownership',
    );
    expect(upgraded.stdout).toContain('STATUS: deployed');

    for (const crd of ['alertpolicies', 'remediationrequests', 'runbooks']) {
      const c = await getJson<{ metadata: { annotations?: Record<string, string>; labels?: Record<string, string> } }>(
        'crd',
        `${crd}.remediator.dev`,
      );
      expect(c.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
      expect(c.metadata.annotations?.['meta.helm.sh/release-name']).toBe(RELEASE);
    }
    must(await kubectl(['wait', '--for=condition=Established', 'crd/runbooks.remediator.dev', '--timeout=30s']), 'Runbook CRD');
    const schema = await getJson<{
      spec: { versions: Array<{ schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, unknown> } } } } }> };
    }>('crd', 'alertpolicies.remediator.dev');
    const fields = schema.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties;
    expect(fields).toHaveProperty('runbookRef');
    expect(fields).toHaveProperty('action');
    // Served with its inline action: nothing pruned it.
    const stored = await getJson<{ spec: { action?: { ssm?: { parameters: unknown[] } } } }>('alertpolicy', 'restart-nginx', '-n', APPS_NS);
    expect(stored.spec.action?.ssm?.parameters).toHaveLength(1);
  });

  test('the controller runs: each old policy is Ready=False (MigrationRequired), the old request ends Failed, nothing crashes', async () => {
    const manifest = parseManifests(must(await helm(['get', 'manifest', RELEASE, '-n', SYSTEM_NS]), 'helm get manifest').stdout);
    const deployment = manifest.find((o) => o.kind === 'Deployment')!;
    const sa = manifest.find((o) => o.kind === 'ServiceAccount')!.metadata.name;
    const token = await cp.tokenForServiceAccount(SYSTEM_NS, sa, { create: false });
    controller = await startController(tb, {
      region: REGION,
      namespace: APPS_NS,
      name: `controller-upgrade-${id}`,
      kubeconfig: cp.kubeconfigForToken(token, `upgrade-${id}`),
      extraEnv: { ...deploymentEnv(deployment, POD), INTAKE_BIND_ADDRESS: `127.0.0.1:${await freePort()}` },
    });
    for (const name of OLD_SAMPLES) {
      const c = await waitFor(`${name} Ready=False`, async () => {
        const r = await ready(name);
        return r?.status === 'False' ? r : undefined;
      });
      expect(c.reason).toBe('MigrationRequired');
      expect(c.message).toContain(`kubectl remediator migrate ${name} -n ${APPS_NS}`);
    }
    const table = must(await kubectl(['get', 'ap', '-n', APPS_NS]), 'kubectl get ap').stdout;
    expect(table).toMatch(/^restart-nginx\s+\S*\s*Low\s+False/m);

    const rr = await waitFor('the old request ends', async () => {
      const r = await getJson<{ status?: { phase?: string; reason?: string; message?: string } }>(
        'remediationrequest',
        'nginx-down-old',
        '-n',
        APPS_NS,
      );
      return r.status?.phase === 'Failed' ? r.status : undefined;
    });
    expect(rr.reason).toBe('MigrationRequired');
    expect(rr.message).toContain('Nothing ran for this request');

    // Re-applying the old YAML (a GitOps sync of the old repository) is not refused.
    for (const sample of OLD_SAMPLES) {
      const file = join(dir, 'config', 'samples', `remediator_v1alpha1_alertpolicy_${sample}.yaml`);
      must(await kubectl(['apply', '-n', APPS_NS, '-f', file]), `re-apply old sample ${sample}`);
    }
    must(await kubectl(['label', 'alertpolicy', 'restart-nginx', '-n', APPS_NS, 'edited=yes']), 'an old policy stays editable');
    // A new policy cannot carry an inline action.
    const fresh = readFileSync(join(dir, 'config', 'samples', 'remediator_v1alpha1_alertpolicy_restart-nginx.yaml'), 'utf8').replace(
      'name: restart-nginx',
      'name: brand-new',
    );
    const refused = await kubectl(['apply', '-n', APPS_NS, '-f', '-'], { input: fresh });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('spec.action, the inline action of the schema before Runbooks, cannot be added');

    // Nothing crashed: the process lives, and no reconcile failed.
    expect(controller.process.exitStatus()).toBeUndefined();
    const metrics = await (await fetch(`${controller.metricsUrl}/metrics`)).text();
    const errors = [...metrics.matchAll(/^controller_runtime_reconcile_errors_total\{[^}]*\} (\d+)/gm)].map((m) => Number(m[1]));
    expect(errors.filter((n) => n > 0)).toEqual([]);
    for (const name of ['alertpolicy', 'remediationrequest'])
      expect(metrics).toMatch(
        new RegExp(`^controller_runtime_reconcile_total\\{[^}]*controller="${name}"[^}]*result="success"[^}]*\\} [1-9]`, 'm'),
      );
  });

  test('kubectl remediator migrate writes a Runbook and the policy using it; only an administrator may apply it', async () => {
    const env = { ...process.env };
    const printed = must(
      await plugin(tb, 'admin', ['migrate', 'restart-nginx', '-n', APPS_NS], { kubeconfig: cp.adminKubeconfig, env }),
      'migrate',
    );
    const docs = parseAllDocuments(printed.stdout).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string }; spec: Record<string, unknown> },
    );
    const runbook = docs.find((d) => d.kind === 'Runbook')!;
    const policy = docs.find((d) => d.kind === 'AlertPolicy')!;
    expect(runbook.metadata.name).toBe(`${APPS_NS}-restart-nginx`);
    expect(runbook.spec['namespaceSelector']).toEqual({ matchLabels: { 'kubernetes.io/metadata.name': APPS_NS } });
    expect(runbook.spec['minRisk']).toBe('Low');
    expect(runbook.spec['scope']).toEqual({ maxTargets: 5 });
    expect(policy.spec['runbookRef']).toEqual({ name: runbook.metadata.name });
    expect(policy.spec['action']).toBeUndefined();

    // --dir writes one file per object, for review.
    const out = join(dir, 'migrated');
    mkdirSync(out);
    must(await plugin(tb, 'admin', ['migrate', '-n', APPS_NS, '--dir', out], { kubeconfig: cp.adminKubeconfig, env }), 'migrate --dir');
    expect(readdirSync(out).sort()).toEqual(
      OLD_SAMPLES.flatMap((s) => [`alertpolicy-${APPS_NS}-${s}.yaml`, `runbook-${APPS_NS}-${s}.yaml`]).sort(),
    );

    // A team editor may read the policies but not create the Runbook.
    must(
      await kubectl(['create', 'rolebinding', 'alice-edit', '-n', APPS_NS, `--clusterrole=${RELEASE}-editor`, '--user=alice']),
      'bind alice',
    );
    const denied = await plugin(tb, 'alice', ['migrate', 'restart-nginx', '-n', APPS_NS, '--apply'], {
      kubeconfig: cp.kubeconfigForUser('alice'),
      env,
    });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('only cluster administrators may');
    expect((await kubectl(['get', 'runbook', runbook.metadata.name])).code).not.toBe(0);

    const applied = must(
      await plugin(tb, 'admin', ['migrate', 'restart-nginx', '-n', APPS_NS, '--apply'], { kubeconfig: cp.adminKubeconfig, env }),
      'migrate --apply',
    );
    expect(applied.stdout).toContain(`runbook.remediator.dev/${runbook.metadata.name} created`);
    const c = await waitFor('the migrated policy is Ready', async () => {
      const r = await ready('restart-nginx');
      return r?.status === 'True' ? r : undefined;
    });
    expect(c.reason).toBe('Valid');
    const migrated = await getJson<{ spec: Record<string, unknown> }>('alertpolicy', 'restart-nginx', '-n', APPS_NS);
    expect(migrated.spec['action']).toBeUndefined();
    expect(migrated.spec['runbookRef']).toEqual({ name: runbook.metadata.name });
    // The others still wait for theirs.
    expect((await ready('reboot-unresponsive'))?.reason).toBe('MigrationRequired');
  });
});
