/**
 * What the end-to-end tests share: starting the real controller process against the
 * test bed (IRSA credentials at moto, the admin or a ServiceAccount kubeconfig), waiting
 * on resources, and reading back what the AWS emulator received.
 */
import {
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { ListCommandsCommand, SSMClient, type Command } from '@aws-sdk/client-ssm';
import { join } from 'node:path';
import { API_VERSION, GROUP, VERSION, type AlertPolicy, type RemediationRequest, type Runbook } from '../../src/api/v1alpha1/index.js';
import { repoRoot } from '../testbed/binaries.js';
import { seedClientConfig } from '../testbed/aws.js';
import { testbedFromEnv, type Testbed } from '../testbed/env.js';
import { freePort, spawnManaged, waitUntil, type ManagedProcess } from '../testbed/procs.js';

export interface ControllerOptions {
  /** AWS region (each test file uses its own, so moto state never mixes). */
  region: string;
  /**
   * The namespace the controller watches. Test files run in parallel against one API
   * server, each with its own controller and region; a controller watching everything
   * would reconcile another file's requests with the wrong region.
   */
  namespace: string | string[];
  name?: string;
  kubeconfig?: string;
  extraEnv?: Record<string, string>;
  args?: string[];
  /**
   * Node's own flags, before the bundle; default `--enable-source-maps` (stack traces that
   * name src/). A memory figure wants the image's flags instead: source maps alone add
   * about 100 MB of heap to the bundle (docs/bench/heap-profile-2026-11-30.md).
   */
  nodeFlags?: string[];
  /** Endpoint the controller's SDK uses; default moto itself (a fault proxy may sit between). */
  awsEndpoint?: string;
}

export interface RunningController {
  process: ManagedProcess;
  metricsUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts the controller as a separate process, the bundle the image runs (`node
 * dist/controller/main.js`, hack/bundle-controller.ts), and waits until it is ready.
 * Source maps are on here: a failing test's stack traces then name the files in src/.
 */
export async function startController(tb: Testbed, opts: ControllerOptions): Promise<RunningController> {
  const port = await freePort();
  const env = {
    ...tb.awsEnv({ base: process.env }),
    AWS_REGION: opts.region,
    ...(opts.awsEndpoint ? { AWS_ENDPOINT_URL: opts.awsEndpoint } : {}),
    KUBECONFIG: opts.kubeconfig ?? tb.cluster.adminKubeconfig,
    LEADER_ELECT: 'false',
    WATCH_NAMESPACE: [opts.namespace].flat().join(','),
    LOG_LEVEL: 'debug',
    ...opts.extraEnv,
  };
  const proc = spawnManaged(
    opts.name ?? `controller-${opts.region}`,
    process.execPath,
    [
      ...(opts.nodeFlags ?? ['--enable-source-maps']),
      join(repoRoot(), 'dist', 'controller', 'main.js'),
      '--metrics-bind-address',
      `127.0.0.1:${port}`,
      '--poll-interval',
      '200',
      ...(opts.args ?? []),
    ],
    { logDir: join(tb.dir, 'logs'), env },
  );
  const metricsUrl = `http://127.0.0.1:${port}`;
  // Fails at once, with the log tail, if the controller dies before it is ready.
  await waitUntil(`controller ${proc.name} ready`, async () => ((await fetch(`${metricsUrl}/readyz`)).ok ? true : undefined), {
    timeoutMs: 30_000,
    processes: [proc],
  });
  return { process: proc, metricsUrl, stop: async () => void (await proc.stop(10_000)) };
}

/** Polls `probe` until it returns a value other than undefined/false; fails with `what` on timeout. */
/** Polls `probe` until it returns a value other than undefined/false; fails with `what` on timeout. */
export function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  return waitUntil(
    what,
    async () => {
      const v = await probe();
      return v === false ? undefined : v;
    },
    { timeoutMs, intervalMs: everyMs },
  );
}

export class Resources {
  readonly api: CustomObjectsApi;
  readonly core: CoreV1Api;

  constructor(readonly kc: KubeConfig) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async namespace(name: string): Promise<string> {
    await this.core.createNamespace({ body: { metadata: { name } } }).catch((e: { code?: number }) => {
      if (e.code !== 409) throw e;
    });
    return name;
  }

  /** Creates (or replaces) a cluster-scoped Runbook, as a cluster administrator would. */
  async createRunbook(name: string, spec: Runbook['spec']): Promise<Runbook> {
    const body = { apiVersion: API_VERSION, kind: 'Runbook', metadata: { name }, spec };
    try {
      return (await this.api.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'runbooks', body })) as Runbook;
    } catch (error) {
      if ((error as { code?: number }).code !== 409) throw error;
      const current = (await this.api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'runbooks', name })) as Runbook;
      return (await this.api.replaceClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: 'runbooks',
        name,
        body: { ...body, metadata: current.metadata },
      })) as Runbook;
    }
  }

  getRunbook(name: string): Promise<Runbook> {
    return this.api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'runbooks', name }) as Promise<Runbook>;
  }

  async deleteRunbook(name: string): Promise<void> {
    await this.api.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: 'runbooks', name }).catch(() => undefined);
  }

  /**
   * Gives `spec.approval` as the user this client authenticates as, naming the digest of
   * the plan in status (what `kubectl remediator approve` does).
   */
  async decide(
    namespace: string,
    name: string,
    approver: string,
    decision: 'Approved' | 'Rejected' = 'Approved',
    reason = 'looks right',
  ): Promise<RemediationRequest> {
    const current = await this.getRequest(namespace, name);
    const digest = current.status?.plan?.digest;
    return this.patchApproval(namespace, name, {
      decision,
      approver,
      reason,
      ...(decision === 'Approved' && digest ? { planDigest: digest } : {}),
    });
  }

  /** Sets spec.approval with a merge patch, as the approver role allows (it has patch, not update). */
  patchApproval(
    namespace: string,
    name: string,
    approval: NonNullable<RemediationRequest['spec']['approval']>,
  ): Promise<RemediationRequest> {
    return this.api.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace, plural: 'remediationrequests', name, body: { spec: { approval } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ) as Promise<RemediationRequest>;
  }

  private user?: Promise<string>;

  /** Who this client authenticates as (a SelfSubjectReview, as kubectl auth whoami does). */
  whoami(): Promise<string> {
    this.user ??= this.kc
      .makeApiClient(AuthenticationV1Api)
      .createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } })
      .then((r) => r.status?.userInfo?.username ?? '');
    return this.user;
  }

  /** Creates a policy recording its writer, as the admission policy requires (annotation remediator.dev/changed-by). */
  async createPolicy(
    namespace: string,
    name: string,
    spec: Partial<AlertPolicy['spec']> & Pick<AlertPolicy['spec'], 'runbookRef'>,
  ): Promise<AlertPolicy> {
    const annotations = { 'remediator.dev/changed-by': await this.whoami() };
    return (await this.api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: 'alertpolicies',
      body: { apiVersion: API_VERSION, kind: 'AlertPolicy', metadata: { name, namespace, annotations }, spec },
    })) as AlertPolicy;
  }

  /** Merge-patches a policy's spec, recording the writer (see createPolicy). */
  async patchPolicySpec(namespace: string, name: string, spec: Partial<AlertPolicy['spec']>): Promise<AlertPolicy> {
    const annotations = { 'remediator.dev/changed-by': await this.whoami() };
    return (await this.api.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace, plural: 'alertpolicies', name, body: { metadata: { annotations }, spec } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as AlertPolicy;
  }

  createRequest(namespace: string, name: string, spec: RemediationRequest['spec']): Promise<RemediationRequest> {
    return this.api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: 'remediationrequests',
      body: { apiVersion: API_VERSION, kind: 'RemediationRequest', metadata: { name, namespace }, spec },
    }) as Promise<RemediationRequest>;
  }

  getRequest(namespace: string, name: string): Promise<RemediationRequest> {
    return this.api.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: 'remediationrequests',
      name,
    }) as Promise<RemediationRequest>;
  }

  /**
   * Read-modify-write of a request's spec, retried on 409: the controller writes status
   * concurrently, which moves the resourceVersion under a test's feet.
   */
  async updateRequestSpec(
    namespace: string,
    name: string,
    mutate: (spec: RemediationRequest['spec'], current: RemediationRequest) => RemediationRequest['spec'],
  ): Promise<RemediationRequest> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.getRequest(namespace, name);
      try {
        return (await this.api.replaceNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: 'remediationrequests',
          name,
          body: { ...current, spec: mutate(structuredClone(current.spec), current) },
        })) as RemediationRequest;
      } catch (error) {
        if ((error as { code?: number }).code !== 409 || attempt >= 10) throw error;
      }
    }
  }

  getPolicy(namespace: string, name: string): Promise<AlertPolicy> {
    return this.api.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: 'alertpolicies',
      name,
    }) as Promise<AlertPolicy>;
  }

  /** Waits until the request reaches `phase` (or any end phase, then fails if it is another). */
  async waitForPhase(namespace: string, name: string, phase: string, timeoutMs = 60_000): Promise<RemediationRequest> {
    const ends = new Set(['Succeeded', 'Failed', 'Rejected', 'Expired', 'Skipped', 'Cancelled']);
    const rr = await waitFor(
      `${namespace}/${name} to reach ${phase}`,
      async () => {
        const r = await this.getRequest(namespace, name);
        const p = r.status?.phase;
        return p === phase || (p !== undefined && ends.has(p)) ? r : undefined;
      },
      timeoutMs,
    );
    if (rr.status?.phase !== phase) {
      throw new Error(`${namespace}/${name} ended ${rr.status?.phase} (${rr.status?.reason}: ${rr.status?.message}), expected ${phase}`);
    }
    return rr;
  }

  async events(namespace: string, name: string): Promise<Array<{ reason?: string; message?: string; type?: string }>> {
    const list = await this.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
    // Event names end in hex nanoseconds of the same width, so name order is recording order.
    return list.items.sort((a, b) => String(a.metadata?.name).localeCompare(String(b.metadata?.name)));
  }
}

/** A Runbook that restarts the service its policy names (`inputs.service`), for any namespace. */
export function restartRunbook(overrides: Partial<Runbook['spec']> = {}): Runbook['spec'] {
  return {
    minRisk: 'Low',
    namespaceSelector: {},
    inputs: [{ name: 'service' }],
    action: {
      ssm: { documentName: 'AWS-RunShellScript', parameters: [{ name: 'commands', values: ['systemctl restart {{ inputs.service }}'] }] },
    },
    ...overrides,
  };
}

/** Every SSM command moto holds in `region` (read with the seeding credentials). */
export async function ssmCommands(tb: Testbed, region: string): Promise<Command[]> {
  const ssm = new SSMClient(seedClientConfig(tb.motoEndpoint, region));
  try {
    const out: Command[] = [];
    let token: string | undefined;
    do {
      const page = await ssm.send(new ListCommandsCommand({ NextToken: token }));
      out.push(...(page.Commands ?? []));
      token = page.NextToken;
    } while (token);
    return out;
  } finally {
    ssm.destroy();
  }
}

export { testbedFromEnv };
