/**
 * A request's story in time order, from what the API server keeps: its creation, the
 * controller's conditions and phase times, the approval (dated by the managed-fields
 * entry of the write that added it), what was sent to AWS and when, the notifications,
 * and the Events about it. Pure, so the order and wording are unit-tested.
 */
import type { RemediationRequest } from '../../api/v1alpha1/index.js';
import type { EventLine } from '../format.js';

export interface TimelineEntry {
  time: string;
  what: string;
  detail?: string;
  kind: 'request' | 'condition' | 'approval' | 'execution' | 'notification' | 'event';
  warning?: boolean;
}

interface ManagedField {
  manager?: string;
  time?: string | Date;
  fieldsV1?: { 'f:spec'?: Record<string, unknown> };
}

const iso = (t: string | Date | undefined): string | undefined =>
  t === undefined ? undefined : typeof t === 'string' ? t : Number.isNaN(t.getTime()) ? undefined : t.toISOString();

export function timeline(rr: RemediationRequest, events: EventLine[] | undefined): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  const add = (time: string | Date | undefined, entry: Omit<TimelineEntry, 'time'>) => {
    const t = iso(time);
    if (t && !Number.isNaN(Date.parse(t))) out.push({ time: t, ...entry });
  };
  const s = rr.status ?? {};
  add(rr.metadata?.creationTimestamp, {
    kind: 'request',
    what: `Requested by ${rr.spec.requestedBy ?? 'an unknown user'}`,
    detail: `alert ${rr.spec.alert.source}/${rr.spec.alert.name}, policy ${rr.spec.policyRef.name}`,
  });
  add(s.startTime, { kind: 'request', what: 'Planned', detail: s.plan ? `plan ${s.plan.digest}` : undefined });
  for (const c of s.conditions ?? []) {
    add(c.lastTransitionTime, {
      kind: 'condition',
      what: `${c.type} is ${c.status}${c.reason ? ` (${c.reason})` : ''}`,
      detail: c.message || undefined,
      warning: c.status === 'False' && c.type !== 'Approved',
    });
  }
  const approval = rr.spec.approval;
  if (approval) {
    // The write that added spec.approval is the managed-fields entry owning it.
    const fields = (rr.metadata?.managedFields ?? []) as ManagedField[];
    const owner = fields.find((f) => f.fieldsV1?.['f:spec'] && 'f:approval' in (f.fieldsV1['f:spec'] ?? {}));
    add(owner?.time, {
      kind: 'approval',
      what: `${approval.decision} by ${approval.approver}`,
      detail: [approval.reason, approval.planDigest ? `plan ${approval.planDigest}` : undefined].filter(Boolean).join('; ') || undefined,
      warning: approval.decision === 'Rejected',
    });
  }
  const ssm = s.execution?.ssm;
  if (ssm) {
    add(ssm.intentRecordedAt, { kind: 'execution', what: `Intent recorded: ${ssm.documentName}`, detail: ssm.comment });
    for (const c of ssm.commands ?? []) {
      add(c.requestedAt, { kind: 'execution', what: `SSM accepted command ${c.commandId ?? ''}`.trim(), detail: c.instanceIds.join(', ') });
    }
    if (!ssm.commands?.length) add(ssm.requestedAt, { kind: 'execution', what: `SSM accepted command ${ssm.commandId ?? ''}`.trim() });
  }
  const sns = s.execution?.sns;
  if (sns) {
    add(sns.intentRecordedAt, { kind: 'execution', what: `Intent recorded: publish to ${sns.topicArn}` });
    add(sns.publishedAt, { kind: 'execution', what: `SNS accepted message ${sns.messageId ?? ''}`.trim() });
  }
  for (const n of s.notifications ?? []) {
    add(n.sentAt, { kind: 'notification', what: `Notified: ${n.phase}`, detail: n.error ?? n.messageId, warning: n.error !== undefined });
  }
  for (const e of events ?? []) {
    add(e.time, { kind: 'event', what: `Event ${e.reason ?? ''}`.trim(), detail: e.message, warning: e.type === 'Warning' });
  }
  add(s.completionTime, { kind: 'request', what: `Ended: ${s.phase ?? 'unknown'}`, detail: s.message, warning: s.phase !== 'Succeeded' });
  // Stable: entries of the same second keep the order above (cause before effect).
  return out
    .map((e, i) => ({ e, i }))
    .sort((a, b) => Date.parse(a.e.time) - Date.parse(b.e.time) || a.i - b.i)
    .map(({ e }) => e);
}
