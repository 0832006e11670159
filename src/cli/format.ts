/**
 * How the kubectl plugin shows RemediationRequests: a kubectl-style table for `list`
 * and a `kubectl describe`-style page for `describe`. Pure functions of the objects
 * and the current time, so the layout is unit-tested without a cluster.
 */
import type { RemediationRequest } from '../api/v1alpha1/index.js';

export interface EventLine {
  type?: string;
  reason?: string;
  message?: string;
  time?: string | Date;
}

/** kubectl's age format: 45s, 12m, 3h, 6d, 2y. */
export function age(from: string | Date | undefined, now: number): string {
  if (from === undefined) return '<unknown>';
  const t = typeof from === 'string' ? Date.parse(from) : from.getTime();
  if (Number.isNaN(t)) return '<unknown>';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 730) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** Left-aligned columns separated by three spaces, like kubectl's printers. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function decisionText(rr: RemediationRequest): string {
  const a = rr.spec.approval;
  return a ? `${a.decision} by ${a.approver}` : '<none>';
}

export function listTable(items: RemediationRequest[], opts: { now: number; allNamespaces: boolean; wide: boolean }): string {
  const header = [
    ...(opts.allNamespaces ? ['NAMESPACE'] : []),
    'NAME',
    'POLICY',
    'PHASE',
    'RISK',
    'REQUESTED BY',
    'DECISION',
    'TARGETS',
    'AGE',
    ...(opts.wide ? ['ALERT', 'MESSAGE'] : []),
  ];
  const rows = items.map((rr) => [
    ...(opts.allNamespaces ? [rr.metadata?.namespace ?? ''] : []),
    rr.metadata?.name ?? '',
    rr.spec.policyRef.name,
    rr.status?.phase ?? 'Pending',
    rr.status?.risk ?? '-',
    rr.spec.requestedBy ?? '-',
    rr.spec.approval ? `${rr.spec.approval.decision}:${rr.spec.approval.approver}` : '-',
    String(rr.status?.targetCount ?? rr.status?.targets?.length ?? rr.spec.targets?.length ?? '-'),
    age(rr.metadata?.creationTimestamp, opts.now),
    ...(opts.wide ? [`${rr.spec.alert.source}/${rr.spec.alert.name}`, (rr.status?.message ?? '').replace(/\s+/g, ' ')] : []),
  ]);
  return table(header, rows);
}

