/**
 * Approved → Executing: the last look before anything is sent. The plan is rendered again
 * from current state (policy, runbook, instance tags, the request's spec) and must equal
 * the plan that was approved, else the request fails and nothing is sent: what a person
 * approved is exactly what runs. Then the safety rules (suspend, circuit breaker,
 * maintenance windows, cooldown, rate limit), then the intent is recorded. Nothing is
 * sent in this step (see ssm.ts).
 *
 * The safety rules read the execution ledger (ledger.ts), never the requests. The check
 * and the ledger's in-memory record of the intent run with no await between them, so
 * concurrent workers cannot both fit under one rate limit. The write order is then:
 * the ledger entry is stored and the execution finalizer is added (side by side), then
 * the status says Executing (reconciler.ts) — a crash anywhere in between over-counts,
 * never under-counts, and nothing is sent before the status write.
 *
 * Outside its maintenance window a request is held, not skipped: it stays Approved,
 * says until when, and looks again when the window opens; the approval timeout keeps
 * counting, so a request that would run too late expires instead.
 */
import { END_PHASES, type AlertPolicy, type RemediationRequest, type RemediationRequestStatus } from '../../api/v1alpha1/index.js';
import { approvalTimeoutMs } from '../runbooks.js';
import { circuitState, cooldownBlock, maintenanceBlock, rateLimitBlock, type CircuitState } from '../safety.js';
import { instanceBusyBlock } from '../instance-locks.js';
import { ledgerRetention } from '../ledger.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import { resetProven } from '../admission.js';
import type { Planner, Resolved } from './planning.js';
import type { ExecutionEngine } from './engine.js';
import { commandComment, plannedCommands } from './ssm.js';
import type { Transition, Transitions } from './transition.js';
import { runMark } from './rerun.js';

/** A request held by a maintenance window says so with this reason. */
export const HELD_REASON = 'MaintenanceWindow';

