/**
 * RemediationRequest (`remediator.dev/v1alpha1`, short name `rr`): one alert
 * occurrence turned into one remediation, and the audit record of what happened.
 *
 * The schema is the API (types derive from it, the CRD is generated from it). Its CEL
 * rules make approval durable: once a request is approved its spec is frozen, and a
 * given approval can never be rewritten.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ALERT_SOURCES } from './alertpolicy.js';
import { RISK_LEVELS } from './runbook.js';
import { Conditions, ObjectMeta, StringEnum, StringMap, Timestamp, type KubeSchemaOptions } from './schema.js';

export const PHASES = [
  'Pending',
  'Enriching',
  'AwaitingApproval',
  'Approved',
  'Executing',
  'Succeeded',
  'Failed',
  'Rejected',
  'Expired',
  'Skipped',
  'Cancelled',
] as const;
export type Phase = (typeof PHASES)[number];

/** Phases a request never leaves: it never runs again once here. */
export const END_PHASES: ReadonlySet<Phase> = new Set(['Succeeded', 'Failed', 'Rejected', 'Expired', 'Skipped', 'Cancelled']);

/**
 * Held from the intent write until the request's execution reached an end and the
 * execution ledger has its outcome: deleting a request that executes waits for that.
 */
export const EXECUTION_FINALIZER = 'remediator.dev/execution';

/**
 * The condition of verification after success (the policy's spec.verify), and its reason
 * while the verdict is open: the controller, the intake and the docs read these.
 */
export const VERIFIED_CONDITION = 'Verified';
export const VERIFYING_REASON = 'Verifying';

/** EC2 instance ids, and the `mi-` ids of hybrid managed nodes SSM also runs commands on. */
export const INSTANCE_ID_PATTERN = '^(i-[0-9a-f]{8}([0-9a-f]{9})?|mi-[0-9a-f]{17})$';

/** Waves of one request at most: a rollout needing more is refused at planning (rollout.ts). */
export const MAX_WAVES = 100;
/** Commands of one request at most (each at most 50 instances): a rollout needing more is refused at planning. */
export const MAX_COMMANDS = 100;

/** `sha256:` and 64 hex digits: the digest of a rendered plan. */
export const PLAN_DIGEST_PATTERN = '^sha256:[0-9a-f]{64}$';

const Alert = Type.Object(
  {
    source: StringEnum(ALERT_SOURCES, { description: 'Where the alert came from; the policy must accept this source.' }),
    name: Type.String({
      minLength: 1,
      maxLength: 256,
      description: 'The alert name (Alertmanager `alertname`, the CloudWatch alarm name).',
    }),
    labels: Type.Optional(
      StringMap({ description: "The alert's labels: what the policy matched and what `{{ labels.x }}` templates read." }),
    ),
    annotations: Type.Optional(StringMap({ description: "The alert's annotations, for `{{ annotations.x }}` templates." })),
    fingerprint: Type.Optional(
      Type.String({
        maxLength: 128,
        description: "Identifies the alert across its occurrences (Alertmanager's fingerprint, a hash of a CloudWatch alarm ARN).",
      }),
    ),
    startsAt: Type.Optional(
      Type.String({ maxLength: 64, description: 'When this occurrence of the alert started (RFC 3339), as the source reported it.' }),
    ),
    status: Type.Optional(
      StringEnum(['firing', 'resolved'] as const, {
        default: 'firing',
        description: 'Only firing alerts trigger; a resolved one cancels a request that has not started executing.',
      }),
    ),
    account: Type.Optional(
      Type.String({
        pattern: '^[0-9]{12}$',
        description: 'CloudWatch alarms: the AWS account the alarm belongs to; the runbook must act in it.',
      }),
    ),
    region: Type.Optional(
      Type.String({
        pattern: '^[a-z]{2}(-[a-z]+)+-[0-9]+$',
        maxLength: 32,
        description: "CloudWatch alarms: the alarm's region; the runbook must act in it.",
      }),
    ),
  },
  {
    description:
      'The alert occurrence this request remediates, as the intake received it (or as the person who created the request wrote it).',
  },
);

