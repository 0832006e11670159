/**
 * The execution engine: every external effect of a request — each SSM command (chunk), the
 * runbook's SNS message, each notification — goes through `ExecutionEngine.execute`, and
 * this is where the exactly-once rules live. The phase handlers (ssm.ts, sns.ts,
 * notify.ts) describe an effect (an `Effect`: its id, how to perform it, how to find it
 * again, how to read its errors) and record in status what the engine decided.
 *
 * The invariants, and where each is enforced:
 *
 *  1. Intent before effect. An effect is performed only for a request whose status, as
 *     stored, records the intent (phase Executing and the effect's id: the SSM comment,
 *     the request UID, `<uid>-<phase>`). intent.ts writes it; `execute` is only reached
 *     from the Executing handlers and from announcements of a stored phase, and takes the
 *     `view` the decision is made on.
 *  2. An effect is decided only on a version at least as new as this process's last
 *     write of the request. Every write of the reconciler goes through a client that
 *     records what it stored (reconciler.ts, `WriteExpectations` in
 *     src/runtime/expectations.ts); a reconcile whose cached version is older waits for
 *     the watch (or reads the server); and `execute` refuses (`StaleViewError`) a view
 *     whose resourceVersion is not the one this process last stored or read — so a
 *     decision on a superseded version cannot reach AWS.
 *  3. Adopt before re-send. An effect this process has not attempted, of an intent this
 *     process wrote, is performed at once (nobody can have performed it). Any other —
 *     after a crash, a lost answer, a failed write — is first looked for (`adopt`: SSM
 *     ListCommands by comment) and adopted, with `settleMs` given to the listing to show
 *     an attempt made just now. An effect that cannot be looked for (SNS) is repeated only
 *     where the other side deduplicates it (`dedupWindowMs`: a FIFO topic drops a message
 *     whose deduplication id it saw in the last 5 minutes), and only while the window,
 *     counted from the earliest moment anyone could have attempted it, is open; else the
 *     engine answers `unknown` and the caller records that it may have gone out — at
 *     most once.
 *  4. A refusal is final and recorded. An effect the other side refused (AccessDenied at
 *     SendCommand, an invalid parameter) is never attempted again by this process (kept in
 *     memory until the status records it) and the handlers record it in status, where it
 *     stays (ssm.ts marks the command and every later one refused; nothing is sent after).
 *  5. What status says went out is what went out. An effect's result (an id) learnt from
 *     AWS is kept in memory (`known`) until status records it, so a failed or lost write
 *     never leads to a second send, and the handlers write only results the engine gave.
 *
 *  6. A repeatable effect (CancelCommand: a second call changes nothing in SSM) is made
 *     again whenever its outcome is unknown or a predecessor may have made it; its intent
 *     (the rollout's recorded stop) is still written first (rollout.ts in this folder).
 *
 * Adding an effect kind: describe it as an `Effect` with a
 * stable id derived from the request (and recorded in the intent before it is executed),
 * give it an `adopt` when AWS can be asked whether it happened, classify its errors, and
 * record the `Decision` in status in the handler. The engine's memory is per request
 * (`owner`, the UID) and dropped by `forget` when the request ends.
 */
import { callOutcome, isPermanentAwsError } from '../../cloud/errors.js';
import { AwsAccessDeniedError } from '../../cloud/types.js';
import type { Clock } from '../../runtime/clock.js';
import type { WriteExpectations } from '../../runtime/expectations.js';

/** How an attempt that failed ended. */
export type FailureKind =
  /** The other side refused it for good: final, recorded, never attempted again. */
  | 'refused'
  /** It certainly did not happen and may be tried again (throttling, a denied credential exchange). */
  | 'retry'
  /** It may have happened (a lost answer, a timeout, a 5xx). */
  | 'unknown';