export class IntentRecorder {
  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
    private readonly planner: Planner,
    private readonly engine: ExecutionEngine,
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
        return this.t.fail(
          rr,
          status,
          'PlanChanged',
          `${changes(status.plan, r.resolved.plan)} since the plan ${approved} was approved; nothing was sent — a new alert occurrence creates a new request`,
        );
      }
      resolved = r.resolved;
    }
    const held = this.hold(rr, status, policy);
    if (held) return held;
    const busy = this.instanceBusy(rr, status, policy);
    if (busy) return busy;
    const blocked = this.safetyBlock(rr, policy, status.targets ?? []);
    if (blocked) {
      const skipped = this.t.enter(rr, status, 'Skipped', blocked.reason, blocked.message);
      // An open breaker just recorded in the ledger is stored before the request says so.
      if (blocked.persist) skipped.beforeWrite = blocked.persist;
      return skipped;
    }

    const now = this.t.now();
    const plan = resolved.plan;
    const uid = rr.metadata?.uid ?? '';
    const dryRun = policy.spec.safety?.dryRun === true;
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
      const sns = {
        topicArn: plan.sns.topicArn,
        intentRecordedAt: now,
        ...(plan.sns.subject !== undefined && { subject: plan.sns.subject }),
        message: resolved.sns.message.slice(0, 4096),
      };
      status.execution = dryRun ? { dryRun: true, sns } : { sns: { ...sns, attempts: 0 } };
    } else {
      return this.t.fail(rr, status, 'PlanMissing', 'the plan has no action; nothing was sent');
    }
    const targets = status.targets ?? [];
    const commands = status.execution.ssm?.commands?.length ?? 1;
    const to = targets.length > 10 ? `${targets.length} instances` : targets.join(', ');
    const what = plan.ssm
      ? `${plan.ssm.documentName} to ${to}${commands > 1 ? ` as ${commands} commands` : ''}`
      : `a message to ${plan.sns?.topicArn}`;
    if (dryRun) {
      this.t.condition(rr, status, 'Executed', 'False', 'DryRun', 'dry run: nothing was sent');
      return this.t.enter(rr, status, 'Succeeded', 'DryRun', `dry run: would have sent ${what}`);
    }
    this.t.condition(rr, status, 'Executed', 'Unknown', 'Sending', 'intent recorded; sending');
    const t = this.t.enter(rr, status, 'Executing', 'IntentRecorded', `sending ${what}`);
    // No Event for the intent: the send follows in the same reconcile, and its Event (or
    // the end's, for a command that finishes before the first poll) says what went where.
    delete t.event;
    // Counted at once, before the next request's safety check (no await since it), and
    // stored before the status write; a failed status write keeps the entry (counting
    // one execution too many is the safe direction) and the request's end or deletion
    // settles it (reconciler.ts).
    const ns = rr.metadata?.namespace ?? '';
    const policyName = policy.metadata?.name ?? '';
    this.deps.ledger.record(ns, policyName, ledgerRetention(policy), {
      uid,
      request: rr.metadata?.name ?? '',
      runbook: policy.spec.runbookRef.name,
      targets: status.targets ?? [],
      at: this.deps.clock.now(),
      ...(rr.spec.requestedBy && { requestedBy: rr.spec.requestedBy }),
      ...(status.approval?.approver && { approver: status.approval.approver }),
      ...runMark(rr),
    });
    t.beforeWrite = () => this.deps.ledger.persist(ns, policyName);
    t.addFinalizer = true;
    // Written on the version that had no intent: nobody can have sent these effects (engine.ts, invariant 3).
    const effects = status.execution.ssm ? (status.execution.ssm.commands ?? []).map((c) => c.comment) : [uid];
    t.afterWrite = () => this.engine.intentWritten(uid, effects);
    return t;
  }

  /**
   * Held by a maintenance window: stays Approved until the window allows it, or expires
   * when the approval timeout passes first. Undefined when it may run now.
   */
  private hold(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Transition | undefined {
    const now = this.deps.clock.now();
    const window = maintenanceBlock(policy, now);
    const wasHeld = rr.status?.reason === HELD_REASON;
    const deadline = Date.parse(status.startTime ?? rr.metadata?.creationTimestamp ?? '') + approvalTimeoutMs(policy);
    if ((window || wasHeld) && Number.isFinite(deadline) && now >= deadline) {
      return this.t.enter(
        rr,
        status,
        'Expired',
        'HeldPastTimeout',
        `the maintenance window did not open before the approval timeout (${policy.spec.approval?.timeout ?? '1h'}) passed; nothing was run`,
      );
    }
    if (!window) return undefined;
    const t = this.t.enter(rr, status, 'Approved', HELD_REASON, window.message);
    // An hold already announced is not announced again; the write is skipped when nothing changed.
    if (wasHeld) delete t.event;
    // A little after the opening, so the window counts as open at the next look.
    t.requeueAfterMs = Math.max(100, Math.min(window.until, Number.isFinite(deadline) ? deadline : Infinity) - now + 250);
    return t;
  }

  /**
   * One remediation per instance at a time (instance-locks.ts): an instance another
   * running execution holds — of any policy, in any namespace this controller loads —
   * holds this request Approved until it is free (its approval timeout keeps counting),
   * or skips it (`safety.whenInstanceBusy: Skip`). Checked here, with no await before
   * the ledger record below, so two requests cannot both take one instance.
   */
  private instanceBusy(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Transition | undefined {
    const uid = rr.metadata?.uid ?? '';
    // A holder runs while its request exists and has not ended: an ended request sends
    // nothing more, whether or not its ledger entry got its outcome (one that ended
    // without the finalizer, e.g. its intent recorded and its Executing write lost before
    // it was cancelled, is never settled and would hold its instances until retention).
    const running = (ns: string, name: string, holder: string) => {
      const held = this.deps.getRequest(ns, name);
      return held?.metadata?.uid === holder && !END_PHASES.has(held.status?.phase ?? 'Pending');
    };
    const busy = instanceBusyBlock(policy, this.deps.ledger.holders(status.targets ?? [], uid, running));
    if (!busy) return undefined;
    if (busy.action === 'Skip') return this.t.enter(rr, status, 'Skipped', busy.reason, busy.message);
    const now = this.deps.clock.now();
    const deadline = Date.parse(status.startTime ?? rr.metadata?.creationTimestamp ?? '') + approvalTimeoutMs(policy);
    if (Number.isFinite(deadline) && now >= deadline) {
      return this.t.enter(rr, status, 'Expired', 'HeldPastTimeout', `${busy.message}; the approval timeout passed first; nothing was run`);
    }
    const t = this.t.enter(rr, status, 'Approved', busy.reason, busy.message);
    if (rr.status?.reason === busy.reason) delete t.event;
    // The holder's end is not watched from here: look again soon.
    t.requeueAfterMs = Math.max(100, Math.min(2_000, Number.isFinite(deadline) ? deadline - now + 50 : 2_000));
    return t;
  }

  /** Safety rules checked at the moment of execution; a reason to skip, or undefined. */
  private safetyBlock(
    rr: RemediationRequest,
    policy: AlertPolicy,
    targets: readonly string[],
  ): { reason: string; message: string; persist?: () => Promise<void> } | undefined {
    const ns = rr.metadata?.namespace ?? '';
    const uid = rr.metadata?.uid ?? '';
    const now = this.deps.clock.now();
    const records = this.deps.ledger.records(ns, policy.metadata?.name ?? '');
    if (policy.spec.safety?.suspend)
      return { reason: 'Suspended', message: `policy ${policy.metadata?.name} is suspended (spec.safety.suspend)` };
    const circuit = recordCircuit(this.deps, policy, now);
    if (circuit.open) return { reason: 'CircuitOpen', message: circuit.message ?? 'circuit breaker open', persist: circuit.persist };
    const cooldown = cooldownBlock(policy, uid, targets, records, now);
    if (cooldown) return { reason: 'Cooldown', message: cooldown };
    const rate = rateLimitBlock(policy, uid, records, now);
    if (rate) return { reason: 'RateLimited', message: rate };
    return undefined;
  }
}

/**
 * The policy's circuit breaker, with its state made sticky in the ledger: an opening is
 * recorded there (and stays open whatever the policy says later), a trusted reset after
 * it clears it. `persist` is set when the ledger changed and must be stored.
 */
export function recordCircuit(
  deps: Pick<RemediationRequestReconcilerDeps, 'ledger' | 'admission'>,
  policy: AlertPolicy,
  now: number,
): CircuitState & { persist?: () => Promise<void> } {
  const ns = policy.metadata?.namespace ?? '';
  const name = policy.metadata?.name ?? '';
  const ledger = deps.ledger;
  const recorded = ledger.breakerOpenedAt(ns, name);
  const circuit = circuitState(policy, ledger.records(ns, name), now, resetProven(policy, deps.admission(ns)), recorded);
  const openedAt = circuit.open ? Date.parse(circuit.openedAt ?? '') || now : undefined;
  const changed = ledger.setBreaker(ns, name, ledgerRetention(policy), openedAt);
  return changed ? { ...circuit, persist: () => ledger.persist(ns, name) } : circuit;
}

/** What differs between two plans, for a person. */
function changes(before: RemediationRequestStatus['plan'], after: NonNullable<RemediationRequestStatus['plan']>): string {
  if (!before) return 'there was no approved plan';
  const diffs: string[] = [];
  if (before.runbook.name !== after.runbook.name || before.runbook.generation !== after.runbook.generation) {
    diffs.push(`runbook ${before.runbook.name}@${before.runbook.generation} → ${after.runbook.name}@${after.runbook.generation}`);
  }
  if (before.policy?.uid !== after.policy?.uid || before.runbook.uid !== after.runbook.uid)
    diffs.push('the policy or the runbook was re-created or swapped');
  if (before.dryRun !== after.dryRun || before.approvalDeadline !== after.approvalDeadline) diffs.push('dry run or the approval deadline');
  if (before.policyGeneration !== after.policyGeneration)
    diffs.push(`policy generation ${before.policyGeneration} → ${after.policyGeneration}`);
  if (before.risk !== after.risk) diffs.push(`risk ${before.risk} → ${after.risk}`);
  if (before.targets.join(',') !== after.targets.join(',')) diffs.push(`targets ${before.targets.join(',')} → ${after.targets.join(',')}`);
  if (before.region !== after.region || before.roleArn !== after.roleArn) diffs.push('the account or region');
  if (JSON.stringify(before.ssm) !== JSON.stringify(after.ssm) || JSON.stringify(before.sns) !== JSON.stringify(after.sns))
    diffs.push('the rendered action');
  return `the plan changed (${diffs.join('; ') || 'its rendering'})`;
}
