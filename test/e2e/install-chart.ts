/**
 * What the install, admission and plugin tests share: rendering the Helm chart with
 * `helm template` and applying it with kubectl the way a user (or Argo CD) does,
 * namespaces scoped so one test's admission policy never touches another test's
 * objects, RoleBindings for the named users, the controller's environment taken from
 * the rendered Deployment, and the kubectl plugin on PATH as kubectl finds plugins.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { parseManifests, renderChart, type ManifestObject } from '../../hack/chart/render.js';
import { loadKubeConfig } from '../testbed/kubeconfig.js';
import { repoRoot } from '../testbed/binaries.js';
import type { Testbed, ToolOptions } from '../testbed/env.js';
import type { RunResult } from '../testbed/tools.js';

/** The label a test namespace carries so that only its own release's admission policy binds there. */
export const SCOPE_LABEL = 'remediator.dev/test-scope';

export const suffix = (): string => randomBytes(3).toString('hex');

export interface InstalledChart {
  release: string;
  namespace: string;
  fullname: string;
  serviceAccount: string;
  /** The ServiceAccount's user name, as the API server authenticates it. */
  serviceAccountUser: string;
  objects: ManifestObject[];
  yaml: string;
  /** kubectl apply's output. */
  applied: RunResult;
  find(kind: string, name?: string): ManifestObject;
  /** Deletes the cluster-scoped objects (namespaced ones go with their namespace, which stays: no controller-manager here). */
  uninstall(): Promise<void>;
}

export interface InstallOptions {
  release: string;
  namespace: string;
  /** Namespaces the admission policy binds to: those labelled SCOPE_LABEL=scope. */
  scope: string;
  values?: Record<string, unknown>;
  /** Labels for the release namespace (e.g. Pod Security Admission levels). */
  namespaceLabels?: Record<string, string>;
}

