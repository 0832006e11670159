/**
 * The kubectl plugin's commands. `approve` and `reject` write `spec.approval` as the
 * current kubeconfig user: the name comes from a SelfSubjectReview (who the API server
 * says we are), never from a flag, and the patch carries the resourceVersion that was
 * shown, so a decision always applies to the request as the user last saw it. The API
 * server's admission policy has the last word; its refusal is printed as it is.
 */
import {
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import {
  ALERT_POLICY,
  CIRCUIT_RESET_ANNOTATION,
  CIRCUIT_RESET_TOKEN_ANNOTATION,
  END_PHASES,
  GROUP,
  REMEDIATION_REQUEST,
  VERSION,
  type AlertPolicy,
  type Phase,
  type RemediationRequest,
} from '../api/v1alpha1/index.js';
import { parseCommand, PLUGIN_VERSION, UsageError, USAGE, type Command, type Connection } from './args.js';
import { describeRequest, listTable, planText, type EventLine } from './format.js';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  now: () => number;
}

/** A failure to report to the user with exit code 1 (the message says what to do). */
export class PluginError extends Error {
  override readonly name = 'PluginError';
}

const PLURAL = REMEDIATION_REQUEST.plural;

function loadKubeConfig(conn: Connection): KubeConfig {
  const kc = new KubeConfig();
  if (conn.kubeconfig) kc.loadFromFile(conn.kubeconfig);
  else kc.loadFromDefault();
  if (conn.context) {
    if (!kc.getContexts().some((c) => c.name === conn.context)) throw new PluginError(`context "${conn.context}" is not in the kubeconfig`);
    kc.setCurrentContext(conn.context);
  }
  if (!kc.getCurrentCluster())
    throw new PluginError('no current cluster in the kubeconfig: set KUBECONFIG or --kubeconfig, or pick a --context');
  return kc;
}

function namespaceOf(kc: KubeConfig, conn: Connection): string {
  return conn.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
}

/** The API server's own words from a failed call (a metav1.Status message when there is one). */
export function apiMessage(error: unknown): string {
  if (error instanceof ApiException) {
    let body: unknown = error.body;
    if (typeof error.body === 'string') {
      const text: string = error.body;
      try {
        body = JSON.parse(text);
      } catch {
        return text || `HTTP ${error.code}`;
      }
    }
    const message = (body as { message?: string } | undefined)?.message;
    return message ?? `HTTP ${error.code}`;
  }
  return error instanceof Error ? error.message : String(error);
}

