/**
 * AwaitingApproval: a person decides on one exact plan. In order:
 *  1. the deadline first — the earlier of the plan's and the current policy's: a
 *     decision that lands after it does not count, and re-creating the policy with a
 *     longer timeout does not move it;
 *  2. a rejection always counts (the safe direction);
 *  3. an approval counts only where the admission policy is verified to guard it (fail
 *     closed) under exactly the enforcement epoch the plan was rendered with (ADR 0011:
 *     otherwise it may have been written in a gap), from an allowed approver, not the
 *     requester nor the policy's last writer for High/Critical risk, and naming the
 *     digest of the plan in status.
 * A spec changed before any decision (say, the alert's labels) is planned again, and so
 * is a plan whose enforcement epoch is no longer the current one: an approval can then
 * only name the new plan, which admission checks.
 *
 * The order is APPROVAL_CHECKS, a named chain (chain.ts) that docs/security.md lists from
 * that array; each check returns a verdict, and `verdictTransition` alone writes status.
 */
import {
  CHANGED_BY_ANNOTATION,
  type AlertPolicy,
  type RemediationRequest,
  type RemediationRequestStatus,
} from '../../api/v1alpha1/index.js';
import type { Reason } from '../../api/v1alpha1/reasons.js';
import { findCondition, type Condition } from '../../runtime/conditions.js';
import { runChain, type Check, type ChainDoc } from '../chain.js';
import type { AdmissionVerdict } from '../admission.js';
import { epochKey } from '../admission.js';
import { approvalTimeoutMs } from '../runbook-grant.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import type { Transition, Transitions } from './transition.js';

type Decision = NonNullable<RemediationRequest['spec']['approval']>;

/** What an approval check decides. */
type ApprovalVerdict =
  /** The spec or the enforcement changed before any decision: plan again. */
  | { kind: 'replan' }
  /** No decision yet: look again at the deadline. */
  | { kind: 'wait' }
  /** An approval the controller cannot honour yet (admission not enforced): the request keeps waiting. */
  | { kind: 'unguarded'; message: string }
  /** The request ends (or, for an approval, goes on), with its `Approved` condition. */
  | {
      kind: 'decided';
      phase: 'Expired' | 'Rejected' | 'Failed';
      reason: Reason;
      message: string;
      warning?: boolean;
      condition: { status: Condition['status']; reason: Reason; message: string };
      /** Keep the decision in status (what a rejection or an approval records). */
      keep?: boolean;
    };

interface ApprovalContext {
  readonly deps: RemediationRequestReconcilerDeps;
  readonly rr: RemediationRequest;
  readonly status: RemediationRequestStatus;
  readonly policy: AlertPolicy;
  readonly approval: Decision | undefined;
  /** The deadline: the earlier of the plan's and the current policy's. */
  readonly deadline: number;
  readonly remaining: number;
  /** Admission enforcement as read for this decision, and its epoch key ('' when not enforced). */
  admission?: AdmissionVerdict;
  current?: string;
}

type ApprovalCheck = Check<ApprovalContext, ApprovalVerdict>;

/** A check that needs a decision: undefined (passes) without one. */
const given = (ctx: ApprovalContext) => ctx.approval!;
const refuseApproval = (
  reason: Reason,
  message: string,
  condition: string,
  phase: 'Rejected' | 'Failed' = 'Rejected',
): ApprovalVerdict => ({
  kind: 'decided',
  phase,
  reason,
  message,
  // A refused approval is a Warning (a Failed one is, by Transitions.fail).
  warning: true,
  condition: { status: 'False', reason, message: condition },
});
const fourEyes = (ctx: ApprovalContext) => ctx.status.risk === 'High' || ctx.status.risk === 'Critical';
const writers = (ctx: ApprovalContext) => [ctx.status.plan?.policy?.changedBy, ctx.policy.metadata?.annotations?.[CHANGED_BY_ANNOTATION]];

const beforeDeadline: ApprovalCheck = {
  name: 'before the deadline',
  doc: "the deadline (the earlier of the plan's and the current policy's `approval.timeout`) has not passed; a decision that lands after it does not count (`Expired`, `ApprovalTimedOut`).",
  run(ctx) {
    if (ctx.remaining > 0) return undefined;
    const a = ctx.approval;
    const late = a ? ` (the ${a.decision === 'Approved' ? 'approval' : 'decision'} by ${a.approver} came too late)` : '';
    return {
      kind: 'decided',
      phase: 'Expired',
      reason: 'ApprovalTimedOut',
      message: `no approval before the deadline ${new Date(ctx.deadline).toISOString()}${late}; nothing was run`,
      condition: { status: 'False', reason: 'Expired', message: `no decision before the approval timeout${late}` },
    };
  },
};

