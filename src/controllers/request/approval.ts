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
 */
import {
  CHANGED_BY_ANNOTATION,
  type AlertPolicy,
  type RemediationRequest,
  type RemediationRequestStatus,
} from '../../api/v1alpha1/index.js';
import { findCondition } from '../../runtime/conditions.js';
import { epochKey } from '../admission.js';
import { approvalTimeoutMs } from '../runbooks.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import type { Transition, Transitions } from './transition.js';

export class ApprovalGate {
  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
  ) {}

  /** What to do while awaiting approval; `replan` when the spec changed before any decision. */
  async decide(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Promise<Transition | 'replan'> {
    const approval = rr.spec.approval;
    const gen = rr.metadata?.generation;
    const byPolicy = Date.parse(status.startTime ?? this.t.now()) + approvalTimeoutMs(policy);
    const byPlan = Date.parse(status.plan?.approvalDeadline ?? '');
    const deadline = Number.isFinite(byPlan) ? Math.min(byPlan, byPolicy) : byPolicy;
    const remaining = Math.max(0, deadline - this.deps.clock.now());
    if (remaining <= 0) {
      const late = approval
        ? ` (the ${approval.decision === 'Approved' ? 'approval' : 'decision'} by ${approval.approver} came too late)`
        : '';
      this.t.condition(rr, status, 'Approved', 'False', 'Expired', `no decision before the approval timeout${late}`);
      return this.t.enter(
        rr,
        status,
        'Expired',
        'ApprovalTimedOut',
        `no approval before the deadline ${new Date(deadline).toISOString()}${late}; nothing was run`,
      );
    }
    const ns = rr.metadata?.namespace ?? '';
    // An approval is judged on enforcement read from the API server now, not on a cache
    // that may lag a deleted binding (ADR 0011); waiting requests use the cache.
    const verdict =
      approval?.decision === 'Approved' && this.deps.admissionLive ? await this.deps.admissionLive(ns) : this.deps.admission(ns);
    const current = verdict.enforced ? epochKey(verdict.epoch) : '';
    const planned = epochKey(status.plan?.admission);
    if (!approval) {
      if (gen !== undefined && status.observedGeneration !== undefined && gen !== status.observedGeneration) return 'replan';
      // Enforcement began, ended or changed since the plan: a new plan, a new digest, so
      // that only an approval written under the enforcement in force can name it.
      if (current !== planned) return 'replan';
      return { status, requeueAfterMs: remaining };
    }
    if (approval.decision === 'Rejected') {
      status.approval = approval;
      this.t.condition(rr, status, 'Approved', 'False', 'Rejected', `rejected by ${approval.approver}`);
      return this.t.enter(
        rr,
        status,
        'Rejected',
        'RejectedByApprover',
        `rejected by ${approval.approver}${approval.reason ? `: ${approval.reason}` : ''}`,
      );
    }
    if (!verdict.enforced) {
      // Not an end: the request waits (and may still expire) until the guard is in place.
      this.t.condition(
        rr,
        status,
        'Approved',
        'Unknown',
        'AdmissionPolicyNotEnforced',
        `the approval by ${approval.approver} is not honoured: ${verdict.message}`,
      );
      status.message = `approval not honoured: ${verdict.message}`;
      status.reason = 'AdmissionPolicyNotEnforced';
      const t: Transition = { status, requeueAfterMs: remaining };
      if (findCondition(rr.status?.conditions, 'Approved')?.reason !== 'AdmissionPolicyNotEnforced') {
        t.event = { type: 'Warning', reason: 'AdmissionPolicyNotEnforced', message: status.message };
      }
      return t;
    }
    if (planned !== current) {
      // Enforcement is back, or other than when the plan was rendered: the approval may
      // have been written in between, unchecked. It is immutable, so the request ends.
      const why = planned
        ? `the admission enforcement changed since the plan was rendered (then: ${planned}; now: ${current})`
        : 'the plan was rendered while approvals were not enforced in this namespace';
      this.t.condition(rr, status, 'Approved', 'False', 'ApprovalNotProven', `the approval by ${approval.approver} is not proven: ${why}`);
      return this.t.fail(
        rr,
        status,
        'ApprovalNotProven',
        `the approval by ${approval.approver} cannot be shown to have been checked by admission when it was written: ${why}; nothing was run — create a new request and approve its plan`,
      );
    }
    const allowed = policy.spec.approval?.approvers;
    if (allowed && allowed.length > 0 && !allowed.includes(approval.approver)) {
      this.t.condition(
        rr,
        status,
        'Approved',
        'False',
        'ApproverNotAllowed',
        `${approval.approver} is not an approver of policy ${policy.metadata?.name}`,
      );
      return this.t.enter(
        rr,
        status,
        'Rejected',
        'ApproverNotAllowed',
        `${approval.approver} may not approve for policy ${policy.metadata?.name} (allowed: ${allowed.join(', ')})`,
        'Warning',
      );
    }
    const risk = status.risk;
    const fourEyes = risk === 'High' || risk === 'Critical';
    const writers = [status.plan?.policy?.changedBy, policy.metadata?.annotations?.[CHANGED_BY_ANNOTATION]];
    if (fourEyes && writers.includes(approval.approver)) {
      // Four eyes covers the policy too: whoever last changed it decided what runs.
      this.t.condition(
        rr,
        status,
        'Approved',
        'False',
        'SelfApproval',
        `${risk} risk needs an approver other than ${approval.approver}, who last changed policy ${policy.metadata?.name}`,
      );
      return this.t.enter(
        rr,
        status,
        'Rejected',
        'SelfApproval',
        `${approval.approver} last changed policy ${policy.metadata?.name} and may not approve this ${risk} risk remediation too`,
        'Warning',
      );
    }
    if (fourEyes && writers.every((w) => w === undefined)) {
      this.t.condition(
        rr,
        status,
        'Approved',
        'False',
        'PolicyWriterUnknown',
        `who last changed policy ${policy.metadata?.name} is unknown`,
      );
      return this.t.enter(
        rr,
        status,
        'Rejected',
        'PolicyWriterUnknown',
        `${risk} risk needs four eyes, and policy ${policy.metadata?.name} does not record who last changed it (annotation ${CHANGED_BY_ANNOTATION}): apply it again (the admission policy records the writer), then create a new request`,
        'Warning',
      );
    }
    if (fourEyes && rr.spec.requestedBy !== undefined && approval.approver === rr.spec.requestedBy) {
      // Four eyes: the admission policy already refuses this; the controller checks too.
      this.t.condition(
        rr,
        status,
        'Approved',
        'False',
        'SelfApproval',
        `${risk} risk needs an approver other than the requester ${rr.spec.requestedBy}`,
      );
      return this.t.enter(
        rr,
        status,
        'Rejected',
        'SelfApproval',
        `${approval.approver} requested this ${risk} risk remediation and may not approve it too`,
        'Warning',
      );
    }
    const digest = status.plan?.digest;
    if (!digest || approval.planDigest !== digest) {
      this.t.condition(
        rr,
        status,
        'Approved',
        'False',
        'PlanMismatch',
        `the approval names plan ${approval.planDigest ?? '(none)'}, the plan is ${digest ?? '(none)'}`,
      );
      return this.t.fail(
        rr,
        status,
        'PlanMismatch',
        `the approval by ${approval.approver} names plan ${approval.planDigest ?? '(none)'}, not the plan ${digest ?? '(none)'} in status; nothing was run — create a new request`,
      );
    }
    status.approval = approval;
    this.t.condition(rr, status, 'Approved', 'True', 'ManuallyApproved', `approved by ${approval.approver} (plan ${digest})`);
    return this.t.enter(
      rr,
      status,
      'Approved',
      'ManuallyApproved',
      `approved by ${approval.approver}${approval.reason ? `: ${approval.reason}` : ''}`,
    );
  }
}
