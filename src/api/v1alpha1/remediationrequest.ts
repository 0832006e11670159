/**
 * RemediationRequest (`remediator.dev/v1alpha1`, short name `rr`): one alert
 * occurrence turned into one remediation, and the audit record of what happened.
 *
 * The schema is the API (types derive from it, the CRD is generated from it). Its CEL
 * rules make approval durable: once a request is approved its spec is frozen, and a
 * given approval can never be rewritten.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ALERT_SOURCES, RISK_LEVELS } from './alertpolicy.js';
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

export const INSTANCE_ID_PATTERN = '^i-[0-9a-f]{8}([0-9a-f]{9})?$';

const Alert = Type.Object({
  source: StringEnum(ALERT_SOURCES),
  name: Type.String({ minLength: 1, maxLength: 256 }),
  labels: Type.Optional(StringMap()),
  annotations: Type.Optional(StringMap()),
  fingerprint: Type.Optional(Type.String({ maxLength: 128 })),
  startsAt: Type.Optional(Type.String({ maxLength: 64 })),
  status: Type.Optional(StringEnum(['firing', 'resolved'] as const, { default: 'firing', description: 'Only firing alerts trigger; a resolved one cancels a request that has not started executing.' })),
});

const ApprovalDecision = Type.Object({
  decision: StringEnum(['Approved', 'Rejected'] as const),
  approver: Type.String({ minLength: 1, maxLength: 256 }),
  reason: Type.Optional(Type.String({ maxLength: 1024 })),
});

export const RemediationRequestSpec = Type.Object(
  {
    policyRef: Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) }),
    alert: Alert,
    targets: Type.Optional(
      Type.Array(Type.String({ pattern: INSTANCE_ID_PATTERN }), {
        description: 'Explicit EC2 instance IDs; when set they replace the targets the policy would derive.',
        maxItems: 500,
        'x-kubernetes-list-type': 'set',
      } as KubeSchemaOptions),
    ),
    approval: Type.Optional(ApprovalDecision),
    requestedBy: Type.Optional(
      Type.String({
        maxLength: 256,
        description:
          'Who asked for this remediation: the intake\'s identity or the user who created the request. The shipped admission policy checks it equals the creating user; for High and Critical risk the approver must be someone else.',
        'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'spec.requestedBy cannot be changed' }],
      } as KubeSchemaOptions),
    ),
  },
  {
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

const InstanceEnrichment = Type.Object({
  instanceId: Type.String(),
  state: Type.Optional(Type.String()),
  instanceType: Type.Optional(Type.String()),
  availabilityZone: Type.Optional(Type.String()),
  privateIpAddress: Type.Optional(Type.String()),
  tags: Type.Optional(StringMap()),
});

const Invocation = Type.Object({
  instanceId: Type.String(),
  status: Type.String({ description: 'SSM invocation status: Pending, InProgress, Success, Failed, TimedOut, Cancelled, ...' }),
  responseCode: Type.Optional(Type.Integer()),
  stdoutTail: Type.Optional(Type.String({ maxLength: 4096 })),
  stderrTail: Type.Optional(Type.String({ maxLength: 4096 })),
});

const SsmExecution = Type.Object({
  documentName: Type.String(),
  comment: Type.String({ description: 'Carries the request UID so a resent command can be found instead of sent twice.' }),
  intentRecordedAt: Timestamp({ description: 'Written before SendCommand is called.' }),
  commandId: Type.Optional(Type.String()),
  requestedAt: Type.Optional(Timestamp()),
  parameters: Type.Optional(
    Type.Unsafe<Record<string, string[]>>({ type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } }),
  ),
  invocations: Type.Optional(Type.Array(Invocation)),
});

const SnsExecution = Type.Object({
  topicArn: Type.String(),
  intentRecordedAt: Timestamp({ description: 'Written before Publish is called.' }),
  subject: Type.Optional(Type.String()),
  message: Type.Optional(Type.String({ maxLength: 4096, description: 'The rendered message (truncated).' })),
  messageId: Type.Optional(Type.String()),
  publishedAt: Type.Optional(Timestamp()),
  attempts: Type.Optional(Type.Integer({ minimum: 0, description: 'Publish calls made; above 1 only after a lost response (standard topics deliver at least once).' })),
});

const Execution = Type.Object({
  dryRun: Type.Optional(Type.Boolean()),
  ssm: Type.Optional(SsmExecution),
  sns: Type.Optional(SnsExecution),
});

const MetricSeries = Type.Object({
  name: Type.String(),
  instanceId: Type.Optional(Type.String()),
  statistic: Type.String(),
  values: Type.Array(Type.Number(), { maxItems: 60 }),
  timestamps: Type.Array(Type.String(), { maxItems: 60 }),
  mean: Type.Optional(Type.Number()),
});

const Notification = Type.Object({
  phase: Type.String(),
  messageId: Type.Optional(Type.String()),
  sentAt: Type.Optional(Timestamp()),
  error: Type.Optional(Type.String()),
});

export const RemediationRequestStatus = Type.Object({
  phase: Type.Optional(StringEnum(PHASES)),
  reason: Type.Optional(Type.String({ description: 'Why the request is in its phase, machine-readable (e.g. why it was skipped).' })),
  message: Type.Optional(Type.String()),
  observedGeneration: Type.Optional(Type.Integer()),
  conditions: Type.Optional(Conditions),
  risk: Type.Optional(StringEnum(RISK_LEVELS)),
  policyGeneration: Type.Optional(Type.Integer({ description: 'Generation of the AlertPolicy the request was enriched and approved against; a Manual request fails if the policy changes before execution.' })),
  targets: Type.Optional(Type.Array(Type.String())),
  targetCount: Type.Optional(Type.Integer()),
  approval: Type.Optional(ApprovalDecision),
  enrichment: Type.Optional(
    Type.Object({
      observedAt: Timestamp(),
      instances: Type.Array(InstanceEnrichment),
      metrics: Type.Optional(Type.Array(MetricSeries)),
    }),
  ),
  notifications: Type.Optional(Type.Array(Notification, { description: 'Messages sent to the policy\'s notify topic, one per announced phase.' })),
  execution: Type.Optional(Execution),
  startTime: Type.Optional(Timestamp()),
  completionTime: Type.Optional(Timestamp()),
});

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
export type SnsExecution = Static<typeof SnsExecution>;
export type MetricSeries = Static<typeof MetricSeries>;
export type AlertSpec = Static<typeof Alert>;
