/**
 * The operator's shared caches: one informer per watched kind (per watched namespace for
 * the two namespaced kinds), what each keeps of an object (the cache transforms), the
 * index of requests by policy, and the scrape-time gauges read from them. The manager
 * (src/runtime/manager.ts) starts, syncs and stops them; the controllers read and watch
 * them (each controller's setup file declares which, e.g. src/controllers/request/setup.ts).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  ALERT_POLICY,
  END_PHASES,
  REMEDIATION_REQUEST,
  type AlertPolicy,
  type RemediationRequest,
  type ResourceNames,
  type Runbook,
} from './api/v1alpha1/index.js';
import type { ControllerConfig } from './config.js';
import type { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding } from './api/admissionregistration/v1.js';
import { gitOpsMarks } from './controllers/retention.js';
import { ClusterReads, type NamespaceObject } from './kube/cluster.js';
import { CustomResourceClient } from './kube/resources.js';
import type { Metrics } from './observability/metrics.js';
import type { Clock } from './runtime/clock.js';
import {
  Informer,
  InformerSet,
  type Cache,
  type Indexers,
  type InformerLifecycle,
  type ListOptions,
  type ListResult,
} from './runtime/informer.js';

/**
 * The index of RemediationRequests by the AlertPolicy they belong to, `namespace/name`
 * of `spec.policyRef` (a request's policy is always in its own namespace). The policy
 * controller's counters and history limit, and a policy change re-queueing its requests,
 * read one policy's requests through it instead of scanning every cached request.
 */
const REQUESTS_BY_POLICY = 'policy';
const policyIndexValue = (namespace: string, policy: string) => `${namespace}/${policy}`;
const requestIndexers = {
  [REQUESTS_BY_POLICY]: (r: RemediationRequest) => [policyIndexValue(r.metadata?.namespace ?? '', r.spec?.policyRef?.name ?? '')],
};

/** Annotation kubectl apply keeps a whole copy of the object in; nothing here reads it. */
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Drops what the controller never reads before an object enters a cache: managedFields
 * (often as large as the object) and kubectl's last-applied copy. The objects are fresh
 * from the wire and owned by the informer, so they are trimmed in place. Status writes
 * send no managedFields, which the API server reads as "keep them as they are".
 */
export function leanObject<T extends { metadata?: object }>(obj: T): T {
  const meta = obj.metadata as { managedFields?: unknown; annotations?: Record<string, string> } | undefined;
  if (!meta) return obj;
  delete meta.managedFields;
  if (meta.annotations && LAST_APPLIED in meta.annotations) {
    delete meta.annotations[LAST_APPLIED];
    if (Object.keys(meta.annotations).length === 0) delete meta.annotations;
  }
  return obj;
}

/**
 * The request cache's transform. A finished request (an end phase, no finalizer) is
 * most of the cache, and is never written from it again: the reconciler only counts it
 * down to its retention, and the one write left (a notification of its end) re-reads the
 * request from the API server first. So it is cached in a compact form that keeps only
 * what is read from the cache for it, and drops the rest — plan, enrichment (tags,
 * metrics), invocations and their output tails, the alert's labels and annotations,
 * approvals, messages — about 3–10 KB of JSON each:
 *
 *  - request reconciler (request/reconciler.ts): name, namespace, uid, resourceVersion,
 *    deletionTimestamp, finalizers, spec.policyRef, status.phase, the phases of
 *    status.notifications (notify.ts `nextAnnouncement`), status.completionTime and the
 *    GitOps tool's label or annotation, if any (retention.ts);
 *  - policy counters and history limit (alertpolicy.ts, retention.ts): status.phase,
 *    whether execution.ssm.commandId / execution.sns.messageId is set,
 *    creationTimestamp, completionTime, deletionTimestamp, name and uid;
 *  - the request gauges (`observeCaches` below): namespace, phase, the Ready condition's
 *    lastTransitionTime, creationTimestamp.
 *
 * A request in progress (or holding the execution finalizer) is cached whole: each status
 * write starts from a copy of the cached status and replaces it on the server, so a field
 * dropped here would be erased there. Repeated short values (namespace, policy, phase,
 * reasons) are shared rather than held once per request.
 */