function kv(pairs: Record<string, string> | undefined): string {
  const entries = Object.entries(pairs ?? {});
  return entries.length === 0 ? '<none>' : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

type RequestStatus = NonNullable<RemediationRequest['status']>;

/** A `kubectl describe`-style page. `events` undefined means they could not be read. */
export function describeRequest(rr: RemediationRequest, events: EventLine[] | undefined, now: number): string {
  const s = rr.status ?? {};
  return [
    ...summaryLines(rr, now),
    ...alertLines(rr.spec.alert),
    ...targetLines(rr, s),
    ...(s.plan ? [planText(s.plan)] : []),
    ...executionLines(s),
    ...conditionLines(s, now),
    ...eventLines(events, now),
  ].join('\n');
}

/** `Label:` padded to the value column. */
const field = (label: string, value: string) => `${`${label}:`.padEnd(15)}${value}`;

function summaryLines(rr: RemediationRequest, now: number): string[] {
  const s = rr.status ?? {};
  return [
    field('Name', rr.metadata?.name ?? ''),
    field('Namespace', rr.metadata?.namespace ?? ''),
    field('Policy', rr.spec.policyRef.name),
    field('Phase', `${s.phase ?? 'Pending'}${s.reason ? ` (${s.reason})` : ''}`),
    ...(s.message ? [field('Message', s.message)] : []),
    field('Risk', s.risk ?? '<not assessed yet>'),
    field('Requested by', rr.spec.requestedBy ?? '<unknown>'),
    field('Decision', decisionText(rr)),
    ...(rr.spec.approval?.reason ? [field('Reason', rr.spec.approval.reason)] : []),
    field('Created', `${rr.metadata?.creationTimestamp ?? '<unknown>'} (${age(rr.metadata?.creationTimestamp, now)} ago)`),
    ...(s.startTime ? [field('Started', s.startTime)] : []),
    ...(s.completionTime ? [field('Completed', s.completionTime)] : []),
  ];
}

function alertLines(alert: RemediationRequest['spec']['alert']): string[] {
  const out = ['Alert:', `  Source:       ${alert.source}`, `  Name:         ${alert.name}`, `  Status:       ${alert.status ?? 'firing'}`];
  if (alert.fingerprint) out.push(`  Fingerprint:  ${alert.fingerprint}`);
  out.push(`  Labels:       ${kv(alert.labels)}`);
  if (alert.annotations && Object.keys(alert.annotations).length > 0) out.push(`  Annotations:  ${kv(alert.annotations)}`);
  return out;
}

/** The targets, and the instances as last described. */
function targetLines(rr: RemediationRequest, s: RequestStatus): string[] {
  const targets = s.targets ?? rr.spec.targets ?? [];
  const out = [field('Targets', targets.length === 0 ? '<none resolved yet>' : `${targets.join(', ')} (${targets.length})`)];
  const instances = s.enrichment?.instances ?? [];
  if (instances.length === 0) return out;
  out.push(`Instances (observed ${s.enrichment?.observedAt ?? '?'}):`);
  const rows = instances.map((i) => [
    i.instanceId,
    i.state ?? '',
    i.instanceType ?? '',
    i.availabilityZone ?? '',
    i.privateIpAddress ?? '',
    kv(i.tags),
  ]);
  out.push(indent(table(['ID', 'STATE', 'TYPE', 'ZONE', 'PRIVATE IP', 'TAGS'], rows)));
  return out;
}

function executionLines(s: RequestStatus): string[] {
  const ssm = s.execution?.ssm;
  const sns = s.execution?.sns;
  if (!ssm && !sns && !s.execution?.dryRun) return [];
  const out = ['Execution:'];
  if (s.execution?.dryRun) out.push('  Dry run:      yes (nothing was sent)');
  if (ssm) {
    out.push(`  Document:     ${ssm.documentName}`);
    out.push(`  Command:      ${ssm.commandId ?? '<not sent yet>'}${ssm.requestedAt ? ` (requested ${ssm.requestedAt})` : ''}`);
    for (const [name, values] of Object.entries(ssm.parameters ?? {})) out.push(`  Parameter:    ${name} = ${JSON.stringify(values)}`);
    if (ssm.rollout) out.push(...rolloutLines(ssm.rollout), ...commandLines(ssm.commands ?? []));
    for (const inv of ssm.invocations ?? []) {
      out.push(`  ${inv.instanceId}: ${inv.status}${inv.responseCode !== undefined ? ` (exit ${inv.responseCode})` : ''}`);
      if (inv.stdoutTail) out.push(indent(`stdout: ${inv.stdoutTail.trimEnd()}`, 4));
      if (inv.stderrTail) out.push(indent(`stderr: ${inv.stderrTail.trimEnd()}`, 4));
    }
  }
  if (sns) {
    out.push(`  SNS topic:    ${sns.topicArn}`);
    if (sns.subject) out.push(`  Subject:      ${sns.subject}`);
    out.push(`  Message ID:   ${sns.messageId ?? '<not published yet>'}${sns.publishedAt ? ` (published ${sns.publishedAt})` : ''}`);
  }
  return out;
}

function rolloutLines(rollout: NonNullable<NonNullable<NonNullable<RequestStatus['execution']>['ssm']>['rollout']>): string[] {
  const out = [
    `  Rollout:      wave ${rollout.currentWave + 1} of ${rollout.waves.length}; errors ${rollout.errors.seen} of ${rollout.errors.allowed} allowed${rollout.nextWaveAt ? `; next wave at ${rollout.nextWaveAt}` : ''}`,
  ];
  if (rollout.stopped) out.push(`  Stopped:      ${rollout.stopped.reason} at ${rollout.stopped.at}: ${rollout.stopped.message}`);
  const rows = rollout.waves.map((w, i) => [
    String(i + 1),
    String(w.size),
    w.state,
    String(w.succeeded ?? ''),
    String(w.failed ?? ''),
    w.message ?? '',
  ]);
  out.push(indent(table(['WAVE', 'SIZE', 'STATE', 'SUCCEEDED', 'FAILED', 'MESSAGE'], rows)));
  if (rollout.failedInstances?.length) out.push(`  Failed:       ${rollout.failedInstances.join(', ')}`);
  return out;
}

/** Each command of a rollout: its wave, id, the limits it was sent with, and whether it was cancelled or refused. */
function commandLines(commands: NonNullable<NonNullable<NonNullable<RequestStatus['execution']>['ssm']>['commands']>): string[] {
  if (commands.length === 0) return [];
  const rows = commands.map((c) => [
    String((c.wave ?? 0) + 1),
    c.commandId ?? (c.refused ? `<refused: ${c.refused.reason}>` : '<not sent>'),
    String(c.instanceIds.length),
    c.maxConcurrency ?? '',
    c.maxErrors ?? '',
    c.cancelledAt ? `cancelled ${c.cancelledAt}` : '',
  ]);
  return [indent(table(['WAVE', 'COMMAND', 'INSTANCES', 'CONCURRENCY', 'MAX ERRORS', 'NOTE'], rows))];
}

function conditionLines(s: RequestStatus, now: number): string[] {
  const conditions = s.conditions ?? [];
  if (conditions.length === 0) return ['Conditions:', '  <none>'];
  const rows = conditions.map((c) => [c.type, c.status, c.reason ?? '', age(c.lastTransitionTime, now), c.message ?? '']);
  return ['Conditions:', indent(table(['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'], rows))];
}

function eventLines(events: EventLine[] | undefined, now: number): string[] {
  if (events === undefined) return ['Events:', '  <cannot list events in this namespace>'];
  if (events.length === 0) return ['Events:', '  <none>'];
  const rows = events.map((e) => [e.type ?? '', e.reason ?? '', age(e.time, now), e.message ?? '']);
  return ['Events:', indent(table(['TYPE', 'REASON', 'AGE', 'MESSAGE'], rows))];
}

/** The plan an approval approves, exactly as it will run. */
export function planText(plan: NonNullable<RemediationRequest['status']>['plan'] & object): string {
  const out = ['Plan (what an approval approves, exactly):'];
  out.push(`  Digest:       ${plan.digest}`);
  out.push(`  Runbook:      ${plan.runbook.name} (generation ${plan.runbook.generation}); policy generation ${plan.policyGeneration}`);
  if (plan.policy) {
    out.push(`  Policy:       ${plan.policy.name} (uid ${plan.policy.uid}), last changed by ${plan.policy.changedBy ?? 'unknown'}`);
  }
  if (plan.dryRun) out.push('  Dry run:      yes: records what would be sent, sends nothing');
  if (plan.approvalDeadline)
    out.push(`  Approve by:   ${plan.approvalDeadline}${plan.approvers ? ` (approvers: ${plan.approvers.join(', ')})` : ''}`);
  out.push(`  Risk:         ${plan.risk}`);
  out.push(`  Where:        region ${plan.region}${plan.roleArn ? `, as ${plan.roleArn}` : ", the controller's own account"}`);
  out.push(`  Targets:      ${plan.targets.join(', ')} (${plan.targets.length})`);
  if (plan.ssm) {
    out.push(
      `  Document:     ${plan.ssm.documentName} (timeout ${plan.ssm.timeoutSeconds}s, concurrency ${plan.ssm.maxConcurrency}, errors ${plan.ssm.maxErrors})`,
    );
    for (const [name, values] of Object.entries(plan.ssm.parameters)) {
      out.push(`  Parameter:    ${name}`);
      for (const v of values) out.push(indent(v, 4));
    }
    const r = plan.ssm.rollout;
    if (r) {
      // What the approver approves about how it goes out (docs/rollouts.md).
      out.push(`  Waves:        ${r.waves.join(', ')} instance(s)${r.pauseSeconds ? `, ${r.pauseSeconds}s apart` : ''}`);
      if (r.verify) {
        out.push(
          `  Verify:       ${r.verify.namespace}/${r.verify.metricName} ${r.verify.statistic} ${r.verify.operator} ${r.verify.threshold} on every instance of a wave, ${r.verify.withinSeconds}s after it ended`,
        );
      }
      if (r.alarms?.length) out.push(`  Abort on:     ${r.alarms.join(', ')} in ALARM`);
    }
  }
  if (plan.sns) {
    out.push(`  SNS topic:    ${plan.sns.topicArn}`);
    if (plan.sns.subject) out.push(`  Subject:      ${plan.sns.subject}`);
    out.push(indent(`Message: ${plan.sns.messagePreview}`, 2));
  }
  return out.join('\n');
}

function indent(text: string, n = 2): string {
  const pad = ' '.repeat(n);
  return text
    .split('\n')
    .map((l) => pad + l)
    .join('\n');
}
