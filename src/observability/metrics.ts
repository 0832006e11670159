/**
 * Prometheus metrics of the controller, on one registry served at `/metrics`.
 * Names follow controller-runtime's (`controller_runtime_reconcile_total`, `workqueue_*`)
 * so existing dashboards and alerts for Go operators read them unchanged.
 *
 * src/observability (metrics, logs, the health and metrics server) sits below everything.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** A RemediationRequest as the scrape-time gauges see it. */
export interface ObservedRequest {
  namespace: string;
  phase: string;
  /** When it entered its phase (ms since the epoch); for AwaitingApproval, when it started waiting. */
  phaseSince: number;
}

/** An AlertPolicy as the scrape-time gauges see it. */
export interface ObservedPolicy {
  namespace: string;
  name: string;
  circuitOpen: boolean;
}

/**
 * Where the scrape-time gauges read current state: the informer caches the controllers
 * already hold. Read at scrape, like kube-state-metrics, so a deleted policy's series
 * disappears instead of lingering at its last value, and no reconcile has to remember
 * to update a gauge.
 */
export interface ObservedState {
  requests(): Iterable<ObservedRequest>;
  policies(): Iterable<ObservedPolicy>;
  now(): number;
}

export class Metrics {
  readonly registry = new Registry();

  readonly reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Reconciles per controller and result (success, error, requeue_after).',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });

  readonly reconcileErrors = new Counter({
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Reconciles that returned an error, per controller.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });

  readonly reconcileDuration = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Time per reconcile, per controller.',
    labelNames: ['controller'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly workqueueDepth = new Gauge({
    name: 'workqueue_depth',
    help: 'Keys waiting in the work queue, per controller.',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });

  readonly workqueueRetries = new Counter({
    name: 'workqueue_retries_total',
    help: 'Keys re-queued with backoff after a failed reconcile.',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });

  readonly informerEvents = new Counter({
    name: 'remediator_informer_lifecycle_total',
    help: 'Informer lifecycle events (listed, watching, expired, error), per resource.',
    labelNames: ['informer', 'event'] as const,
    registers: [this.registry],
  });

  readonly phaseTransitions = new Counter({
    name: 'remediator_request_phase_transitions_total',
    help: 'RemediationRequest phase transitions, by policy namespace and the phase entered.',
    labelNames: ['namespace', 'phase'] as const,
    registers: [this.registry],
  });

  readonly verifications = new Counter({
    name: 'remediator_verifications_total',
    help: "Verdicts of verification after success (the policy's spec.verify), by policy namespace and result (Verified, Ineffective).",
    labelNames: ['namespace', 'result'] as const,
    registers: [this.registry],
  });

  readonly awsCalls = new Counter({
    name: 'remediator_aws_api_calls_total',
    help: 'AWS API calls by service, operation and outcome (success, throttled, access_denied, error).',
    labelNames: ['service', 'operation', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly auditRecords = new Counter({
    name: 'remediator_audit_records_total',
    help:
      'Audit records of ended requests, by namespace and outcome: written (to the sink), already_written (found there after a crash), ' +
      'failed (the write failed: the request is kept until it succeeds).',
    labelNames: ['namespace', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly events = new Counter({
    name: 'remediator_events_total',
    help: 'Kubernetes Events recorded, by what became of them: written (created, or counted into its series), coalesced (combined into another Event during a burst), dropped (not recorded: the burst outgrew the combined Events too), failed (the API server refused it).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly isLeader = new Gauge({
    name: 'remediator_leader',
    help: '1 while this replica holds the leader Lease.',
    registers: [this.registry],
  });

  private observed: ObservedState | undefined;

  readonly requests = new Gauge({
    name: 'remediator_requests',
    help: 'RemediationRequests in the cache, by namespace and phase (read at scrape).',
    labelNames: ['namespace', 'phase'] as const,
    registers: [this.registry],
    collect: () => {
      this.requests.reset();
      for (const r of this.observed?.requests() ?? []) this.requests.inc({ namespace: r.namespace, phase: r.phase });
    },
  });

  readonly awaitingApprovalOldest = new Gauge({
    name: 'remediator_request_awaiting_approval_oldest_seconds',
    help: 'Per namespace, how long the oldest RemediationRequest in AwaitingApproval has been waiting (read at scrape).',
    labelNames: ['namespace'] as const,
    registers: [this.registry],
    collect: () => {
      this.awaitingApprovalOldest.reset();
      const state = this.observed;
      if (!state) return;
      const oldest = new Map<string, number>();
      for (const r of state.requests()) {
        if (r.phase !== 'AwaitingApproval') continue;
        oldest.set(r.namespace, Math.min(oldest.get(r.namespace) ?? Infinity, r.phaseSince));
      }
      const now = state.now();
      for (const [namespace, since] of oldest) this.awaitingApprovalOldest.set({ namespace }, Math.max(0, (now - since) / 1000));
    },
  });

  readonly circuitOpen = new Gauge({
    name: 'remediator_alertpolicy_circuit_open',
    help: "1 while an AlertPolicy's circuit breaker is open (it executes nothing until a person resumes it), else 0 (read at scrape).",
    labelNames: ['namespace', 'policy'] as const,
    registers: [this.registry],
    collect: () => {
      this.circuitOpen.reset();
      for (const p of this.observed?.policies() ?? [])
        this.circuitOpen.set({ namespace: p.namespace, policy: p.name }, p.circuitOpen ? 1 : 0);
    },
  });

  /** Feeds the scrape-time gauges (remediator_requests, ..._awaiting_approval_oldest_seconds, ..._circuit_open). */
  observe(state: ObservedState): void {
    this.observed = state;
  }

  constructor(collectDefaults = true) {
    if (collectDefaults) collectDefaultMetrics({ register: this.registry });
  }
}
