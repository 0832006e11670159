/**
 * Runbook (`remediator.dev/v1alpha1`, cluster-scoped, short name `rb`): what may run and
 * where, decided by cluster administrators. An AlertPolicy (written by a namespace's
 * team) can only point at a Runbook its namespace is granted; it never carries command
 * text of its own. See docs/security.md for who may write what.
 *
 * The schema below is the API: types derive from it and the CRD is generated from it.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Conditions, Duration, LabelSelector, StringEnum, StringMap, ObjectMeta, type KubeSchemaOptions } from './schema.js';

export const RISK_LEVELS = ['Low', 'Medium', 'High', 'Critical'] as const;
export type RiskLevel = (typeof RISK_LEVELS)[number];

/**
 * The character class every templated value must stay inside by default, and the rules
 * beyond it (see `VALUE_RULES`). Letters, digits and `._:/=@-`: enough for service
 * names, ids, ARNs and paths, never enough for shell syntax.
 */
export const DEFAULT_ALLOWED_PATTERN = '[A-Za-z0-9._:/=@-]*';
export const DEFAULT_MAX_VALUE_LENGTH = 256;

/**
 * Structural rules on every substituted value, on top of the character allowlist. Each
 * can be lifted per parameter or input with `allow:` — on purpose a visible, reviewable
 * line in a Runbook, never a default.
 */
export const VALUE_RULES = ['LeadingDash', 'DotDot', 'Empty'] as const;
export type ValueRule = (typeof VALUE_RULES)[number];

/**
 * SendCommand's own patterns (API_SendCommand: MaxConcurrency, MaxErrors): AWS refuses anything else.
 * MaxConcurrency's grammar is also every fleet size (a wave, a policy's limit), so a value means
 * the same wherever it is written (rollout.ts resolves it; docs/rollouts.md).
 */
export const SSM_MAX_CONCURRENCY_PATTERN = '^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$';
export const SSM_MAX_ERRORS_PATTERN = '^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$';

export const RUNBOOK_DEFAULTS = {
  minRisk: 'Low',
  maxAutoApprovedRisk: 'Low',
  maxTargets: 10,
  ssmDocument: 'AWS-RunShellScript',
  ssmTimeoutSeconds: 600,
  ssmMaxConcurrency: '50',
  ssmMaxErrors: '0',
} as const;

const Allow = Type.Array(StringEnum(VALUE_RULES), {
  maxItems: VALUE_RULES.length,
  'x-kubernetes-list-type': 'set',
  description:
    'Lift a default rule for values substituted here: `LeadingDash` lets a value start with `-` (an option), `DotDot` lets it ' +
    'contain `..` (a path upwards), `Empty` lets it be empty. Off by default; widen only for a parameter that is not a command line.',
} as KubeSchemaOptions);

const ValueCheck = {
  allowedPattern: Type.Optional(
    Type.String({
      maxLength: 256,
      description: `RE2 pattern every substituted value must match in full (anchored). Default \`${DEFAULT_ALLOWED_PATTERN}\`.`,
    }),
  ),
  maxLength: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 4096, description: `Longest substituted value allowed. Default ${DEFAULT_MAX_VALUE_LENGTH}.` }),
  ),
  allow: Type.Optional(Allow),
};

const RunbookInput = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 63,
      pattern: '^[a-z][a-zA-Z0-9_]*$',
      description: 'Referred to as `{{ inputs.<name> }}`.',
    }),
    description: Type.Optional(Type.String({ maxLength: 1024, description: 'What the value means, for policy authors.' })),
    ...ValueCheck,
  },
  { description: 'A value a policy supplies (`spec.inputs`), checked against these rules before it is substituted.' },
);

const SsmParameter = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.-]+$', description: 'The SSM document parameter.' }),
    values: Type.Array(Type.String({ maxLength: 4096 }), {
      minItems: 1,
      maxItems: 64,
      description:
        'Values. `{{ inputs.x }}`, `{{ labels.x }}`, `{{ annotations.x }}`, `{{ alert.name }}`, `{{ instance.id }}`, `{{ tags.x }}`, ' +
        '`{{ enrichment.x }}` and `{{ namespace }}` are substituted and checked; a Parameter Store reference `{{ssm:/path}}` ' +
        'or `{{ssm-secure:/path}}` is passed verbatim for SSM to resolve on the instance.',
    }),
    ...ValueCheck,
  },
  { description: 'One parameter of the SSM document.' },
);

