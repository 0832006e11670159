/**
 * AlertPolicy (`remediator.dev/v1alpha1`, short name `ap`): which alerts a policy
 * matches, how their targets are found and enriched, what it does, and how carefully.
 *
 * The schema below is the API. Types are derived from it, the CRD is generated from
 * it, and the API server enforces it (OpenAPI plus CEL), so the three cannot drift.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Conditions, Duration, ObjectMeta, StringEnum, StringMap, Timestamp, type KubeSchemaOptions } from './schema.js';

export const ALERT_SOURCES = ['alertmanager', 'cloudwatch', 'generic'] as const;
export const MATCH_OPERATORS = ['=', '!=', '=~', '!~'] as const;
export const RISK_LEVELS = ['Low', 'Medium', 'High', 'Critical'] as const;
export const APPROVAL_MODES = ['Auto', 'Manual'] as const;

/** The character allowlist every templated SSM parameter value must pass by default. */
export const DEFAULT_ALLOWED_PATTERN = '^[A-Za-z0-9._:/=@-]*$';
export const DEFAULT_MAX_VALUE_LENGTH = 256;
export const DEFAULT_OPT_OUT_TAG = { key: 'remediator.dev/opt-out', value: 'true' } as const;

/**
 * Defaults of optional fields. The schema publishes them (`default:`, so the API server
 * fills them in) and the controller reads them from here for objects it gets from
 * elsewhere (tests, older stored versions): one value, two readers.
 */
export const DEFAULTS = {
  maxTargets: 10,
  ssmDocument: 'AWS-RunShellScript',
  ssmTimeoutSeconds: 600,
  ssmMaxConcurrency: '50',
  ssmMaxErrors: '0',
  approvalTimeout: '1h',
  risk: 'Low',
} as const;

const LabelMatcher = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 256 }),
  op: Type.Optional(StringEnum(MATCH_OPERATORS, { default: '=' })),
  value: Type.String({ maxLength: 1024 }),
});

const Match = Type.Object({
  sources: Type.Optional(
    Type.Array(StringEnum(ALERT_SOURCES), {
      description: 'Alert sources this policy accepts; all of them when omitted.',
      'x-kubernetes-list-type': 'set',
      maxItems: 3,
    } as KubeSchemaOptions),
  ),
  labels: Type.Optional(
    Type.Array(LabelMatcher, {
      description: 'Label matchers with Alertmanager semantics; regexes are anchored. All must match.',
      maxItems: 32,
    }),
  ),
});

const Targets = Type.Object(
  {
    fromLabels: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 256 }), {
        description: 'Alert label names whose values are EC2 instance IDs (for example `instance_id`).',
        maxItems: 16,
      }),
    ),
    fromDimensions: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 255 }), {
        description: 'CloudWatch alarm dimension names whose values are instance IDs (for example `InstanceId`); read from `cloudwatch` alerts only.',
        maxItems: 8,
      }),
    ),
    tagSelector: Type.Optional(
      StringMap({
        description:
          'Select running instances carrying all these EC2 tags (like `tag:Environment=prod`). Values may use templates (`{{ labels.service }}`), which must pass the default allowlist.',
        maxProperties: 10,
      } as KubeSchemaOptions),
    ),
    maxTargets: Type.Optional(Type.Integer({
      minimum: 1,
      maximum: 500,
      default: DEFAULTS.maxTargets,
      description: 'Hard cap on the number of instances one request may touch (blast radius). A request over it fails.',
    })),
  },
  { description: 'How EC2 instance IDs are derived from an alert.' },
);

export const STATISTICS = ['Average', 'Sum', 'Minimum', 'Maximum', 'SampleCount'] as const;
export const COMPARISONS = ['>', '>=', '<', '<='] as const;

const MetricQuery = Type.Object({
  name: Type.String({ pattern: '^[a-z][a-zA-Z0-9_]*$', maxLength: 63, description: 'How guards and templates refer to this metric (`{{ enrichment.cpu }}`).' }),
  namespace: Type.String({ minLength: 1, maxLength: 255, description: 'CloudWatch namespace, e.g. `AWS/EC2` or `CWAgent`.' }),
  metricName: Type.String({ minLength: 1, maxLength: 255 }),
  dimensions: Type.Optional(
    StringMap({
      description: 'Dimension name to value. A value of `{{ instance.id }}` queries the metric once per target instance. Default: `InstanceId: {{ instance.id }}`.',
      maxProperties: 30,
    } as KubeSchemaOptions),
  ),
  statistic: Type.Optional(StringEnum(STATISTICS, { default: 'Average' })),
  periodSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, default: 60 })),
  lookback: Type.Optional(Duration({ default: '10m', description: 'How far back to read datapoints.' })),
});

