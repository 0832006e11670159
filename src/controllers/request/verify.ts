/**
 * Verification after success (the policy's opt-in `spec.verify`): did the remediation
 * work? A Succeeded request whose policy asks for it gets the condition
 * `Verified=Unknown` (reason Verifying) until `completionTime + verify.within`; then
 *
 *   Verified=True   AlertResolved    the intake received the alert's resolution in time
 *   Verified=True   MetricRecovered  it did not, but `verify.metric`, read once at the
 *                                    deadline over the time since the success, recovered
 *   Verified=False  Ineffective      neither: the alert kept firing
 *
 * A condition, not a phase: Succeeded stays the end phase, and nothing runs again. The
 * evidence is `status.verification.alertResolvedAt`, which only the controller's own
 * intake writes (status is not writable by namespace editors; see processor.ts), never
 * `spec.alert.status`, which anyone who may edit the request could set.
 *
 * The request keeps its execution finalizer while it is verified, so retention (TTL,
 * history limit) and a person's delete wait for the verdict; once it is written the
 * reconciler settles it: the verdict goes to the execution ledger, where an ineffective
 * execution counts as a failure for the circuit breaker (safety.ts), then the finalizer
 * goes.
 */
import {
  parseDuration,
  VERIFIED_CONDITION,
  VERIFYING_REASON,
  type AlertPolicy,
  type RemediationRequest,
} from '../../api/v1alpha1/index.js';
import type { MetricsReader } from '../../cloud/types.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Clock } from '../../runtime/clock.js';
import { findCondition } from '../../runtime/conditions.js';
import { compare, planMetricQueries, seriesFrom } from '../enrichment.js';
import { templateContext } from '../plan-render.js';
import type { Transition, Transitions } from './transition.js';

/** The verdict a finished verification reached: true verified, false ineffective, undefined none (yet). */
export function verdictOf(rr: RemediationRequest): boolean | undefined {
  const c = findCondition(rr.status?.conditions, VERIFIED_CONDITION);
  return c?.status === 'True' ? true : c?.status === 'False' ? false : undefined;
}

/**
 * Whether the request is being verified, or is due to start: Succeeded (for real, not a
 * dry run) under a policy with spec.verify, and not yet settled (`held`: it still has the
 * execution finalizer). Requests that succeeded before the policy asked for
 * verification were settled long ago, so adding `verify` never judges old executions.
 */
