/**
 * Assembles the operator: informers for both kinds, their controllers, the execution
 * ledger (loaded each time this replica starts leading, before any controller runs),
 * leader election, the health/metrics server, and an ordered shutdown. `main.ts` only parses
 * configuration and handles signals; tests and the demo can run this in-process too.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Server } from 'node:http';
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
import type { CloudPool } from './cloud/pool.js';
import type { ControllerConfig } from './config.js';
import { admissionVerdict, type ValidatingAdmissionPolicy, type ValidatingAdmissionPolicyBinding } from './controllers/admission.js';
import { AlertPolicyReconciler } from './controllers/alertpolicy.js';
import { ExecutionLedger } from './controllers/ledger.js';
import type { CloudClients, CloudLocation } from './controllers/request/deps.js';
import { RemediationRequestReconciler } from './controllers/request/reconciler.js';
import { RunbookReconciler } from './controllers/runbook.js';
import { ClusterReads, type NamespaceObject } from './kube/cluster.js';
import { ConfigMapLedgerStorage } from './kube/ledger-configmaps.js';
import { CustomResourceClient, KubeEventRecorder } from './kube/resources.js';
import type { Metrics } from './observability/metrics.js';
import { createHealthServer, parseBindAddress } from './observability/server.js';
import { systemClock, type Clock } from './runtime/clock.js';
import { Controller } from './runtime/controller.js';
import {
  Informer,
  InformerSet,
  type Cache,
  type Indexers,
  type InformerLifecycle,
  type ListOptions,
  type ListResult,
} from './runtime/informer.js';
import { LeaderElector } from './runtime/leaderelection.js';

/**
 * How long a request's change waits before its policy's counters are recounted. Every
 * change in that time shares one recount (the work queue keeps the earliest pending
 * add), so a burst costs a policy status write every few seconds, not one per request
 * transition (and no 409 storm between them).
 */
export const POLICY_RECOUNT_DELAY_MS = 3_000;

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
 *    status.notifications (notify.ts `nextAnnouncement`), status.completionTime (retention.ts);
 *  - policy counters and history limit (alertpolicy.ts, retention.ts): status.phase,
 *    whether execution.ssm.commandId / execution.sns.messageId is set,
 *    creationTimestamp, completionTime, deletionTimestamp, name and uid;
 *  - the request gauges (this file): namespace, phase, the Ready condition's
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

export interface OperatorDeps {
  config: ControllerConfig;
  kubeConfig: KubeConfig;
  /** AWS clients per account and region (the runbook's scope decides which). */
  cloud: CloudPool;
  logger: Logger;
  metrics: Metrics;
  clock?: Clock;
}

export class Operator {
  private readonly policyInformer: Cache<AlertPolicy>;
  private readonly requestInformer: Cache<RemediationRequest>;
  private readonly runbookInformer: Informer<Runbook>;
  private readonly namespaceInformer: Informer<NamespaceObject>;
  private readonly admissionPolicyInformer: Informer<ValidatingAdmissionPolicy>;
  private readonly admissionBindingInformer: Informer<ValidatingAdmissionPolicyBinding>;
  private readonly policyController: Controller;
  private readonly requestController: Controller;
  private readonly runbookController: Controller;
  private readonly elector: LeaderElector | undefined;
  private server: Server | undefined;
  private readonly events: KubeEventRecorder;
  private controllersStarted = false;
  private readonly ledger: ExecutionLedger;
  private ledgerSweep: NodeJS.Timeout | undefined;