const ApprovalDecision = Type.Object(
  {
    decision: StringEnum(['Approved', 'Rejected'] as const, { description: 'Approved runs the plan; Rejected ends the request.' }),
    approver: Type.String({
      minLength: 1,
      maxLength: 256,
      description: 'Who decided: must be the user who writes the decision (admission-checked).',
    }),
    reason: Type.Optional(Type.String({ maxLength: 1024, description: 'Why, for the audit trail.' })),
    planDigest: Type.Optional(
      Type.String({
        pattern: PLAN_DIGEST_PATTERN,
        description:
          'The digest of the plan approved (status.plan.digest); required to approve. The admission policy refuses a digest that ' +
          'is not the stored plan, and the controller sends nothing if a fresh render differs.',
      }),
    ),
  },
  {
    description: 'A decision, given once by a person holding the approver role (kubectl remediator approve).',
    'x-kubernetes-validations': [
      {
        rule: "self.decision != 'Approved' || has(self.planDigest)",
        message: 'an approval must name the plan it approves: set planDigest to status.plan.digest',
      },
    ],
  } as KubeSchemaOptions,
);

export const RemediationRequestSpec = Type.Object(
  {
    policyRef: Type.Object(
      { name: Type.String({ minLength: 1, maxLength: 253, description: 'Name of the AlertPolicy.' }) },
      { description: "The AlertPolicy in the request's namespace that decides what runs and how carefully." },
    ),
    alert: Alert,
    targets: Type.Optional(
      Type.Array(Type.String({ pattern: INSTANCE_ID_PATTERN }), {
        description:
          "Explicit EC2 instance IDs. They may only narrow what the policy's target rules and the runbook's scope allow; an id " +
          'outside them fails the request before anything is sent.',
        maxItems: 500,
        'x-kubernetes-list-type': 'set',
      } as KubeSchemaOptions),
    ),
    approval: Type.Optional(ApprovalDecision),
    requestedBy: Type.Optional(
      Type.String({
        maxLength: 256,
        description:
          "Who asked for this remediation: the intake's identity or the user who created the request. The shipped admission policy checks it equals the creating user; for High and Critical risk the approver must be someone else.",
        'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'spec.requestedBy cannot be changed' }],
      } as KubeSchemaOptions),
    ),
  },
  {
    description: 'The alert, the policy it matched, optional explicit targets, and the approval once a person gives it.',
    'x-kubernetes-validations': [
      {
        rule: "!has(oldSelf.approval) || oldSelf.approval.decision != 'Approved' || self == oldSelf",
        message: 'spec is immutable once the request is approved; create a new RemediationRequest instead',
      },
      {
        rule: '!has(oldSelf.approval) || (has(self.approval) && self.approval == oldSelf.approval)',
        message: 'spec.approval cannot be changed or removed once given',
      },
    ],
  } as KubeSchemaOptions,
);

const PlanOutput = Type.Object(
  {
    cloudWatchLogGroup: Type.Optional(Type.String({ description: 'CloudWatch Logs group the instances write the full output to.' })),
    s3BucketName: Type.Optional(Type.String({ description: 'S3 bucket the instances write the full output to.' })),
    s3KeyPrefix: Type.Optional(Type.String({ description: 'Key prefix in that bucket; SSM appends `<command id>/<instance id>/...`.' })),
  },
  { description: "Where the full command output goes (the runbook's action.ssm.output)." },
);

const PlanRollout = Type.Object(
  {
    waves: Type.Array(Type.Integer({ minimum: 1 }), {
      maxItems: MAX_WAVES,
      description: 'Instances in each wave, in order (targets are taken in plan order); they add up to the targets.',
    }),
    pauseSeconds: Type.Optional(Type.Integer({ minimum: 0, description: 'Pause after each wave but the last.' })),
    verify: Type.Optional(
      Type.Object(
        {
          withinSeconds: Type.Integer({ minimum: 0, description: 'How long after a wave ended the metric is read.' }),
          namespace: Type.String({ description: 'CloudWatch namespace.' }),
          metricName: Type.String({ description: 'CloudWatch metric, per instance (dimension InstanceId).' }),
          statistic: Type.String({ description: 'The statistic.' }),
          periodSeconds: Type.Integer({ description: 'The period.' }),
          operator: Type.String({ description: 'How the mean compares to threshold when recovered.' }),
          threshold: Type.Number({ description: 'The threshold.' }),
        },
        { description: 'Verification between waves: the metric must have recovered on every instance of the wave.' },
      ),
    ),
    alarms: Type.Optional(Type.Array(Type.String(), { maxItems: 5, description: 'CloudWatch alarms that abort the rollout.' })),
    ignorePollAlarmFailure: Type.Optional(Type.Boolean({ description: "AlarmConfiguration's IgnorePollAlarmFailure." })),
  },
  {
    description: "How the command goes out over the fleet (the runbook's rollout, made more cautious by the policy): see docs/rollouts.md.",
  },
);

