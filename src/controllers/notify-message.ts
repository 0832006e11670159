/**
 * The text of a policy's `notify` messages (request/notify.ts publishes them): an AWS
 * Chatbot (Amazon Q Developer in chat applications) custom notification, so that an SNS
 * topic mapped to a Slack or Teams channel shows it as a readable card with no Lambda in
 * between (docs/notifications.md), and any other subscriber still gets JSON with every
 * field. A request waiting for approval says what would run (the plan summary and its
 * digest) and the exact commands that approve or reject it — with the plugin, or with
 * plain kubectl naming the digest — so the message leads the on-call engineer straight
 * to a decision the API server will accept. Pure.
 *
 * The format: Chatbot's event schema (version 1.0: `content` for people, `metadata.
 * additionalContext` with every detail as strings, objects as JSON) beside the fields
 * this message always had at its top level (request, namespace, phase, planDigest, ...),
 * which existing subscribers read. docs/notifications.md shows both.
 */
import {
  DEFAULTS,
  parseDuration,
  type AlertPolicy,
  type RemediationRequest,
  type RemediationRequestStatus,
} from '../api/v1alpha1/index.js';

/** What Chatbot shows of a long description before cutting it; the message stays well below SNS's 256 KiB. */
const MAX_DESCRIPTION = 3_500;
const MAX_TARGETS_SHOWN = 10;
const MAX_RELATED_RESOURCES = 20;

/** Single-quoted for a POSIX shell: what a person pastes runs exactly this. */
function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The commands that approve or reject `rr` as it is now: the plugin's, and plain kubectl's naming the plan digest. */
export function approvalCommands(
  rr: RemediationRequest,
  status: RemediationRequestStatus,
): { approve: string; reject: string; kubectl?: string } {
  const ns = shellQuote(rr.metadata?.namespace ?? 'default');
  const name = shellQuote(rr.metadata?.name ?? '');
  const digest = status.plan?.digest;
  const patch = digest && {
    spec: { approval: { decision: 'Approved', approver: 'YOUR-USER-NAME', planDigest: digest } },
  };
  return {
    approve: `kubectl remediator approve ${name} -n ${ns}`,
    reject: `kubectl remediator reject ${name} -n ${ns} --reason '...'`,
    // Without the plugin: the approver must be the user name the API server knows you by
    // (`kubectl auth whoami`); the admission policy refuses any other, and any other digest.
    ...(patch && { kubectl: `kubectl patch remediationrequest ${name} -n ${ns} --type merge -p ${shellQuote(JSON.stringify(patch))}` }),
  };
}

/** When a request waiting for approval expires, if it is known. */
function approvalDeadline(policy: AlertPolicy, status: RemediationRequestStatus): string | undefined {
  const start = Date.parse(status.startTime ?? '');
  if (!Number.isFinite(start)) return undefined;
  try {
    return new Date(start + parseDuration(policy.spec.approval?.timeout ?? DEFAULTS.approvalTimeout)).toISOString();
  } catch {
    return undefined;
  }
}

function planSummary(status: RemediationRequestStatus): string[] {
  const plan = status.plan;
  if (!plan) return [];
  const shown = plan.targets.slice(0, MAX_TARGETS_SHOWN).join(', ');
  const more = plan.targets.length > MAX_TARGETS_SHOWN ? ` and ${plan.targets.length - MAX_TARGETS_SHOWN} more` : '';
  const lines = [
    `*Plan* ${plan.digest}`,
    `• runbook ${plan.runbook.name}, risk ${plan.risk}, region ${plan.region}${plan.roleArn ? ` as ${plan.roleArn}` : ''}`,
    `• ${plan.targets.length} target(s): ${shown}${more}`,
  ];
  if (plan.ssm) {
    lines.push(
      `• SSM ${plan.ssm.documentName}, timeout ${plan.ssm.timeoutSeconds}s, concurrency ${plan.ssm.maxConcurrency}, errors ${plan.ssm.maxErrors}`,
    );
    for (const [param, values] of Object.entries(plan.ssm.parameters)) lines.push(`• ${param}: \`${values.join(' ; ').slice(0, 500)}\``);
  }
  if (plan.sns) lines.push(`• SNS ${plan.sns.topicArn}${plan.sns.subject ? `: ${plan.sns.subject}` : ''}`);
  return lines;
}

