/**
 * What the intake does with alerts once they are parsed and trusted:
 *
 * - a firing alert becomes one RemediationRequest per matching AlertPolicy, created in
 *   the policy's namespace under its deterministic name (naming.ts) — 409 AlreadyExists
 *   is the deduplication, not an error;
 * - a resolved alert finds its requests by the `remediator.dev/alert` label (whatever
 *   policy made them) and sets `spec.alert.status: resolved` on those of its own or an
 *   earlier occurrence (see `endsOccurrence`) that have not started executing; the
 *   controller then ends them Cancelled. A request of a newer occurrence is never
 *   touched: a late or replayed "resolved" must not cancel the alert's next firing. A
 *   request approved by a person and not yet executing has a frozen spec (CEL rule): it
 *   is left alone, logged and counted (`refused`).
 * - a resolved alert whose request is Executing stops it: the time goes to the request's
 *   `status.alertResolvedAt` (status, not spec: an approved request's spec is frozen, and
 *   status is what namespace editors cannot write), guarded by the resourceVersion the
 *   intake saw Executing; the controller then cancels what still runs (CancelCommand, an
 *   engine effect), sends nothing more and ends it Cancelled, reason AlertResolved
 *   (src/controllers/request/rollout.ts `stopRequested`). Counted as `stopped`.
 * - a resolved alert whose request executes or succeeded under a policy with
 *   `spec.verify` is evidence that the remediation worked: its time goes to the request's
 *   `status.verification.alertResolvedAt` (status, which namespace editors cannot write;
 *   the controller turns it into `Verified=True`, see src/controllers/request/verify.ts).
 *
 * Kubernetes calls are retried within a time budget (retry.ts). When the API server
 * stays unavailable the whole call fails with ApiUnavailableError (a 503 to the sender);
 * re-sending is always safe, because creates are idempotent by name and the resolve
 * patch is idempotent by nature.
 */
import type { Logger } from 'pino';
import { END_PHASES, VERIFIED_CONDITION, VERIFYING_REASON, type AlertPolicy, type RemediationRequest } from '../api/v1alpha1/index.js';
import { alertIdentity, type IntakeAlert } from './alert.js';
import { ApiUnavailableError, IntakeError } from './errors.js';
import { ALERT_LABEL, GENERATOR_URL_ANNOTATION, POLICY_LABEL, SOURCE_LABEL, type IntakeKubeApi } from './kube.js';
import { matchingPolicies } from './matching.js';
import type { IntakeMetrics } from './metrics.js';
import { isLabelValue, requestName } from './naming.js';
import { describeError, statusOf, withRetry } from './retry.js';

export interface ProcessorOptions {
  kube: IntakeKubeApi;
  policies: () => readonly AlertPolicy[];
  /** The intake's own user name, recorded as `spec.requestedBy`. */
  identity: () => string;
  metrics: IntakeMetrics;
  logger: Logger;
  /** Time allowed per Kubernetes call, retries included. */
  retryBudgetMs: number;
  /** Kubernetes calls in flight at once for one intake request. */
  concurrency?: number;
  /** The namespaces the controller watches (`--watch-namespace`); empty for all. A resolved alert looks for its requests only there. */
  watchNamespaces?: readonly string[];
}

export interface Unchanged {
  request: string;
  reason: string;
}

export interface ProcessResult {
  alerts: number;
  created: string[];
  existing: string[];
  cancelled: string[];
  unchanged: Unchanged[];
  unmatched: number;
}

function byRef(a: string, b: string): number {
  const [an = '', aname = ''] = a.split('/');
  const [bn = '', bname = ''] = b.split('/');
  return an < bn ? -1 : an > bn ? 1 : aname < bname ? -1 : aname > bname ? 1 : 0;
}

/**
 * Whether resolved alert `alert` ends the occurrence that request `rr` was made for: the
 * request's occurrence started at or before the resolution's own time. A resolved
 * alert's `startsAt` is that time — Alertmanager sends the `startsAt` of the occurrence
 * it ends; a CloudWatch `OK` its own `StateChangeTime`, later than that of the `ALARM`
 * it ends (the request's `startsAt`); a generic alert its `startsAt`, or now. So
 * an old resolution arriving late (an Alertmanager retry, a replayed SNS message) leaves
 * the requests of any newer occurrence alone. A request whose time cannot be read is
 * treated as ended (the behaviour before occurrences were compared), so nothing gets stuck.
 */
export function endsOccurrence(rr: RemediationRequest, alert: IntakeAlert): boolean {
  const started = Date.parse(rr.spec.alert.startsAt ?? '');
  const resolvedAt = Date.parse(alert.startsAt);
  if (Number.isNaN(started) || Number.isNaN(resolvedAt)) return true;
  return started <= resolvedAt;
}