const Guard = Type.Object(
  {
    metric: Type.Optional(Type.String({ description: 'Name of a metric in `enrichment.metrics`; its mean over the lookback is compared.' })),
    operator: Type.Optional(StringEnum(COMPARISONS)),
    threshold: Type.Optional(Type.Number()),
    tag: Type.Optional(
      Type.Object({ key: Type.String({ minLength: 1, maxLength: 128 }), value: Type.Optional(Type.String({ maxLength: 256 })) }, { description: 'The instance must carry this tag (with this value, when given).' }),
    ),
  },
  {
    description: 'A condition every target must meet, or the request is Skipped (reason Guard). Give either metric+operator+threshold or tag.',
    'x-kubernetes-validations': [
      { rule: 'has(self.metric) != has(self.tag)', message: 'a guard checks either a metric or a tag' },
      { rule: '!has(self.metric) || (has(self.operator) && has(self.threshold))', message: 'a metric guard needs operator and threshold' },
    ],
  } as KubeSchemaOptions,
);

const Enrichment = Type.Object({
  tagKeys: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
      description: 'EC2 tag keys to record on the request; all tags when omitted.',
      maxItems: 64,
    }),
  ),
  metrics: Type.Optional(
    Type.Array(MetricQuery, {
      maxItems: 20,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      description: 'CloudWatch metrics to read, all in one GetMetricData call.',
    } as KubeSchemaOptions),
  ),
  guards: Type.Optional(Type.Array(Guard, { maxItems: 20 })),
  optOutTag: Type.Optional(
    Type.Object(
      { key: Type.String({ minLength: 1, maxLength: 128 }), value: Type.String({ maxLength: 256 }) },
      { description: `Instances carrying this tag are never touched; it always wins. Default ${DEFAULT_OPT_OUT_TAG.key}=${DEFAULT_OPT_OUT_TAG.value}.` },
    ),
  ),
});

const SsmParameter = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.-]+$' }),
  values: Type.Array(Type.String({ maxLength: 4096 }), {
    minItems: 1,
    maxItems: 64,
    description: 'Values; `{{ labels.x }}`, `{{ annotations.x }}`, `{{ alert.name }}`, `{{ instance.id }}`, `{{ tags.x }}` are substituted.',
  }),
  allowedPattern: Type.Optional(
    Type.String({
      maxLength: 256,
      description: `Regex every substituted value must match. Default \`${DEFAULT_ALLOWED_PATTERN}\`.`,
    }),
  ),
  maxLength: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, description: `Longest substituted value allowed. Default ${DEFAULT_MAX_VALUE_LENGTH}.` })),
});

const SsmAction = Type.Object({
  documentName: Type.Optional(Type.String({ minLength: 3, maxLength: 128, default: DEFAULTS.ssmDocument, pattern: '^[a-zA-Z0-9_./:-]+$' })),
  parameters: Type.Array(SsmParameter, {
    minItems: 1,
    maxItems: 32,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['name'],
  } as KubeSchemaOptions),
  timeoutSeconds: Type.Optional(
    Type.Integer({ minimum: 30, maximum: 172800, default: DEFAULTS.ssmTimeoutSeconds, description: 'How long SSM waits for the command before it is TimedOut.' }),
  ),
  maxConcurrency: Type.Optional(Type.String({ pattern: '^([1-9][0-9]*%?)$', default: DEFAULTS.ssmMaxConcurrency, maxLength: 7 })),
  maxErrors: Type.Optional(Type.String({ pattern: '^([0-9]+%?)$', default: DEFAULTS.ssmMaxErrors, maxLength: 7 })),
});

const TOPIC_ARN_PATTERN = '^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\\.fifo)?$';
export const NOTIFY_PHASES = ['AwaitingApproval', 'Approved', 'Executing', 'Succeeded', 'Failed', 'Rejected', 'Expired', 'Skipped', 'Cancelled'] as const;

const SnsAction = Type.Object({
  topicArn: Type.String({ pattern: TOPIC_ARN_PATTERN, maxLength: 300 }),
  subject: Type.Optional(Type.String({ maxLength: 100, description: 'Templated subject (email endpoints); at most 100 characters after rendering.' })),
  message: Type.String({ minLength: 1, maxLength: 65536, description: 'Templated message body.' }),
  messageAttributes: Type.Optional(StringMap({ description: 'String message attributes; values are templates.', maxProperties: 10 } as KubeSchemaOptions)),
  messageGroupId: Type.Optional(Type.String({ maxLength: 128, description: 'FIFO topics: the message group (templated). Default: the policy name.' })),
});

const Notify = Type.Object({
  topicArn: Type.String({ pattern: TOPIC_ARN_PATTERN, maxLength: 300 }),
  on: Type.Array(StringEnum(NOTIFY_PHASES), {
    minItems: 1,
    maxItems: NOTIFY_PHASES.length,
    'x-kubernetes-list-type': 'set',
    description: 'Phases whose entry is announced on the topic.',
  } as KubeSchemaOptions),
});

const Action = Type.Object(
  {
    ssm: Type.Optional(SsmAction),
    sns: Type.Optional(SnsAction),
    notify: Type.Optional(Notify),
  },
  {
    'x-kubernetes-validations': [{ rule: 'has(self.ssm) != has(self.sns)', message: 'action needs exactly one of `ssm` or `sns` (plus, optionally, `notify`)' }],
  } as KubeSchemaOptions,
);