const Plan = Type.Object(
  {
    digest: Type.String({
      pattern: PLAN_DIGEST_PATTERN,
      description: 'sha256 of the canonical JSON of the rest of the plan; what an approval names.',
    }),
    runbook: Type.Object(
      {
        name: Type.String({ description: 'The Runbook.' }),
        generation: Type.Integer({ description: 'Its generation when planned.' }),
        uid: Type.Optional(
          Type.String({ description: 'Its uid: a Runbook deleted and created again under the same name is another one.' }),
        ),
      },
      { description: 'The Runbook the plan was rendered from.' },
    ),
    policyGeneration: Type.Integer({ description: 'The AlertPolicy generation the plan was rendered from.' }),
    policy: Type.Optional(
      Type.Object(
        {
          name: Type.String({ description: 'The AlertPolicy (spec.policyRef).' }),
          uid: Type.String({ description: 'Its uid: a policy re-created under the same name (generation 1 again) is another one.' }),
          specSha256: Type.String({ description: 'sha256 of its whole spec: safety, notify, approval, dry run, everything.' }),
          changedBy: Type.Optional(
            Type.String({
              description:
                'Who last changed its spec (annotation remediator.dev/changed-by, which the admission policy makes every writer set to ' +
                'their own name). Four eyes refuses them as approver of High and Critical risk.',
            }),
          ),
        },
        { description: 'The AlertPolicy the plan was rendered from.' },
      ),
    ),
    dryRun: Type.Optional(Type.Boolean({ description: 'True: the policy records what would be sent and sends nothing.' })),
    approvalDeadline: Type.Optional(
      Timestamp({ description: "When the approval time runs out (the request's startTime plus the policy's approval.timeout)." }),
    ),
    approvers: Type.Optional(Type.Array(Type.String(), { description: "The policy's approval.approvers, when it names them." })),
    admission: Type.Optional(
      Type.Object(
        {
          policy: Type.Object(
            { uid: Type.String({ description: 'Its uid.' }), generation: Type.Integer({ description: 'Its generation.' }) },
            { description: 'The ValidatingAdmissionPolicy.' },
          ),
          binding: Type.Object(
            {
              name: Type.String({ description: 'Its name.' }),
              uid: Type.String({ description: 'Its uid.' }),
              generation: Type.Integer({ description: 'Its generation.' }),
            },
            { description: 'The Deny binding that covers the namespace.' },
          ),
          namespace: Type.Optional(
            Type.Object(
              {
                uid: Type.String({ description: 'Its uid.' }),
                resourceVersion: Type.String({ description: 'Its resourceVersion (any change to it, labels included, gives a new one).' }),
              },
              { description: 'The namespace, when a namespaceSelector decides whether it is covered.' },
            ),
          ),
        },
        {
          description:
            'The admission enforcement the controller verified for the namespace when it rendered the plan (ADR 0011). A manual ' +
            'approval counts only while enforcement is still exactly this; absent: not enforced, and no approval of this plan counts.',
        },
      ),
    ),
    risk: StringEnum(RISK_LEVELS, { description: 'The risk the policy declares (never below the runbook minimum).' }),
    targets: Type.Array(Type.String(), { maxItems: 500, description: 'The instances the action runs on.' }),
    region: Type.String({ description: 'AWS region.' }),
    roleArn: Type.Optional(Type.String({ description: 'Role assumed in another account, when the runbook says so.' })),
    externalId: Type.Optional(Type.String({ description: 'The external id presented when assuming roleArn.' })),
    ssm: Type.Optional(
      Type.Object(
        {
          documentName: Type.String({ description: 'SSM document.' }),
          parameters: Type.Unsafe<Record<string, string[]>>({
            type: 'object',
            additionalProperties: { type: 'array', items: { type: 'string' } },
            description: 'Rendered parameters, exactly as sent.',
          }),
          timeoutSeconds: Type.Integer({ description: 'Command timeout.' }),
          maxConcurrency: Type.String({
            description: "Instances running at once over the whole fleet (the runbook's, or the policy's when smaller).",
          }),
          maxErrors: Type.String({
            description: "Failed instances the whole fleet may have (the runbook's, or the policy's when smaller).",
          }),
          output: Type.Optional(PlanOutput),
          rollout: Type.Optional(PlanRollout),
        },
        { description: 'The command, as it will be sent (in commands of at most 50 instances each).' },
      ),
    ),
    sns: Type.Optional(
      Type.Object(
        {
          topicArn: Type.String({ description: 'Topic.' }),
          subject: Type.Optional(Type.String({ description: 'Rendered subject.' })),
          messageSha256: Type.String({ description: 'sha256 of the rendered message (the message itself can be 64 KiB).' }),
          messagePreview: Type.String({ maxLength: 1024, description: 'The start of the rendered message.' }),
        },
        { description: 'The message, as it will be published.' },
      ),
    ),
  },
  { description: 'What will run, rendered before approval: an approval names its digest and approves exactly this.' },
);

