/**
 * The plugin's one way to the API server, shared by the commands and the `ui` page: it
 * acts with the kubeconfig's own credentials, and `decide` is the single code path
 * that writes an approval or a rejection, whether typed or clicked.
 *
 * `decide` writes `spec.approval` as the current user: the name comes from a
 * SelfSubjectReview (who the API server says we are), never from input, and the patch
 * carries the resourceVersion it read. An approval names the digest of the plan the
 * person was shown; the API server's admission policy refuses it if the stored plan has
 * changed since, and its refusal is reported as it is.
 */
import {
  ApiException,
  AuthenticationV1Api,
  AuthorizationV1Api,
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
  type Plan,
  type RemediationRequest,
} from '../api/v1alpha1/index.js';
import type { Connection } from './args.js';
import type { EventLine } from './format.js';

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

export function statusCode(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

/**
 * Calls `call` again while the API server answers 429, as kubectl does: a CRD installed
 * seconds ago answers "storage is (re)initializing" until its storage is ready. A 429
 * means the request was not carried out, so repeating it (a patch with the same
 * resourceVersion included) is safe. Bounded: about 15 s, then the 429 is reported.
 */
export async function whileThrottled<T>(
  call: () => Promise<T>,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  attempts = 8,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (statusCode(error) !== 429 || attempt >= attempts) throw error;
      await sleep(retryAfterMs(error) ?? Math.min(250 * 2 ** attempt, 4000));
    }
  }
}

function retryAfterMs(error: unknown): number | undefined {
  const header = error instanceof ApiException ? (error.headers as Record<string, string | undefined>)['retry-after'] : undefined;
  const seconds = Number(header);
  return header !== undefined && Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, 5) * 1000 : undefined;
}

export interface Identity {
  username: string;
  groups: string[];
}

export class Client {
  readonly kc: KubeConfig;
  /** The namespace commands act in: --namespace, else the context's, else "default". */
  readonly namespace: string;
  private readonly custom: CustomObjectsApi;

  constructor(conn: Connection) {
    this.kc = loadKubeConfig(conn);
    this.namespace = conn.namespace ?? this.kc.getContextObject(this.kc.getCurrentContext())?.namespace ?? 'default';
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
  }