export function must(result: RunResult, what: string): RunResult {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${result.stderr}${result.stdout}`);
  return result;
}

/** Creates (or labels) a namespace with kubectl. */
export async function namespace(tb: Testbed, name: string, labels: Record<string, string> = {}): Promise<string> {
  const doc = { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
  must(await tb.kubectl(['apply', '-f', '-'], { input: JSON.stringify(doc) }), `creating namespace ${name}`);
  return name;
}

/** `helm template` the chart, then `kubectl apply -f -` the whole output as the cluster admin. */
export async function installChart(tb: Testbed, opts: InstallOptions): Promise<InstalledChart> {
  await namespace(tb, opts.namespace, opts.namespaceLabels);
  const values = {
    // The test bed installed the CRDs, shared by every test file: a chart must not own them.
    crds: { enabled: false },
    ...opts.values,
    admissionPolicy: {
      ...(opts.values?.['admissionPolicy'] as object | undefined),
      namespaceSelector: { matchLabels: { [SCOPE_LABEL]: opts.scope } },
    },
  };
  const yaml = await renderChart({ helm: tb.binaries.helm, release: opts.release, namespace: opts.namespace, values });
  const objects = parseManifests(yaml);
  const applied = must(await tb.kubectl(['apply', '-f', '-'], { input: yaml }), 'kubectl apply of the rendered chart');
  const find = (kind: string, name?: string): ManifestObject => {
    const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
    if (!found) throw new Error(`the chart rendered no ${kind}${name ? ` ${name}` : ''}`);
    return found;
  };
  const sa = find('ServiceAccount');
  const clusterScoped = objects.filter((o) => !o.metadata.namespace);
  return {
    release: opts.release,
    namespace: opts.namespace,
    fullname: find('Deployment').metadata.name,
    serviceAccount: sa.metadata.name,
    serviceAccountUser: `system:serviceaccount:${opts.namespace}:${sa.metadata.name}`,
    objects,
    yaml,
    applied,
    find,
    uninstall: async () => {
      if (clusterScoped.length === 0) return;
      const list = { apiVersion: 'v1', kind: 'List', items: clusterScoped };
      must(
        await tb.kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], { input: JSON.stringify(list) }),
        'deleting cluster-scoped chart objects',
      );
    },
  };
}

/**
 * Test-only: in namespaces of this scope, only `user` may write the status of
 * remediator objects. The suite's controllers each watch their own test's namespace;
 * this makes "nobody else writes status here" a fact the API server enforces, and so
 * proves that the status a test sees was written by the chart's ServiceAccount.
 * Returns the cleanup.
 */
export async function guardStatus(tb: Testbed, scope: string, user: string): Promise<() => Promise<void>> {
  const name = `test-status-guard-${scope}`;
  const list = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              {
                apiGroups: ['remediator.dev'],
                apiVersions: ['*'],
                operations: ['UPDATE'],
                resources: ['remediationrequests/status', 'alertpolicies/status'],
              },
            ],
          },
          validations: [
            {
              expression: `request.userInfo.username == '${user}'`,
              messageExpression: `'test guard: ' + request.userInfo.username + ' may not write status in this test namespace'`,
            },
          ],
        },
      },
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name },
        spec: {
          policyName: name,
          validationActions: ['Deny'],
          matchResources: { namespaceSelector: { matchLabels: { [SCOPE_LABEL]: scope } } },
        },
      },
    ],
  };
  must(await tb.kubectl(['apply', '-f', '-'], { input: JSON.stringify(list) }), 'status guard');
  return async () => {
    await tb.kubectl(['delete', '--ignore-not-found', '--wait=false', 'validatingadmissionpolicybinding,validatingadmissionpolicy', name]);
  };
}

/** A kubeconfig that authenticates as the chart's ServiceAccount (a TokenRequest token, as a pod would hold). */
export async function serviceAccountKubeconfig(tb: Testbed, chart: InstalledChart): Promise<string> {
  const token = await tb.cluster.tokenForServiceAccount(chart.namespace, chart.serviceAccount, { create: false });
  return tb.cluster.kubeconfigForToken(token, `sa-${chart.namespace}-${chart.serviceAccount}`);
}

/**
 * Merge-patches a RemediationRequest's status subresource as `kubeconfig`'s user — the
 * controller's part, for tests that need a request in a given phase without running
 * one. (Not `kubectl patch --subresource=status`: that GETs the subresource first, a
 * verb the controller's role does not need and does not have.)
 */
export async function writeStatus(
  kubeconfig: string,
  ns: string,
  name: string,
  status: Record<string, unknown>,
  plural = 'remediationrequests',
): Promise<void> {
  const api = loadKubeConfig(kubeconfig).makeApiClient(CustomObjectsApi);
  await api.patchNamespacedCustomObjectStatus(
    { group: 'remediator.dev', version: 'v1alpha1', namespace: ns, plural, name, body: { status } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/** A RoleBinding of `clusterRole` to `user` in `namespace`. */
export async function grant(tb: Testbed, ns: string, user: string, clusterRole: string): Promise<void> {
  const doc = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: `${clusterRole}-${user}`.slice(0, 63), namespace: ns },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
  };
  must(await tb.kubectl(['apply', '-f', '-'], { input: JSON.stringify(doc) }), `binding ${clusterRole} to ${user}`);
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

/**
 * The controller container's environment as the kubelet would give it: plain values
 * as they are, the downward-API fields resolved for a pod named `podName`.
 */
export function deploymentEnv(deployment: ManifestObject, podName: string): Record<string, string> {
  const spec = deployment['spec'] as { template: { spec: { containers: Array<{ name: string; env?: EnvVar[] }> } } };
  const container = spec.template.spec.containers.find((c) => c.name === 'controller');
  if (!container) throw new Error('the Deployment has no controller container');
  const env: Record<string, string> = {};
  for (const v of container.env ?? []) {
    if (v.value !== undefined) env[v.name] = v.value;
    else if (v.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[v.name] = deployment.metadata.namespace ?? '';
    else if (v.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[v.name] = podName;
    else throw new Error(`env ${v.name}: the test cannot resolve ${JSON.stringify(v.valueFrom)}`);
  }
  return env;
}

/**
 * A directory with an executable `kubectl-remediator`, as `npm install` links the
 * package's bin: kubectl finds it on PATH and runs `kubectl remediator ...` through it.
 */
let pluginDir: string | undefined;
export function pluginPath(tb: Testbed): string {
  if (pluginDir) return pluginDir;
  // Per process: test files run in parallel workers, and rewriting a script another
  // process is executing fails with ETXTBSY.
  const dir = join(tb.dir, `plugin-bin-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, 'kubectl-remediator');
  const entry = join(repoRoot(), 'dist', 'src', 'cli', 'kubectl-remediator.js');
  writeFileSync(bin, `#!/bin/sh\nexec "${process.execPath}" "${entry}" "$@"\n`);
  chmodSync(bin, 0o755);
  pluginDir = dir;
  return dir;
}

/** `kubectl remediator <args>` as `user`, through kubectl's plugin mechanism. */
export function plugin(tb: Testbed, user: string, args: string[], opts: ToolOptions = {}): Promise<RunResult> {
  const path = `${pluginPath(tb)}:${process.env['PATH'] ?? ''}`;
  return tb.kubectl(['remediator', ...args], { ...opts, user, env: { ...process.env, ...opts.env, PATH: path } });
}

/**
 * Waits until the API server enforces the chart's approval policy in `namespace`: it
 * loads a new policy and binding asynchronously, so a test that forges a request right
 * after the install could race it. A server-side dry run goes through admission.
 */
export async function waitForAdmissionPolicy(tb: Testbed, namespace: string): Promise<void> {
  const doc = {
    apiVersion: 'remediator.dev/v1alpha1',
    kind: 'RemediationRequest',
    metadata: { name: 'admission-probe', namespace },
    spec: { policyRef: { name: 'probe' }, alert: { source: 'generic', name: 'Probe' }, requestedBy: 'not-the-caller' },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const probe = await tb.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(doc) });
    if (probe.code !== 0 && probe.stderr.includes('denied request')) return;
    if (Date.now() > deadline)
      throw new Error(`the approval admission policy never became active in ${namespace}: ${probe.stdout}${probe.stderr}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
