/**
 * Prometheus metrics of the controller, on one registry served at `/metrics`.
 * Names follow controller-runtime's (`controller_runtime_reconcile_total`, `workqueue_*`)
 * so existing dashboards and alerts for Go operators read them unchanged.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();

  readonly reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Reconciles per controller and result (success, error, requeue_after, terminal_error).',
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

  readonly awsCalls = new Counter({
    name: 'remediator_aws_api_calls_total',
    help: 'AWS API calls by service, operation and outcome (success, throttled, access_denied, error).',
    labelNames: ['service', 'operation', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly isLeader = new Gauge({
    name: 'remediator_leader',
    help: '1 while this replica holds the leader Lease.',
    registers: [this.registry],
  });

  constructor(collectDefaults = true) {
    if (collectDefaults) collectDefaultMetrics({ register: this.registry });
  }
}