/** One external effect of a request. */
export interface Effect<R> {
  /** What kind of effect: `ssm-command`, `sns-publish`, `notify` (logs, errors). */
  kind: string;
  /** Stable, derived from the request, recorded in the intent: what makes an attempt recognisable. */
  id: string;
  /** The request (UID) it belongs to: the engine's memory is per request. */
  owner: string;
  /** Performs it: the one call that has an effect outside. */
  perform(): Promise<R>;
  /** Looks for it having happened (by its id) and returns its result; absent when the other side cannot be asked. */
  adopt?(): Promise<R | undefined>;
  /** How long `adopt` may take to show an attempt made just now (ListCommands lags SendCommand). */
  settleMs?: number;
  /** The earliest anyone could have attempted it (the intent, or the previous effect it waits for), epoch ms. */
  earliestAttempt?: number;
  /** For how long after the first attempt a repeat is dropped by the other side as a duplicate (a FIFO topic's window). */
  dedupWindowMs?: number;
  /**
   * Repeating it changes nothing on the other side (CancelCommand: ended invocations stay
   * as they are): an attempt that may have happened is simply made again, so "adopt" is
   * "perform". Only for effects whose second call is a no-op by the other side's contract.
   */
  repeatable?: boolean;
  /** Asked once nothing was found and just before performing: a reason not to perform it after all (the request was cancelled). */
  withhold?(): string | undefined;
  /** Reads an error of `perform` (default: `classifyAwsFailure`). */
  classify?(error: unknown): FailureKind;
}

/** What the engine decided and did. */
export type Decision<R> =
  /** Performed now; `result` is its answer. */
  | { action: 'performed'; result: R }
  /** It had happened (found by `adopt`, or known from an earlier attempt of this process). */
  | { action: 'adopted'; result: R }
  /** The other side refused it: final. */
  | { action: 'refused'; error: Error }
  /** Nothing was found and `withhold` gave a reason: not performed. */
  | { action: 'withheld'; reason: string }
  /** It may have been attempted and is not listed yet: look again after `ms`. */
  | { action: 'wait'; ms: number }
  /** It may have happened and can neither be found nor safely repeated: record that, never repeat it. */
  | { action: 'unknown' };

/** The view a decision was about to be made on is older than what this process last wrote. */
export class StaleViewError extends Error {
  constructor(key: string) {
    super(`${key}: the cached version is older than this controller's last write; looking again`);
    this.name = 'StaleViewError';
  }
}

/** The version a decision is made on. */
export interface View {
  /** `namespace/name`: the expectations' key. */
  key: string;
  resourceVersion: string | undefined;
  uid?: string;
}

/** The view of a request object. */
export function viewOf(rr: { metadata?: { namespace?: string; name?: string; resourceVersion?: string; uid?: string } }): View {
  return { key: `${rr.metadata?.namespace}/${rr.metadata?.name}`, resourceVersion: rr.metadata?.resourceVersion, uid: rr.metadata?.uid };
}

/** Refusal, retry or unknown, for an AWS error. */
export function classifyAwsFailure(error: unknown): FailureKind {
  if (error instanceof AwsAccessDeniedError) {
    // The action itself denied: refused. A denied credential exchange (sts:AssumeRole) sent nothing and may be fixed.
    return error.iamAction.startsWith('sts:') ? 'retry' : 'refused';
  }
  if (isPermanentAwsError(error)) return 'refused';
  if (callOutcome(error) === 'throttled') return 'retry';
  return 'unknown';
}

/** SNS FIFO topics drop a message whose deduplication id they accepted in the last 5 minutes. */
export const FIFO_DEDUP_WINDOW_MS = 5 * 60_000;

/** How far another controller's clock (which stamped an intent) may be ahead of ours. */
export const CLOCK_SKEW_MARGIN_MS = 60_000;

interface Memory {
  /** When this process first and last attempted it (its clock), and how many times. */
  firstAttemptAt?: number;
  attemptedAt?: number;
  attempts: number;
  /** Its result, learnt from AWS, until the request ends. */
  known?: unknown;
  refused?: Error;
}

export class ExecutionEngine {
  /** Effects (`owner id`) whose intent this process wrote: not attempted by this process, they cannot have happened. */
  private readonly intents = new Set<string>();
  private readonly memory = new Map<string, Map<string, Memory>>();