const InstanceEnrichment = Type.Object({
  instanceId: Type.String({ description: 'The EC2 instance (or `mi-` managed node) id.' }),
  state: Type.Optional(Type.String({ description: 'EC2 instance state: pending, running, stopping, stopped, ...' })),
  instanceType: Type.Optional(Type.String({ description: 'EC2 instance type, e.g. `m7g.large`.' })),
  availabilityZone: Type.Optional(Type.String({ description: 'Availability Zone.' })),
  privateIpAddress: Type.Optional(Type.String({ description: 'Primary private IPv4 address.' })),
  tags: Type.Optional(StringMap({ description: "EC2 tags (only the policy's enrichment.tagKeys when it lists them)." })),
  pingStatus: Type.Optional(
    Type.String({
      description: "The SSM agent's PingStatus (Online, ConnectionLost, Inactive), or NotRegistered when SSM does not know the node.",
    }),
  ),
  platform: Type.Optional(Type.String({ description: 'The platform the SSM agent reports (Linux, Windows, MacOS).' })),
  agentVersion: Type.Optional(Type.String({ description: 'The SSM agent version.' })),
});

const Invocation = Type.Object({
  instanceId: Type.String({ description: 'The instance.' }),
  status: Type.String({
    description:
      'SSM invocation status: Pending, InProgress, Success, Failed, TimedOut, Cancelled, ..., or NotSent when its command was never sent.',
  }),
  responseCode: Type.Optional(Type.Integer({ description: 'Exit code of the command on the instance.' })),
  stdoutTail: Type.Optional(
    Type.String({ maxLength: 4096, description: 'The end of its standard output (the full output goes to execution.ssm.output).' }),
  ),
  stderrTail: Type.Optional(Type.String({ maxLength: 4096, description: 'The end of its standard error.' })),
});

/** SendCommand's Comment: at most 100 characters. */
export const MAX_COMMENT_LENGTH = 100;

const SsmCommand = Type.Object({
  comment: Type.String({
    maxLength: MAX_COMMENT_LENGTH,
    description:
      "The command's SSM Comment: `remediator:<uid>` for a request of one command, `remediator:<uid>/<index>` for each command of a " +
      'larger one. How a command sent before a crash or a lost response is found instead of sent again.',
  }),
  instanceIds: Type.Array(Type.String(), { maxItems: 50, description: "The instances of this command (at most 50, SendCommand's limit)." }),
  commandId: Type.Optional(Type.String({ description: 'The SSM command id, once SSM accepted it.' })),
  requestedAt: Type.Optional(Timestamp({ description: 'When SSM accepted it.' })),
  wave: Type.Optional(Type.Integer({ minimum: 0, description: 'The wave (from 0) this command belongs to; absent without a rollout.' })),
  maxConcurrency: Type.Optional(
    Type.String({ description: "The MaxConcurrency this command was sent with (its share of the fleet's maxConcurrency)." }),
  ),
  maxErrors: Type.Optional(Type.String({ description: "The MaxErrors this command was sent with (what was left of the fleet's budget)." })),
  cancelledAt: Type.Optional(
    Timestamp({ description: 'When SSM accepted CancelCommand for it; its invocations that had not ended become Cancelled.' }),
  ),
  refused: Type.Optional(
    Type.Object(
      {
        reason: StringEnum(['AccessDenied', 'CommandRejected'] as const, {
          description: 'AccessDenied: the controller may not call SendCommand; CommandRejected: SSM refused the command itself.',
        }),
        message: Type.String({ description: 'What SSM said.' }),
      },
      { description: 'SSM refused this command (or an earlier one), so it was never sent; its instances are NotSent.' },
    ),
  ),
});

