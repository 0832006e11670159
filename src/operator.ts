/**
 * Assembles the operator: the shared caches (src/caches.ts), the three reconcilers and
 * their dependencies, the manager that runs them (src/runtime/manager.ts), the execution
 * ledger (loaded each time this replica starts leading, before any controller runs), and
 * the health/metrics server. What enqueues each controller is declared next to its
 * reconciler, in its setup file; this file only wires. `main.ts` parses configuration and
 * handles signals; tests and the demo can run this in-process too.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { ALERT_POLICY, REMEDIATION_REQUEST, type AlertPolicy, type RemediationRequest } from './api/v1alpha1/index.js';
import { createCaches, observeCaches, requestsOfPolicy, type Caches } from './caches.js';
import type { CloudPool } from './cloud/pool.js';
import type { ControllerConfig } from './config.js';
import { admissionVerdict } from './controllers/admission.js';
import { AlertPolicyReconciler } from './controllers/alertpolicy.js';
import { createAuditSink, type AuditSink } from './cloud/audit-sink.js';
import { AuditHeldError, AuditRecorder } from './controllers/audit.js';
import { ledgerChanged, setupAlertPolicyController } from './controllers/alertpolicy-setup.js';
import { ExecutionLedger } from './controllers/ledger.js';
import type { CloudServices } from './cloud/clients.js';
import type { AwsLocation } from './cloud/location.js';
import { RemediationRequestReconciler } from './controllers/request/reconciler.js';
import { setupRequestController } from './controllers/request/setup.js';
import { RunbookReconciler } from './controllers/runbook-reconciler.js';
import { setupRunbookController } from './controllers/runbook-setup.js';
import { ClusterReads, type NamespaceObject } from './kube/cluster.js';
import { ConfigMapLedgerStorage } from './kube/ledger-configmaps.js';
import { CustomResourceClient, KubeEventRecorder } from './kube/resources.js';
import type { Metrics } from './observability/metrics.js';
import { createHealthServer, parseBindAddress } from './observability/server.js';
import { systemClock, type Clock } from './runtime/clock.js';
import type { Controller } from './runtime/controller.js';
import { LeaderElector } from './runtime/leaderelection.js';
import { Manager } from './runtime/manager.js';

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
  private readonly manager: Manager<Caches>;
  private readonly ledger: ExecutionLedger;
  private ledgerSweep: NodeJS.Timeout | undefined;
  private server: Server | undefined;
  private readonly auditSink: AuditSink | undefined;

  constructor(private readonly deps: OperatorDeps) {
    const { kubeConfig, logger, metrics, config, cloud } = deps;
    const clock = deps.clock ?? systemClock;
    const caches = createCaches({ config, kubeConfig, logger, metrics });
    const events = new KubeEventRecorder(kubeConfig, 'remediator', clock, (err) => logger.warn({ err }, 'could not record an Event'), {
      onResult: (result) => metrics.events.inc({ result }),
    });
    this.manager = new Manager({
      caches,
      logger,
      metrics,
      beforeControllers: () => this.loadLedger(),
      afterControllers: () => events.flush(),
      ...(config.leaderElect && {
        elector: new LeaderElector({
          kubeConfig,
          namespace: config.leaderElectionNamespace,
          name: config.leaderElectionId,
          identity: config.identity,
          logger,
        }),
      }),
    });
    observeCaches(metrics, caches, clock);

    // What the reconcilers read: the caches, never a live GET, except where a reconciler says why.
    const requests = new CustomResourceClient<RemediationRequest>(kubeConfig, REMEDIATION_REQUEST);
    const cluster = new ClusterReads(kubeConfig);
    const getPolicy = (ns: string, name: string) => caches.policies.get(`${ns}/${name}`);
    const getRunbook = (name: string) => caches.runbooks.get(name);
    const namespaceLabels = (ns: string) => {
      const obj = caches.namespaces.get(ns);
      return obj ? { ...obj.metadata?.labels } : undefined;
    };
    const identity = (o: NamespaceObject | undefined) =>
      o && { labels: o.metadata?.labels ?? {}, uid: o.metadata?.uid, resourceVersion: o.metadata?.resourceVersion };
    // Approvals are judged on a live read of the admission objects (ADR 0012), the rest on the caches.
    const admissionLive = async (ns: string) => {
      const now = await cluster.admissionNow(config.admissionPolicyName, ns);
      return admissionVerdict(config.admissionPolicyName, now.policy, now.bindings, ns, identity(now.namespace));
    };
    const admission = (ns: string) =>
      admissionVerdict(
        config.admissionPolicyName,
        caches.admissionPolicies.get(config.admissionPolicyName),
        caches.admissionBindings.list(),
        ns,
        identity(caches.namespaces.get(ns)),
      );
    const requestsOf = (ns: string, policy: string) => requestsOfPolicy(caches.requests, ns, policy);
    const watched = (ns: string) => config.watchNamespaces.length === 0 || config.watchNamespaces.includes(ns);
    // A policy's record changed (an execution, a breaker): its status is recomputed from it.
    let policyController: Controller | undefined;
    this.ledger = new ExecutionLedger(
      new ConfigMapLedgerStorage(kubeConfig, config.ledgerNamespace, config.watchNamespaces),
      clock,
      (ns, policy, urgent) => ledgerChanged(policyController, ns, policy, urgent),
    );
    const cloudFor = (loc: AwsLocation): CloudServices => cloud.forLocation(loc);

    // Audit records go to the sink before either retention path deletes a request (src/controllers/audit.ts).
    this.auditSink = config.audit
      ? createAuditSink(config.audit, { onCall: (service, operation, outcome) => metrics.awsCalls.inc({ service, operation, outcome }) })
      : undefined;
    const audit = new AuditRecorder({ sink: this.auditSink, requests, events, metrics, clock, logger });

    // Registration order is start order: runbooks, then policies, then requests.
    setupRunbookController(
      this.manager,
      new RunbookReconciler({
        getRunbook,
        replaceStatus: (name, body) => cluster.replaceRunbookStatus(name, body),
        events,
        clock,
        allowedDocuments: config.allowedDocuments,
      }),
    );
    policyController = setupAlertPolicyController(this.manager, {
      watched,
      reconciler: new AlertPolicyReconciler({
        policies: new CustomResourceClient<AlertPolicy>(kubeConfig, ALERT_POLICY),
        getPolicy,
        getRunbook,
        namespaceLabels,
        admission,
        requestsOf,
        executionsOf: (ns, policy) => this.ledger.records(ns, policy),
        breakerOpenedAt: (ns, policy) => this.ledger.breakerOpenedAt(ns, policy),
        // A record the sink refused holds the deletion; the Event says why, the next policy reconcile retries.
        deleteRequest: (ns, name, uid) =>
          audit.beforeDelete(ns, name, uid).then(
            () => requests.delete(ns, name, uid),
            (err: unknown) => {
              if (!(err instanceof AuditHeldError)) throw err;
              logger.warn({ namespace: ns, request: name, err }, 'deletion beyond historyLimit held: the audit record is not written');
              return false;
            },
          ),
        retentionDefaults: config.retention,
        events,
        clock,
      }),
    });
    setupRequestController(this.manager, {
      watched,
      requestsOf,
      concurrency: config.concurrency,
      reconciler: new RemediationRequestReconciler({
        requests,
        getRequest: (ns, name) => caches.requests.get(`${ns}/${name}`),
        // Read-your-writes: the reconciler learns when the cache holds its own last write.
        observeRequests: (fn) => caches.requests.on((e) => fn(e.object, e.type === 'delete')),
        getPolicy,
        getRunbook,
        namespaceLabels,
        admission,
        admissionLive,
        ledger: this.ledger,
        audit,
        retentionDefaults: config.retention,
        cloudFor,
        ownAccount: () => cloud.identity({}).then((id) => id.account),
        defaultRegion: config.awsRegion ?? 'us-east-1',
        events,
        metrics,
        clock,
        allowedDocuments: config.allowedDocuments,
        pollIntervalMs: config.pollIntervalMs,
        maxPollIntervalMs: config.maxPollIntervalMs,
        requiredTargetTag: config.requiredTargetTag,
        optOutTag: config.optOutTag,
      }),
    });
  }

  /** The AlertPolicies in the cache (every replica keeps it, leader or not): what the intake matches against. */
  listPolicies(): AlertPolicy[] {
    return this.manager.caches.policies.list();
  }

  /** Ready once every cache has synced (and, for a follower, that is all it needs). */
  get ready(): boolean {
    return this.manager.ready;
  }

  async start(onLostLeadership: () => void): Promise<void> {
    const { host, port } = parseBindAddress(this.deps.config.metricsBindAddress);
    this.server = createHealthServer({ metrics: this.deps.metrics, ready: () => this.ready });
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, host, () => resolve());
    });
    this.deps.logger.info({ address: this.server.address() }, 'serving /metrics, /healthz and /readyz');
    await this.manager.start(onLostLeadership);
  }

  get metricsPort(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  /** The ledger is loaded first: no safety rule may decide before it knows what ran. */
  private async loadLedger(): Promise<void> {
    const { logger, config } = this.deps;
    for (let attempt = 0; ; attempt++) {
      try {
        const n = await this.ledger.load();
        logger.info({ policies: n, namespace: config.ledgerNamespace }, 'execution ledger loaded');
        break;
      } catch (err) {
        const retryInMs = Math.min(30_000, 500 * 2 ** attempt);
        logger.error(
          { err, retryInMs, namespace: config.ledgerNamespace },
          'cannot read the execution ledger; no controller runs until it can',
        );
        await new Promise((r) => setTimeout(r, retryInMs));
      }
    }
    // Drops entries no rule needs any more (a deleted policy's newest outcomes are kept: docs/ledger-and-retention.md).
    this.ledgerSweep = setInterval(
      () => void this.ledger.sweep().catch((err: unknown) => logger.warn({ err }, 'ledger sweep failed')),
      5 * 60_000,
    );
    this.ledgerSweep.unref();
  }

  /** Ordered shutdown: finish in-flight reconciles, stop watches, flush Events, release the Lease, close the server. */
  async stop(): Promise<void> {
    clearInterval(this.ledgerSweep);
    await this.manager.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.deps.cloud.destroy();
    this.auditSink?.destroy();
  }
}