/** additionalContext values must be strings: objects go as JSON, absent values are left out. */
function flatten(detail: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(detail)) {
    if (v === undefined || v === null) continue;
    out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

/**
 * The message announcing `phase` (or a verdict) of `rr`. `detail` is what notify.ts
 * reports of the request; it goes into `metadata.additionalContext` unchanged in content.
 */
export function notifyMessage(
  rr: RemediationRequest,
  status: RemediationRequestStatus,
  policy: AlertPolicy,
  phase: string,
  detail: Record<string, unknown>,
): string {
  const ns = rr.metadata?.namespace ?? '';
  const name = rr.metadata?.name ?? '';
  const waiting = phase === 'AwaitingApproval';
  const commands = approvalCommands(rr, status);
  const alert = rr.spec.alert;
  const description = [
    `Alert *${alert.name}* (${alert.source})${
      alert.labels
        ? `: ${Object.entries(alert.labels)
            .map(([k, v]) => `${k}=${v}`)
            .slice(0, 8)
            .join(', ')}`
        : ''
    }`,
    `Policy ${ns}/${policy.metadata?.name ?? rr.spec.policyRef.name}${rr.spec.requestedBy ? `, requested by ${rr.spec.requestedBy}` : ''}`,
    ...(typeof detail.message === 'string' && detail.message
      ? [`${detail.reason ? `${String(detail.reason)}: ` : ''}${detail.message}`]
      : []),
    ...planSummary(status),
    ...(status.approval
      ? [`${status.approval.decision} by ${status.approval.approver}${status.approval.reason ? `: ${status.approval.reason}` : ''}`]
      : []),
  ]
    .join('\n')
    .slice(0, MAX_DESCRIPTION);
  const deadline = waiting ? approvalDeadline(policy, status) : undefined;
  const approvers = policy.spec.approval?.approvers;
  const nextSteps = waiting
    ? [
        `Review: \`kubectl remediator describe ${shellQuote(name)} -n ${shellQuote(ns)}\``,
        `Approve: \`${commands.approve}\` (it shows the plan; check the digest is ${status.plan?.digest ?? 'the one above'})`,
        ...(commands.kubectl ? [`Without the plugin: \`${commands.kubectl}\``] : []),
        `Reject: \`${commands.reject}\``,
        ...(approvers?.length ? [`Who may approve: ${approvers.join(', ')}`] : []),
        ...(deadline ? [`Expires unless decided by ${deadline}`] : []),
      ]
    : [`Details: \`kubectl remediator describe ${shellQuote(name)} -n ${shellQuote(ns)}\``];
  return JSON.stringify(
    {
      // Subscribers that read the message as remediator always wrote it keep their fields.
      ...detail,
      version: '1.0',
      source: 'custom',
      id: `${rr.metadata?.uid ?? name}-${phase}`,
      content: {
        textType: 'client-markdown',
        title: waiting ? `Approval needed: ${ns}/${name}` : `${ns}/${name}: ${phase}`,
        description,
        nextSteps,
        keywords: [phase, ...(status.risk ? [status.risk] : []), policy.metadata?.name ?? rr.spec.policyRef.name],
      },
      metadata: {
        // One thread per request: its approval, execution and verdict read as one story.
        threadId: `remediator/${ns}/${name}`,
        summary: `${ns}/${name} ${waiting ? 'waits for approval' : phase}`,
        eventType: `RemediationRequest${phase}`,
        relatedResources: (status.targets ?? status.plan?.targets ?? []).slice(0, MAX_RELATED_RESOURCES),
        additionalContext: flatten({
          ...detail,
          ...(waiting && { approveCommand: commands.approve, rejectCommand: commands.reject, kubectlApproveCommand: commands.kubectl }),
          ...(deadline && { approvalDeadline: deadline }),
        }),
      },
    },
    null,
    2,
  );
}