export function leanRequest(obj: RemediationRequest): RemediationRequest {
  leanObject(obj);
  const phase = obj.status?.phase;
  if (!phase || !END_PHASES.has(phase) || (obj.metadata?.finalizers?.length ?? 0) > 0) return obj;
  const m = obj.metadata ?? {};
  const st = obj.status ?? {};
  const ready = st.conditions?.find((c) => c.type === 'Ready');
  const ssm = st.execution?.ssm;
  const sns = st.execution?.sns;
  return {
    metadata: {
      name: m.name,
      namespace: shared(m.namespace),
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      generation: m.generation,
      creationTimestamp: m.creationTimestamp,
      ...(m.deletionTimestamp && { deletionTimestamp: m.deletionTimestamp }),
      // Retention leaves requests a GitOps tool applied to Git: their mark must survive here.
      ...gitOpsMarks(m),
    },
    spec: {
      policyRef: { name: shared(obj.spec.policyRef.name) },
      alert: { source: obj.spec.alert.source, name: shared(obj.spec.alert.name) },
    },
    status: {
      phase,
      ...(st.reason && { reason: shared(st.reason) }),
      ...(ready && {
        conditions: [
          { type: 'Ready', status: ready.status, lastTransitionTime: ready.lastTransitionTime, reason: shared(ready.reason), message: '' },
        ],
      }),
      ...(st.notifications && {
        // `sentAt` says it was announced; an entry without it is still pending (request/notify.ts).
        notifications: st.notifications.map((n) => ({ phase: shared(n.phase), ...(n.sentAt !== undefined && { sentAt: n.sentAt }) })),
      }),
      ...(st.execution && {
        execution: {
          ...(st.execution.dryRun && { dryRun: true }),
          ...(ssm && {
            ssm: {
              documentName: shared(ssm.documentName),
              comment: ssm.comment,
              intentRecordedAt: ssm.intentRecordedAt,
              ...(ssm.commandId && { commandId: ssm.commandId }),
            },
          }),
          ...(sns && {
            sns: {
              topicArn: shared(sns.topicArn),
              intentRecordedAt: sns.intentRecordedAt,
              ...(sns.messageId && { messageId: sns.messageId }),
            },
          }),
        },
      }),
      ...(st.startTime && { startTime: st.startTime }),
      ...(st.completionTime && { completionTime: st.completionTime }),
    },
  };
}

/**
 * One copy of each short, often repeated string (a namespace, a policy name, a reason):
 * JSON.parse gives every object its own. Bounded; when full it starts over, which only
 * costs sharing, never correctness.
 */
const sharedStrings = new Map<string, string>();
function shared<S extends string | undefined>(s: S): S {
  if (s === undefined || s.length > 256) return s;
  const have = sharedStrings.get(s);
  if (have !== undefined) return have as S;
  if (sharedStrings.size >= 4096) sharedStrings.clear();
  sharedStrings.set(s, s);
  return s;
}

/** The shared caches, in the order they start. */
export interface Caches {
  policies: Cache<AlertPolicy>;
  requests: Cache<RemediationRequest>;
  runbooks: Cache<Runbook>;
  namespaces: Cache<NamespaceObject>;
  admissionPolicies: Cache<ValidatingAdmissionPolicy>;
  admissionBindings: Cache<ValidatingAdmissionPolicyBinding>;
}

/** One policy's requests, through the index rather than a scan of every cached request. */
export function requestsOfPolicy(requests: Cache<RemediationRequest>, namespace: string, policy: string): RemediationRequest[] {
  return requests.byIndex(REQUESTS_BY_POLICY, policyIndexValue(namespace, policy));
}

export interface CacheDeps {
  config: Pick<ControllerConfig, 'watchNamespaces' | 'listPageSize'>;
  kubeConfig: KubeConfig;
  logger: Logger;
  metrics: Metrics;
}

