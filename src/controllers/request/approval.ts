/**
 * AwaitingApproval: a person decides on one exact plan. In order:
 *  1. the deadline first — a decision that lands after it does not count;
 *  2. a rejection always counts (the safe direction);
 *  3. an approval counts only where the admission policy is verified to guard it (fail
 *     closed), from an allowed approver, not the requester for High/Critical risk, and
 *     naming the digest of the plan in status.
 * A spec changed before any decision (say, the alert's labels) is planned again.
 */
import type { AlertPolicy, RemediationRequest, RemediationRequestStatus } from '../../api/v1alpha1/index.js';
import { findCondition } from '../../runtime/conditions.js';
import { approvalTimeoutMs } from '../runbooks.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import type { Transition, Transitions } from './transition.js';

export class ApprovalGate {
  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
  ) {}

  /** What to do while awaiting approval; `replan` when the spec changed before any decision. */
  decide(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Transition | 'replan' {
    const approval = rr.spec.approval;
    const gen = rr.metadata?.generation;
    const remaining = Math.max(0, Date.parse(status.startTime ?? this.t.now()) + approvalTimeoutMs(policy) - this.deps.clock.now());
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
        `no approval within ${policy.spec.approval?.timeout ?? '1h'}${late}; nothing was run`,
      );
    }
    if (!approval) {
      if (gen !== undefined && status.observedGeneration !== undefined && gen !== status.observedGeneration) return 'replan';
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
    const ns = rr.metadata?.namespace ?? '';
    const verdict = this.deps.admission(ns);
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
    if ((risk === 'High' || risk === 'Critical') && rr.spec.requestedBy !== undefined && approval.approver === rr.spec.requestedBy) {
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
    const planned = status.plan?.digest;
    if (!planned || approval.planDigest !== planned) {
      this.t.condition(
        rr,
        status,
        'Approved',
        'False',
        'PlanMismatch',
        `the approval names plan ${approval.planDigest ?? '(none)'}, the plan is ${planned ?? '(none)'}`,
      );
      return this.t.fail(
        rr,
        status,
        'PlanMismatch',
        `the approval by ${approval.approver} names plan ${approval.planDigest ?? '(none)'}, not the plan ${planned ?? '(none)'} in status; nothing was run — create a new request`,
      );
    }
    status.approval = approval;
    this.t.condition(rr, status, 'Approved', 'True', 'ManuallyApproved', `approved by ${approval.approver} (plan ${planned})`);
    return this.t.enter(
      rr,
      status,
      'Approved',
      'ManuallyApproved',
      `approved by ${approval.approver}${approval.reason ? `: ${approval.reason}` : ''}`,
    );
  }
}