const SsmOutput = Type.Object(
  {
    cloudWatchLogGroup: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 512,
        pattern: '^[.\\-_/#A-Za-z0-9]+$',
        description: 'Send full command output to this CloudWatch Logs group.',
      }),
    ),
    s3BucketName: Type.Optional(
      Type.String({
        minLength: 3,
        maxLength: 63,
        pattern: '^[a-z0-9][a-z0-9.-]*[a-z0-9]$',
        description: 'Write full output to this S3 bucket.',
      }),
    ),
    s3KeyPrefix: Type.Optional(
      Type.String({ maxLength: 500, pattern: '^[A-Za-z0-9!_.*()/-]*$', description: 'Object key prefix in the bucket.' }),
    ),
  },
  {
    description: 'Where the complete command output goes (status keeps only its tail). The instance profile needs write access there.',
    'x-kubernetes-validations': [{ rule: '!has(self.s3KeyPrefix) || has(self.s3BucketName)', message: 's3KeyPrefix needs s3BucketName' }],
  } as KubeSchemaOptions,
);

/** The comparisons a rollout's verification metric may use (the same as a policy's guards). */
export const ROLLOUT_COMPARISONS = ['>', '>=', '<', '<='] as const;

/** CloudWatch alarm names (API_Alarm: 1-255 characters, not only blanks). */
export const ALARM_NAME_PATTERN = '^.*\\S.*$';

/** At most this many waves; the last size repeats until every target is covered. */
export const MAX_ROLLOUT_WAVES = 10;
/** At most this many alarms; SSM takes exactly one per command (API_AlarmConfiguration), the controller checks all. */
export const MAX_ROLLOUT_ALARMS = 5;

const RolloutWave = Type.Object(
  {
    size: Type.String({
      pattern: SSM_MAX_CONCURRENCY_PATTERN,
      maxLength: 7,
      description:
        "Instances in this wave: a whole number from 1, or a percentage (1% to 100%) of the request's targets, rounded down, at least 1.",
    }),
  },
  { description: 'One wave of a rollout.' },
);

const RolloutMetric = Type.Object(
  {
    namespace: Type.String({ minLength: 1, maxLength: 255, description: 'CloudWatch namespace, e.g. `CWAgent`.' }),
    metricName: Type.String({
      minLength: 1,
      maxLength: 255,
      description: 'CloudWatch metric name, read per instance (dimension InstanceId).',
    }),
    statistic: Type.Optional(
      StringEnum(['Average', 'Maximum', 'Minimum', 'Sum', 'SampleCount'] as const, { default: 'Average', description: 'The statistic.' }),
    ),
    periodSeconds: Type.Optional(
      Type.Integer({ minimum: 60, maximum: 3600, multipleOf: 60, default: 60, description: 'The period of the datapoints read.' }),
    ),
    operator: StringEnum(ROLLOUT_COMPARISONS, { description: 'How the mean must compare to threshold on every instance of the wave.' }),
    threshold: Type.Number({ description: 'The value the mean is compared with.' }),
  },
  { description: 'A per-instance CloudWatch metric that must have recovered on every instance of a wave before the next wave is sent.' },
);

const RolloutVerify = Type.Object(
  {
    within: Duration({
      description:
        "How long after a wave's last invocation ended its verification waits before reading the metric (the pause runs at the same " +
        "time; the longer of the two applies). Choose it to span several of the metric's periods.",
    }),
    metric: RolloutMetric,
  },
  {
    description:
      'Verification between waves: a wave whose instances did not recover stops the rollout (Ineffective); later waves are never sent.',
  },
);

const Rollout = Type.Object(
  {
    waves: Type.Optional(
      Type.Array(RolloutWave, {
        minItems: 1,
        maxItems: MAX_ROLLOUT_WAVES,
        description:
          'Wave sizes in order, e.g. `[{size: "1"}, {size: "25%"}]`: a canary of one instance, then waves of a quarter of the fleet. ' +
          'The last size repeats until every target is in a wave. Absent: one wave of every target.',
      }),
    ),
    pauseBetweenWaves: Type.Optional(
      Duration({ description: 'How long to wait after a wave ended (and passed) before the next wave is sent. Default 0s.' }),
    ),
    verify: Type.Optional(RolloutVerify),
    alarms: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 255, pattern: ALARM_NAME_PATTERN }), {
        maxItems: MAX_ROLLOUT_ALARMS,
        'x-kubernetes-list-type': 'set',
        description:
          'CloudWatch alarms (in the account and region the runbook acts in) that abort the rollout: the first goes to every ' +
          'SendCommand as AlarmConfiguration (SSM takes one per command and stops the command when it is in ALARM), and the ' +
          'controller checks all of them before each wave and each command; one in ALARM stops the rollout and cancels what runs.',
      } as KubeSchemaOptions),
    ),
    ignorePollAlarmFailure: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          "AlarmConfiguration's IgnorePollAlarmFailure: true lets a command go on when SSM cannot read the alarm's state, and " +
          'lets the controller go on past an alarm CloudWatch does not know (deleted, misspelt, another region); false stops ' +
          'the rollout on such an alarm. A DescribeAlarms call that fails holds the next step until it succeeds.',
      }),
    ),
  },
  {
    description:
      'How the command goes out over the fleet: waves (a canary first), a pause and a verification between them, and alarms that ' +
      'abort. A policy may only make it more cautious (spec.safety.rollout). See docs/rollouts.md.',
  },
);