const Approval = Type.Object({
  mode: Type.Optional(
    StringEnum(APPROVAL_MODES, { description: 'Auto proceeds without a person. Default: Auto for Low risk, Manual otherwise.' }),
  ),
  approvers: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 256 }), {
      description: 'User names allowed to approve. Anyone holding the approver role when omitted.',
      maxItems: 64,
    }),
  ),
  timeout: Type.Optional(Duration({ default: DEFAULTS.approvalTimeout, description: 'How long a request may wait for approval before it expires.' })),
});

const MaintenanceWindow = Type.Object({
  schedule: Type.String({ minLength: 9, maxLength: 128, description: 'Cron expression (5 fields) of when the window opens, e.g. `0 2 * * 6`.' }),
  duration: Duration({ description: 'How long the window stays open, e.g. `4h`.' }),
  timeZone: Type.Optional(Type.String({ maxLength: 64, default: 'UTC', description: 'IANA time zone of the schedule, e.g. `Europe/Berlin`.' })),
});

const Safety = Type.Object({
  dryRun: Type.Optional(Type.Boolean({ description: 'Record what would be sent, send nothing.' })),
  suspend: Type.Optional(Type.Boolean({ description: 'Skip every request of this policy.' })),
  cooldown: Type.Optional(Duration({ description: 'Per target: skip a request if the same policy executed on any of its instances this recently.' })),
  rateLimit: Type.Optional(
    Type.Object({
      maxExecutions: Type.Integer({ minimum: 1, maximum: 10000 }),
      window: Duration(),
    }, { description: 'Per policy: at most maxExecutions executions in any sliding window; more are skipped.' }),
  ),
  circuitBreaker: Type.Optional(
    Type.Object({
      maxConsecutiveFailures: Type.Integer({ minimum: 1, maximum: 100 }),
    }, { description: 'After this many consecutive failed executions the policy stops executing until a person resumes it (`kubectl remediator resume`).' }),
  ),
  maintenanceWindows: Type.Optional(
    Type.Object({
      mode: StringEnum(['OnlyDuring', 'NeverDuring'] as const, { description: 'OnlyDuring: execute only inside a window. NeverDuring: never inside one (a change freeze).' }),
      windows: Type.Array(MaintenanceWindow, { minItems: 1, maxItems: 16 }),
    }),
  ),
});

export const AlertPolicySpec = Type.Object({
  match: Type.Optional(Match),
  targets: Targets,
  enrichment: Type.Optional(Enrichment),
  action: Action,
  risk: Type.Optional(StringEnum(RISK_LEVELS, { default: DEFAULTS.risk })),
  approval: Type.Optional(Approval),
  safety: Type.Optional(Safety),
});

export const AlertPolicyStatus = Type.Object({
  observedGeneration: Type.Optional(Type.Integer()),
  conditions: Type.Optional(Conditions),
  matched: Type.Optional(Type.Integer({ minimum: 0 })),
  executed: Type.Optional(Type.Integer({ minimum: 0 })),
  succeeded: Type.Optional(Type.Integer({ minimum: 0 })),
  failed: Type.Optional(Type.Integer({ minimum: 0 })),
  skipped: Type.Optional(Type.Integer({ minimum: 0 })),
  lastTriggerTime: Type.Optional(Timestamp()),
  consecutiveFailures: Type.Optional(Type.Integer({ minimum: 0 })),
  circuitBreaker: Type.Optional(
    Type.Object({
      open: Type.Boolean(),
      openedAt: Type.Optional(Timestamp()),
      message: Type.Optional(Type.String()),
    }),
  ),
});

export const AlertPolicySchema = Type.Object({
  apiVersion: Type.Optional(Type.String()),
  kind: Type.Optional(Type.String()),
  metadata: Type.Optional(ObjectMeta),
  spec: AlertPolicySpec,
  status: Type.Optional(AlertPolicyStatus),
});

export type AlertPolicySpec = Static<typeof AlertPolicySpec>;
export type AlertPolicyStatus = Static<typeof AlertPolicyStatus>;
export type AlertPolicy = Static<typeof AlertPolicySchema>;
export type SsmAction = Static<typeof SsmAction>;
export type SsmParameter = Static<typeof SsmParameter>;
export type LabelMatcher = Static<typeof LabelMatcher>;
export type SnsAction = Static<typeof SnsAction>;
export type MetricQuery = Static<typeof MetricQuery>;
export type Guard = Static<typeof Guard>;
export type Safety = Static<typeof Safety>;
export type MaintenanceWindow = Static<typeof MaintenanceWindow>;

/** Annotation a person sets (to the current time) to close an open circuit breaker: failures before it no longer count. */
export const CIRCUIT_RESET_ANNOTATION = 'remediator.dev/circuit-reset-at';
export type RiskLevel = (typeof RISK_LEVELS)[number];
export type AlertSource = (typeof ALERT_SOURCES)[number];
