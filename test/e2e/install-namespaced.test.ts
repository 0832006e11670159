/**
 * The chart's namespace-scoped mode (`controller.watchNamespaces`): the controller
 * gets a Role in each watched namespace and no cluster-wide access to namespaced
 * remediator objects — only the cluster-wide reads trust needs (Runbooks, Namespace
 * labels, the approval admission policy) — and still completes a remediation: the
 * controller started, as in install.test.ts, with the chart's ServiceAccount token and
 * its Deployment's environment.
 */
import { seedInstances } from '../testbed/aws.js';
import {
  deploymentEnv,
  grant,
  installChart,
  must,
  namespace,
  SCOPE_LABEL,
  serviceAccountKubeconfig,
  suffix,
  type InstalledChart,
} from './install-chart.js';
import { Resources, restartRunbook, startController, testbedFromEnv, type RunningController } from './harness.js';

const REGION = 'ap-south-1';
const id = suffix();
const SYSTEM_NS = `rmd-ns-system-${id}`;
const APPS_NS = `rmd-ns-apps-${id}`;
const OTHER_NS = `rmd-ns-other-${id}`;
const RUNBOOK = `restart-nginx-namespaced-${id}`;

describe('the chart with controller.watchNamespaces', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  let chart: InstalledChart;
  let controller: RunningController;

  beforeAll(async () => {
    await namespace(tb, APPS_NS, { [SCOPE_LABEL]: id });
    await namespace(tb, OTHER_NS);
    chart = await installChart(tb, {
      release: `nsd${id}`,
      namespace: SYSTEM_NS,
      scope: id,
      values: { replicaCount: 1, controller: { watchNamespaces: [APPS_NS], pollIntervalMs: 200 }, intake: { enabled: false } },
    });
    await grant(tb, APPS_NS, 'carol', `${chart.fullname}-editor`);
    await res.createRunbook(
      RUNBOOK,
      restartRunbook({
        namespaceSelector: { matchLabels: { [SCOPE_LABEL]: id } },
        inputs: [],
        action: { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart nginx'] }] } },
      }),
    );
    const env = deploymentEnv(chart.find('Deployment'), `nsd-${id}-0`);
    expect(env['WATCH_NAMESPACE']).toBe(APPS_NS);
    controller = await startController(tb, {
      region: REGION,
      namespace: APPS_NS,
      name: `controller-namespaced-${id}`,
      kubeconfig: await serviceAccountKubeconfig(tb, chart),
      extraEnv: env,
    });
  });

  afterAll(async () => {
    await controller?.stop();
    await res.deleteRunbook(RUNBOOK);
    await chart?.uninstall();
  });

  test('renders no cluster-wide role for the controller beyond the reads trust needs, and the API server agrees', async () => {
    expect(
      chart.objects
        .filter((o) => o.kind === 'ClusterRole')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual([
      `${chart.fullname}-approver`,
      `${chart.fullname}-controller-trust`,
      `${chart.fullname}-editor`,
      `${chart.fullname}-runbook-admin`,
      `${chart.fullname}-viewer`,
    ]);
    // The one cluster-wide grant to the controller: cluster-scoped trust inputs, read-only
    // (but for the status of Runbooks, where it reports their validity).
    const bound = chart.objects
      .filter((o) => o.kind === 'ClusterRoleBinding')
      .map((o) => (o as unknown as { roleRef: { name: string } }).roleRef.name);
    expect(bound).toEqual([`${chart.fullname}-controller-trust`]);
    const trust = chart.find('ClusterRole', `${chart.fullname}-controller-trust`) as unknown as {
      rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
    };
    const grants = trust.rules
      .flatMap((r) => r.resources.map((res) => `${r.apiGroups[0] || 'core'}/${res}: ${[...r.verbs].sort().join(',')}`))
      .sort();
    expect(grants).toEqual([
      'admissionregistration.k8s.io/validatingadmissionpolicies: get,list,watch',
      'admissionregistration.k8s.io/validatingadmissionpolicybindings: get,list,watch',
      'core/namespaces: get,list,watch',
      'remediator.dev/runbooks/status: patch,update',
      'remediator.dev/runbooks: get,list,watch',
    ]);
    const can = async (...args: string[]) =>
      (await tb.kubectl(['auth', 'can-i', ...args, `--as=${chart.serviceAccountUser}`])).stdout.trim();
    expect(await can('list', 'remediationrequests.remediator.dev', '-A')).toBe('no');
    expect(await can('list', 'remediationrequests.remediator.dev', '-n', OTHER_NS)).toBe('no');
    expect(await can('list', 'remediationrequests.remediator.dev', '-n', APPS_NS)).toBe('yes');
    expect(await can('create', 'events', '-n', APPS_NS)).toBe('yes');
    expect(await can('create', 'events', '-n', OTHER_NS)).toBe('no');
    expect(await can('get', 'secrets', '-n', SYSTEM_NS)).toBe('no');
    expect(await can('list', 'alertpolicies.remediator.dev', '-n', OTHER_NS)).toBe('no');
    expect(await can('list', 'runbooks.remediator.dev')).toBe('yes');
    expect(await can('create', 'runbooks.remediator.dev')).toBe('no');
  });

  test('completes a remediation with only its Roles', async () => {
    const [instance] = await seedInstances(tb.motoEndpoint, { region: REGION, tags: { Name: 'web-ns' } });
    const policy = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'AlertPolicy',
      metadata: { name: 'restart', namespace: APPS_NS, annotations: { 'remediator.dev/changed-by': 'carol' } },
      spec: { targets: { fromLabels: ['instance_id'] }, runbookRef: { name: RUNBOOK } },
    };
    const request = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'RemediationRequest',
      metadata: { name: 'web-down', namespace: APPS_NS },
      spec: {
        policyRef: { name: 'restart' },
        requestedBy: 'carol',
        alert: { source: 'generic', name: 'Down', labels: { instance_id: instance } },
      },
    };
    must(
      await tb.kubectl(['apply', '-f', '-'], {
        user: 'carol',
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [policy, request] }),
      }),
      'apply',
    );
    const rr = await res.waitForPhase(APPS_NS, 'web-down', 'Succeeded');
    expect(rr.status?.execution?.ssm?.invocations).toEqual([expect.objectContaining({ instanceId: instance, status: 'Success' })]);
  });
});
