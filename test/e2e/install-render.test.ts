/**
 * The chart and config/ as files, checked with the pinned helm and kubectl: `helm
 * lint` and `helm template` are clean; values.schema.json makes a wrong value fail the
 * install; the rendered objects are hardened and least-privilege; the Grafana dashboard
 * queries only metrics the controller exports; kubectl reads the chart's CRDs exactly
 * as src/api generates them; config/ is what hack/chart/gen-config.ts makes of the
 * chart (so the two cannot drift), and kustomize builds it; `make deploy`'s script works.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IntakeMetrics } from '../../src/intake/metrics.js';
import { customResourceDefinitions } from '../../src/api/v1alpha1/index.js';
import { Metrics } from '../../src/observability/metrics.js';
import { CONFIG_NAMESPACE, CONFIG_RELEASE, CONFIG_VALUES, renderConfig, staleConfig } from '../../hack/chart/gen-config.js';
import { CHART_DIR, helm, parseManifests, renderChart, type ManifestObject } from '../../hack/chart/render.js';
import { repoRoot } from '../testbed/binaries.js';
import { run } from '../testbed/tools.js';
import { must, namespace } from './install-chart.js';
import { testbedFromEnv } from './harness.js';

const tb = testbedFromEnv();
const CI_VALUES = join(CHART_DIR, 'ci', 'eks-values.yaml');

interface Container {
  name: string;
  image: string;
  env?: Array<{ name: string; value?: string }>;
  ports?: Array<{ name: string; containerPort: number }>;
  securityContext?: Record<string, unknown>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: { httpGet?: { path: string; port: string } };
  readinessProbe?: { httpGet?: { path: string; port: string } };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
interface PodSpec {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
}
interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

async function render(values: Record<string, unknown> = {}, valuesFiles: string[] = []): Promise<ManifestObject[]> {
  return parseManifests(
    await renderChart({ helm: tb.binaries.helm, release: 'remediator', namespace: 'remediator-system', values, valuesFiles }),
  );
}

function one(objects: ManifestObject[], kind: string, name?: string): ManifestObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

const podSpec = (objects: ManifestObject[]) => (one(objects, 'Deployment')['spec'] as { template: { spec: PodSpec } }).template.spec;
const controllerEnv = (objects: ManifestObject[]) =>
  Object.fromEntries((podSpec(objects).containers[0]!.env ?? []).map((e) => [e.name, e.value ?? '<from field>']));
const rules = (o: ManifestObject) => (o['rules'] as Rule[] | undefined) ?? [];

describe('helm lint and helm template', () => {
  test.each([
    ['default values', []],
    ['ci/eks-values.yaml', ['--values', CI_VALUES]],
  ])('helm lint --strict is clean with %s', async (_label, args) => {
    const r = await helm(tb.binaries.helm, ['lint', '--strict', CHART_DIR, ...(args as string[])]);
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
  });

  test('renders the documented set of objects, and the optional ones when enabled', async () => {
    const kinds = (await render()).map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).toEqual([
      'ClusterRole/remediator-approver',
      'ClusterRole/remediator-controller',
      'ClusterRole/remediator-controller-trust',
      'ClusterRole/remediator-editor',
      'ClusterRole/remediator-runbook-admin',
      'ClusterRole/remediator-viewer',
      'ClusterRoleBinding/remediator-controller',
      'ClusterRoleBinding/remediator-controller-trust',
      'CustomResourceDefinition/alertpolicies.remediator.dev',
      'CustomResourceDefinition/remediationrequests.remediator.dev',
      'CustomResourceDefinition/runbooks.remediator.dev',
      'Deployment/remediator',
      'NetworkPolicy/remediator',
      'PodDisruptionBudget/remediator',
      'Role/remediator-controller',
      'RoleBinding/remediator-controller',
      'Secret/remediator-intake-token',
      'Service/remediator',
      'ServiceAccount/remediator',
      'ValidatingAdmissionPolicy/remediator-approvals',
      'ValidatingAdmissionPolicyBinding/remediator-approvals',
    ]);
    const full = await render({}, [CI_VALUES]);
    const monitor = one(full, 'ServiceMonitor');
    expect(monitor.metadata.labels?.['release']).toBe('kube-prometheus-stack');
    expect((monitor['spec'] as { endpoints: Array<{ port: string }> }).endpoints[0]!.port).toBe('http-metrics');
    const dashboard = one(full, 'ConfigMap', 'remediator-dashboard');
    expect(dashboard.metadata.labels?.['grafana_dashboard']).toBe('1');
    const json = JSON.parse((dashboard['data'] as Record<string, string>)['remediator.json']!) as { uid: string };
    expect(json.uid).toBe('remediator-controller');
  });

  test('the Deployment is hardened: non-root, read-only root, seccomp, no capabilities, limits, probes', async () => {
    for (const objects of [await render(), await render({}, [CI_VALUES])]) {
      const pod = podSpec(objects);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.serviceAccountName).toBe('remediator');
      const c = pod.containers[0]!;
      expect(c.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        privileged: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(Object.keys(c.resources?.requests ?? {}).sort()).toEqual(['cpu', 'memory']);
      expect(Object.keys(c.resources?.limits ?? {}).sort()).toEqual(['cpu', 'memory']);
      expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http-metrics' });
      expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http-metrics' });
      expect(c.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
      expect(c.ports?.map((p) => [p.name, p.containerPort])).toEqual([
        ['http-metrics', 8080],
        ['http-intake', 8090],
      ]);
    }
  });

  test('the ServiceAccount carries the IRSA role from values; the image follows appVersion', async () => {
    const plain = await render();
    expect(one(plain, 'ServiceAccount').metadata.annotations).toBeUndefined();
    const roleArn = 'arn:aws:iam::123456789012:role/remediator-controller';
    const irsa = await render({ serviceAccount: { roleArn } });
    expect(one(irsa, 'ServiceAccount').metadata.annotations).toEqual({ 'eks.amazonaws.com/role-arn': roleArn });
    expect(podSpec(plain).containers[0]!.image).toBe('ghcr.io/remediator-dev/remediator:0.1.0');
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(podSpec(await render({ image: { digest } })).containers[0]!.image).toBe(`ghcr.io/remediator-dev/remediator@${digest}`);
  });

  test('leader election is on whenever there is more than one replica', async () => {
    expect(controllerEnv(await render({ replicaCount: 2, leaderElection: { enabled: false } }))['LEADER_ELECT']).toBe('true');
    expect(controllerEnv(await render({ replicaCount: 1, leaderElection: { enabled: false } }))['LEADER_ELECT']).toBe('false');
    expect(controllerEnv(await render({ replicaCount: 1 }))['LEADER_ELECT']).toBe('true');
  });

  test('the controller is configured through the environment variables its flags read', async () => {
    const env = controllerEnv(await render({}, [CI_VALUES]));
    expect(env).toMatchObject({
      POD_NAMESPACE: '<from field>',
      POD_NAME: '<from field>',
      METRICS_BIND_ADDRESS: ':8080',
      LEADER_ELECT: 'true',
      LEADER_ELECTION_ID: 'remediator-leader',
      ALLOWED_DOCUMENTS: 'AWS-RunShellScript,AWS-RunPowerShellScript',
      INTAKE_BIND_ADDRESS: ':8090',
      INTAKE_TOKEN_SECRET: 'remediator-system/remediator-intake-token',
      SNS_TOPIC_ALLOWLIST: 'arn:aws:sns:eu-west-1:123456789012:cloudwatch-alarms',
      AWS_REGION: 'eu-west-1',
    });
    // V8's heap is sized for the container limit (NODE_OPTIONS is Node's, not a flag of the binary).
    expect(env['NODE_OPTIONS']).toMatch(/--max-old-space-size=\d+/);
    // Each of them is a flag the binary knows (its usage text lists --<flag> for every <FLAG> env).
    const { USAGE } = await import('../../src/config.js');
    // glibc's malloc settings, like NODE_OPTIONS, are for the process, not the binary's flags.
    expect(env['MALLOC_ARENA_MAX']).toBe('2');
    // 0 is written too (glibc's own default): left out, the image's ENV of 2 would still apply.
    expect(controllerEnv(await render({ controller: { malloc: { arenaMax: 0 } } }, [CI_VALUES]))['MALLOC_ARENA_MAX']).toBe('0');
    const notFlags = [
      'POD_NAMESPACE',
      'POD_NAME',
      'LEADER_ELECT',
      'AWS_REGION',
      'NODE_OPTIONS',
      'MALLOC_ARENA_MAX',
      'MALLOC_TRIM_THRESHOLD_',
    ];
    for (const name of Object.keys(env).filter((n) => !notFlags.includes(n))) {
      expect(USAGE).toContain(`--${name.toLowerCase().replace(/_/g, '-')} `);
    }
    // Intake off: no port, no Secret, no Secret access, and the binary told so (in a cluster it defaults on).
    const off = await render({ intake: { enabled: false } });
    expect(controllerEnv(off)['INTAKE_BIND_ADDRESS']).toBe('0');
    expect(off.some((o) => o.kind === 'Secret')).toBe(false);
    expect(rules(one(off, 'Role')).some((r) => r.resources?.includes('secrets'))).toBe(false);
    expect(
      rules(one(off, 'ClusterRole', 'remediator-controller')).some(
        (r) => r.verbs.includes('create') && r.resources?.includes('remediationrequests'),
      ),
    ).toBe(false);
  });

  test('RBAC is least privilege: no wildcards, no Secret read beyond one named Secret, exactly the verbs the controller uses', async () => {
    const objects = await render();
    for (const role of objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')) {
      for (const r of rules(role)) {
        for (const field of [r.apiGroups, r.resources, r.verbs, r.resourceNames]) expect(field ?? []).not.toContain('*');
        if (role.kind === 'ClusterRole') expect(r.resources).not.toContain('secrets');
      }
    }
    expect(rules(one(objects, 'ClusterRole', 'remediator-controller'))).toEqual([
      { apiGroups: ['remediator.dev'], resources: ['alertpolicies', 'remediationrequests'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['remediator.dev'], resources: ['alertpolicies/status', 'remediationrequests/status'], verbs: ['update', 'patch'] },
      // The execution finalizer (metadata only) and retention.
      { apiGroups: ['remediator.dev'], resources: ['remediationrequests'], verbs: ['patch', 'delete'] },
      { apiGroups: ['remediator.dev'], resources: ['remediationrequests'], verbs: ['create', 'patch'] },
      { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
    const role = one(objects, 'Role', 'remediator-controller');
    expect(role.metadata.namespace).toBe('remediator-system');
    expect(rules(role)).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['remediator-leader'], verbs: ['get', 'update'] },
      // The execution ledger: ConfigMaps in the controller's own namespace only.
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['remediator-intake-token'], verbs: ['get', 'list', 'watch'] },
    ]);
    // Trust inputs: cluster-scoped reads only (and the status of Runbooks, where it reports their validity).
    expect(rules(one(objects, 'ClusterRole', 'remediator-controller-trust'))).toEqual([
      { apiGroups: ['remediator.dev'], resources: ['runbooks'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['remediator.dev'], resources: ['runbooks/status'], verbs: ['update', 'patch'] },
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] },
      {
        apiGroups: ['admissionregistration.k8s.io'],
        resources: ['validatingadmissionpolicies', 'validatingadmissionpolicybindings'],
        verbs: ['get', 'list', 'watch'],
      },
    ]);
    expect(rules(one(objects, 'ClusterRole', 'remediator-approver'))[0]!.verbs).toContain('approve');
    for (const name of [
      'remediator-editor',
      'remediator-viewer',
      'remediator-controller',
      'remediator-controller-trust',
      'remediator-runbook-admin',
    ]) {
      expect(rules(one(objects, 'ClusterRole', name)).flatMap((r) => r.verbs)).not.toContain('approve');
    }
    // Only runbook-admin writes Runbooks, and it is never aggregated into the built-in roles.
    const writes = ['create', 'update', 'patch', 'delete'];
    for (const role of objects.filter((o) => o.kind === 'ClusterRole')) {
      const writesRunbooks = rules(role).some((r) => r.resources?.includes('runbooks') && r.verbs.some((v) => writes.includes(v)));
      expect([role.metadata.name, writesRunbooks]).toEqual([role.metadata.name, role.metadata.name === 'remediator-runbook-admin']);
    }
    const aggregated = await render({ rbac: { aggregateToDefaultRoles: true } });
    const labelsOf = (name: string) => one(aggregated, 'ClusterRole', name).metadata.labels ?? {};
    expect(Object.keys(labelsOf('remediator-runbook-admin')).filter((k) => k.startsWith('rbac.authorization.k8s.io/aggregate-to'))).toEqual(
      [],
    );
    expect(labelsOf('remediator-editor')['rbac.authorization.k8s.io/aggregate-to-edit']).toBe('true');
  });

  test("the admission policy matches only the main resources, so the controller's status writes pass", async () => {
    const objects = await render();
    const vap = one(objects, 'ValidatingAdmissionPolicy');
    const spec = vap['spec'] as {
      failurePolicy: string;
      matchConstraints: { resourceRules: Array<{ resources: string[]; operations: string[] }> };
    };
    expect(spec.failurePolicy).toBe('Fail');
    // Requests (approvals) and policies (the circuit-breaker reset), never a status subresource.
    expect(spec.matchConstraints.resourceRules).toEqual([
      expect.objectContaining({ resources: ['remediationrequests', 'alertpolicies'], operations: ['CREATE', 'UPDATE'] }),
    ]);
    // Bound with Deny: the controller honours manual approvals only where it is.
    const binding = one(objects, 'ValidatingAdmissionPolicyBinding')['spec'] as { policyName: string; validationActions: string[] };
    expect(binding).toMatchObject({ policyName: 'remediator-approvals', validationActions: ['Deny'] });
    expect(controllerEnv(objects)['ADMISSION_POLICY_NAME']).toBe('remediator-approvals');
  });
});

describe('values.schema.json', () => {
  test.each([
    ['a misspelt key', { replicas: 2 }, "additional properties 'replicas' not allowed"],
    ['replicaCount 0', { replicaCount: 0 }, '/replicaCount'],
    ['replicaCount as a string', { replicaCount: '2' }, '/replicaCount'],
    ['an unknown pull policy', { image: { pullPolicy: 'Sometimes' } }, '/image/pullPolicy'],
    ['a role ARN that is not one', { serviceAccount: { roleArn: 'remediator-controller' } }, '/serviceAccount/roleArn'],
    ['an unknown validation action', { admissionPolicy: { validationActions: ['Block'] } }, '/admissionPolicy/validationActions'],
    ['Deny with Warn', { admissionPolicy: { validationActions: ['Deny', 'Warn'] } }, '/admissionPolicy/validationActions'],
    [
      'a Warn/Audit rollout without Deny (approvals would not be honoured)',
      { admissionPolicy: { validationActions: ['Warn', 'Audit'] } },
      '/admissionPolicy/validationActions',
    ],
    ['a memory limit in a unit Kubernetes does not know', { resources: { limits: { memory: '512MB' } } }, '/resources/limits'],
    ['no memory request', { resources: { requests: { memory: null } } }, '/resources/requests'],
    ['a port out of range', { intake: { port: 70000 } }, '/intake/port'],
    ['an unknown log level', { controller: { logLevel: 'verbose' } }, '/controller/logLevel'],
    ['running as root', { podSecurityContext: { runAsUser: 0 } }, '/podSecurityContext/runAsUser'],
    ["a grace period shorter than the controller's", { terminationGracePeriodSeconds: 10 }, '/terminationGracePeriodSeconds'],
    ['a topic that is not an SNS ARN', { intake: { snsTopicAllowlist: ['alarms'] } }, '/intake/snsTopicAllowlist'],
  ])('refuses %s at install', async (_label, values, where) => {
    const error = await render(values).then(
      () => undefined,
      (e: unknown) => (e as Error).message,
    );
    expect(error).toContain("values don't meet the specifications of the schema");
    expect(error).toContain(where);
  });
});

describe('the Grafana dashboard', () => {
  test('queries only metrics the controller exports, and covers each of them', async () => {
    const metrics = new Metrics();
    new IntakeMetrics(metrics.registry);
    const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    const dashboard = JSON.parse(readFileSync(join(CHART_DIR, 'dashboards', 'remediator.json'), 'utf8')) as {
      panels: Array<{ targets?: Array<{ expr: string }> }>;
    };
    const exprs = dashboard.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
    expect(exprs.length).toBeGreaterThan(10);
    const used = new Set<string>();
    for (const expr of exprs) {
      for (const [, name] of expr.matchAll(/\b([a-z_:][a-z0-9_:]*)\s*\{/g)) used.add(name!.replace(/_(bucket|sum|count)$/, ''));
    }
    for (const name of used) expect({ metric: name, exported: exported.has(name) }).toEqual({ metric: name, exported: true });
    // Every remediator and controller-runtime metric has a panel (Node's defaults need not).
    for (const name of exported) {
      if (/^(process|nodejs)_/.test(name)) continue;
      expect({ metric: name, onDashboard: used.has(name) }).toEqual({ metric: name, onDashboard: true });
    }
  });
});

describe('CRDs and config/', () => {
  test("kubectl reads the chart's CRDs exactly as src/api generates them (YAML 1.1 included)", async () => {
    for (const crd of customResourceDefinitions()) {
      const file = join(CHART_DIR, 'files', 'crds', `remediator.dev_${crd.spec.names.plural}.yaml`);
      const r = must(await tb.kubectl(['create', '--dry-run=client', '-o', 'json', '-f', file]), `kubectl reads ${file}`);
      expect(JSON.parse(r.stdout)).toEqual(JSON.parse(JSON.stringify(crd)));
    }
  });

  test('the chart renders the CRDs as templates (so helm upgrade upgrades them) exactly as src/api generates them, kept on uninstall', async () => {
    const rendered = (await render()).filter((o) => o.kind === 'CustomResourceDefinition');
    expect(rendered.map((o) => o.metadata.name).sort()).toEqual(
      customResourceDefinitions()
        .map((c) => c.metadata.name)
        .sort(),
    );
    for (const crd of customResourceDefinitions()) {
      const got = rendered.find((o) => o.metadata.name === crd.metadata.name)!;
      // Through fromYaml and toYaml and back: not a field lost, not a number or an `on` changed.
      expect(got.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
      expect(got.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('Helm');
      const { metadata: _m, ...body } = got;
      const { metadata: _g, ...generated } = JSON.parse(JSON.stringify(crd)) as typeof got;
      expect(body).toEqual(generated);
    }
    expect(
      (await render({ crds: { keep: false } })).find((o) => o.kind === 'CustomResourceDefinition')?.metadata.annotations,
    ).toBeUndefined();
    expect((await render({ crds: { enabled: false } })).some((o) => o.kind === 'CustomResourceDefinition')).toBe(false);
  });

  test('config/ is exactly what hack/chart/gen-config.ts makes of the chart (run `make chart-config` when this fails)', async () => {
    const files = await renderConfig(tb.binaries.helm);
    expect(staleConfig(files)).toEqual([]);
  });

  test("kustomize builds config/ into the chart's objects, the CRDs and the namespace", async () => {
    const built = parseManifests(must(await tb.kubectl(['kustomize', join(repoRoot(), 'config')]), 'kubectl kustomize config').stdout);
    const chart = parseManifests(
      await renderChart({ helm: tb.binaries.helm, release: CONFIG_RELEASE, namespace: CONFIG_NAMESPACE, valuesFiles: [CONFIG_VALUES] }),
    );
    const key = (o: ManifestObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const expected = [
      ...chart.map(key),
      ...customResourceDefinitions().map((c) => `CustomResourceDefinition//${c.metadata.name}`),
      `Namespace//${CONFIG_NAMESPACE}`,
    ];
    expect(built.map(key).sort()).toEqual(expected.sort());
    const deployment = one(built, 'Deployment');
    expect(deployment.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('kustomize');
    expect(deployment.metadata.labels?.['helm.sh/chart']).toBeUndefined();
  });

  test("make deploy's script applies config/ with the image it is given (server-side dry run)", async () => {
    await namespace(tb, CONFIG_NAMESPACE);
    const r = await run(
      'bash',
      [join(repoRoot(), 'hack', 'chart', 'deploy.sh'), 'apply', 'registry.example.com:5000/team/remediator:1.2.3'],
      {
        env: { ...process.env, KUBECTL: tb.binaries.kubectl, KUBECONFIG: tb.cluster.adminKubeconfig, DRY_RUN: 'server' },
      },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('deployment.apps/remediator serverside-applied (server dry run)');
    expect(r.stdout).toContain(
      'validatingadmissionpolicy.admissionregistration.k8s.io/remediator-approvals serverside-applied (server dry run)',
    );
    const rendered = must(
      await run('bash', [join(repoRoot(), 'hack', 'chart', 'deploy.sh'), 'render', 'registry.example.com:5000/team/remediator:1.2.3'], {
        env: { ...process.env, KUBECTL: tb.binaries.kubectl },
      }),
      'render',
    );
    expect(rendered.stdout).toContain('image: registry.example.com:5000/team/remediator:1.2.3');
  });
});