  constructor(private readonly deps: OperatorDeps) {
    const { kubeConfig, logger, metrics, config, cloud } = deps;
    const clock = deps.clock ?? systemClock;
    const policies = new CustomResourceClient<AlertPolicy>(kubeConfig, ALERT_POLICY);
    const requests = new CustomResourceClient<RemediationRequest>(kubeConfig, REMEDIATION_REQUEST);
    const events = new KubeEventRecorder(kubeConfig, 'remediator', clock, (err) => logger.warn({ err }, 'could not record an Event'));
    this.events = events;
    const lifecycle = (informer: string) => (e: InformerLifecycle) => {
      metrics.informerEvents.inc({ informer, event: e.type });
      if (e.type === 'error')
        logger.warn({ informer, err: e.error, retryInMs: Math.round(e.retryInMs) }, 'watch failed; re-listing after backoff');
      else if (e.type === 'throttled')
        logger.warn(
          { informer, err: e.error, retryInMs: Math.round(e.retryInMs) },
          'API server asked to retry later (Retry-After); waiting',
        );
      else logger.debug({ informer, ...e }, `informer ${e.type}`);
    };
    // One informer per watched namespace ('' = all namespaces) and kind.
    const scopes = config.watchNamespaces.length > 0 ? config.watchNamespaces : [''];
    const informers = <T extends AlertPolicy | RemediationRequest>(
      names: ResourceNames,
      transform: (object: T) => T,
      indexers?: Indexers<T>,
    ) =>
      new InformerSet<T>(
        new Map(
          scopes.map((ns) => {
            const scoped = new CustomResourceClient<T>(kubeConfig, names, ns || undefined);
            const inf = new Informer<T>({
              name: names.plural,
              list: (page) => scoped.listAll(page),
              pageSize: config.listPageSize,
              watchPath: scoped.watchPath,
              kubeConfig,
              logger,
              resyncIntervalMs: 10 * 60_000,
              onLifecycle: lifecycle(names.plural),
              transform,
              ...(indexers && { indexers }),
            });
            return [ns, inf] as const;
          }),
        ),
      );
    this.policyInformer = informers<AlertPolicy>(ALERT_POLICY, leanObject);
    this.requestInformer = informers<RemediationRequest>(REMEDIATION_REQUEST, leanRequest, requestIndexers);
    // Cluster-wide objects that decide trust: runbooks, namespace labels, the admission policy.
    const cluster = new ClusterReads(kubeConfig);
    const clusterInformer = <T extends NamespaceObject | Runbook | ValidatingAdmissionPolicy | ValidatingAdmissionPolicyBinding>(
      name: string,
      list: (page: ListOptions) => Promise<ListResult<T>>,
      watchPath: string,
    ) =>
      new Informer<T>({
        name,
        list,
        pageSize: config.listPageSize,
        watchPath,
        kubeConfig,
        logger,
        resyncIntervalMs: 10 * 60_000,
        onLifecycle: lifecycle(name),
        transform: leanObject,
      });
    this.runbookInformer = clusterInformer<Runbook>('runbooks', (o) => cluster.runbooks(o), cluster.runbooksPath);
    this.namespaceInformer = clusterInformer<NamespaceObject>('namespaces', (o) => cluster.namespaces(o), cluster.namespacesPath);
    this.admissionPolicyInformer = clusterInformer<ValidatingAdmissionPolicy>(
      'validatingadmissionpolicies',
      (o) => cluster.admissionPolicies(o),
      cluster.policiesPath,
    );
    this.admissionBindingInformer = clusterInformer<ValidatingAdmissionPolicyBinding>(
      'validatingadmissionpolicybindings',
      (o) => cluster.admissionBindings(o),
      cluster.bindingsPath,
    );
    const getPolicy = (ns: string, name: string) => this.policyInformer.get(`${ns}/${name}`);
    const getRunbook = (name: string) => this.runbookInformer.get(name);
    const namespaceLabels = (ns: string) => {
      const obj = this.namespaceInformer.get(ns);
      return obj ? { ...obj.metadata?.labels } : undefined;
    };
    const identity = (o: NamespaceObject | undefined) =>
      o && { labels: o.metadata?.labels ?? {}, uid: o.metadata?.uid, resourceVersion: o.metadata?.resourceVersion };
    const admissionLive = async (ns: string) => {
      const now = await cluster.admissionNow(config.admissionPolicyName, ns);
      return admissionVerdict(config.admissionPolicyName, now.policy, now.bindings, ns, identity(now.namespace));
    };
    const admission = (ns: string) =>
      admissionVerdict(
        config.admissionPolicyName,
        this.admissionPolicyInformer.get(config.admissionPolicyName),
        this.admissionBindingInformer.list(),
        ns,
        identity(this.namespaceInformer.get(ns)),
      );
    const requestsOf = (ns: string, policy: string) => this.requestInformer.byIndex(REQUESTS_BY_POLICY, policyIndexValue(ns, policy));
    this.ledger = new ExecutionLedger(
      new ConfigMapLedgerStorage(kubeConfig, config.ledgerNamespace, config.watchNamespaces),
      clock,
      (ns, policy) => this.policyController.enqueue({ namespace: ns, name: policy }),
    );
    const defaultRegion = config.awsRegion ?? 'us-east-1';
    const cloudFor = (loc: CloudLocation): CloudClients => {
      const c = cloud.forLocation(loc);
      return { instances: c.instances, commands: c.commands, agents: c.agents, metricsReader: c.metrics, publisher: c.publisher };
    };

    this.requestController = new Controller({
      name: 'remediationrequest',
      logger,
      metrics,
      concurrency: config.concurrency,
      reconciler: new RemediationRequestReconciler({
        requests,
        getRequest: (ns, name) => this.requestInformer.get(`${ns}/${name}`),
        // Read-your-writes: the reconciler learns when the cache holds its own last write.
        observeRequests: (fn) => this.requestInformer.on((e) => fn(e.object, e.type === 'delete')),
        getPolicy,
        getRunbook,
        namespaceLabels,
        admission,
        admissionLive,
        ledger: this.ledger,
        retentionDefaults: config.retention,
        cloudFor,
        defaultRegion,
        events,
        metrics,
        clock,
        allowedDocuments: config.allowedDocuments,
        pollIntervalMs: config.pollIntervalMs,
        maxPollIntervalMs: config.maxPollIntervalMs,
        requiredTargetTag: config.requiredTargetTag,
      }),
    });
    this.policyController = new Controller({
      name: 'alertpolicy',
      logger,
      metrics,
      concurrency: 1,
      reconciler: new AlertPolicyReconciler({
        policies,
        getPolicy,
        getRunbook,
        namespaceLabels,
        admission,
        requestsOf,
        executionsOf: (ns, policy) => this.ledger.records(ns, policy),
        breakerOpenedAt: (ns, policy) => this.ledger.breakerOpenedAt(ns, policy),
        deleteRequest: (ns, name, uid) => requests.delete(ns, name, uid),
        retentionDefaults: config.retention,
        events,
        clock,
      }),
    });
    this.runbookController = new Controller({
      name: 'runbook',
      logger,
      metrics,
      concurrency: 1,
      reconciler: new RunbookReconciler({
        getRunbook,
        replaceStatus: (name, body) => cluster.replaceRunbookStatus(name, body),
        events,
        clock,
        allowedDocuments: config.allowedDocuments,
      }),
    });
    const watched = (ns: string) => scopes.includes('') || scopes.includes(ns);
    /** Policies (and their waiting requests) to look at again when what they depend on changed. */
    const requeuePolicies = (filter: (p: AlertPolicy) => boolean) => {
      for (const p of this.policyInformer.list()) {
        if (!filter(p)) continue;
        const ns = p.metadata?.namespace ?? '';
        this.policyController.enqueue({ namespace: ns, name: p.metadata?.name ?? '' });
      }
    };
    const requeueWaiting = (filter: (r: RemediationRequest) => boolean) => {
      for (const r of this.requestInformer.list()) {
        const phase = r.status?.phase ?? 'Pending';
        if ((phase === 'AwaitingApproval' || phase === 'Pending') && filter(r)) {
          this.requestController.enqueue({ namespace: r.metadata?.namespace ?? '', name: r.metadata?.name ?? '' });
        }
      }
    };
    this.runbookInformer.on((e) => {
      const name = e.object.metadata?.name ?? '';
      this.runbookController.enqueue({ namespace: '', name });
      requeuePolicies((p) => p.spec.runbookRef.name === name);
    });
    this.namespaceInformer.on((e) => {
      const ns = e.object.metadata?.name ?? '';
      if (!watched(ns)) return;
      requeuePolicies((p) => p.metadata?.namespace === ns);
      requeueWaiting((r) => r.metadata?.namespace === ns);
    });
    // The admission policy or a binding changed: approvals may have become honoured (or not).
    this.admissionPolicyInformer.on(() => {
      requeueWaiting(() => true);
      requeuePolicies(() => true);
    });
    this.admissionBindingInformer.on(() => {
      requeueWaiting(() => true);
      requeuePolicies(() => true);
    });

    // Event handlers only enqueue keys; reconcilers read current state from the caches.
    this.requestInformer.on((e) => {
      const ns = e.object.metadata?.namespace ?? '';
      this.requestController.enqueue({ namespace: ns, name: e.object.metadata?.name ?? '' });
      // Counters are recounted from the cache a moment later, once for the whole burst.
      this.policyController.enqueueAfter({ namespace: ns, name: e.object.spec.policyRef.name }, POLICY_RECOUNT_DELAY_MS);
    });
    this.policyInformer.on((e) => {
      const ns = e.object.metadata?.namespace ?? '';
      const name = e.object.metadata?.name ?? '';
      this.policyController.enqueue({ namespace: ns, name });
      if (
        e.type === 'add' ||
        e.type === 'delete' ||
        (e.type === 'update' && e.old.metadata?.generation !== e.object.metadata?.generation)
      ) {
        for (const r of requestsOf(ns, name)) this.requestController.enqueue({ namespace: ns, name: r.metadata?.name ?? '' });
      }
    });

    // Scrape-time gauges read the caches: no bookkeeping that could drift from them.
    metrics.observe({
      requests: () =>
        this.requestInformer.list().map((r) => {
          const phase = r.status?.phase ?? 'Pending';
          const since = r.status?.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime ?? r.metadata?.creationTimestamp;
          return { namespace: r.metadata?.namespace ?? '', phase, phaseSince: Date.parse(since ?? '') || clock.now() };
        }),
      policies: () =>
        this.policyInformer.list().map((p) => ({
          namespace: p.metadata?.namespace ?? '',
          name: p.metadata?.name ?? '',
          circuitOpen: p.status?.circuitBreaker?.open === true,
        })),
      now: () => clock.now(),
    });

    if (config.leaderElect) {
      this.elector = new LeaderElector({
        kubeConfig,
        namespace: config.leaderElectionNamespace,
        name: config.leaderElectionId,
        identity: config.identity,
        logger,
      });
    }
  }