const admissionRead: ApprovalCheck = {
  name: 'admission read',
  doc: 'the admission enforcement of the namespace is read: from the API server now for an approval (ADR 0011), from the caches otherwise (refuses nothing).',
  async run(ctx) {
    const ns = ctx.rr.metadata?.namespace ?? '';
    const live = ctx.approval?.decision === 'Approved' ? ctx.deps.admissionLive : undefined;
    ctx.admission = live ? await live(ns) : ctx.deps.admission(ns);
    ctx.current = ctx.admission.enforced ? epochKey(ctx.admission.epoch) : '';
    return undefined;
  },
};

const decisionGiven: ApprovalCheck = {
  name: 'a decision given',
  doc: 'without a decision the request waits; a spec or an admission enforcement changed since the plan is planned again (a new digest).',
  run(ctx) {
    if (ctx.approval) return undefined;
    const gen = ctx.rr.metadata?.generation;
    if (gen !== undefined && ctx.status.observedGeneration !== undefined && gen !== ctx.status.observedGeneration)
      return { kind: 'replan' };
    // Enforcement began, ended or changed since the plan: a new plan, a new digest, so
    // that only an approval written under the enforcement in force can name it.
    if (ctx.current !== epochKey(ctx.status.plan?.admission)) return { kind: 'replan' };
    return { kind: 'wait' };
  },
};

const rejectionCounts: ApprovalCheck = {
  name: 'a rejection counts',
  doc: 'a rejection always counts, the safe direction (`Rejected`, `RejectedByApprover`).',
  run(ctx) {
    const a = given(ctx);
    if (a.decision !== 'Rejected') return undefined;
    return {
      kind: 'decided',
      phase: 'Rejected',
      reason: 'RejectedByApprover',
      message: `rejected by ${a.approver}${a.reason ? `: ${a.reason}` : ''}`,
      condition: { status: 'False', reason: 'Rejected', message: `rejected by ${a.approver}` },
      keep: true,
    };
  },
};

const admissionEnforced: ApprovalCheck = {
  name: 'admission enforced',
  doc: 'the admission policy is verified to guard approvals in the namespace (fail closed); else the approval is not honoured and the request waits, and may still expire (`AdmissionPolicyNotEnforced`).',
  run(ctx) {
    const verdict = ctx.admission!;
    return verdict.enforced ? undefined : { kind: 'unguarded', message: verdict.message };
  },
};

const epochUnchanged: ApprovalCheck = {
  name: 'enforcement unchanged since the plan',
  doc: 'the enforcement epoch now is the one the plan was rendered under, so admission checked the approval when it was written (`ApprovalNotProven`).',
  run(ctx) {
    const planned = epochKey(ctx.status.plan?.admission);
    if (planned === ctx.current) return undefined;
    // Enforcement is back, or other than when the plan was rendered: the approval may
    // have been written in between, unchecked. It is immutable, so the request ends.
    const a = given(ctx);
    const why = planned
      ? `the admission enforcement changed since the plan was rendered (then: ${planned}; now: ${ctx.current})`
      : 'the plan was rendered while approvals were not enforced in this namespace';
    return refuseApproval(
      'ApprovalNotProven',
      `the approval by ${a.approver} cannot be shown to have been checked by admission when it was written: ${why}; nothing was run — create a new request and approve its plan`,
      `the approval by ${a.approver} is not proven: ${why}`,
      'Failed',
    );
  },
};

const approverAllowed: ApprovalCheck = {
  name: 'approver allowed',
  doc: "the approver is in the policy's `approval.approvers`, when it lists any (`Rejected`, `ApproverNotAllowed`).",
  run(ctx) {
    const a = given(ctx);
    const allowed = ctx.policy.spec.approval?.approvers;
    if (!allowed || allowed.length === 0 || allowed.includes(a.approver)) return undefined;
    const name = ctx.policy.metadata?.name;
    return refuseApproval(
      'ApproverNotAllowed',
      `${a.approver} may not approve for policy ${name} (allowed: ${allowed.join(', ')})`,
      `${a.approver} is not an approver of policy ${name}`,
    );
  },
};

const notPolicyWriter: ApprovalCheck = {
  name: 'not the policy writer',
  doc: 'for High and Critical risk, the approver did not last change the policy: four eyes covers the policy too (`Rejected`, `SelfApproval`).',
  run(ctx) {
    const a = given(ctx);
    if (!fourEyes(ctx) || !writers(ctx).includes(a.approver)) return undefined;
    const name = ctx.policy.metadata?.name;
    const risk = ctx.status.risk;
    return refuseApproval(
      'SelfApproval',
      `${a.approver} last changed policy ${name} and may not approve this ${risk} risk remediation too`,
      `${risk} risk needs an approver other than ${a.approver}, who last changed policy ${name}`,
    );
  },
};

const policyWriterKnown: ApprovalCheck = {
  name: 'policy writer known',
  doc: 'for High and Critical risk, the policy records who last changed it (`Rejected`, `PolicyWriterUnknown`).',
  run(ctx) {
    if (!fourEyes(ctx) || !writers(ctx).every((w) => w === undefined)) return undefined;
    const name = ctx.policy.metadata?.name;
    return refuseApproval(
      'PolicyWriterUnknown',
      `${ctx.status.risk} risk needs four eyes, and policy ${name} does not record who last changed it (annotation ${CHANGED_BY_ANNOTATION}): apply it again (the admission policy records the writer), then create a new request`,
      `who last changed policy ${name} is unknown`,
    );
  },
};

