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
 *
 * The checks are a named chain (chain.ts), INTENT_CHECKS, listed in docs/security.md
 * from that array; each returns a verdict and `verdictTransition` alone turns it into
 * status.
 */
import { END_PHASES, type AlertPolicy, type RemediationRequest, type RemediationRequestStatus } from '../../api/v1alpha1/index.js';
import type { Reason } from '../../api/v1alpha1/reasons.js';
import { runChainSync, type Check, type ChainDoc } from '../chain.js';
import { approvalTimeoutMs } from '../runbook-grant.js';
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

/** What an intent check decides when the request may not run now. */
type IntentVerdict =
  /** The plan rendered again refused (its transition is the planner's); `note` is added to its message. */
  | { kind: 'replanned'; transition: Transition; note?: string }
  /** The request ends; `persist` stores a ledger change before the status says so. */
  | { kind: 'ended'; phase: 'Failed' | 'Skipped' | 'Expired'; reason: Reason; message: string; persist?: () => Promise<void> }
  /** It stays Approved and looks again; `quiet` when it was already held for this reason (no second Event). */
  | { kind: 'held'; reason: Reason; message: string; requeueAfterMs: number; quiet: boolean };

/** What the intent checks read; `resolved` and `status` are the plan's rendering and the status it leaves. */
interface IntentContext {
  readonly deps: RemediationRequestReconcilerDeps;
  readonly planner: Planner;
  readonly rr: RemediationRequest;
  readonly policy: AlertPolicy;
  readonly now: number;
  status: RemediationRequestStatus;
  resolved?: Resolved;
}

type IntentCheck = Check<IntentContext, IntentVerdict>;

/** The approval timeout's end, from when the request started; NaN when unknown. */
const deadlineOf = (ctx: IntentContext) =>
  Date.parse(ctx.status.startTime ?? ctx.rr.metadata?.creationTimestamp ?? '') + approvalTimeoutMs(ctx.policy);

const planUnchanged: IntentCheck = {
  name: 'plan unchanged',
  doc: 'the plan rendered again from current state by the planning rules above (less agents, metrics and guards) is the approved plan, digest for digest (`PlanChanged`, or the planning reason).',
  async run(ctx) {
    if (ctx.resolved) return undefined; // rendered moments ago in this same reconcile (auto approval)
    const approved = ctx.status.plan;
    const status = structuredClone(ctx.status);
    const r = await ctx.planner.recheck(ctx.rr, status, ctx.policy);
    if (!r.ok)
      return { kind: 'replanned', transition: r.transition, ...(r.refusal.reason === 'OptOut' && { note: ' (tagged after planning)' }) };
    ctx.status = status;
    if (r.resolved.plan.digest !== approved?.digest) {
      return {
        kind: 'ended',
        phase: 'Failed',
        reason: 'PlanChanged',
        message: `${changes(approved, r.resolved.plan)} since the plan ${approved?.digest} was approved; nothing was sent — a new alert occurrence creates a new request`,
      };
    }
    ctx.resolved = r.resolved;
    return undefined;
  },
};

const maintenanceWindow: IntentCheck = {
  name: 'maintenance window',
  doc: "inside the policy's maintenance windows, else held Approved until one opens (`MaintenanceWindow`), or `Expired` (`HeldPastTimeout`) once the approval timeout passes first.",
  run(ctx) {
    const { rr, policy, now } = ctx;
    const window = maintenanceBlock(policy, now);
    const wasHeld = rr.status?.reason === HELD_REASON;
    const deadline = deadlineOf(ctx);
    if ((window || wasHeld) && Number.isFinite(deadline) && now >= deadline) {
      return {
        kind: 'ended',
        phase: 'Expired',
        reason: 'HeldPastTimeout',
        message: `the maintenance window did not open before the approval timeout (${policy.spec.approval?.timeout ?? '1h'}) passed; nothing was run`,
      };
    }
    if (!window) return undefined;
    // A little after the opening, so the window counts as open at the next look.
    const requeueAfterMs = Math.max(100, Math.min(window.until, Number.isFinite(deadline) ? deadline : Infinity) - now + 250);
    return { kind: 'held', reason: HELD_REASON, message: window.message, requeueAfterMs, quiet: wasHeld };
  },
};

