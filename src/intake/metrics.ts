/**
 * The intake's Prometheus metrics, registered on the controller's one registry so they
 * appear on the same `/metrics` as everything else. `source` is the endpoint
 * (`alertmanager`, `sns`, `generic`, or `other` for unknown paths); `outcome` is one of
 * the values in errors.ts (`ok`, `bad_request`, `unauthorized`, `overloaded`, ...).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export class IntakeMetrics {
  readonly requests: Counter<'source' | 'outcome'>;
  readonly duration: Histogram<'source'>;
  readonly inflight: Gauge;
  readonly alertsReceived: Counter<'source' | 'status'>;
  readonly alertsUnmatched: Counter<'source'>;
  readonly created: Counter<'source'>;
  readonly deduplicated: Counter<'source'>;
  readonly resolved: Counter<'source' | 'result'>;
  readonly apiRetries: Counter<'operation'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'remediator_intake_requests_total',
      help: 'Intake HTTP requests by source endpoint and outcome (ok, bad_request, too_large, unsupported_media_type, unauthorized, forbidden, overloaded, unavailable, error, ...).',
      labelNames: ['source', 'outcome'] as const,
      registers,
    });
    this.duration = new Histogram({
      name: 'remediator_intake_request_duration_seconds',
      help: 'Time to answer an intake HTTP request, by source endpoint.',
      labelNames: ['source'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.inflight = new Gauge({
      name: 'remediator_intake_inflight_requests',
      help: 'Intake HTTP requests being handled now, all routes (beyond --intake-max-inflight on the authenticated routes they are refused with 429; SNS has its own budget, beyond which 503).',
      registers,
    });
    this.alertsReceived = new Counter({
      name: 'remediator_intake_alerts_received_total',
      help: 'Alerts accepted by the intake, by source and status (firing, resolved).',
      labelNames: ['source', 'status'] as const,
      registers,
    });
    this.alertsUnmatched = new Counter({
      name: 'remediator_intake_alerts_unmatched_total',
      help: 'Firing alerts that matched no AlertPolicy, by source.',
      labelNames: ['source'] as const,
      registers,
    });
    this.created = new Counter({
      name: 'remediator_intake_remediationrequests_created_total',
      help: 'RemediationRequests created by the intake, by alert source.',
      labelNames: ['source'] as const,
      registers,
    });
    this.deduplicated = new Counter({
      name: 'remediator_intake_remediationrequests_deduplicated_total',
      help: 'Alerts whose RemediationRequest already existed (a re-sent alert), by source.',
      labelNames: ['source'] as const,
      registers,
    });
    this.resolved = new Counter({
      name: 'remediator_intake_resolutions_total',
      help: 'RemediationRequests a resolved alert reached, by result: cancelled (marked resolved before executing), stopped (executing: status.alertResolvedAt recorded, the controller cancels what runs), refused (approved, spec frozen, left alone), recorded (evidence for verification after success); requests already over are not counted.',
      labelNames: ['source', 'result'] as const,
      registers,
    });
    this.apiRetries = new Counter({
      name: 'remediator_intake_api_retries_total',
      help: 'Kubernetes API calls the intake retried after a transient failure, by operation.',
      labelNames: ['operation'] as const,
      registers,
    });
  }
}