const notRequester: ApprovalCheck = {
  name: 'not the requester',
  doc: 'for High and Critical risk, the approver is not the requester (`Rejected`, `SelfApproval`; the admission policy refuses it too).',
  run(ctx) {
    const a = given(ctx);
    const requester = ctx.rr.spec.requestedBy;
    if (!fourEyes(ctx) || requester === undefined || a.approver !== requester) return undefined;
    const risk = ctx.status.risk;
    return refuseApproval(
      'SelfApproval',
      `${a.approver} requested this ${risk} risk remediation and may not approve it too`,
      `${risk} risk needs an approver other than the requester ${requester}`,
    );
  },
};

const digestMatches: ApprovalCheck = {
  name: 'the plan approved',
  doc: 'the approval names the digest of the plan in status (`PlanMismatch`).',
  run(ctx) {
    const a = given(ctx);
    const digest = ctx.status.plan?.digest;
    if (digest && a.planDigest === digest) return undefined;
    return refuseApproval(
      'PlanMismatch',
      `the approval by ${a.approver} names plan ${a.planDigest ?? '(none)'}, not the plan ${digest ?? '(none)'} in status; nothing was run — create a new request`,
      `the approval names plan ${a.planDigest ?? '(none)'}, the plan is ${digest ?? '(none)'}`,
      'Failed',
    );
  },
};

/** The rules an approval is judged by, in order; a request that passes them all is approved. */
const APPROVAL_CHECKS: readonly ApprovalCheck[] = [
  beforeDeadline,
  admissionRead,
  decisionGiven,
  rejectionCounts,
  admissionEnforced,
  epochUnchanged,
  approverAllowed,
  notPolicyWriter,
  policyWriterKnown,
  notRequester,
  digestMatches,
];

export const APPROVAL_CHAIN: ChainDoc = {
  title: 'A decision (AwaitingApproval)',
  where: 'src/controllers/request/approval.ts: APPROVAL_CHECKS',
  checks: APPROVAL_CHECKS,
};

export class ApprovalGate {
  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
  ) {}

  /** What to do while awaiting approval; `replan` when the spec changed before any decision. */
  async decide(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Promise<Transition | 'replan'> {
    const byPolicy = Date.parse(status.startTime ?? this.t.now()) + approvalTimeoutMs(policy);
    const byPlan = Date.parse(status.plan?.approvalDeadline ?? '');
    const deadline = Number.isFinite(byPlan) ? Math.min(byPlan, byPolicy) : byPolicy;
    const remaining = Math.max(0, deadline - this.deps.clock.now());
    const ctx: ApprovalContext = { deps: this.deps, rr, status, policy, approval: rr.spec.approval, deadline, remaining };
    const checked = await runChain(APPROVAL_CHECKS, ctx);
    return this.verdictTransition(ctx, status, checked?.verdict);
  }

  /** The one place an approval verdict becomes status; no verdict: every check passed, the plan is approved. */
  private verdictTransition(ctx: ApprovalContext, status: RemediationRequestStatus, v: ApprovalVerdict | undefined): Transition | 'replan' {
    const { rr } = ctx;
    if (v?.kind === 'replan') return 'replan';
    if (v?.kind === 'wait') return { status, requeueAfterMs: ctx.remaining };
    const a = given(ctx);
    if (v?.kind === 'unguarded') {
      // Not an end: the request waits (and may still expire) until the guard is in place.
      this.t.condition(
        rr,
        status,
        'Approved',
        'Unknown',
        'AdmissionPolicyNotEnforced',
        `the approval by ${a.approver} is not honoured: ${v.message}`,
      );
      status.message = `approval not honoured: ${v.message}`;
      status.reason = 'AdmissionPolicyNotEnforced';
      const waiting: Transition = { status, requeueAfterMs: ctx.remaining };
      if (findCondition(rr.status?.conditions, 'Approved')?.reason !== 'AdmissionPolicyNotEnforced') {
        waiting.event = { type: 'Warning', reason: 'AdmissionPolicyNotEnforced', message: status.message };
      }
      return waiting;
    }
    if (!v) {
      status.approval = a;
      this.t.condition(rr, status, 'Approved', 'True', 'ManuallyApproved', `approved by ${a.approver} (plan ${status.plan?.digest})`);
      return this.t.enter(rr, status, 'Approved', 'ManuallyApproved', `approved by ${a.approver}${a.reason ? `: ${a.reason}` : ''}`);
    }
    if (v.keep) status.approval = a;
    this.t.condition(rr, status, 'Approved', v.condition.status, v.condition.reason, v.condition.message);
    if (v.phase === 'Failed') return this.t.fail(rr, status, v.reason, v.message);
    return this.t.enter(rr, status, v.phase, v.reason, v.message, v.warning ? 'Warning' : 'Normal');
  }
}