const instancesFree: IntentCheck = {
  name: 'instances free',
  doc: 'no target is held by another running execution, of any policy (held Approved, `InstanceBusy`; Skipped with `safety.whenInstanceBusy: Skip`; `Expired`, `HeldPastTimeout`, once the approval timeout passes).',
  run(ctx) {
    // One remediation per instance at a time (instance-locks.ts), checked with no await
    // before the ledger record, so two requests cannot both take one instance. A holder
    // runs while its request exists and has not ended: an ended request sends nothing
    // more, whether or not its ledger entry got its outcome (one that ended without the
    // finalizer is never settled and would hold its instances until retention).
    const { rr, policy, deps, now } = ctx;
    const running = (ns: string, name: string, holder: string) => {
      const held = deps.getRequest(ns, name);
      return held?.metadata?.uid === holder && !END_PHASES.has(held.status?.phase ?? 'Pending');
    };
    const busy = instanceBusyBlock(policy, deps.ledger.holders(ctx.status.targets ?? [], rr.metadata?.uid ?? '', running));
    if (!busy) return undefined;
    if (busy.action === 'Skip') return { kind: 'ended', phase: 'Skipped', reason: busy.reason, message: busy.message };
    const deadline = deadlineOf(ctx);
    if (Number.isFinite(deadline) && now >= deadline) {
      return {
        kind: 'ended',
        phase: 'Expired',
        reason: 'HeldPastTimeout',
        message: `${busy.message}; the approval timeout passed first; nothing was run`,
      };
    }
    // The holder's end is not watched from here: look again soon.
    const requeueAfterMs = Math.max(100, Math.min(2_000, Number.isFinite(deadline) ? deadline - now + 50 : 2_000));
    // A hand-over between holders is not news to a waiter (issue 24): it keeps the message
    // it started waiting with; otherwise each hand-over rewrites the status of every other
    // waiter of the instance (measured: status writes 2.5 → 11.2 per remediation with 20
    // requests per instance).
    const waiting = rr.status?.phase === 'Approved' && rr.status.reason === busy.reason;
    const message = waiting ? (rr.status?.message ?? busy.message) : busy.message;
    return { kind: 'held', reason: busy.reason, message, requeueAfterMs, quiet: rr.status?.reason === busy.reason };
  },
};

const skip = (reason: Reason, message: string, persist?: () => Promise<void>): IntentVerdict => ({
  kind: 'ended',
  phase: 'Skipped',
  reason,
  message,
  ...(persist && { persist }),
});
const recordsOf = (ctx: IntentContext) => ctx.deps.ledger.records(ctx.rr.metadata?.namespace ?? '', ctx.policy.metadata?.name ?? '');

const notSuspended: IntentCheck = {
  name: 'not suspended',
  doc: 'the policy is not suspended (Skipped, `Suspended`).',
  run: ({ policy }) =>
    policy.spec.safety?.suspend ? skip('Suspended', `policy ${policy.metadata?.name} is suspended (spec.safety.suspend)`) : undefined,
};

const circuitClosed: IntentCheck = {
  name: 'circuit closed',
  doc: "the policy's circuit breaker, as the ledger records it, is closed (Skipped, `CircuitOpen`; an opening is stored in the ledger first).",
  run(ctx) {
    const circuit = recordCircuit(ctx.deps, ctx.policy, ctx.now);
    return circuit.open ? skip('CircuitOpen', circuit.message ?? 'circuit breaker open', circuit.persist) : undefined;
  },
};

const cooldownOver: IntentCheck = {
  name: 'cooldown over',
  doc: "no execution on these targets within the policy's cooldown, per the ledger (Skipped, `Cooldown`).",
  run(ctx) {
    const cooldown = cooldownBlock(ctx.policy, ctx.rr.metadata?.uid ?? '', ctx.status.targets ?? [], recordsOf(ctx), ctx.now);
    return cooldown ? skip('Cooldown', cooldown) : undefined;
  },
};

const underRateLimit: IntentCheck = {
  name: 'under rate limit',
  doc: "the policy's executions in the ledger are under its rate limit (Skipped, `RateLimited`).",
  run(ctx) {
    const rate = rateLimitBlock(ctx.policy, ctx.rr.metadata?.uid ?? '', recordsOf(ctx), ctx.now);
    return rate ? skip('RateLimited', rate) : undefined;
  },
};

/**
 * The safety rules at the moment of execution, in order. They run with no await between
 * them and the ledger's in-memory record of the intent (see above).
 */
export const INTENT_CHECKS: readonly IntentCheck[] = [
  maintenanceWindow,
  instancesFree,
  notSuspended,
  circuitClosed,
  cooldownOver,
  underRateLimit,
];

export const INTENT_CHAIN: ChainDoc = {
  title: 'The intent (Approved → Executing)',
  where: 'src/controllers/request/intent.ts: planUnchanged, then INTENT_CHECKS',
  checks: [planUnchanged, ...INTENT_CHECKS],
};

/** The one place an intent check's verdict becomes status. */
function verdictTransition(
  transitions: Transitions,
  rr: RemediationRequest,
  status: RemediationRequestStatus,
  v: IntentVerdict,
): Transition {
  switch (v.kind) {
    case 'replanned':
      if (v.note) v.transition.status.message = `${v.transition.status.message}${v.note}`;
      return v.transition;
    case 'held': {
      const held = transitions.enter(rr, status, 'Approved', v.reason, v.message);
      // A hold already announced is not announced again; the write is skipped when nothing changed.
      if (v.quiet) delete held.event;
      held.requeueAfterMs = v.requeueAfterMs;
      return held;
    }
    case 'ended': {
      const ended =
        v.phase === 'Failed'
          ? transitions.fail(rr, status, v.reason, v.message)
          : transitions.enter(rr, status, v.phase, v.reason, v.message);
      // An open breaker just recorded in the ledger is stored before the request says so.
      if (v.persist) ended.beforeWrite = v.persist;
      return ended;
    }
  }
}

