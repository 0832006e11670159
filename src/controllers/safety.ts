/**
 * The policy's safety rules, as pure functions over the policy's requests and the
 * current time: cooldown per target, rate limit per policy, the circuit breaker and
 * maintenance windows. They are computed from state (level-triggered), never from
 * counters that a crash could lose; the `ExecutionLedger` only covers the moments in
 * which this process has written an intent the informer cache has not yet shown it.
 */
import { CronExpressionParser } from 'cron-parser';
import { CIRCUIT_RESET_ANNOTATION, type AlertPolicy, type RemediationRequest } from '../api/v1alpha1/index.js';
import { parseDuration } from './duration.js';

export interface ExecutionRecord {
  request: string;
  targets: readonly string[];
  at: number;
}

/** Executions that really started (intent recorded, not a dry run) among a policy's requests. */
export function executionsOf(requests: readonly RemediationRequest[]): ExecutionRecord[] {
  const out: ExecutionRecord[] = [];
  for (const r of requests) {
    const e = r.status?.execution;
    if (!e || e.dryRun) continue;
    const at = e.ssm?.intentRecordedAt ?? e.sns?.intentRecordedAt;
    if (at) out.push({ request: r.metadata?.name ?? '', targets: r.status?.targets ?? [], at: Date.parse(at) });
  }
  return out;
}

/**
 * Intents this process wrote recently, per policy. The informer cache shows our own
 * write a few milliseconds later; without this, two requests reconciled back to back
 * could both pass a rate limit that only one of them fits.
 */
export class ExecutionLedger {
  private readonly byPolicy = new Map<string, ExecutionRecord[]>();

  constructor(private readonly retainMs = 24 * 3_600_000) {}

  record(policyKey: string, rec: ExecutionRecord): void {
    const list = this.byPolicy.get(policyKey) ?? [];
    list.push(rec);
    this.byPolicy.set(policyKey, list);
  }

  /** Drop a record whose status write failed: that intent never happened. */
  forget(policyKey: string, request: string): void {
    const list = this.byPolicy.get(policyKey);
    if (list) this.byPolicy.set(policyKey, list.filter((r) => r.request !== request));
  }

  /** Cache-derived records plus ours, one per request. */
  merge(policyKey: string, fromCache: readonly ExecutionRecord[], now: number): ExecutionRecord[] {
    const mine = (this.byPolicy.get(policyKey) ?? []).filter((r) => now - r.at < this.retainMs);
    this.byPolicy.set(policyKey, mine);
    const seen = new Set(fromCache.map((r) => r.request));
    return [...fromCache, ...mine.filter((r) => !seen.has(r.request))];
  }
}

export function cooldownBlock(policy: AlertPolicy, self: string, targets: readonly string[], records: readonly ExecutionRecord[], now: number): string | undefined {
  const cooldown = policy.spec.safety?.cooldown;
  if (!cooldown) return undefined;
  const ms = parseDuration(cooldown);
  for (const r of records) {
    if (r.request === self || now - r.at >= ms) continue;
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
  const recent = records.filter((r) => r.request !== self && now - r.at < ms);
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
 * Consecutive failed executions, newest first, since the last success or the last
 * reset by a person (annotation `remediator.dev/circuit-reset-at`; honoured only where
 * the admission policy is verified to require the approver verb for it: `resetTrusted`). Only executions
 * count: a request skipped or rejected says nothing about whether the action works.
 */
export function circuitState(policy: AlertPolicy, requests: readonly RemediationRequest[], now: number, resetTrusted = true): CircuitState {
  const max = policy.spec.safety?.circuitBreaker?.maxConsecutiveFailures;
  const resetAt = resetTrusted ? circuitResetAt(policy, now) : 0;
  const finished = requests
    .filter((r) => {
      const e = r.status?.execution;
      return e && !e.dryRun && (r.status?.phase === 'Succeeded' || r.status?.phase === 'Failed') && r.status.completionTime;
    })
    .filter((r) => Date.parse(r.status?.completionTime ?? '') > resetAt)
    .sort((a, b) => (b.status?.completionTime ?? '').localeCompare(a.status?.completionTime ?? ''));
  let failures = 0;
  for (const r of finished) {
    if (r.status?.phase !== 'Failed') break;
    failures++;
  }
  if (max === undefined || failures < max) return { consecutiveFailures: failures, open: false };
  // It opened at the max-th failure of the run, counted from the oldest.
  const opener = finished[failures - max];
  return {
    consecutiveFailures: failures,
    open: true,
    openedAt: opener?.status?.completionTime,
    message: `${failures} consecutive failed executions (limit ${max}); the policy runs nothing until a person resumes it: kubectl remediator resume ${policy.metadata?.name} -n ${policy.metadata?.namespace}`,
  };
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

export function maintenanceBlock(policy: AlertPolicy, now: number): string | undefined {
  const mw = policy.spec.safety?.maintenanceWindows;
  if (!mw) return undefined;
  const inside = insideMaintenanceWindow(policy, now);
  if (mw.mode === 'OnlyDuring' && !inside) return 'outside every maintenance window, and the policy executes only during one';
  if (mw.mode === 'NeverDuring' && inside) return 'inside a maintenance window (change freeze), and the policy never executes during one';
  return undefined;
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