/** Longest stretch of matching between two turns of the event loop. */
const MATCH_SLICE_MS = 10;

/** Lets timers and other connections' I/O run before continuing. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Phases in which a resolution may be the evidence that verification waits for. */
const VERIFIABLE: ReadonlySet<string> = new Set(['Executing', 'Succeeded']);

/**
 * Whether `rr` waits for its alert's resolution as the verdict of its policy's
 * spec.verify: it executes or succeeded, no verdict yet, no resolution recorded yet.
 */
export function awaitsResolution(rr: RemediationRequest, policy: AlertPolicy | undefined): boolean {
  if (!policy?.spec.verify || !VERIFIABLE.has(rr.status?.phase ?? '') || rr.status?.verification?.alertResolvedAt) return false;
  const c = rr.status?.conditions?.find((x) => x.type === VERIFIED_CONDITION);
  return !c || (c.status === 'Unknown' && c.reason === VERIFYING_REASON);
}

export class AlertProcessor {
  constructor(private readonly opts: ProcessorOptions) {}

  async process(alerts: readonly IntakeAlert[], namespace?: string): Promise<ProcessResult> {
    const result: ProcessResult = { alerts: alerts.length, created: [], existing: [], cancelled: [], unchanged: [], unmatched: 0 };
    const tasks: Array<() => Promise<void>> = [];
    const policies = this.opts.policies();
    let slice = performance.now();
    for (const alert of alerts) {
      // Matching is synchronous; a payload of 500 alerts against many policies must not
      // hold the event loop in one piece, or /healthz and other senders wait behind it.
      if (performance.now() - slice > MATCH_SLICE_MS) {
        await yieldToEventLoop();
        slice = performance.now();
      }
      this.opts.metrics.alertsReceived.inc({ source: alert.source, status: alert.status });
      if (alert.status === 'resolved') {
        tasks.push(() => this.resolve(alert, namespace, result));
        continue;
      }
      const matched = matchingPolicies(policies, alert, namespace);
      if (matched.length === 0) {
        result.unmatched++;
        this.opts.metrics.alertsUnmatched.inc({ source: alert.source });
        this.opts.logger.debug({ alert: alert.name, source: alert.source, fingerprint: alert.fingerprint }, 'alert matched no AlertPolicy');
      }
      for (const policy of matched) tasks.push(() => this.create(alert, policy, result));
    }
    await this.runAll(tasks);
    // Tasks finish in any order; answer in a stable one (namespace, then name).
    for (const list of [result.created, result.existing, result.cancelled]) list.sort(byRef);
    result.unchanged.sort((a, b) => byRef(a.request, b.request));
    return result;
  }

  /** Runs every task with bounded concurrency, lets all of them finish, then reports the worst failure. */
  private async runAll(tasks: Array<() => Promise<void>>): Promise<void> {
    let next = 0;
    const failures: unknown[] = [];
    const worker = async () => {
      while (next < tasks.length) {
        const task = tasks[next++]!;
        try {
          await task();
        } catch (error) {
          failures.push(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency ?? 8, tasks.length) }, worker));
    if (failures.length === 0) return;
    const unavailable = failures.find((f) => f instanceof ApiUnavailableError);
    if (unavailable) throw unavailable;
    throw failures[0];
  }

  private retry<T>(operation: string, what: string, call: () => Promise<T>): Promise<T> {
    return withRetry(what, call, {
      budgetMs: this.opts.retryBudgetMs,
      onRetry: (error, attempt, delayMs) => {
        this.opts.metrics.apiRetries.inc({ operation });
        this.opts.logger.warn(
          { operation, attempt, delayMs: Math.round(delayMs), err: describeError(error) },
          'Kubernetes API call failed; retrying',
        );
      },
    });
  }