const SsmOutputLocation = Type.Object(
  {
    cloudWatchLogGroup: Type.Optional(
      Type.String({ description: 'The CloudWatch Logs group; SSM names streams `<command id>/<instance id>/...`.' }),
    ),
    s3Prefix: Type.Optional(Type.String({ description: '`s3://<bucket>/<prefix>`; SSM writes under `<command id>/<instance id>/...`.' })),
  },
  { description: 'Where the full output of the commands is.' },
);

/** Where a wave is. `NotSent`: the rollout stopped before it; nothing of it went out. */
export const WAVE_STATES = [
  'Pending',
  'Running',
  'Pausing',
  'Verifying',
  'Succeeded',
  'Failed',
  'Ineffective',
  'Aborted',
  'Cancelled',
  'NotSent',
] as const;
export type WaveState = (typeof WAVE_STATES)[number];

/** Why a rollout stopped before its end; the request's reason says the same. */
export const ROLLOUT_STOP_REASONS = [
  'MaxErrorsExceeded',
  'Ineffective',
  'AlarmTriggered',
  'RequestDeleted',
  'AlertResolved',
  'CircuitOpen',
] as const;
export type RolloutStopReason = (typeof ROLLOUT_STOP_REASONS)[number];

const WaveStatus = Type.Object({
  size: Type.Integer({ minimum: 1, description: 'Instances in the wave.' }),
  state: StringEnum(WAVE_STATES, { description: 'Where the wave is.' }),
  startedAt: Type.Optional(Timestamp({ description: 'When its first command was sent.' })),
  endedAt: Type.Optional(Timestamp({ description: 'When its last invocation ended.' })),
  succeeded: Type.Optional(Type.Integer({ minimum: 0, description: 'Its instances that ended Success.' })),
  failed: Type.Optional(Type.Integer({ minimum: 0, description: 'Its instances that ended otherwise (not counting NotSent).' })),
  message: Type.Optional(Type.String({ maxLength: 1024, description: 'What was seen: the verification, the alarm, the errors.' })),
});

const RolloutStatus = Type.Object(
  {
    currentWave: Type.Integer({ minimum: 0, description: 'The wave (from 0) running or next.' }),
    waves: Type.Array(WaveStatus, { maxItems: MAX_WAVES, description: 'One entry per wave of the plan, in order.' }),
    errors: Type.Object(
      {
        allowed: Type.Integer({ minimum: 0, description: 'maxErrors resolved against the targets.' }),
        seen: Type.Integer({
          minimum: 0,
          description: 'Instances whose invocation ended other than Success, not counting those that did not run (NotSent, Cancelled).',
        }),
      },
      { description: 'The fleet-wide error budget.' },
    ),
    failedInstances: Type.Optional(
      Type.Array(Type.String(), {
        maxItems: 500,
        description: 'Instances whose invocation failed (within the budget, the request still succeeds).',
      }),
    ),
    nextWaveAt: Type.Optional(Timestamp({ description: 'When the pause or verification before the next wave ends.' })),
    stopped: Type.Optional(
      Type.Object(
        {
          reason: StringEnum(ROLLOUT_STOP_REASONS, { description: 'Why the rollout stopped early.' }),
          message: Type.String({ description: 'For people: which wave, which instances, what was seen.' }),
          at: Timestamp({ description: 'When it was decided (the intent of the cancel, when commands were running).' }),
          cancel: Type.Optional(
            Type.Boolean({
              description: 'True when running commands are to be cancelled (CancelCommand, recorded per command as cancelledAt).',
            }),
          ),
        },
        { description: 'The rollout stopped before its last wave ended; nothing further is sent.' },
      ),
    ),
  },
  { description: 'The rollout: waves, their results, the current wave and the error budget (docs/rollouts.md).' },
);

