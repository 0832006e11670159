/**
 * The policy's `notify` topic: each announced phase is published once (recorded in
 * status.notifications), best effort — a failed notification is recorded and never
 * holds up the remediation.
 */
import type { AlertPolicy, Phase, RemediationRequest, RemediationRequestStatus } from '../../api/v1alpha1/index.js';
import type { Publisher } from '../../cloud/types.js';
import type { Transition, Transitions } from './transition.js';

/** Whether the policy announces `phase` and the cached request has not recorded it yet. */
export function announces(policy: AlertPolicy, rr: RemediationRequest, phase: Phase): boolean {
  const on = policy.spec.notify?.on as readonly string[] | undefined;
  return !!on?.includes(phase) && !!rr.status?.phase && !(rr.status.notifications ?? []).some((n) => n.phase === phase);
}

/** The transition recording the notification for `phase`, or undefined when there is nothing to announce. */
export async function notification(
  rr: RemediationRequest,
  phase: Phase,
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
  const message = JSON.stringify(
    {
      request: name,
      namespace: rr.metadata?.namespace,
      policy: policy.metadata?.name,
      runbook: status.plan?.runbook.name,
      phase,
      risk: status.risk,
      reason: status.reason,
      message: status.message,
      alert: { name: rr.spec.alert.name, source: rr.spec.alert.source, labels: rr.spec.alert.labels },
      targets: status.targets,
      planDigest: status.plan?.digest,
      approval: status.approval,
      commandId: status.execution?.ssm?.commandId,
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
      message,
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