const SsmAction = Type.Object(
  {
    documentName: Type.Optional(
      Type.String({
        minLength: 3,
        maxLength: 128,
        default: RUNBOOK_DEFAULTS.ssmDocument,
        pattern: '^[a-zA-Z0-9_./:-]+$',
        description: "SSM Command document; it must also be in the controller's allowlist (--allowed-documents).",
      }),
    ),
    parameters: Type.Array(SsmParameter, {
      minItems: 1,
      maxItems: 32,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      description: 'The document parameters, with their templates and value rules.',
    } as KubeSchemaOptions),
    timeoutSeconds: Type.Optional(
      Type.Integer({
        minimum: 30,
        maximum: 172800,
        default: RUNBOOK_DEFAULTS.ssmTimeoutSeconds,
        description: 'How long SSM waits for the command before it is TimedOut.',
      }),
    ),
    maxConcurrency: Type.Optional(
      Type.String({
        pattern: SSM_MAX_CONCURRENCY_PATTERN,
        default: RUNBOOK_DEFAULTS.ssmMaxConcurrency,
        maxLength: 7,
        description:
          "Instances (a whole number from 1) or a percentage (1% to 100%) of the request's targets that run the command at once, over " +
          'the whole fleet: every command of at most 50 instances together. SSM holds MaxConcurrency per command only; the controller ' +
          'sends each command with its share and sends the next only when the fleet has room for it (see docs/rollouts.md).',
      }),
    ),
    maxErrors: Type.Optional(
      Type.String({
        pattern: SSM_MAX_ERRORS_PATTERN,
        default: RUNBOOK_DEFAULTS.ssmMaxErrors,
        maxLength: 7,
        description:
          "Failed invocations (a whole number, no leading zero) or a percentage (0% to 100%) of the request's targets the whole fleet " +
          'may have: one more stops sending further commands and waves and fails the request; within it the request succeeds and ' +
          'lists the failed instances. Unlike SSM (Failed and ExecutionTimedOut per command), every invocation that ran and did not ' +
          'succeed counts, DeliveryTimedOut and Undeliverable included; each command gets what is left of the budget as MaxErrors ' +
          '(see docs/rollouts.md).',
      }),
    ),
    output: Type.Optional(SsmOutput),
    rollout: Type.Optional(Rollout),
  },
  { description: 'Run a command document through SSM Run Command (SendCommand).' },
);

/** What SNS accepts in a subject (API_Publish: ASCII text without line breaks or control characters). */
export const SNS_SUBJECT_TEMPLATE_PATTERN = '^[ -~]*$';

export const TOPIC_ARN_PATTERN = '^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\\.fifo)?$';

const SnsAction = Type.Object(
  {
    topicArn: Type.String({ pattern: TOPIC_ARN_PATTERN, maxLength: 300, description: 'The topic to publish to.' }),
    subject: Type.Optional(
      Type.String({
        maxLength: 100,
        pattern: SNS_SUBJECT_TEMPLATE_PATTERN,
        description:
          'Templated subject (email endpoints): printable ASCII on one line, at most 100 characters after rendering. A rendered value ' +
          'with other characters (a line break, a non-ASCII letter) fails the request rather than being altered.',
      }),
    ),
    message: Type.String({ minLength: 1, maxLength: 65536, description: 'Templated message body.' }),
    messageAttributes: Type.Optional(
      StringMap({ description: 'String message attributes; values are templates.', maxProperties: 10 } as KubeSchemaOptions),
    ),
    messageGroupId: Type.Optional(
      Type.String({ maxLength: 128, description: 'FIFO topics: the message group (templated). Default: the policy name.' }),
    ),
  },
  { description: 'Publish a message to an SNS topic.' },
);

const Action = Type.Object({ ssm: Type.Optional(SsmAction), sns: Type.Optional(SnsAction) }, {
  description: 'What runs: exactly one of `ssm` or `sns`.',
  'x-kubernetes-validations': [{ rule: 'has(self.ssm) != has(self.sns)', message: 'action needs exactly one of `ssm` or `sns`' }],
} as KubeSchemaOptions);

const Account = Type.Object(
  {
    roleArn: Type.String({
      pattern: '^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$',
      maxLength: 600,
      description: "IAM role in the workload account, assumed from the controller's own role (STS AssumeRole).",
    }),
    externalId: Type.Optional(
      Type.String({
        minLength: 2,
        maxLength: 1224,
        pattern: '^[A-Za-z0-9+=,.@:/-]+$',
        description: 'sts:ExternalId the role trust policy requires.',
      }),
    ),
  },
  { description: 'Another AWS account to run in; absent means the controller’s own account.' },
);