  constructor(
    private readonly clock: Clock,
    private readonly expectations: WriteExpectations,
  ) {}

  /** The write recording the intent of these effects of request `owner` succeeded on a version without it: nobody attempted them. */
  intentWritten(owner: string, ids: readonly string[]): void {
    for (const id of ids) this.intents.add(`${owner} ${id}`);
  }

  /** The request ended and announced what it reached: nothing more to remember. */
  forget(owner: string): void {
    for (const k of this.intents) if (k.startsWith(`${owner} `)) this.intents.delete(k);
    this.memory.delete(owner);
  }

  private mem(owner: string, id: string): Memory {
    const byId = this.memory.get(owner) ?? new Map<string, Memory>();
    this.memory.set(owner, byId);
    const m = byId.get(id) ?? { attempts: 0 };
    byId.set(id, m);
    return m;
  }

  /** The result of an effect this process learnt and status may not record yet. */
  known<R>(owner: string, id: string): R | undefined {
    return this.memory.get(owner)?.get(id)?.known as R | undefined;
  }

  /** When this process last attempted the effect (its own clock), if it did. */
  attemptedAt(owner: string, id: string): number | undefined {
    return this.memory.get(owner)?.get(id)?.attemptedAt;
  }

  /** Calls this process made for the effect. */
  attempts(owner: string, id: string): number {
    return this.memory.get(owner)?.get(id)?.attempts ?? 0;
  }

  /**
   * Decides on `effect` for the request as `view` shows it, and performs it when that is
   * safe. Throws `StaleViewError` for a view older than this process's last write, and
   * the error of an attempt that may be repeated (retry) or may have happened (unknown):
   * the caller's next reconcile decides again.
   */
  async execute<R>(view: View, effect: Effect<R>): Promise<Decision<R>> {
    if (this.expectations.check(view.key, view.resourceVersion, view.uid) !== 'fresh') throw new StaleViewError(view.key);
    const m = this.mem(effect.owner, effect.id);
    if (m.known !== undefined) return { action: 'adopted', result: m.known as R };
    if (m.refused) return { action: 'refused', error: m.refused };
    const ours = this.intents.has(`${effect.owner} ${effect.id}`);
    if ((!ours || m.attemptedAt !== undefined) && !effect.repeatable) {
      // Someone may have attempted it: a predecessor, or this process with its answer lost.
      if (effect.adopt) {
        const found = await effect.adopt();
        if (found !== undefined) {
          m.known = found;
          return { action: 'adopted', result: found };
        }
        const since = m.attemptedAt ?? effect.earliestAttempt ?? 0;
        const wait = since + (effect.settleMs ?? 0) - this.clock.now();
        if (wait > 0) return { action: 'wait', ms: wait };
      } else {
        // Repeated only inside the deduplication window, counted from the earliest attempt anyone can have made.
        const first = ours
          ? m.firstAttemptAt
          : effect.earliestAttempt !== undefined
            ? effect.earliestAttempt - CLOCK_SKEW_MARGIN_MS
            : undefined;
        const open = effect.dedupWindowMs !== undefined && first !== undefined && this.clock.now() < first + effect.dedupWindowMs;
        if (!open) return { action: 'unknown' };
      }
    }
    const reason = effect.withhold?.();
    if (reason !== undefined) return { action: 'withheld', reason };
    const before = m.attemptedAt;
    m.attemptedAt = this.clock.now();
    m.firstAttemptAt ??= m.attemptedAt;
    m.attempts++;
    try {
      const result = await effect.perform();
      m.known = result;
      return { action: 'performed', result };
    } catch (error) {
      const kind = (effect.classify ?? classifyAwsFailure)(error);
      if (kind === 'refused') {
        m.refused = error instanceof Error ? error : new Error(String(error));
        return { action: 'refused', error: m.refused };
      }
      // Certainly not performed: as if this attempt had not been made (an untried intent of ours stays untried).
      if (kind === 'retry') m.attemptedAt = before;
      throw error;
    }
  }
}