/** What status.execution says once the intent is recorded; undefined when the plan has no action. */
function intendedExecution(
  rr: RemediationRequest,
  status: RemediationRequestStatus,
  resolved: Resolved,
  now: string,
  dryRun: boolean,
): RemediationRequestStatus['execution'] {
  const plan = resolved.plan;
  const uid = rr.metadata?.uid ?? '';
  if (plan.ssm) {
    const out = plan.ssm.output;
    const ssm = {
      documentName: plan.ssm.documentName,
      comment: commandComment(uid),
      intentRecordedAt: now,
      parameters: plan.ssm.parameters,
      // Fixed here, before anything is sent: each command's comment is how it is found again.
      commands: plannedCommands(uid, status.targets ?? [], plan.ssm),
      ...(out && {
        output: {
          ...(out.cloudWatchLogGroup !== undefined && { cloudWatchLogGroup: out.cloudWatchLogGroup }),
          ...(out.s3BucketName !== undefined && { s3Prefix: `s3://${out.s3BucketName}/${out.s3KeyPrefix ?? ''}` }),
        },
      }),
    };
    return dryRun ? { dryRun: true, ssm } : { ssm };
  }
  if (plan.sns && resolved.sns) {
    const sns = {
      topicArn: plan.sns.topicArn,
      intentRecordedAt: now,
      ...(plan.sns.subject !== undefined && { subject: plan.sns.subject }),
      message: resolved.sns.message.slice(0, 4096),
    };
    return dryRun ? { dryRun: true, sns } : { sns: { ...sns, attempts: 0 } };
  }
  return undefined;
}

export class IntentRecorder {
  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
    private readonly planner: Planner,
    private readonly engine: ExecutionEngine,
  ) {}

  /** `fresh`: the plan was resolved moments ago in this same reconcile (auto approval), so it is not resolved again. */
  async record(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy, fresh?: Resolved): Promise<Transition> {
    const ctx: IntentContext = { deps: this.deps, planner: this.planner, rr, policy, now: 0, status, ...(fresh && { resolved: fresh }) };
    const replanned = await planUnchanged.run(ctx);
    if (replanned) return verdictTransition(this.t, rr, ctx.status, replanned);
    // From here to the ledger record, nothing awaits: the checks and the record are one step.
    const checked = runChainSync(INTENT_CHECKS, { ...ctx, now: this.deps.clock.now() });
    if (checked) return verdictTransition(this.t, rr, ctx.status, checked.verdict);
    return this.intend(rr, ctx.status, policy, ctx.resolved!);
  }

  /** Records the intent: in status (Executing, or Succeeded for a dry run) and, counted at once, in the ledger. */
  private intend(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy, resolved: Resolved): Transition {
    const plan = resolved.plan;
    const uid = rr.metadata?.uid ?? '';
    const dryRun = policy.spec.safety?.dryRun === true;
    const execution = intendedExecution(rr, status, resolved, this.t.now(), dryRun);
    if (!execution) return this.t.fail(rr, status, 'PlanMissing', 'the plan has no action; nothing was sent');
    status.execution = execution;
    const targets = status.targets ?? [];
    const commands = execution.ssm?.commands?.length ?? 1;
    const to = targets.length > 10 ? `${targets.length} instances` : targets.join(', ');
    const what = plan.ssm
      ? `${plan.ssm.documentName} to ${to}${commands > 1 ? ` as ${commands} commands` : ''}`
      : `a message to ${plan.sns?.topicArn}`;
    if (dryRun) {
      this.t.condition(rr, status, 'Executed', 'False', 'DryRun', 'dry run: nothing was sent');
      return this.t.enter(rr, status, 'Succeeded', 'DryRun', `dry run: would have sent ${what}`);
    }
    this.t.condition(rr, status, 'Executed', 'Unknown', 'Sending', 'intent recorded; sending');
    const executing = this.t.enter(rr, status, 'Executing', 'IntentRecorded', `sending ${what}`);
    // No Event for the intent: the send follows in the same reconcile, and its Event (or
    // the end's, for a command that finishes before the first poll) says what went where.
    delete executing.event;
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
      targets,
      at: this.deps.clock.now(),
      ...(rr.spec.requestedBy && { requestedBy: rr.spec.requestedBy }),
      ...(status.approval?.approver && { approver: status.approval.approver }),
      ...runMark(rr),
    });
    executing.beforeWrite = () => this.deps.ledger.persist(ns, policyName);
    executing.addFinalizer = true;
    // Written on the version that had no intent: nobody can have sent these effects (engine.ts, invariant 3).
    const effects = execution.ssm ? (execution.ssm.commands ?? []).map((c) => c.comment) : [uid];
    executing.afterWrite = () => this.engine.intentWritten(uid, effects);
    return executing;
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