  /** The AlertPolicies in the cache (every replica keeps it, leader or not): what the intake matches against. */
  listPolicies(): AlertPolicy[] {
    return this.policyInformer.list();
  }

  /** Ready once both caches have synced (and, for a follower, that is all it needs). */
  get ready(): boolean {
    return this.informers.every((i) => i.hasSynced);
  }

  private get informers(): Array<{ hasSynced: boolean; start(): void; stop(): void; waitForSync(): Promise<void> }> {
    return [
      this.policyInformer,
      this.requestInformer,
      this.runbookInformer,
      this.namespaceInformer,
      this.admissionPolicyInformer,
      this.admissionBindingInformer,
    ];
  }

  async start(onLostLeadership: () => void): Promise<void> {
    const { host, port } = parseBindAddress(this.deps.config.metricsBindAddress);
    this.server = createHealthServer({ metrics: this.deps.metrics, ready: () => this.ready });
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, host, () => resolve());
    });
    const address = this.server.address();
    this.deps.logger.info({ address }, 'serving /metrics, /healthz and /readyz');
    for (const i of this.informers) i.start();
    await Promise.all(this.informers.map((i) => i.waitForSync()));
    this.deps.logger.info('informer caches synced');
    if (this.elector) {
      this.elector.run({
        onStartedLeading: () => {
          this.deps.metrics.isLeader.set(1);
          void this.startControllers();
        },
        onStoppedLeading: () => {
          this.deps.metrics.isLeader.set(0);
          // Stop taking keys at once, before anything else: another replica may lead already.
          void this.requestController.queue.shutdown(false);
          void this.policyController.queue.shutdown(false);
          void this.runbookController.queue.shutdown(false);
          onLostLeadership();
        },
      });
    } else {
      await this.startControllers();
    }
  }

  get metricsPort(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  /** The ledger is loaded first: no safety rule may decide before it knows what ran. */
  private async startControllers(): Promise<void> {
    if (this.controllersStarted) return;
    this.controllersStarted = true;
    for (let attempt = 0; ; attempt++) {
      try {
        const n = await this.ledger.load();
        this.deps.logger.info({ policies: n, namespace: this.deps.config.ledgerNamespace }, 'execution ledger loaded');
        break;
      } catch (err) {
        const retryInMs = Math.min(30_000, 500 * 2 ** attempt);
        this.deps.logger.error(
          { err, retryInMs, namespace: this.deps.config.ledgerNamespace },
          'cannot read the execution ledger; no controller runs until it can',
        );
        await new Promise((r) => setTimeout(r, retryInMs));
      }
    }
    // Drops what no rule needs any more, including ledgers of policies long gone.
    this.ledgerSweep = setInterval(
      () => void this.ledger.sweep().catch((err: unknown) => this.deps.logger.warn({ err }, 'ledger sweep failed')),
      5 * 60_000,
    );
    this.ledgerSweep.unref();
    this.runbookController.start();
    this.policyController.start();
    this.requestController.start();
  }

  /** Ordered shutdown: finish in-flight reconciles, stop watches, release the Lease, close the server. */
  async stop(): Promise<void> {
    clearInterval(this.ledgerSweep);
    await Promise.all([this.requestController.stop(), this.policyController.stop(), this.runbookController.stop()]);
    for (const i of this.informers) i.stop();
    await this.events.flush();
    await this.elector?.release();
    this.deps.metrics.isLeader.set(0);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.deps.cloud.destroy();
  }
}