const SsmExecution = Type.Object(
  {
    documentName: Type.String({ description: 'The SSM document sent.' }),
    comment: Type.String({ description: 'Carries the request UID so a resent command can be found instead of sent twice.' }),
    intentRecordedAt: Timestamp({ description: 'Written before SendCommand is called.' }),
    commandId: Type.Optional(Type.String({ description: "The first command's id (the only one for up to 50 targets); see commands." })),
    requestedAt: Type.Optional(Timestamp({ description: 'When the first command was accepted.' })),
    commands: Type.Optional(
      Type.Array(SsmCommand, {
        maxItems: MAX_COMMANDS,
        description:
          'The commands the targets go out as, at most 50 instances each, fixed when the intent is recorded and each sent exactly once, ' +
          'in order. Absent on requests recorded before it existed: they are one command, `comment` and `commandId` above.',
      }),
    ),
    output: Type.Optional(SsmOutputLocation),
    parameters: Type.Optional(
      Type.Unsafe<Record<string, string[]>>({
        type: 'object',
        additionalProperties: { type: 'array', items: { type: 'string' } },
        description: 'The document parameters exactly as sent.',
      }),
    ),
    invocations: Type.Optional(Type.Array(Invocation, { description: 'One entry per target: how the command went there.' })),
    rollout: Type.Optional(RolloutStatus),
  },
  { description: 'The SSM Run Command execution: the intent, the commands sent and their results.' },
);

const SnsExecution = Type.Object(
  {
    topicArn: Type.String({ description: 'The topic published to.' }),
    intentRecordedAt: Timestamp({ description: 'Written before Publish is called.' }),
    subject: Type.Optional(Type.String({ description: 'The rendered subject.' })),
    message: Type.Optional(Type.String({ maxLength: 4096, description: 'The rendered message (truncated).' })),
    messageId: Type.Optional(Type.String({ description: 'The SNS message id, once SNS accepted it.' })),
    publishedAt: Type.Optional(Timestamp({ description: 'When SNS accepted it.' })),
    attempts: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          'Publish calls made. A standard topic gets at most one (a lost answer ends the request PublishUnconfirmed, never a second ' +
          'message); a FIFO topic gets another only after a lost answer, with the request UID as deduplication id, within ' +
          "SNS's 5-minute deduplication window counted from the intent.",
      }),
    ),
  },
  { description: 'The SNS publication: the intent and its result.' },
);

const Execution = Type.Object(
  {
    dryRun: Type.Optional(
      Type.Boolean({ description: "True when the policy's safety.dryRun held it: the intent is recorded, nothing was sent." }),
    ),
    ssm: Type.Optional(SsmExecution),
    sns: Type.Optional(SnsExecution),
  },
  {
    description:
      'What is sent to AWS. The intent is recorded before anything is sent, so a restarted controller finds what went out instead of sending it again.',
  },
);

const MetricSeries = Type.Object({
  name: Type.String({ description: "The metric's name in the policy's enrichment.metrics." }),
  instanceId: Type.Optional(Type.String({ description: 'The instance this series is for, when the query is per instance.' })),
  statistic: Type.String({ description: 'The CloudWatch statistic.' }),
  values: Type.Array(Type.Number(), { maxItems: 60, description: 'The newest datapoints (at most 60).' }),
  timestamps: Type.Array(Type.String(), { maxItems: 60, description: 'Their timestamps, in the same order.' }),
  mean: Type.Optional(
    Type.Number({ description: 'The mean of every datapoint in the lookback; what guards compare. Absent without datapoints.' }),
  ),
});

const Notification = Type.Object({
  phase: Type.String({ description: 'The phase announced, or the verification verdict (Verified, Ineffective).' }),
  messageId: Type.Optional(Type.String({ description: 'The SNS message id, when the publication succeeded.' })),
  sentAt: Type.Optional(
    Timestamp({
      description:
        'When it was published, or found failed. Absent while it is pending: recorded with the phase it announces, and published next.',
    }),
  ),
  error: Type.Optional(Type.String({ description: 'Why it could not be published (notifications are best effort and never retried).' })),
});

const Verification = Type.Object(
  {
    until: Type.Optional(Timestamp({ description: "When verification gives up waiting: completionTime plus the policy's verify.within." })),
    alertResolvedAt: Type.Optional(
      Timestamp({
        description:
          "When the controller's intake received this alert's resolution after the request started executing. Status is written " +
          'only by the controller (the intake is part of it); namespace editors cannot set it.',
      }),
    ),
  },
  { description: "Verification after success (the policy's spec.verify); the verdict is the Verified condition." },
);