/** Builds (does not start) every cache; the informers re-list every 10 minutes to heal a silent watch. */
export function createCaches({ config, kubeConfig, logger, metrics }: CacheDeps): Caches {
  const lifecycle = (informer: string) => (e: InformerLifecycle) => {
    metrics.informerEvents.inc({ informer, event: e.type });
    if (e.type === 'error')
      logger.warn({ informer, err: e.error, retryInMs: Math.round(e.retryInMs) }, 'watch failed; re-listing after backoff');
    else if (e.type === 'throttled')
      logger.warn({ informer, err: e.error, retryInMs: Math.round(e.retryInMs) }, 'API server asked to retry later (Retry-After); waiting');
    else logger.debug({ informer, ...e }, `informer ${e.type}`);
  };
  const informer = <T extends object>(name: string, list: (page: ListOptions) => Promise<ListResult<T>>, watchPath: string) => ({
    name,
    list,
    pageSize: config.listPageSize,
    watchPath,
    kubeConfig,
    logger,
    resyncIntervalMs: 10 * 60_000,
    onLifecycle: lifecycle(name),
  });
  // One informer per watched namespace ('' = all namespaces) and kind.
  const scopes = config.watchNamespaces.length > 0 ? config.watchNamespaces : [''];
  const namespaced = <T extends AlertPolicy | RemediationRequest>(names: ResourceNames, transform: (o: T) => T, indexers?: Indexers<T>) =>
    new InformerSet<T>(
      new Map(
        scopes.map((ns) => {
          const scoped = new CustomResourceClient<T>(kubeConfig, names, ns || undefined);
          const options = { ...informer<T>(names.plural, (page) => scoped.listAll(page), scoped.watchPath), transform };
          return [ns, new Informer<T>({ ...options, ...(indexers && { indexers }) })] as const;
        }),
      ),
    );
  // Cluster-wide objects that decide trust: runbooks, namespace labels, the admission policy.
  const cluster = new ClusterReads(kubeConfig);
  const clusterWide = <T extends NamespaceObject | Runbook | ValidatingAdmissionPolicy | ValidatingAdmissionPolicyBinding>(
    name: string,
    list: (page: ListOptions) => Promise<ListResult<T>>,
    watchPath: string,
  ) => new Informer<T>({ ...informer(name, list, watchPath), transform: leanObject });
  return {
    policies: namespaced<AlertPolicy>(ALERT_POLICY, leanObject),
    requests: namespaced<RemediationRequest>(REMEDIATION_REQUEST, leanRequest, requestIndexers),
    runbooks: clusterWide<Runbook>('runbooks', (o) => cluster.runbooks(o), cluster.runbooksPath),
    namespaces: clusterWide<NamespaceObject>('namespaces', (o) => cluster.namespaces(o), cluster.namespacesPath),
    admissionPolicies: clusterWide<ValidatingAdmissionPolicy>(
      'validatingadmissionpolicies',
      (o) => cluster.admissionPolicies(o),
      cluster.policiesPath,
    ),
    admissionBindings: clusterWide<ValidatingAdmissionPolicyBinding>(
      'validatingadmissionpolicybindings',
      (o) => cluster.admissionBindings(o),
      cluster.bindingsPath,
    ),
  };
}

/** Scrape-time gauges read the caches: no bookkeeping that could drift from them. */
export function observeCaches(metrics: Metrics, caches: Pick<Caches, 'requests' | 'policies'>, clock: Clock): void {
  metrics.observe({
    requests: () =>
      caches.requests.list().map((r) => {
        const phase = r.status?.phase ?? 'Pending';
        const since = r.status?.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime ?? r.metadata?.creationTimestamp;
        return { namespace: r.metadata?.namespace ?? '', phase, phaseSince: Date.parse(since ?? '') || clock.now() };
      }),
    policies: () =>
      caches.policies.list().map((p) => ({
        namespace: p.metadata?.namespace ?? '',
        name: p.metadata?.name ?? '',
        circuitOpen: p.status?.circuitBreaker?.open === true,
      })),
    now: () => clock.now(),
  });
}