  private async create(alert: IntakeAlert, policy: AlertPolicy, result: ProcessResult): Promise<void> {
    const namespace = policy.metadata?.namespace ?? 'default';
    const policyName = policy.metadata?.name ?? '';
    const name = requestName(namespace, policyName, alert);
    const ref = `${namespace}/${name}`;
    const labels: Record<string, string> = { [ALERT_LABEL]: alertIdentity(alert.source, alert.fingerprint), [SOURCE_LABEL]: alert.source };
    if (isLabelValue(policyName)) labels[POLICY_LABEL] = policyName;
    const body: RemediationRequest = {
      metadata: {
        name,
        namespace,
        labels,
        ...(alert.generatorURL && { annotations: { [GENERATOR_URL_ANNOTATION]: alert.generatorURL } }),
      },
      spec: {
        policyRef: { name: policyName },
        alert: {
          source: alert.source,
          name: alert.name,
          labels: alert.labels,
          annotations: alert.annotations,
          fingerprint: alert.fingerprint,
          startsAt: alert.startsAt,
          status: 'firing',
          ...(alert.account && { account: alert.account }),
          ...(alert.region && { region: alert.region }),
        },
        requestedBy: this.opts.identity(),
      },
    };
    let outcome: 'created' | 'exists';
    try {
      outcome = await this.retry('create', `create RemediationRequest ${ref}`, () => this.opts.kube.createRequest(namespace, body));
    } catch (error) {
      throw this.apiFailure(error, `create RemediationRequest ${ref}`);
    }
    const log = { request: name, namespace, policy: policyName, alert: alert.name, source: alert.source, fingerprint: alert.fingerprint };
    if (outcome === 'created') {
      result.created.push(ref);
      this.opts.metrics.created.inc({ source: alert.source });
      this.opts.logger.info(log, 'created RemediationRequest for alert');
    } else {
      result.existing.push(ref);
      this.opts.metrics.deduplicated.inc({ source: alert.source });
      this.opts.logger.debug(log, 'RemediationRequest already exists for this alert occurrence; nothing created');
    }
  }

  private async resolve(alert: IntakeAlert, namespace: string | undefined, result: ProcessResult): Promise<void> {
    const identity = alertIdentity(alert.source, alert.fingerprint);
    // A patch can lose a race with the controller's own writes (409); re-read and decide again.
    let pending: Set<string> | undefined;
    for (let round = 0; round < 3; round++) {
      // Where its requests can be: the namespace asked for, else every watched one.
      const scopes: Array<string | undefined> = namespace
        ? [namespace]
        : this.opts.watchNamespaces?.length
          ? [...this.opts.watchNamespaces]
          : [undefined];
      const items: RemediationRequest[] = [];
      for (const scope of scopes) {
        try {
          items.push(
            ...(await this.retry('list', `list RemediationRequests of alert ${alert.name}`, () =>
              this.opts.kube.listRequestsOfAlert(identity, scope),
            )),
          );
        } catch (error) {
          throw this.apiFailure(error, `list RemediationRequests of alert ${alert.name}`);
        }
      }
      const conflicted = new Set<string>();
      for (const rr of items) {
        const ns = rr.metadata?.namespace ?? '';
        const name = rr.metadata?.name ?? '';
        const ref = `${ns}/${name}`;
        if (pending && !pending.has(ref)) continue;
        // The label is a hash: make sure this really is the same alert.
        if (rr.spec.alert.source !== alert.source || rr.spec.alert.fingerprint !== alert.fingerprint) continue;
        if (!endsOccurrence(rr, alert)) {
          // Not reported under `unchanged`: that list is for requests this resolution
          // should have stopped but could not. A newer occurrence is simply not its business.
          this.opts.logger.info(
            {
              request: rr.metadata?.name,
              namespace: ns,
              alert: alert.name,
              requestStartsAt: rr.spec.alert.startsAt,
              resolvedStartsAt: alert.startsAt,
            },
            "resolved alert is older than this RemediationRequest's occurrence (a late or replayed resolution); left alone",
          );
          continue;
        }
        const outcome = await this.resolveOne(rr, alert);
        if (outcome === 'conflict') conflicted.add(ref);
        else if (outcome === 'cancelled') result.cancelled.push(ref);
        else if (outcome) result.unchanged.push({ request: ref, reason: outcome });
      }
      if (conflicted.size === 0) return;
      pending = conflicted;
    }
    for (const ref of pending ?? [])
      result.unchanged.push({ request: ref, reason: 'kept changing while being marked resolved; send the resolved alert again' });
  }