export const RemediationRequestStatus = Type.Object(
  {
    phase: Type.Optional(
      StringEnum(PHASES, {
        description:
          `Where the request is: ${PHASES.filter((p) => !END_PHASES.has(p)).join(', ')} while in progress; ` +
          `${[...END_PHASES].join(', ')} once over (it never runs again).`,
      }),
    ),
    reason: Type.Optional(Type.String({ description: 'Why the request is in its phase, machine-readable (e.g. why it was skipped).' })),
    message: Type.Optional(Type.String({ description: 'Why the request is in its phase, for people.' })),
    observedGeneration: Type.Optional(Type.Integer({ description: 'The generation of the spec the controller last acted on.' })),
    conditions: Type.Optional(
      Conditions(
        '`Ready` (True once Succeeded or deliberately over — Skipped, Cancelled, Rejected —, False once Failed or Expired, Unknown in ' +
          'progress), `Reconciling` (True while in progress) and `Stalled` (True once Failed or Expired, or while AWS denies a call): ' +
          'the kstatus conditions GitOps health checks read; ' +
          '`Enriched`, `Approved`, `Executed`, `CloudAccess` (False while AWS denies the controller a call), and `Verified` ' +
          '(after success, when the policy sets spec.verify: Unknown while it waits, True when the alert resolved, False when it kept firing).',
      ),
    ),
    risk: Type.Optional(StringEnum(RISK_LEVELS, { description: "The risk the policy declares (never below the runbook's minRisk)." })),
    targets: Type.Optional(Type.Array(Type.String(), { description: 'The instances found for this request, after every filter.' })),
    targetCount: Type.Optional(Type.Integer({ description: 'How many targets.' })),
    approval: Type.Optional(ApprovalDecision),
    plan: Type.Optional(Plan),
    enrichment: Type.Optional(
      Type.Object(
        {
          observedAt: Timestamp({ description: 'When the facts were read.' }),
          instances: Type.Array(InstanceEnrichment, { description: 'One entry per target: what EC2 and SSM say about it.' }),
          metrics: Type.Optional(
            Type.Array(MetricSeries, { description: "The CloudWatch series the policy's enrichment.metrics asked for." }),
          ),
        },
        { description: 'What the controller learnt about the targets before planning; guards were checked against it.' },
      ),
    ),
    notifications: Type.Optional(
      Type.Array(Notification, { description: "Messages sent to the policy's notify topic, one per announced phase." }),
    ),
    execution: Type.Optional(Execution),
    verification: Type.Optional(Verification),
    alertResolvedAt: Type.Optional(
      Timestamp({
        description:
          "When the controller's intake received this alert's resolution while the request was Executing: the controller then " +
          'stops it (CancelCommand for what still runs, nothing more sent) and ends it Cancelled, reason AlertResolved. In ' +
          'status, which only the controller (its intake included) writes, so namespace editors cannot forge a stop with it; ' +
          'they stop a request by deleting it.',
      }),
    ),
    startTime: Type.Optional(
      Timestamp({ description: 'When the controller first planned the request; the approval timeout counts from here.' }),
    ),
    completionTime: Type.Optional(
      Timestamp({ description: 'When the request reached an end phase; retention (ttlAfterFinished) counts from here.' }),
    ),
  },
  { description: 'What the controller did and found: written only by the controller (the approval is copied from spec).' },
);

export const RemediationRequestSchema = Type.Object({
  apiVersion: Type.Optional(Type.String()),
  kind: Type.Optional(Type.String()),
  metadata: Type.Optional(ObjectMeta),
  spec: RemediationRequestSpec,
  status: Type.Optional(RemediationRequestStatus),
});

export type RemediationRequestSpec = Static<typeof RemediationRequestSpec>;
export type RemediationRequestStatus = Static<typeof RemediationRequestStatus>;
export type RemediationRequest = Static<typeof RemediationRequestSchema>;
export type InstanceEnrichment = Static<typeof InstanceEnrichment>;
export type Invocation = Static<typeof Invocation>;
export type SsmExecution = Static<typeof SsmExecution>;
export type SsmCommand = Static<typeof SsmCommand>;
export type SnsExecution = Static<typeof SnsExecution>;
export type MetricSeries = Static<typeof MetricSeries>;
export type AlertSpec = Static<typeof Alert>;
export type Plan = Static<typeof Plan>;
export type PlanRollout = Static<typeof PlanRollout>;
export type RolloutStatus = Static<typeof RolloutStatus>;
export type WaveStatus = Static<typeof WaveStatus>;
