/**
 * The policy's safety rules, as pure functions over the policy's executions (from the
 * execution ledger, see ledger.ts) and the current time: cooldown per target, rate
 * limit per policy, the circuit breaker and maintenance windows. Requests are not
 * consulted: deleting or recreating one must not change what these rules decide.
 */
import { CronExpressionParser } from 'cron-parser';
import { CIRCUIT_RESET_ANNOTATION, parseDuration, type AlertPolicy } from '../api/v1alpha1/index.js';
import type { ExecutionRecord } from '../api/ledger/v1.js';

/** Whether an ended execution counts as a failure for the circuit breaker: it failed, or it succeeded without effect. */
export function countsAsFailure(r: ExecutionRecord): boolean {
  return r.outcome === 'Failed' || r.verified === false;
}

/** `self` is the deciding request's UID. */
export function cooldownBlock(
  policy: AlertPolicy,
  self: string,
  targets: readonly string[],
  records: readonly ExecutionRecord[],
  now: number,
): string | undefined {
  const cooldown = policy.spec.safety?.cooldown;
  if (!cooldown) return undefined;
  const ms = parseDuration(cooldown);
  for (const r of records) {
    if (r.uid === self || now - r.at >= ms) continue;
    const hit = r.targets.filter((t) => targets.includes(t));
    if (hit.length > 0) {
      const left = Math.ceil((r.at + ms - now) / 1000);
      return `${hit.join(', ')} remediated by ${r.request} ${Math.round((now - r.at) / 1000)}s ago; cooldown ${cooldown} has ${left}s left`;
    }
  }
  return undefined;
}

export function rateLimitBlock(policy: AlertPolicy, self: string, records: readonly ExecutionRecord[], now: number): string | undefined {
  const limit = policy.spec.safety?.rateLimit;
  if (!limit) return undefined;
  const ms = parseDuration(limit.window);
  const recent = records.filter((r) => r.uid !== self && now - r.at < ms);
  if (recent.length >= limit.maxExecutions) {
    return `policy executed ${recent.length} time(s) in the last ${limit.window}; its rate limit is ${limit.maxExecutions}`;
  }
  return undefined;
}

export interface CircuitState {
  consecutiveFailures: number;
  open: boolean;
  openedAt?: string;
  message?: string;
}

/**
 * Consecutive failed executions (an ineffective one, see spec.verify, counts as failed),
 * newest first, since the last success or the last
 * reset by a person (annotation `remediator.dev/circuit-reset-at`; honoured only where
 * the admission policy is verified to require the approver verb for it: `resetTrusted`). Only executions
 * count: a request skipped or rejected says nothing about whether the action works.
 */
export function circuitState(
  policy: AlertPolicy,
  records: readonly ExecutionRecord[],
  now: number,
  resetTrusted = true,
  /** When the ledger recorded the breaker open (sticky: see LedgerDocument.breakerOpenedAt). */
  recordedOpenAt?: number,
): CircuitState {
  const max = policy.spec.safety?.circuitBreaker?.maxConsecutiveFailures;
  const resetAt = resetTrusted ? circuitResetAt(policy, now) : 0;
  if (recordedOpenAt !== undefined && recordedOpenAt >= resetAt) {
    // Open is open until a person resumes it: removing the breaker from the policy or
    // raising its limit does not close it.
    const failures = consecutiveFailures(records, resetAt);
    return {
      consecutiveFailures: failures,
      open: true,
      openedAt: iso(recordedOpenAt),
      message: `the circuit breaker opened at ${iso(recordedOpenAt)} after ${max ?? 'its limit of'} consecutive failed or ineffective executions; the policy runs nothing until a person resumes it, whatever its circuitBreaker says now: kubectl remediator resume ${policy.metadata?.name} -n ${policy.metadata?.namespace}`,
    };
  }
  const finished = endedSince(records, resetAt);
  const failures = consecutiveFailures(records, resetAt);
  if (max === undefined || failures < max) return { consecutiveFailures: failures, open: false };
  // It opened at the max-th failure of the run, counted from the oldest.
  const opener = finished[failures - max];
  return {
    consecutiveFailures: failures,
    open: true,
    ...(opener && { openedAt: iso(opener.endedAt) }),
    message: `${failures} consecutive failed or ineffective executions (limit ${max}); the policy runs nothing until a person resumes it: kubectl remediator resume ${policy.metadata?.name} -n ${policy.metadata?.namespace}`,
  };
}

