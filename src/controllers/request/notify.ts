/**
 * The policy's `notify` topic: each announced phase, and the verdict of verification
 * (`Verified`, `Ineffective`; see verify.ts), is published at most once, through the
 * execution engine (engine.ts): its intent — a pending entry in status.notifications — is
 * written with the phase, the publication follows, and its outcome replaces the entry.
 * Best effort: a failed notification is recorded and never holds up the remediation.
 */
import {
  VERIFIED_CONDITION,
  type AlertPolicy,
  type NotifyOn,
  type RemediationRequest,
  type RemediationRequestStatus,
} from '../../api/v1alpha1/index.js';
import type { Publisher } from '../../cloud/types.js';
import { findCondition } from '../../runtime/conditions.js';
import { classifyAwsFailure, type ExecutionEngine, FIFO_DEDUP_WINDOW_MS, StaleViewError, viewOf } from './engine.js';
import type { Transition, Transitions } from './transition.js';
import { verdictOf } from './verify.js';

/**
 * What the request has reached that a policy may announce, in order: `Approved` when it
 * was passed through (an auto-approved request goes from Pending to Executing in one
 * status write, so no reconcile ever sees the phase Approved; announced while it
 * executes, never after the fact for requests that ended before this existed), the
 * current phase, and a verification verdict.
 */
function reached(rr: RemediationRequest): string[] {
  const status = rr.status;
  if (!status?.phase) return [];
  const out: string[] = [];
  if (status.phase === 'Executing' && findCondition(status.conditions, 'Approved')?.status === 'True') out.push('Approved');
  out.push(status.phase);
  const verdict = verdictOf(rr);
  if (verdict !== undefined) out.push(verdict ? 'Verified' : 'Ineffective');
  return out;
}

type NotificationEntry = NonNullable<RemediationRequestStatus['notifications']>[number];

/**
 * A notification whose intent is recorded and whose outcome is not: it is due, or was in
 * flight when a controller stopped. Every outcome (published, failed) sets `sentAt`; the
 * request cache's compact form of a finished request keeps it (operator.ts, leanRequest).
 */
export function isPending(n: NotificationEntry): boolean {
  return n.sentAt === undefined;
}

/** The engine's id of a request's notification of `phase`; also its FIFO deduplication id. */
export function notifyEffectId(uid: string, phase: string): string {
  return `${uid}-${phase}`;
}

/**
 * `rr`'s status with a pending entry for each phase it reaches that the policy announces
 * and that has no entry yet: the notification's intent, written with the phase itself
 * (reconciler.ts), so that no notification is published before it is recorded.
 */
export function withPendingAnnouncements(policy: AlertPolicy, rr: RemediationRequest): RemediationRequestStatus {
  const status = rr.status ?? {};
  const on: readonly string[] | undefined = policy.spec.notify?.on;
  if (!on || !status.phase) return status;
  const recorded = new Set((status.notifications ?? []).map((n) => n.phase));
  const due = reached(rr).filter((x) => on.includes(x) && !recorded.has(x));
  if (due.length === 0) return status;
  return { ...status, notifications: [...(status.notifications ?? []), ...due.map((phase) => ({ phase }))] };
}

/**
 * The first announcement due: a pending entry, or (for a request whose phase was written
 * before pending entries existed) a reached phase the policy announces with no entry.
 */
export function nextAnnouncement(policy: AlertPolicy, rr: RemediationRequest): NotifyOn | undefined {
  const on: readonly string[] | undefined = policy.spec.notify?.on;
  if (!on) return undefined;
  const entries = rr.status?.notifications ?? [];
  const pending = entries.find((n) => isPending(n) && on.includes(n.phase));
  if (pending) return pending.phase as NotifyOn;
  const recorded = new Set(entries.map((n) => n.phase));
  return reached(rr).find((x) => on.includes(x) && !recorded.has(x)) as NotifyOn | undefined;
}

