/**
 * The policy's `notify` topic: each announced phase, and the verdict of verification
 * (`Verified`, `Ineffective`; see verify.ts), is published once (recorded in
 * status.notifications), best effort — a failed notification is recorded and never
 * holds up the remediation.
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
import { notifyMessage } from '../notify-message.js';
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

/** The first thing the policy announces that the request reached and has not recorded yet. */
export function nextAnnouncement(policy: AlertPolicy, rr: RemediationRequest): NotifyOn | undefined {
  const on: readonly string[] | undefined = policy.spec.notify?.on;
  if (!on) return undefined;
  const recorded = new Set((rr.status?.notifications ?? []).map((n) => n.phase));
  return reached(rr).find((x) => on.includes(x) && !recorded.has(x)) as NotifyOn | undefined;
}

/** The transition recording the notification for `phase` (or verdict), or undefined when there is nothing to announce. */
export async function notification(
  rr: RemediationRequest,
  phase: NotifyOn,
  policy: AlertPolicy,
  publisher: Publisher,
  t: Transitions,
): Promise<Transition | undefined> {
  const notify = policy.spec.notify;
  if (!notify || !(notify.on as readonly string[]).includes(phase)) return undefined;
  if ((rr.status?.notifications ?? []).some((n) => n.phase === phase)) return undefined;
  if (!rr.status?.phase) return undefined;
  const status = t.base(rr);
  const name = rr.metadata?.name ?? '';
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
  let entry: NonNullable<RemediationRequestStatus['notifications']>[number];
  let event: Transition['event'];
  try {
    const { messageId } = await publisher.publish({
      topicArn: notify.topicArn,
      subject: `[remediator] ${name}: ${phase}`.slice(0, 100),
      message: notifyMessage(rr, status, policy, phase, JSON.parse(message) as Record<string, unknown>), // chat-ready + approve commands
      attributes: { phase, policy: policy.metadata?.name ?? '', request: name },
      messageGroupId: policy.metadata?.name,
      deduplicationId: `${rr.metadata?.uid}-${phase}`,
    });
    entry = { phase, messageId, sentAt: t.now() };
    event = { type: 'Normal', reason: 'Notified', message: `announced ${phase} on ${notify.topicArn} (message ${messageId})` };
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    entry = { phase, error: why.slice(0, 1024), sentAt: t.now() };
    event = { type: 'Warning', reason: 'NotifyFailed', message: `could not announce ${phase} on ${notify.topicArn}: ${why}` };
  }
  status.notifications = [...(status.notifications ?? []).filter((n) => n.phase !== phase), entry];
  return { status, event };
}