function statusCode(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

class Client {
  readonly kc: KubeConfig;
  readonly namespace: string;
  private readonly custom: CustomObjectsApi;

  constructor(conn: Connection) {
    this.kc = loadKubeConfig(conn);
    this.namespace = namespaceOf(this.kc, conn);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
  }

  async whoami(): Promise<{ username: string; groups: string[] }> {
    const review = await this.kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    const username = review.status?.userInfo?.username;
    if (!username) throw new PluginError('the API server did not say who you are (SelfSubjectReview returned no user name)');
    return { username, groups: review.status?.userInfo?.groups ?? [] };
  }

  async list(allNamespaces: boolean): Promise<RemediationRequest[]> {
    const list = (
      allNamespaces
        ? await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
        : await this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL })
    ) as {
      items: RemediationRequest[];
    };
    return list.items;
  }

  async get(name: string): Promise<RemediationRequest> {
    try {
      return (await this.custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: PLURAL,
        name,
      })) as RemediationRequest;
    } catch (error) {
      if (statusCode(error) === 404) throw new PluginError(`remediationrequest "${name}" not found in namespace "${this.namespace}"`);
      throw error;
    }
  }

  /** Events about the request, oldest first; undefined when this user may not list them. */
  async events(rr: RemediationRequest): Promise<EventLine[] | undefined> {
    try {
      const list = await this.kc.makeApiClient(CoreV1Api).listNamespacedEvent({
        namespace: this.namespace,
        fieldSelector: `involvedObject.name=${rr.metadata?.name},involvedObject.kind=${REMEDIATION_REQUEST.kind}`,
      });
      return list.items
        .filter((e) => !rr.metadata?.uid || !e.involvedObject.uid || e.involvedObject.uid === rr.metadata.uid)
        .map((e) => ({
          type: e.type,
          reason: e.reason,
          message: e.message,
          time: e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp,
        }))
        .sort((a, b) => new Date(a.time ?? 0).getTime() - new Date(b.time ?? 0).getTime());
    } catch (error) {
      if (statusCode(error) === 403) return undefined;
      throw error;
    }
  }

  /**
   * Sets the circuit-reset annotation to now, with the reset token the controller published
   * in status (ADR 0011): the controller stops counting earlier failures.
   */
  async resume(policy: string, now: Date): Promise<AlertPolicy> {
    const base = { group: GROUP, version: VERSION, namespace: this.namespace, plural: ALERT_POLICY.plural, name: policy };
    let current: AlertPolicy;
    try {
      current = (await this.custom.getNamespacedCustomObject(base)) as AlertPolicy;
    } catch (error) {
      if (statusCode(error) === 404) throw new PluginError(`alertpolicy "${policy}" not found in namespace "${this.namespace}"`);
      throw error;
    }
    const token = current.status?.circuitBreaker?.resetToken;
    if (!token) {
      throw new PluginError(
        `alertpolicy "${policy}" has no reset token in status.circuitBreaker: the controller issues one only for a policy with a circuit breaker, in a namespace where it has verified the admission policy (see the policy's events and docs/security.md)`,
      );
    }
    return (await this.custom.patchNamespacedCustomObject(
      {
        ...base,
        body: { metadata: { annotations: { [CIRCUIT_RESET_ANNOTATION]: now.toISOString(), [CIRCUIT_RESET_TOKEN_ANNOTATION]: token } } },
        fieldManager: 'kubectl-remediator',
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as AlertPolicy;
  }

  /** JSON merge patch carrying the resourceVersion read: 409 if the request changed since. */
  async setApproval(rr: RemediationRequest, approval: NonNullable<RemediationRequest['spec']['approval']>): Promise<RemediationRequest> {
    return (await this.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: PLURAL,
        name: rr.metadata?.name ?? '',
        body: { metadata: { resourceVersion: rr.metadata?.resourceVersion }, spec: { approval } },
        fieldManager: 'kubectl-remediator',
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as RemediationRequest;
  }
}

async function decide(cmd: Extract<Command, { kind: 'decide' }>, io: Io): Promise<number> {
  const client = new Client(cmd.conn);
  const verb = cmd.decision === 'Approved' ? 'approve' : 'reject';
  const rr = await client.get(cmd.name);
  const ref = `remediationrequest ${client.namespace}/${cmd.name}`;
  const existing = rr.spec.approval;
  if (existing) {
    throw new PluginError(`${ref} is already ${existing.decision.toLowerCase()} by ${existing.approver}; a decision cannot be changed`);
  }
  const phase = (rr.status?.phase ?? 'Pending') as Phase;
  if (END_PHASES.has(phase)) throw new PluginError(`${ref} has ended (${phase}); there is nothing to ${verb}`);
  if (cmd.decision === 'Approved' && phase !== 'AwaitingApproval') {
    throw new PluginError(
      `${ref} is ${phase}, not AwaitingApproval: only a request waiting for approval can be approved (see kubectl remediator describe ${cmd.name})`,
    );
  }
  const plan = rr.status?.plan;
  if (cmd.decision === 'Approved' && !plan) throw new PluginError(`${ref} has no plan in status yet; wait until it is AwaitingApproval`);
  // The approver sees the plan they approve; the approval names its digest, and the API
  // server refuses it if the stored plan has changed since this read.
  if (cmd.decision === 'Approved' && plan) io.out(planText(plan));
  const { username } = await client.whoami();
  try {
    await client.setApproval(rr, {
      decision: cmd.decision,
      approver: username,
      ...(cmd.reason ? { reason: cmd.reason } : {}),
      ...(cmd.decision === 'Approved' && plan ? { planDigest: plan.digest } : {}),
    });
  } catch (error) {
    const code = statusCode(error);
    if (code === 409)
      throw new PluginError(`${ref} changed since it was read; look at it again (kubectl remediator describe ${cmd.name}) and retry`);
    if (code === 403 || code === 422 || code === 400)
      throw new PluginError(`the API server refused to ${verb} ${ref} as ${username}: ${apiMessage(error)}`);
    throw error;
  }
  io.out(`${ref} ${cmd.decision.toLowerCase()} by ${username}${cmd.reason ? ` (${cmd.reason})` : ''}`);
  return 0;
}

async function execute(cmd: Command, io: Io): Promise<number> {
  switch (cmd.kind) {
    case 'help':
      io.out(USAGE);
      return 0;
    case 'version':
      io.out(`kubectl-remediator ${PLUGIN_VERSION} (${API_LABEL})`);
      return 0;
    case 'whoami': {
      const me = await new Client(cmd.conn).whoami();
      io.out(`${me.username}${me.groups.length > 0 ? ` (groups: ${me.groups.join(', ')})` : ''}`);
      return 0;
    }
    case 'list': {
      const client = new Client(cmd.conn);
      let items = await client.list(cmd.allNamespaces);
      if (cmd.phase) items = items.filter((r) => (r.status?.phase ?? 'Pending') === cmd.phase);
      items.sort((a, b) => `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace}/${b.metadata?.name}`));
      if (cmd.output === 'json') {
        io.out(JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 2));
      } else if (cmd.output === 'name') {
        if (items.length > 0) io.out(items.map((r) => `${REMEDIATION_REQUEST.singular}.${GROUP}/${r.metadata?.name}`).join('\n'));
      } else if (items.length === 0) {
        io.err(cmd.allNamespaces ? 'No remediation requests found.' : `No remediation requests found in ${client.namespace} namespace.`);
      } else {
        io.out(listTable(items, { now: io.now(), allNamespaces: cmd.allNamespaces, wide: cmd.output === 'wide' }));
      }
      return 0;
    }
    case 'describe': {
      const client = new Client(cmd.conn);
      const rr = await client.get(cmd.name);
      io.out(describeRequest(rr, await client.events(rr), io.now()));
      return 0;
    }
    case 'decide':
      return decide(cmd, io);
    case 'resume': {
      const client = new Client(cmd.conn);
      const policy = await client.resume(cmd.policy, new Date(io.now()));
      const open = policy.status?.circuitBreaker?.open;
      io.out(`alertpolicy ${client.namespace}/${cmd.policy} resumed${open ? ': the controller closes its circuit breaker shortly' : ''}`);
      return 0;
    }
  }
}

const API_LABEL = `${GROUP}/${VERSION}`;

/** Runs the plugin; returns the process exit code (0 ok, 1 failed or refused, 2 usage). */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  try {
    return await execute(parseCommand(argv), io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`error: ${error.message}\nRun "kubectl remediator --help" for usage.`);
      return 2;
    }
    if (error instanceof PluginError) {
      io.err(`error: ${error.message}`);
      return 1;
    }
    const code = statusCode(error);
    if (code === 401) io.err('error: the API server did not accept your credentials (HTTP 401); check your kubeconfig');
    else if (code !== undefined) io.err(`error: ${apiMessage(error)}`);
    else io.err(`error: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}