export function isVerifying(rr: RemediationRequest, policy: AlertPolicy | undefined, held: boolean): boolean {
  if (rr.status?.phase !== 'Succeeded') return false;
  const c = findCondition(rr.status.conditions, VERIFIED_CONDITION);
  if (c) return c.status === 'Unknown' && c.reason === VERIFYING_REASON;
  return held && !!policy?.spec.verify && !rr.status.execution?.dryRun;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export class Verifier {
  constructor(
    private readonly deps: { clock: Clock; metrics: Metrics },
    private readonly t: Transitions,
  ) {}

  /**
   * One step of a verification (isVerifying is true): wait, or write the verdict.
   * `metricsReader` reads where the plan ran, and only at the deadline, when the policy names a metric.
   */
  async step(rr: RemediationRequest, policy: AlertPolicy | undefined, metricsReader: () => MetricsReader): Promise<Transition> {
    const status = this.t.base(rr);
    const started = findCondition(status.conditions, VERIFIED_CONDITION) !== undefined;
    const verify = policy?.spec.verify;
    const alert = rr.spec.alert.name;
    if (!verify) {
      // The policy was deleted, or stopped asking, before a verdict: no verdict, nothing counted.
      const message = 'verification abandoned: the policy no longer asks for it (spec.verify removed or the policy deleted)';
      this.t.condition(rr, status, VERIFIED_CONDITION, 'Unknown', 'NotVerified', message);
      return { status, event: { type: 'Normal', reason: 'NotVerified', message } };
    }
    const now = this.deps.clock.now();
    const succeededAt = Date.parse(status.completionTime ?? '') || now;
    const until = status.verification?.until ?? iso(succeededAt + parseDuration(verify.within));
    status.verification = { ...status.verification, until };
    const resolvedAt = status.verification.alertResolvedAt;
    const ns = rr.metadata?.namespace ?? '';
    if (resolvedAt) {
      const after = Math.max(0, Math.round((Date.parse(resolvedAt) - succeededAt) / 1000));
      const message = `alert ${alert} resolved at ${resolvedAt}, ${after}s after the remediation succeeded`;
      this.t.condition(rr, status, VERIFIED_CONDITION, 'True', 'AlertResolved', message);
      return {
        status,
        event: { type: 'Normal', reason: 'Verified', message },
        afterWrite: () => this.deps.metrics.verifications.inc({ namespace: ns, result: 'Verified' }),
      };
    }
    const left = Date.parse(until) - now;
    if (left <= 0) {
      const metric = verify.metric && (await this.readMetric(rr, policy!, succeededAt, Date.parse(until), metricsReader()));
      if (metric?.recovered) {
        this.t.condition(rr, status, VERIFIED_CONDITION, 'True', 'MetricRecovered', metric.message);
        return {
          status,
          event: { type: 'Normal', reason: 'Verified', message: metric.message },
          afterWrite: () => this.deps.metrics.verifications.inc({ namespace: ns, result: 'Verified' }),
        };
      }
      const message =
        `alert ${alert} still firing ${verify.within} after the remediation succeeded (no resolution by ${until})` +
        `${metric ? `, and ${metric.message}` : ''}; counted as a failed execution by the circuit breaker`;
      this.t.condition(rr, status, VERIFIED_CONDITION, 'False', 'Ineffective', message);
      return {
        status,
        event: { type: 'Warning', reason: 'Ineffective', message },
        afterWrite: () => this.deps.metrics.verifications.inc({ namespace: ns, result: 'Ineffective' }),
      };
    }
    const message = `waiting until ${until} for alert ${alert} to resolve`;
    this.t.condition(rr, status, VERIFIED_CONDITION, 'Unknown', VERIFYING_REASON, message);
    return {
      status,
      ...(!started && { event: { type: 'Normal' as const, reason: VERIFYING_REASON, message } }),
      requeueAfterMs: left,
    };
  }

  /**
   * The policy's verify.metric over [succeededAt, until] on every target: recovered when
   * each series has datapoints and its mean meets the comparison. The message says what was seen.
   */
  private async readMetric(
    rr: RemediationRequest,
    policy: AlertPolicy,
    succeededAt: number,
    until: number,
    reader: MetricsReader,
  ): Promise<{ recovered: boolean; message: string }> {
    const want = policy.spec.verify!.metric!;
    const query = policy.spec.enrichment?.metrics?.find((m) => m.name === want.name);
    if (!query) return { recovered: false, message: `verify.metric names ${want.name}, which enrichment.metrics does not define` };
    const status = rr.status ?? {};
    const targets = status.targets ?? status.plan?.targets ?? [];
    const planned = planMetricQueries({ ...policy.spec, enrichment: { metrics: [query] } }, targets, templateContext(rr, status));
    const results = await reader.getMetricData(
      planned.map((p) => p.query),
      new Date(succeededAt),
      new Date(Math.max(until, succeededAt + 1_000)),
    );
    const wanted = `${want.operator} ${want.threshold}`;
    const seen: string[] = [];
    let recovered = planned.length > 0;
    for (const s of seriesFrom(planned, results)) {
      const who = s.instanceId ? ` on ${s.instanceId}` : '';
      if (s.mean === undefined) {
        recovered = false;
        seen.push(`no datapoints of ${want.name}${who}`);
      } else {
        if (!compare(s.mean, want.operator, want.threshold)) recovered = false;
        seen.push(`${want.name}${who} averaged ${s.mean}`);
      }
    }
    const detail = seen.join(', ') || `no series of ${want.name}`;
    return {
      recovered,
      message: recovered
        ? `${detail} since the remediation succeeded (wanted ${wanted})`
        : `metric ${want.name} did not recover: ${detail} since the remediation succeeded (wanted ${wanted})`,
    };
  }
}
