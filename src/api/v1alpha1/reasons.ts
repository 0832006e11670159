/**
 * The reason catalogue: every reason the controller writes where users read it — a
 * condition's `reason`, a RemediationRequest's `status.reason` (the Reason column of
 * `kubectl get rr`), a refused command's `refused.reason`, and an Event's reason — with
 * what it means and what to do about it. Users alert on these words, so each is defined
 * here once; docs/api.md's "Reasons" section is generated from this table (`npm run
 * manifests`, checked by `make lint`), and reasons.test.ts fails on a reason written in
 * code but missing here, and on an entry here no code writes.
 */

/** Where a reason shows. */
export type ReasonSurface = 'RemediationRequest' | 'RemediationRequest condition' | 'AlertPolicy condition' | 'Runbook condition' | 'Event';

export interface ReasonEntry {
  /** The objects and fields it appears on. */
  on: readonly ReasonSurface[];
  /** What happened, in one sentence. */
  meaning: string;
  /** What the reader should do; "Nothing" when it is the expected course. */
  action: string;
}

const RR = 'RemediationRequest';
const RRC = 'RemediationRequest condition';
const APC = 'AlertPolicy condition';
const RBC = 'Runbook condition';
const EV = 'Event';

export const REASONS = {
  // ---- A request on its way: nothing to do -------------------------------------------
  AwaitingApproval: {
    on: [RRC],
    meaning: 'Approved=Unknown: the plan waits for a human decision (the request is AwaitingApproval).',
    action: 'Review status.plan and approve it with `kubectl remediator approve`, or reject it.',
  },
  ApprovalRequired: {
    on: [RR, EV],
    meaning: 'The request entered AwaitingApproval: its policy (or its risk) needs a manual approval of the exact plan.',
    action: 'Review status.plan and approve the digest it shows with `kubectl remediator approve`, or reject it.',
  },
  AutoApproved: {
    on: [RR, RRC, EV],
    meaning: "The policy's approval mode is Auto and the runbook allows auto-approval at this risk.",
    action: 'Nothing.',
  },
  ManuallyApproved: {
    on: [RR, RRC, EV],
    meaning: 'An allowed approver approved the exact plan in status, through the admission policy.',
    action: 'Nothing.',
  },
  Enriched: {
    on: [RRC],
    meaning: 'The targets were described (EC2 or the SSM agent view) and the metrics the guards need were read.',
    action: 'Nothing.',
  },
  IntentRecorded: {
    on: [RR],
    meaning: 'The intent to send was stored in the execution ledger and in status before anything was sent (Executing).',
    action: 'Nothing.',
  },
  Sending: {
    on: [RRC],
    meaning: 'Executed=Unknown: the intent is recorded and the command or message is being sent.',
    action: 'Nothing.',
  },
  CommandSent: {
    on: [RR, EV],
    meaning: 'SSM accepted the command (status.execution.ssm holds its id); the controller polls it.',
    action: 'Nothing; `kubectl remediator describe` shows the invocations as they finish.',
  },
  Verifying: {
    on: [RRC, EV],
    meaning:
      "Verified=Unknown: the remediation succeeded and the controller waits up to the policy's verify.within for the alert to resolve.",
    action: 'Nothing.',
  },

  // ---- A request that ended as wanted -------------------------------------------------
  Succeeded: {
    on: [RRC],
    meaning: 'Executed=True: the command succeeded on every target.',
    action: 'Nothing.',
  },
  CommandSucceeded: {
    on: [RR, EV],
    meaning: 'The request Succeeded: the SSM command succeeded on every target.',
    action: 'Nothing.',
  },
  Published: {
    on: [RRC],
    meaning: 'Executed=True: SNS accepted the message (status.execution.sns holds its id).',
    action: 'Nothing.',
  },
  MessagePublished: {
    on: [RR, EV],
    meaning: "The request Succeeded: the runbook's SNS message was published.",
    action: 'Nothing.',
  },
  DryRun: {
    on: [RR, RRC, EV],
    meaning: 'The policy is a dry run: the plan was made and approved, and nothing was sent (Succeeded, Executed=False).',
    action: 'Nothing; clear spec.safety.dryRun on the policy to act.',
  },
  AlertResolved: {
    on: [RR, RRC, EV],
    meaning:
      'The alert resolved: before execution the request is Cancelled and nothing runs; while its commands run they are cancelled (CancelCommand) and it ends Cancelled; after a success it is Verified=True.',
    action: 'Nothing.',
  },
  MetricRecovered: {
    on: [RRC],
    meaning: "Verified=True: the alert did not resolve in time, but the policy's verify metric is back within its threshold.",
    action: 'Nothing.',
  },
  Verified: {
    on: [EV],
    meaning: 'The remediation was verified: the alert resolved or the verify metric recovered (Verified=True).',
    action: 'Nothing.',
  },

  // ---- Skipped: by design, nothing ran ------------------------------------------------
  OptOut: {
    on: [RR, EV],
    meaning: 'A target carries the opt-out tag (remediator.dev/opt-out=true); the opt-out always wins. The request is Skipped.',
    action: 'Intended. Remove the tag from the instance if it should be remediated.',
  },
  Guard: {
    on: [RR, EV],
    meaning: "One of the policy's enrichment guards was not met (a metric, a tag, an offline SSM agent with agentOnline: Skip). Skipped.",
    action: 'Read the message for the guard; change the guard in the policy if it is wrong.',
  },
  Suspended: {
    on: [RR, EV],
    meaning: 'The policy is suspended (spec.safety.suspend): the request is Skipped.',
    action: 'Clear spec.safety.suspend on the policy to act again.',
  },
  CircuitOpen: {
    on: [RR, RRC, APC, EV],
    meaning:
      "The policy's circuit breaker is open (consecutive failures reached safety.circuitBreaker.maxConsecutiveFailures): requests are Skipped; on the policy Suspended=True.",
    action: 'Fix the cause of the failures, then `kubectl remediator resume <policy> -n <namespace>`.',
  },
  AlreadyRan: {
    on: [RR, EV],
    meaning:
      'The same request (same namespace, name and spec) already ran under an earlier UID — re-created by a GitOps sync after retention deleted it, or deleted and applied again — and the execution ledger remembers it: Skipped, nothing ran again.',
    action: 'Nothing. To run it again on purpose, create it under a new name (docs/gitops.md).',
  },
  Cooldown: {
    on: [RR, EV],
    meaning: 'The policy acted on the same targets within its safety.cooldown: Skipped.',
    action: 'Nothing, or shorten safety.cooldown.',
  },
  RateLimited: {
    on: [RR, EV],
    meaning: 'The policy reached safety.rateLimit executions in its window (the execution ledger counts them): Skipped.',
    action: 'Nothing, or raise safety.rateLimit.',
  },
  MaintenanceWindow: {
    on: [RR],
    meaning: "Approved, and held until the next of the policy's maintenance windows opens (the message says when).",
    action: 'Nothing; it is sent when the window opens.',
  },

  InstanceBusy: {
    on: [RR, EV],
    meaning:
      'A target is held by another request that is executing on it (any policy, any namespace: the ledger holds each running execution); the policy says Wait (the request stays Approved) or Skip.',
    action:
      'Nothing when waiting: it proceeds once the other execution ends. If it is skipped too often, set `safety.whenInstanceBusy: Wait`.',
  },
  // ---- Refused before anything ran: fix the policy, the runbook or the grant ----------
  PolicyNotFound: {
    on: [RR, EV],
    meaning:
      'The AlertPolicy in spec.policyRef does not exist: a Pending request waits for it; one past planning ends Failed and nothing runs.',
    action: 'Create the policy or fix spec.policyRef.',
  },
  RunbookNotFound: {
    on: [RR, APC, EV],
    meaning: "The policy's runbookRef names a Runbook that does not exist.",
    action: 'Ask a cluster administrator for the Runbook, or fix spec.runbookRef.',
  },
  RunbookNotGranted: {
    on: [RR, APC, EV],
    meaning: "The Runbook's namespaceSelector does not select the policy's namespace.",
    action: 'Ask a cluster administrator to label the namespace or widen the Runbook.',
  },
  RiskBelowRunbookMinimum: {
    on: [RR, APC, EV],
    meaning: "The policy's risk is below the Runbook's minRisk.",
    action: 'Raise the policy spec.risk.',
  },
  AutoApprovalNotAllowed: {
    on: [RR, APC, EV],
    meaning: "The policy auto-approves a risk above the Runbook's maxAutoApprovedRisk.",
    action: 'Set approval.mode Manual on the policy, or lower its risk if the Runbook allows.',
  },
  InvalidSpec: {
    on: [APC, RBC, EV],
    meaning:
      'Ready=False: the object passed the schema but not what only the controller can check (regexes, templates, inputs, the SSM document allowlist).',
    action: 'Fix what the message names.',
  },
  InvalidPolicy: {
    on: [RR, EV],
    meaning: "The policy and its Runbook cannot run together (the runbook's problems or the policy's inputs); Failed, nothing ran.",
    action: 'Fix what the message names; the policy and Runbook conditions say the same.',
  },
  LocationNotAllowed: {
    on: [RR, EV],
    meaning: "The account or region asked for is outside the Runbook's scope; Failed, nothing ran.",
    action: "Fix the alert's account or region, or ask a cluster administrator to widen the Runbook's scope.",
  },
  LocationUnavailable: {
    on: [RR, EV],
    meaning: "No AWS clients could be made for the runbook's account and region (e.g. a malformed role ARN); Failed, nothing ran.",
    action: "Fix the Runbook's scope (roleArn, regions) as the message says.",
  },
  AssumeRoleDenied: {
    on: [RR, RRC, EV],
    meaning: "STS refused to let the controller assume the Runbook's role; CloudAccess=False and the request ends Failed, nothing sent.",
    action: "Fix the role's trust policy to trust the controller's identity (the message names the role).",
  },
  AccessDenied: {
    on: [RR, RRC, EV],
    meaning:
      "AWS denied one of the controller's calls (CloudAccess=False, retried with backoff); on a command's refused.reason: SSM refused SendCommand, and that command is never sent again.",
    action:
      'Grant the IAM action the message names (docs/troubleshooting.md); for SendCommand check the managed tag, the opt-out tag and the document ARN.',
  },
  Restored: {
    on: [RRC],
    meaning: 'CloudAccess=True again: the AWS call that was denied succeeded.',
    action: 'Nothing.',
  },
  AwsRequestInvalid: {
    on: [RR, EV],
    meaning: 'AWS refused a call before execution as invalid (a bad parameter, a missing resource); retrying cannot help, so Failed.',
    action: 'Read the AWS error in the message and fix the policy, Runbook or alert it points at.',
  },
  NoTargets: {
    on: [RR, EV],
    meaning: "No target was found: the policy has no target rule, its selectors contradict the Runbook's, or nothing matched.",
    action: "Check the alert's labels, the instances' tags and the policy's targets.",
  },
  InvalidTargets: {
    on: [RR, EV],
    meaning: 'A target is not an EC2 instance or managed node ID, or targets.tagSelector did not render.',
    action: "Fix the alert's labels or the policy's targets.",
  },
  TargetNotAllowed: {
    on: [RR, EV],
    meaning: 'The request names targets (spec.targets) its policy does not name.',
    action: 'Create the request with the targets the policy selects, or widen the policy.',
  },
  TooManyTargets: {
    on: [RR, EV],
    meaning: "More targets than the policy's (or the Runbook's) maxTargets.",
    action: 'Narrow the alert or raise targets.maxTargets within the Runbook limit.',
  },
  TargetOutOfScope: {
    on: [RR, EV],
    meaning: "A target lacks a tag the Runbook's scope or the controller's --required-target-tag requires (the message names it).",
    action: 'Tag the instance, or fix the alert if it is the wrong instance.',
  },
  InstancesNotFound: {
    on: [RR, RRC, EV],
    meaning: "EC2 does not know some target instances in the runbook's region and account (Enriched=False); Failed.",
    action: "Check the alert's instance IDs and the Runbook's scope.",
  },
  AgentOffline: {
    on: [RR, EV],
    meaning: "A target's SSM agent is not Online and the guard says agentOnline: Fail; Failed, nothing sent.",
    action: 'Bring the SSM agent back, or use agentOnline: Skip.',
  },
  InvalidParameter: {
    on: [RR, EV],
    meaning:
      'A Runbook parameter or message template did not render from the alert (a missing label, a value outside its pattern); Failed, nothing sent.',
    action: "Fix the alert's labels or the policy's inputs as the message says.",
  },

  AlertLocationUnknown: {
    on: [RR, EV],
    meaning:
      "A CloudWatch alert's account and region are missing, malformed, or disagree with each other (alarm ARN, AWSAccountId, the SNS topic's account, the request's labels): nothing proves where it came from.",
    action:
      'Fix the alarm or the request: the account and region come from the alarm ARN and every other claim must agree with it (docs/security.md).',
  },
  NotifyTopicNotGranted: {
    on: [RR, APC, EV],
    meaning:
      "The policy's `notify.topicArn` is not among the runbook's `spec.notifyTopics`: the cluster admin grants which topics a namespace may notify.",
    action: 'Ask the cluster admin to add the topic to the runbook, or use a granted one.',
  },
  // ---- Approval: refused, timed out, or not honoured ----------------------------------
  Expired: {
    on: [RRC],
    meaning: 'Approved=False: no decision came before the approval timeout.',
    action: 'Nothing; a new alert occurrence creates a new request.',
  },
  ApprovalTimedOut: {
    on: [RR, EV],
    meaning: "The request Expired: no approval within the policy's approval.timeout; nothing ran.",
    action: 'Approve sooner next time, or lengthen approval.timeout.',
  },
  HeldPastTimeout: {
    on: [RR, EV],
    meaning: 'The request Expired while held for a maintenance window: the approval timed out before the window opened.',
    action: 'Choose an approval timeout longer than the longest wait for a window.',
  },
  Rejected: {
    on: [RRC],
    meaning: 'Approved=False: an approver rejected the plan, or the approval was refused (see the request reason).',
    action: 'Nothing.',
  },
  RejectedByApprover: {
    on: [RR, EV],
    meaning: 'An approver rejected the request (spec.approval.decision Rejected); nothing ran.',
    action: 'Nothing.',
  },
  ApproverNotAllowed: {
    on: [RR, RRC, EV],
    meaning: "The approver is not in the policy's approval.approvers; Rejected.",
    action: 'Have an allowed approver approve a new request, or add the approver to the policy.',
  },
  SelfApproval: {
    on: [RR, RRC, EV],
    meaning: 'The requester approved its own High or Critical risk request; Rejected (four eyes).',
    action: 'Have someone other than the requester approve.',
  },
  PlanMismatch: {
    on: [RR, RRC, EV],
    meaning: 'The approval names a plan digest other than the plan in status; Failed, nothing ran.',
    action: 'Create a new request and approve the plan digest it shows.',
  },
  AdmissionPolicyNotEnforced: {
    on: [RR, RRC, EV],
    meaning:
      "An approval is not honoured: the approval ValidatingAdmissionPolicy or its binding does not guard the request's namespace. The request waits (and may expire).",
    action: 'Install or fix the admission policy and its binding (docs/security.md, docs/troubleshooting.md).',
  },

  ApprovalNotProven: {
    on: [RR, RRC, EV],
    meaning:
      'The approval cannot be shown to have been checked by admission when it was written: the enforcement epoch changed since the plan was rendered (a gap, a re-created binding, a newly covered namespace), or it was there before the plan (ADR 0011).',
    action:
      'Create the request again (or let the alert re-fire); an approver approves the new plan while the admission policy is enforced.',
  },
  PolicyWriterUnknown: {
    on: [RR, RRC, EV],
    meaning:
      'A High or Critical request cannot be approved: the plan does not name who last changed the policy (annotation remediator.dev/changed-by), so four eyes cannot be checked.',
    action: 'Have the policy written again through the admission policy (it records the writer), then approve the new plan.',
  },
  // ---- Failed during or after execution -----------------------------------------------
  PlanChanged: {
    on: [RR, EV],
    meaning: 'What would be sent now differs from the approved plan (the message says what changed); Failed, nothing sent.',
    action: 'Nothing; a new alert occurrence creates a new request with a fresh plan.',
  },
  PlanMissing: {
    on: [RR, EV],
    meaning: 'The request reached execution without a plan action; Failed, nothing sent. A controller bug or a hand-edited status.',
    action: 'Report it with the request YAML.',
  },
  IntentLost: {
    on: [RR, EV],
    meaning: 'The request is Executing but its recorded intent is gone from status; Failed, nothing (more) sent. A hand-edited status.',
    action: 'Check with SSM (the comment remediator:<uid>) whether a command ran; do not edit status by hand.',
  },
  CommandFailed: {
    on: [RR, EV],
    meaning: 'The SSM command failed, timed out or was cancelled on some target (the message counts them).',
    action: 'Read the invocations with `kubectl remediator describe`, fix the cause, and resume the policy if its breaker opened.',
  },
  CommandRejected: {
    on: [RR, EV],
    meaning: "SSM refused the command itself (a refused command's reason; the request ends Failed); it is never sent again.",
    action: 'Read the SSM error in the message and fix the Runbook or the document.',
  },
  PublishRejected: {
    on: [RR, EV],
    meaning: 'SNS refused the message (a missing topic, a bad attribute); Failed, nothing published.',
    action: "Read the SNS error in the message and fix the Runbook's topic.",
  },
  Ineffective: {
    on: [RR, RRC, EV],
    meaning:
      "Verified=False: the alert did not resolve within verify.within and the metric did not recover; counts as a failure for the breaker. On a request: a rollout's wave did not recover (its verification metric), so later waves were never sent.",
    action:
      'Look at why the remediation did not help (the wave and instances in status.execution.ssm.rollout); the breaker may open after more.',
  },
  NotVerified: {
    on: [RRC, EV],
    meaning: 'Verified=Unknown for good: the policy stopped asking for verification (or was deleted) before a verdict; nothing is counted.',
    action: 'Nothing.',
  },

  PublishUnconfirmed: {
    on: [RR, EV],
    meaning:
      'An SNS Publish to a standard topic may have been made but its answer was lost (or a stopped controller may have made it); SNS cannot be asked, so it is not repeated (at most once).',
    action:
      "Check whether the message arrived (the topic's subscribers); re-send by hand if it did not. FIFO topics are retried with deduplication instead.",
  },
  AlarmTriggered: {
    on: [RR, RRC, EV],
    meaning: "A CloudWatch alarm the runbook's rollout names was in ALARM: the rollout stopped and what still ran was cancelled.",
    action: 'Look at the alarm and the instances already done (status.execution.ssm.rollout) before re-running.',
  },
  MaxErrorsExceeded: {
    on: [RR, RRC, EV],
    meaning:
      "More instances failed than the rollout's maxErrors allows, counted over the whole fleet: nothing more is sent and the request fails.",
    action: 'Read the failed instances in status.execution.ssm and their output; fix the cause before re-running.',
  },
  RequestDeleted: {
    on: [RR, RRC, EV],
    meaning:
      'The request was deleted while its commands ran: the commands still running were cancelled (CancelCommand) and the request ended Cancelled.',
    action: 'Read status.execution.ssm (what ran, what was cancelled, what was never sent) before the request is gone.',
  },
  WaveStarted: {
    on: [RRC, EV],
    meaning: "A rollout's next wave starts: the previous one ended within the error budget, paused, passed its verification and alarms.",
    action: 'Nothing.',
  },
  CommandCancelled: {
    on: [EV],
    meaning: "SSM accepted CancelCommand for the rollout's commands still running (after the rollout stopped).",
    action: 'Nothing; the invocations end Cancelled (SSM does not guarantee a running process stops).',
  },
  // ---- AlertPolicy and Runbook status ---------------------------------------------------
  Valid: {
    on: [APC, RBC, EV],
    meaning: 'Ready=True: the object is valid, and a policy may use its runbook from its namespace.',
    action: 'Nothing.',
  },
  Ready: {
    on: [EV],
    meaning: 'The Event of a policy whose Ready condition changed without a reason of its own.',
    action: 'Read the policy Ready condition.',
  },
  Active: {
    on: [APC],
    meaning: 'Suspended=False: the policy acts on matching alerts.',
    action: 'Nothing.',
  },
  SuspendedBySpec: {
    on: [APC],
    meaning: 'Suspended=True: spec.safety.suspend is set.',
    action: 'Clear spec.safety.suspend to act again.',
  },
  CircuitClosed: {
    on: [APC, EV],
    meaning: 'Suspended=False after a trusted breaker reset: the policy executes again.',
    action: 'Nothing.',
  },

  // ---- Objects stored under an older schema (src/controllers/stored-shape.ts) ----------
  MigrationRequired: {
    on: [APC, RR, RRC, EV],
    meaning:
      'The AlertPolicy has an inline spec.action (the schema before Runbooks): it runs nothing, and its requests fail before anything is sent.',
    action:
      '`kubectl remediator migrate <policy> -n <namespace>` writes a Runbook for a cluster administrator to review and the policy that uses it (docs/upgrading.md).',
  },
  StoredShapeInvalid: {
    on: [APC, RBC, RR, RRC, EV],
    meaning:
      'The object as stored lacks fields this controller needs, or has them in another shape (written under an older schema): it is not acted on.',
    action:
      'Re-apply the object with the fields the message names (docs/upgrading.md); a request is not resumed: a new alert creates a new one.',
  },

  // ---- Notifications ------------------------------------------------------------------
  Notified: {
    on: [EV],
    meaning: "A phase change was announced on the policy's notify topic.",
    action: 'Nothing.',
  },
  NotifyFailed: {
    on: [EV],
    meaning: "A phase change could not be announced on the policy's notify topic; it is retried, and the request goes on regardless.",
    action: "Grant sns:Publish on the topic (and KMS for an encrypted one), or fix the policy's notify.topicArn.",
  },
  NotifyUnconfirmed: {
    on: [EV],
    meaning:
      "A notification to the policy's topic may not have been announced (its Publish answer was lost on a standard topic); it is not repeated.",
    action: "Check the topic's subscribers; the request itself is unaffected.",
  },
  AuditWriteFailed: {
    on: [EV],
    meaning: "The ended request's audit record could not be written to the sink: retention holds its deletion until it is (docs/audit.md).",
    action: 'Read the message: grant the IAM action it names or fix the sink (log group, bucket); the write is retried.',
  },
} as const satisfies Record<string, ReasonEntry>;

/** A reason the controller writes. */
export type Reason = keyof typeof REASONS;