  /** `cancelled`, `conflict`, a reason it was left alone, or undefined when there was nothing to do. */
  private async resolveOne(rr: RemediationRequest, alert: IntakeAlert): Promise<string | undefined> {
    const ns = rr.metadata?.namespace ?? '';
    const name = rr.metadata?.name ?? '';
    const phase = rr.status?.phase ?? 'Pending';
    const log = { request: name, namespace: ns, policy: rr.spec.policyRef.name, alert: alert.name, phase };
    const policy = this.opts.policies().find((p) => p.metadata?.namespace === ns && p.metadata.name === rr.spec.policyRef.name);
    const verifying = awaitsResolution(rr, policy);
    if (phase === 'Executing') return this.stopExecuting(rr, alert, log, verifying);
    if (verifying) await this.recordResolution(rr, alert, log);
    if (END_PHASES.has(phase) || rr.spec.alert.status === 'resolved') return undefined;
    if (rr.spec.approval?.decision === 'Approved') {
      this.opts.metrics.resolved.inc({ source: alert.source, result: 'refused' });
      this.opts.logger.info(
        log,
        'alert resolved, but its RemediationRequest was approved by a person and its spec is frozen; reject or delete it to stop it',
      );
      return 'approved; its spec is frozen — reject or delete it to stop it';
    }
    let outcome: Awaited<ReturnType<IntakeKubeApi['markResolved']>>;
    try {
      outcome = await this.retry('patch', `mark RemediationRequest ${ns}/${name} resolved`, () =>
        this.opts.kube.markResolved(ns, name, rr.metadata?.resourceVersion ?? ''),
      );
    } catch (error) {
      throw this.apiFailure(error, `mark RemediationRequest ${ns}/${name} resolved`);
    }
    switch (outcome) {
      case 'patched':
        this.opts.metrics.resolved.inc({ source: alert.source, result: 'cancelled' });
        this.opts.logger.info(log, 'alert resolved: marked its RemediationRequest resolved; the controller cancels it');
        return 'cancelled';
      case 'refused':
        this.opts.metrics.resolved.inc({ source: alert.source, result: 'refused' });
        this.opts.logger.info(
          log,
          'alert resolved, but the API server refused to change the RemediationRequest (approved meanwhile?); left as it is',
        );
        return 'the API server refused the change (approved meanwhile)';
      case 'gone':
        return undefined;
      case 'conflict':
        return 'conflict';
    }
  }

  /**
   * Records in status that the alert of Executing request `rr` resolved, so the controller
   * stops it (one patch, with verification's evidence when the policy verifies). Nothing to
   * do when a stop is already asked for, by spec or by an earlier resolution.
   */
  private async stopExecuting(
    rr: RemediationRequest,
    alert: IntakeAlert,
    log: Record<string, unknown>,
    verifying: boolean,
  ): Promise<string | undefined> {
    if (rr.spec.alert.status === 'resolved' || rr.status?.alertResolvedAt) return undefined;
    const ns = rr.metadata?.namespace ?? '';
    const name = rr.metadata?.name ?? '';
    const at = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    let outcome: Awaited<ReturnType<IntakeKubeApi['recordStop']>>;
    try {
      outcome = await this.retry('patch', `record the resolution on RemediationRequest ${ns}/${name}`, () =>
        this.opts.kube.recordStop(ns, name, rr.metadata?.resourceVersion ?? '', at, verifying),
      );
    } catch (error) {
      throw this.apiFailure(error, `record the resolution on RemediationRequest ${ns}/${name}`);
    }
    if (outcome === 'gone') return undefined;
    if (outcome === 'conflict') return 'conflict';
    this.opts.metrics.resolved.inc({ source: alert.source, result: 'stopped' });
    this.opts.logger.info(
      log,
      'alert resolved while its RemediationRequest executes: recorded; the controller cancels what runs and ends it Cancelled',
    );
    return 'cancelled';
  }

  /** Records the resolution as verification's evidence (the controller writes the verdict). */
  private async recordResolution(rr: RemediationRequest, alert: IntakeAlert, log: Record<string, unknown>): Promise<void> {
    const ns = rr.metadata?.namespace ?? '';
    const name = rr.metadata?.name ?? '';
    const at = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    let recorded: boolean;
    try {
      recorded = await this.retry('patch', `record the resolution on RemediationRequest ${ns}/${name}`, () =>
        this.opts.kube.recordResolution(ns, name, at),
      );
    } catch (error) {
      throw this.apiFailure(error, `record the resolution on RemediationRequest ${ns}/${name}`);
    }
    if (!recorded) return;
    this.opts.metrics.resolved.inc({ source: alert.source, result: 'recorded' });
    this.opts.logger.info(log, 'alert resolved after its remediation ran: recorded for verification');
  }

  /** An API failure that is not transient: our configuration (RBAC) or a bug, never the sender's mistake. */
  private apiFailure(error: unknown, what: string): Error {
    if (error instanceof ApiUnavailableError || error instanceof IntakeError) return error;
    const status = statusOf(error);
    const hint = status === 403 ? '; the controller lacks RBAC permission for it (see config/rbac)' : '';
    this.opts.logger.error({ err: describeError(error), status }, `${what} failed`);
    return new IntakeError(500, `${what} failed: ${describeError(error)}${hint}`, 'error');
  }
}