/** Executions that ended after `since`, newest first. */
function endedSince(records: readonly ExecutionRecord[], since: number): Array<ExecutionRecord & { endedAt: number }> {
  return records
    .filter((r): r is ExecutionRecord & { endedAt: number } => r.outcome !== undefined && r.endedAt !== undefined && r.endedAt > since)
    .sort((a, b) => b.endedAt - a.endedAt);
}

/** Failed (or ineffective) executions in a row, newest first, that ended after `since`. */
function consecutiveFailures(records: readonly ExecutionRecord[], since: number): number {
  let failures = 0;
  for (const r of endedSince(records, since)) {
    if (!countsAsFailure(r)) break;
    failures++;
  }
  return failures;
}

/** How far clocks may disagree before a reset time counts as in the future. */
const RESET_CLOCK_SKEW_MS = 60_000;

/**
 * When a person last reset the breaker. A time in the future is ignored: a reset names
 * the moment it was given, and `9999-12-31` must not switch the breaker off for good.
 */
export function circuitResetAt(policy: AlertPolicy, now: number): number {
  const at = Date.parse(policy.metadata?.annotations?.[CIRCUIT_RESET_ANNOTATION] ?? '');
  if (!Number.isFinite(at) || at > now + RESET_CLOCK_SKEW_MS) return 0;
  return at;
}

/** Whether `now` falls inside one of the windows (each opens on its cron schedule for its duration). */
export function insideMaintenanceWindow(policy: AlertPolicy, now: number): boolean {
  for (const w of policy.spec.safety?.maintenanceWindows?.windows ?? []) {
    // `prev()` is strictly before currentDate; nudge forward so a window opening this second counts.
    const expr = CronExpressionParser.parse(w.schedule, { currentDate: new Date(now + 1000), tz: w.timeZone ?? 'UTC' });
    const opened = expr.prev().getTime();
    if (now >= opened && now < opened + parseDuration(w.duration)) return true;
  }
  return false;
}

/** Why execution is held by the maintenance windows now, and the moment that may change; undefined when it may run. */
export function maintenanceBlock(policy: AlertPolicy, now: number): { message: string; until: number } | undefined {
  const mw = policy.spec.safety?.maintenanceWindows;
  if (!mw) return undefined;
  const inside = insideMaintenanceWindow(policy, now);
  if (mw.mode === 'OnlyDuring' && !inside) {
    const until = Math.min(
      ...mw.windows.map((w) =>
        CronExpressionParser.parse(w.schedule, { currentDate: new Date(now), tz: w.timeZone ?? 'UTC' })
          .next()
          .getTime(),
      ),
    );
    return { message: `outside every maintenance window; held until the next one opens at ${iso(until)}`, until };
  }
  if (mw.mode === 'NeverDuring' && inside) {
    // The latest close among the windows open now; another may open then, which the next look finds.
    let until = now;
    for (const w of mw.windows) {
      const opened = CronExpressionParser.parse(w.schedule, { currentDate: new Date(now + 1000), tz: w.timeZone ?? 'UTC' })
        .prev()
        .getTime();
      const closes = opened + parseDuration(w.duration);
      if (now >= opened && closes > until) until = closes;
    }
    return { message: `inside a maintenance window (change freeze); held until it closes at ${iso(until)}`, until };
  }
  return undefined;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Problems in the safety spec only the controller can find (cron syntax, time zones). */
export function validateSafety(policy: AlertPolicy): string[] {
  const problems: string[] = [];
  for (const [i, w] of (policy.spec.safety?.maintenanceWindows?.windows ?? []).entries()) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: w.timeZone ?? 'UTC' });
    } catch {
      problems.push(`safety.maintenanceWindows.windows[${i}].timeZone "${w.timeZone}" is not an IANA time zone (e.g. Europe/Berlin)`);
      continue;
    }
    try {
      CronExpressionParser.parse(w.schedule, { tz: w.timeZone ?? 'UTC', strict: false });
    } catch (error) {
      problems.push(`safety.maintenanceWindows.windows[${i}].schedule "${w.schedule}": ${(error as Error).message}`);
    }
  }
  return problems;
}