const Scope = Type.Object(
  {
    tagSelector: Type.Optional(
      StringMap({
        maxProperties: 10,
        description:
          'Every target must carry all these EC2 tags. Values may use `{{ namespace }}` (the request’s namespace), e.g. ' +
          '`team: "{{ namespace }}"`, so one runbook serves many teams, each on its own instances.',
      } as KubeSchemaOptions),
    ),
    maxTargets: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 500,
        default: RUNBOOK_DEFAULTS.maxTargets,
        description: 'Most instances one request may touch through this runbook; a policy may only lower it.',
      }),
    ),
    regions: Type.Optional(
      Type.Array(Type.String({ pattern: '^[a-z]{2}(-[a-z]+)+-[0-9]+$', maxLength: 32 }), {
        maxItems: 32,
        'x-kubernetes-list-type': 'set',
        description: "AWS regions this runbook may act in. Default: the controller's region.",
      } as KubeSchemaOptions),
    ),
    account: Type.Optional(Account),
  },
  { description: 'Which instances every target must fall inside, and where (account, regions).' },
);

export const RunbookSpec = Type.Object(
  {
    minRisk: Type.Optional(
      StringEnum(RISK_LEVELS, {
        default: RUNBOOK_DEFAULTS.minRisk,
        description: 'The lowest risk a policy using this runbook may declare.',
      }),
    ),
    maxAutoApprovedRisk: Type.Optional(
      StringEnum(['None', ...RISK_LEVELS] as const, {
        default: RUNBOOK_DEFAULTS.maxAutoApprovedRisk,
        description:
          'The highest risk at which a policy may auto-approve requests using this runbook; above it a person must approve. ' +
          '`None`: every request needs a person.',
      }),
    ),
    namespaceSelector: LabelSelector({
      description: 'Namespaces whose AlertPolicies may use this runbook. `{}` selects every namespace; an absent selector none.',
    }),
    scope: Type.Optional(Scope),
    inputs: Type.Optional(
      Type.Array(RunbookInput, {
        maxItems: 32,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
        description: 'Values each policy supplies (`spec.inputs`), with the rules they must pass.',
      } as KubeSchemaOptions),
    ),
    notifyTopics: Type.Optional(
      Type.Array(Type.String({ pattern: TOPIC_ARN_PATTERN, maxLength: 300 }), {
        maxItems: 32,
        'x-kubernetes-list-type': 'set',
        description:
          'SNS topics an AlertPolicy using this runbook may announce its requests on (`notify.topicArn`). The controller’s one ' +
          'sns:Publish permission serves every team, so a topic a namespace may write to is the cluster administrator’s grant: ' +
          'a policy naming any other topic is not Ready and publishes nothing. Default: none.',
      } as KubeSchemaOptions),
    ),
    action: Action,
  },
  { description: 'What may run (action), on which instances (scope), for which namespaces, and at what risk without a person.' },
);

export const RunbookStatus = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ description: 'The generation the controller last validated.' })),
    conditions: Type.Optional(
      Conditions(
        '`Ready`: True when the runbook is valid (its patterns and templates parse, its SSM document is allowed); False names what ' +
          'to fix, with `Stalled`=True (the kstatus condition GitOps health checks read as a final failure).',
      ),
    ),
  },
  { description: 'What the controller observed; written only by the controller.' },
);

export const RunbookSchema = Type.Object({
  apiVersion: Type.Optional(Type.String()),
  kind: Type.Optional(Type.String()),
  metadata: Type.Optional(ObjectMeta),
  spec: RunbookSpec,
  status: Type.Optional(RunbookStatus),
});

export type RunbookSpec = Static<typeof RunbookSpec>;
export type RunbookStatus = Static<typeof RunbookStatus>;
export type Runbook = Static<typeof RunbookSchema>;
export type RunbookInput = Static<typeof RunbookInput>;
export type SsmAction = Static<typeof SsmAction>;
export type SsmParameter = Static<typeof SsmParameter>;
export type SnsAction = Static<typeof SnsAction>;
export type RunbookScope = Static<typeof Scope>;
export type Rollout = Static<typeof Rollout>;
export type RolloutVerify = Static<typeof RolloutVerify>;
export type RolloutMetric = Static<typeof RolloutMetric>;

/** Risk levels in order; `riskRank('Low') < riskRank('High')`. */
export function riskRank(risk: RiskLevel | 'None'): number {
  return risk === 'None' ? -1 : RISK_LEVELS.indexOf(risk);
}