/**
 * The transition for the announcement of `phase` (or verdict), or undefined when there is
 * nothing to announce. A phase with no entry first gets its pending entry (the intent);
 * a pending one is published through the engine — at most once: a FIFO topic lets a
 * retry after a lost answer through (SNS drops the duplicate for 5 minutes), a standard
 * one does not, and a notification a stopped controller may have published is recorded
 * as such rather than published again. Notifications are best effort: a failure is
 * recorded and never holds up the remediation.
 */
export async function notification(
  rr: RemediationRequest,
  phase: NotifyOn,
  policy: AlertPolicy,
  publisher: Publisher,
  t: Transitions,
  engine: ExecutionEngine,
): Promise<Transition | undefined> {
  const notify = policy.spec.notify;
  if (!notify || !(notify.on as readonly string[]).includes(phase)) return undefined;
  if (!rr.status?.phase) return undefined;
  const status = t.base(rr);
  const current = (status.notifications ?? []).find((n) => n.phase === phase);
  if (current && !isPending(current)) return undefined;
  if (!current) {
    status.notifications = [...(status.notifications ?? []), { phase }];
    return { status };
  }
  const name = rr.metadata?.name ?? '';
  const uid = rr.metadata?.uid ?? '';
  const verified = phase === 'Verified' || phase === 'Ineffective' ? findCondition(status.conditions, VERIFIED_CONDITION) : undefined;
  const message = JSON.stringify(
    {
      request: name,
      namespace: rr.metadata?.namespace,
      policy: policy.metadata?.name,
      runbook: status.plan?.runbook.name,
      phase,
      risk: status.risk,
      reason: verified?.reason ?? status.reason,
      message: verified?.message ?? status.message,
      alert: { name: rr.spec.alert.name, source: rr.spec.alert.source, labels: rr.spec.alert.labels },
      targets: status.targets,
      planDigest: status.plan?.digest,
      approval: status.approval,
      commandId: status.execution?.ssm?.commandId,
      ...(verified && { verification: status.verification }),
    },
    null,
    2,
  );
  const id = notifyEffectId(uid, phase);
  const fifo = notify.topicArn.endsWith('.fifo');
  let entry: NotificationEntry;
  let event: Transition['event'];
  try {
    const decision = await engine.execute(viewOf(rr), {
      kind: 'notify',
      id,
      owner: uid,
      perform: async () =>
        (
          await publisher.publish({
            topicArn: notify.topicArn,
            subject: `[remediator] ${name}: ${phase}`.slice(0, 100),
            message,
            attributes: { phase, policy: policy.metadata?.name ?? '', request: name },
            messageGroupId: policy.metadata?.name,
            deduplicationId: id,
          })
        ).messageId,
      ...(notify.topicArn.endsWith('.fifo') && { dedupWindowMs: FIFO_DEDUP_WINDOW_MS }),
    });
    if (decision.action === 'performed' || decision.action === 'adopted') {
      entry = { phase, messageId: decision.result, sentAt: t.now() };
      event = { type: 'Normal', reason: 'Notified', message: `announced ${phase} on ${notify.topicArn} (message ${decision.result})` };
    } else if (decision.action === 'refused') {
      throw decision.error;
    } else {
      const why =
        'a controller stopped (or lost the answer) while publishing it; SNS cannot be asked whether it took it, so it is not published again';
      entry = { phase, error: why, sentAt: t.now() };
      event = {
        type: 'Warning',
        reason: 'NotifyUnconfirmed',
        message: `${phase} on ${notify.topicArn} may not have been announced: ${why}`,
      };
    }
  } catch (error) {
    if (error instanceof StaleViewError) throw error;
    const outcome = classifyAwsFailure(error);
    // A FIFO topic drops a repeat: the next look publishes again inside the window (engine.ts).
    if (outcome === 'unknown' && fifo) throw error;
    const message = error instanceof Error ? error.message : String(error);
    const why = outcome === 'unknown' ? `${message}; it may have been published, and is not published again (at most once)` : message;
    entry = { phase, error: why.slice(0, 1024), sentAt: t.now() };
    event = { type: 'Warning', reason: 'NotifyFailed', message: `could not announce ${phase} on ${notify.topicArn}: ${why}` };
  }
  status.notifications = (status.notifications ?? []).map((n) => (n.phase === phase ? entry : n));
  return { status, event };
}