  async whoami(): Promise<Identity> {
    const review = await whileThrottled(() => this.kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} }));
    const username = review.status?.userInfo?.username;
    if (!username) throw new PluginError('the API server did not say who you are (SelfSubjectReview returned no user name)');
    return { username, groups: review.status?.userInfo?.groups ?? [] };
  }

  /** Whether the API server's authorizer lets this user `verb` RemediationRequests in `namespace`. */
  async canI(verb: string, namespace: string): Promise<boolean> {
    const review = await whileThrottled(() =>
      this.kc.makeApiClient(AuthorizationV1Api).createSelfSubjectAccessReview({
        body: { spec: { resourceAttributes: { group: GROUP, resource: PLURAL, verb, namespace } } },
      }),
    );
    return review.status?.allowed === true;
  }

  async list(allNamespaces: boolean): Promise<RemediationRequest[]> {
    const list = (await whileThrottled(() =>
      allNamespaces
        ? this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
        : this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL }),
    )) as {
      items: RemediationRequest[];
    };
    return list.items;
  }

  async get(name: string, namespace = this.namespace): Promise<RemediationRequest> {
    try {
      return (await whileThrottled(() =>
        this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name }),
      )) as RemediationRequest;
    } catch (error) {
      if (statusCode(error) === 404) throw new PluginError(`remediationrequest "${name}" not found in namespace "${namespace}"`);
      throw error;
    }
  }

  /** Events about the request, oldest first; undefined when this user may not list them. */
  async events(rr: RemediationRequest): Promise<EventLine[] | undefined> {
    try {
      const list = await whileThrottled(() =>
        this.kc.makeApiClient(CoreV1Api).listNamespacedEvent({
          namespace: rr.metadata?.namespace ?? this.namespace,
          fieldSelector: `involvedObject.name=${rr.metadata?.name},involvedObject.kind=${REMEDIATION_REQUEST.kind}`,
        }),
      );
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

  /** The AlertPolicy, or undefined when it is gone or this user may not read it. */
  async policy(name: string, namespace: string): Promise<AlertPolicy | undefined> {
    try {
      return (await whileThrottled(() =>
        this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: ALERT_POLICY.plural, name }),
      )) as AlertPolicy;
    } catch (error) {
      if (statusCode(error) === 403 || statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  /** Sets the circuit-reset annotation to now: the controller stops counting earlier failures. */
  async resume(policy: string, now: Date): Promise<AlertPolicy> {
    const base = { group: GROUP, version: VERSION, namespace: this.namespace, plural: ALERT_POLICY.plural, name: policy };
    let current: AlertPolicy;
    try {
      current = (await whileThrottled(() => this.custom.getNamespacedCustomObject(base))) as AlertPolicy;
    } catch (error) {
      if (statusCode(error) === 404) throw new PluginError(`alertpolicy "${policy}" not found in namespace "${this.namespace}"`);
      throw error;
    }
    // The reset names the token the controller published in status (ADR 0011): admission
    // checks it against the stored status, the controller honours it only under that epoch.
    const token = current.status?.circuitBreaker?.resetToken;
    if (!token) {
      throw new PluginError(
        `alertpolicy "${policy}" has no reset token in status.circuitBreaker: the controller issues one only for a policy with a circuit breaker, in a namespace where it has verified the admission policy (see the policy's events and docs/security.md)`,
      );
    }
    return (await whileThrottled(() =>
      this.custom.patchNamespacedCustomObject(
        {
          ...base,
          body: { metadata: { annotations: { [CIRCUIT_RESET_ANNOTATION]: now.toISOString(), [CIRCUIT_RESET_TOKEN_ANNOTATION]: token } } },
          fieldManager: 'kubectl-remediator',
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    )) as AlertPolicy;
  }

  /** JSON merge patch carrying the resourceVersion read: 409 if the request changed since. */
  async setApproval(rr: RemediationRequest, approval: NonNullable<RemediationRequest['spec']['approval']>): Promise<RemediationRequest> {
    return (await whileThrottled(() =>
      this.custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace: rr.metadata?.namespace ?? this.namespace,
          plural: PLURAL,
          name: rr.metadata?.name ?? '',
          body: { metadata: { resourceVersion: rr.metadata?.resourceVersion }, spec: { approval } },
          fieldManager: 'kubectl-remediator',
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    )) as RemediationRequest;
  }
}

export interface Decision {
  namespace: string;
  name: string;
  decision: 'Approved' | 'Rejected';
  reason?: string;
  /**
   * The digest of the plan the person was shown (the page's). Absent for the command,
   * which shows the plan it has just read (through `showPlan`) and approves that.
   */
  shownDigest?: string;
}

export interface Decided {
  ref: string;
  username: string;
  rr: RemediationRequest;
}

/**
 * Writes a decision, or throws a PluginError saying why it was not written (the
 * plugin's own checks, or the API server's refusal in its own words).
 */
export async function decide(client: Client, d: Decision, showPlan?: (plan: Plan) => void): Promise<Decided> {
  const verb = d.decision === 'Approved' ? 'approve' : 'reject';
  const rr = await client.get(d.name, d.namespace);
  const ref = `remediationrequest ${d.namespace}/${d.name}`;
  const existing = rr.spec.approval;
  if (existing) {
    throw new PluginError(`${ref} is already ${existing.decision.toLowerCase()} by ${existing.approver}; a decision cannot be changed`);
  }
  const phase = (rr.status?.phase ?? 'Pending') as Phase;
  if (END_PHASES.has(phase)) throw new PluginError(`${ref} has ended (${phase}); there is nothing to ${verb}`);
  if (d.decision === 'Approved' && phase !== 'AwaitingApproval') {
    throw new PluginError(
      `${ref} is ${phase}, not AwaitingApproval: only a request waiting for approval can be approved (see kubectl remediator describe ${d.name})`,
    );
  }
  const plan = rr.status?.plan;
  if (d.decision === 'Approved' && !plan) throw new PluginError(`${ref} has no plan in status yet; wait until it is AwaitingApproval`);
  if (d.decision === 'Approved' && plan && d.shownDigest === undefined) showPlan?.(plan);
  // The digest the person saw, not the one just read: if the plan changed in between,
  // the admission policy refuses the approval instead of it approving an unseen plan.
  const planDigest = d.shownDigest ?? plan?.digest;
  const { username } = await client.whoami();
  try {
    await client.setApproval(rr, {
      decision: d.decision,
      approver: username,
      ...(d.reason ? { reason: d.reason } : {}),
      ...(d.decision === 'Approved' && planDigest ? { planDigest } : {}),
    });
  } catch (error) {
    const code = statusCode(error);
    if (code === 409)
      throw new PluginError(`${ref} changed since it was read; look at it again (kubectl remediator describe ${d.name}) and retry`);
    if (code === 403 || code === 422 || code === 400)
      throw new PluginError(`the API server refused to ${verb} ${ref} as ${username}: ${apiMessage(error)}`);
    throw error;
  }
  return { ref, username, rr };
}
