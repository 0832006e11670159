/**
 * Approved → Executing: the last look before anything is sent. The plan is rendered again
 * from current state (policy, runbook, instance tags, the request's spec) and must equal
 * the plan that was approved, else the request fails and nothing is sent: what a person
 * approved is exactly what runs. Then the safety rules (suspend, circuit breaker,
 * maintenance windows, cooldown, rate limit), then the intent is recorded. Nothing is
 * sent in this step (see ssm.ts).
 *
 * The safety check and the in-memory record of the intent run with no await between
 * them, so concurrent workers cannot both fit under one rate limit.
 */
import { type AlertPolicy, type RemediationRequest, type RemediationRequestStatus } from '../../api/v1alpha1/index.js';
import { circuitState, cooldownBlock, ExecutionLedger, executionsOf, maintenanceBlock, rateLimitBlock } from '../safety.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import type { Planner, Resolved } from './planning.js';
import { commandComment, plannedCommands, type SsmExecution } from './ssm.js';
import type { Transition, Transitions } from './transition.js';

export class IntentRecorder {
  private readonly ledger = new ExecutionLedger();

  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
    private readonly planner: Planner,
    private readonly ssm: SsmExecution,
  ) {}

  /** `fresh`: the plan was resolved moments ago in this same reconcile (auto approval), so it is not resolved again. */
  async record(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy, fresh?: Resolved): Promise<Transition> {
    let resolved = fresh;
    if (!resolved) {
      const approved = status.plan?.digest;
      const r = await this.planner.resolve(rr, status, policy, this.deps.getRunbook(policy.spec.runbookRef.name), false);
      if (!r.ok) {
        if (r.transition.status.reason === 'OptOut') r.transition.status.message = `${r.transition.status.message} (tagged after planning)`;
        return r.transition;
      }
      if (r.resolved.plan.digest !== approved) {
        return this.t.fail(rr, status, 'PlanChanged', `${changes(status.plan, r.resolved.plan)} since the plan ${approved} was approved; nothing was sent — a new alert occurrence creates a new request`);
      }
      resolved = r.resolved;
    }
    const blocked = this.safetyBlock(rr, policy, status.targets ?? []);
    if (blocked) return this.t.enter(rr, status, 'Skipped', blocked.reason, blocked.message);

    const now = this.t.now();
    const plan = resolved.plan;
    const uid = rr.metadata?.uid ?? '';
    const dryRun = policy.spec.safety?.dryRun === true;
    let t: Transition;
    if (plan.ssm) {
      const out = plan.ssm.output;
      const ssm = {
        documentName: plan.ssm.documentName,
        comment: commandComment(uid),
        intentRecordedAt: now,
        parameters: plan.ssm.parameters,
        // Fixed here, before anything is sent: each command's comment is how it is found again.
        commands: plannedCommands(uid, status.targets ?? []),
        ...(out && {
          output: {
            ...(out.cloudWatchLogGroup !== undefined && { cloudWatchLogGroup: out.cloudWatchLogGroup }),
            ...(out.s3BucketName !== undefined && { s3Prefix: `s3://${out.s3BucketName}/${out.s3KeyPrefix ?? ''}` }),
          },
        }),
      };
      status.execution = dryRun ? { dryRun: true, ssm } : { ssm };
    } else if (plan.sns && resolved.sns) {
      const sns = { topicArn: plan.sns.topicArn, intentRecordedAt: now, ...(plan.sns.subject !== undefined && { subject: plan.sns.subject }), message: resolved.sns.message.slice(0, 4096) };
      status.execution = dryRun ? { dryRun: true, sns } : { sns: { ...sns, attempts: 0 } };
    } else {
      return this.t.fail(rr, status, 'PlanMissing', 'the plan has no action; nothing was sent');
    }
    const targets = status.targets ?? [];
    const commands = status.execution.ssm?.commands?.length ?? 1;
    const to = targets.length > 10 ? `${targets.length} instances` : targets.join(', ');
    const what = plan.ssm ? `${plan.ssm.documentName} to ${to}${commands > 1 ? ` as ${commands} commands` : ''}` : `a message to ${plan.sns?.topicArn}`;
    if (dryRun) {
      this.t.condition(rr, status, 'Executed', 'False', 'DryRun', 'dry run: nothing was sent');
      return this.t.enter(rr, status, 'Succeeded', 'DryRun', `dry run: would have sent ${what}`);
    }
    this.t.condition(rr, status, 'Executed', 'Unknown', 'Sending', 'intent recorded; sending');
    t = this.t.enter(rr, status, 'Executing', 'IntentRecorded', `sending ${what}`);
    // Counted at once, before the next request's safety check, and forgotten again if the
    // status write fails (the safe direction: a moment of over-counting, never under).
    const key = `${rr.metadata?.namespace}/${policy.metadata?.name}`;
    const request = rr.metadata?.name ?? '';
    this.ledger.record(key, { request, targets: status.targets ?? [], at: this.deps.clock.now() });
    t.afterWrite = () => this.ssm.intentWritten(uid);
    t.onWriteFailed = () => this.ledger.forget(key, request);
    return t;
  }

  /** Safety rules checked at the moment of execution; a reason to skip, or undefined. */
  private safetyBlock(rr: RemediationRequest, policy: AlertPolicy, targets: readonly string[]): { reason: string; message: string } | undefined {
    const ns = rr.metadata?.namespace ?? '';
    const name = rr.metadata?.name ?? '';
    const now = this.deps.clock.now();
    const requests = this.deps.requestsOf(ns, policy.metadata?.name ?? '');
    if (policy.spec.safety?.suspend) return { reason: 'Suspended', message: `policy ${policy.metadata?.name} is suspended (spec.safety.suspend)` };
    const circuit = circuitState(policy, requests, now, this.deps.admission(ns).enforced);
    if (circuit.open) return { reason: 'CircuitOpen', message: circuit.message ?? 'circuit breaker open' };
    const window = maintenanceBlock(policy, now);
    if (window) return { reason: 'MaintenanceWindow', message: window };
    const records = this.ledger.merge(`${ns}/${policy.metadata?.name}`, executionsOf(requests), now);
    const cooldown = cooldownBlock(policy, name, targets, records, now);
    if (cooldown) return { reason: 'Cooldown', message: cooldown };
    const rate = rateLimitBlock(policy, name, records, now);
    if (rate) return { reason: 'RateLimited', message: rate };
    return undefined;
  }
}

/** What differs between two plans, for a person. */
function changes(before: RemediationRequestStatus['plan'], after: NonNullable<RemediationRequestStatus['plan']>): string {
  if (!before) return 'there was no approved plan';
  const diffs: string[] = [];
  if (before.runbook.name !== after.runbook.name || before.runbook.generation !== after.runbook.generation) {
    diffs.push(`runbook ${before.runbook.name}@${before.runbook.generation} → ${after.runbook.name}@${after.runbook.generation}`);
  }
  if (before.policyGeneration !== after.policyGeneration) diffs.push(`policy generation ${before.policyGeneration} → ${after.policyGeneration}`);
  if (before.risk !== after.risk) diffs.push(`risk ${before.risk} → ${after.risk}`);
  if (before.targets.join(',') !== after.targets.join(',')) diffs.push(`targets ${before.targets.join(',')} → ${after.targets.join(',')}`);
  if (before.region !== after.region || before.roleArn !== after.roleArn) diffs.push('the account or region');
  if (JSON.stringify(before.ssm) !== JSON.stringify(after.ssm) || JSON.stringify(before.sns) !== JSON.stringify(after.sns)) diffs.push('the rendered action');
  return `the plan changed (${diffs.join('; ') || 'its rendering'})`;
}


