/**
 * AlertPolicy (`remediator.dev/v1alpha1`, short name `ap`): which alerts a policy
 * matches, how their targets are found and enriched, what it does, and how carefully.
 *
 * The schema below is the API. Types are derived from it, the CRD is generated from
 * it, and the API server enforces it (OpenAPI plus CEL), so the three cannot drift.
 */
import { Type, type Static } from '@sinclair/typebox';
import { MAX_ROLLOUT_WAVES, RISK_LEVELS, SSM_MAX_CONCURRENCY_PATTERN, SSM_MAX_ERRORS_PATTERN, TOPIC_ARN_PATTERN } from './runbook.js';
import { Conditions, Duration, ObjectMeta, StringEnum, StringMap, Timestamp, type KubeSchemaOptions } from './schema.js';

export const ALERT_SOURCES = ['alertmanager', 'cloudwatch', 'generic'] as const;
export const MATCH_OPERATORS = ['=', '!=', '=~', '!~'] as const;
export const APPROVAL_MODES = ['Auto', 'Manual'] as const;

export const DEFAULT_OPT_OUT_TAG = { key: 'remediator.dev/opt-out', value: 'true' } as const;

/**
 * Defaults of optional fields. The schema publishes them (`default:`, so the API server
 * fills them in) and the controller reads them from here for objects it gets from
 * elsewhere (tests, older stored versions): one value, two readers.
 */
export const DEFAULTS = {
  approvalTimeout: '1h',
} as const;

const LabelMatcher = Type.Object({
  name: Type.String({
    minLength: 1,
    maxLength: 256,
    description:
      'The alert label (CloudWatch alarms carry `alertname`, `metric_namespace`, `metric_name`, `aws_account_id`, `aws_region` and their dimensions).',
  }),
  op: Type.Optional(
    StringEnum(MATCH_OPERATORS, {
      default: '=',
      description: '`=` equals, `!=` differs, `=~` matches the RE2 regex, `!~` does not match it. A missing label has the value "".',
    }),
  ),
  value: Type.String({ maxLength: 1024, description: 'The value, or an RE2 regex for `=~` and `!~` (anchored at both ends).' }),
});

const Match = Type.Object(
  {
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
  },
  { description: 'Which alerts this policy acts on. Every alert of the sources matches when omitted.' },
);

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
        description:
          'CloudWatch alarm dimension names whose values are instance IDs (for example `InstanceId`); read from `cloudwatch` alerts only.',
        maxItems: 8,
      }),
    ),
    tagSelector: Type.Optional(
      StringMap({
        description:
          'Running instances carrying all these EC2 tags (like `tag:Environment=prod`). With no label or dimension source they are the ' +
          'targets; with one, every named instance must also carry these tags. Values may use templates (`{{ labels.service }}`), ' +
          'which must pass the default allowlist.',
        maxProperties: 10,
      } as KubeSchemaOptions),
    ),
    maxTargets: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 500,
        description:
          "Cap on the instances one request may touch (blast radius); the runbook's scope.maxTargets caps it too. Over it, the request fails.",
      }),
    ),
  },
  { description: 'How EC2 instance IDs are derived from an alert.' },
);

export const STATISTICS = ['Average', 'Sum', 'Minimum', 'Maximum', 'SampleCount'] as const;
export const COMPARISONS = ['>', '>=', '<', '<='] as const;
/** What an `agentOnline` guard does when an agent is not Online. */
export const AGENT_GUARD_ACTIONS = ['Skip', 'Fail'] as const;

const MetricQuery = Type.Object({
  name: Type.String({
    pattern: '^[a-z][a-zA-Z0-9_]*$',
    maxLength: 63,
    description: 'How guards and templates refer to this metric (`{{ enrichment.cpu }}`).',
  }),
  namespace: Type.String({ minLength: 1, maxLength: 255, description: 'CloudWatch namespace, e.g. `AWS/EC2` or `CWAgent`.' }),
  metricName: Type.String({ minLength: 1, maxLength: 255, description: 'CloudWatch metric name, e.g. `CPUUtilization`.' }),
  dimensions: Type.Optional(
    StringMap({
      description:
        'Dimension name to value. A value of `{{ instance.id }}` queries the metric once per target instance. Default: `InstanceId: {{ instance.id }}`.',
      maxProperties: 30,
    } as KubeSchemaOptions),
  ),
  statistic: Type.Optional(
    StringEnum(STATISTICS, { default: 'Average', description: 'How the datapoints of each period are aggregated.' }),
  ),
  periodSeconds: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 86400,
      default: 60,
      description: 'Datapoint period: 1, 5, 10, 20 or 30 (high-resolution metrics), or a multiple of 60, as GetMetricData requires.',
      'x-kubernetes-validations': [
        { rule: 'self in [1, 5, 10, 20, 30] || self % 60 == 0', message: 'periodSeconds must be 1, 5, 10, 20, 30 or a multiple of 60' },
      ],
    } as KubeSchemaOptions),
  ),
  lookback: Type.Optional(Duration({ default: '10m', description: 'How far back to read datapoints.' })),
});

const Guard = Type.Object(
  {
    metric: Type.Optional(
      Type.String({ description: 'Name of a metric in `enrichment.metrics`; its mean over the lookback is compared.' }),
    ),
    operator: Type.Optional(
      StringEnum(COMPARISONS, { description: 'How the mean compares to threshold for the guard to pass (`mean < threshold`).' }),
    ),
    threshold: Type.Optional(Type.Number({ description: 'The value the metric mean is compared with.' })),
    tag: Type.Optional(
      Type.Object(
        {
          key: Type.String({ minLength: 1, maxLength: 128, description: 'The EC2 tag key.' }),
          value: Type.Optional(Type.String({ maxLength: 256, description: 'The value it must have; any value when omitted.' })),
        },
        { description: 'The instance must carry this tag (with this value, when given).' },
      ),
    ),
    agentOnline: Type.Optional(
      StringEnum(AGENT_GUARD_ACTIONS, {
        description:
          "Every target's SSM agent must be Online (DescribeInstanceInformation PingStatus). `Skip`: otherwise the request is Skipped " +
          '(reason Guard), as for the other guards. `Fail`: it ends Failed, for a fleet where an unreachable agent is itself a fault. ' +
          'Either way nothing is sent.',
      }),
    ),
  },
  {
    description:
      'A condition every target must meet, or the request is Skipped (reason Guard). Give exactly one of metric+operator+threshold, tag, or agentOnline.',
    'x-kubernetes-validations': [
      {
        rule: '(has(self.metric) ? 1 : 0) + (has(self.tag) ? 1 : 0) + (has(self.agentOnline) ? 1 : 0) == 1',
        message: 'a guard checks exactly one of a metric, a tag or the agent',
      },
      { rule: '!has(self.metric) || (has(self.operator) && has(self.threshold))', message: 'a metric guard needs operator and threshold' },
    ],
  } as KubeSchemaOptions,
);

const Enrichment = Type.Object(
  {
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
    guards: Type.Optional(
      Type.Array(Guard, {
        maxItems: 20,
        description: 'Conditions checked on the enriched facts before anything is planned; all must hold.',
      }),
    ),
    optOutTag: Type.Optional(
      Type.Object(
        {
          key: Type.String({ minLength: 1, maxLength: 128, description: 'The EC2 tag key.' }),
          value: Type.String({ maxLength: 256, description: 'The value that opts an instance out.' }),
        },
        {
          description:
            'One more tag that keeps instances out of this policy. It adds to the cluster administrator’s opt-out tag ' +
            `(the controller's --opt-out-tag, default ${DEFAULT_OPT_OUT_TAG.key}=${DEFAULT_OPT_OUT_TAG.value}) and never replaces it: ` +
            'an instance carrying either is never touched.',
        },
      ),
    ),
  },
  {
    description:
      'What the controller learns about the targets before it plans (EC2 tags, SSM agent, CloudWatch metrics), and the guards it checks.',
  },
);

export const NOTIFY_PHASES = [
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

/** The verdicts of verification (spec.verify) a policy may announce besides phases. */
export const NOTIFY_VERDICTS = ['Verified', 'Ineffective'] as const;

/** What `notify.on` may name: a phase entered, or a verification verdict. */
export const NOTIFY_ON = [...NOTIFY_PHASES, ...NOTIFY_VERDICTS] as const;
export type NotifyOn = (typeof NOTIFY_ON)[number];

const Notify = Type.Object(
  {
    topicArn: Type.String({ pattern: TOPIC_ARN_PATTERN, maxLength: 300, description: 'SNS topic told about the chosen transitions.' }),
    on: Type.Array(StringEnum(NOTIFY_ON), {
      minItems: 1,
      maxItems: NOTIFY_ON.length,
      'x-kubernetes-list-type': 'set',
      description:
        'Phases whose entry is announced on the topic, and the verdicts of spec.verify: `Verified` (the remediation worked) and ' +
        '`Ineffective` (it succeeded, but the alert kept firing).',
    } as KubeSchemaOptions),
  },
  { description: "Announce transitions of this policy's requests on an SNS topic." },
);

const Approval = Type.Object(
  {
    mode: Type.Optional(
      StringEnum(APPROVAL_MODES, {
        description:
          "Auto proceeds without a person, and only up to the runbook's maxAutoApprovedRisk. Default: Auto for Low risk, Manual otherwise.",
      }),
    ),
    approvers: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 256 }), {
        description: 'User names allowed to approve. Anyone holding the approver role when omitted.',
        maxItems: 64,
      }),
    ),
    timeout: Type.Optional(
      Duration({ default: DEFAULTS.approvalTimeout, description: 'How long a request may wait for approval before it expires.' }),
    ),
  },
  { description: 'Whether a person must approve each request, who may, and for how long it waits.' },
);

const MaintenanceWindow = Type.Object({
  schedule: Type.String({
    minLength: 9,
    maxLength: 128,
    description: 'Cron expression of when the window opens: 5 fields (e.g. `0 2 * * 6`), or 6 with seconds first (`30 0 2 * * 6`).',
  }),
  duration: Duration({ description: 'How long the window stays open, e.g. `4h`.' }),
  timeZone: Type.Optional(
    Type.String({ maxLength: 64, default: 'UTC', description: 'IANA time zone of the schedule, e.g. `Europe/Berlin`.' }),
  ),
});

/** What a request does when one of its instances is being remediated by another request (of any policy or namespace). */
export const WHEN_INSTANCE_BUSY = ['Wait', 'Skip'] as const;

const RolloutOverride = Type.Object(
  {
    waves: Type.Optional(
      Type.Array(
        Type.Object({
          size: Type.String({
            pattern: SSM_MAX_CONCURRENCY_PATTERN,
            maxLength: 7,
            description: 'A count from 1, or 1% to 100% of the targets.',
          }),
        }),
        {
          minItems: 1,
          maxItems: MAX_ROLLOUT_WAVES,
          description: "Wave sizes; each wave is the smaller of this and the runbook's wave at the same position (the last size repeats).",
        },
      ),
    ),
    pauseBetweenWaves: Type.Optional(Duration({ description: "A pause between waves; the longer of this and the runbook's applies." })),
    maxConcurrency: Type.Optional(
      Type.String({
        pattern: SSM_MAX_CONCURRENCY_PATTERN,
        maxLength: 7,
        description: "Instances running at once over the fleet; the smaller of this and the runbook's applies.",
      }),
    ),
    maxErrors: Type.Optional(
      Type.String({
        pattern: SSM_MAX_ERRORS_PATTERN,
        maxLength: 7,
        description: "Failed instances the fleet may have; the smaller of this and the runbook's applies.",
      }),
    ),
  },
  {
    description:
      "Make the runbook's rollout more cautious, never less: smaller waves, a longer pause, lower concurrency, fewer errors. " +
      "Each value is compared with the runbook's after percentages are resolved against the targets (docs/rollouts.md).",
  },
);

const Safety = Type.Object(
  {
    dryRun: Type.Optional(Type.Boolean({ description: 'Record what would be sent, send nothing.' })),
    suspend: Type.Optional(Type.Boolean({ description: 'Skip every request of this policy.' })),
    cooldown: Type.Optional(
      Duration({ description: 'Per target: skip a request if the same policy executed on any of its instances this recently.' }),
    ),
    rateLimit: Type.Optional(
      Type.Object(
        {
          maxExecutions: Type.Integer({ minimum: 1, maximum: 10000, description: 'Executions allowed in any window.' }),
          window: Duration({ description: 'The length of the sliding window, e.g. `1h`.' }),
        },
        { description: 'Per policy: at most maxExecutions executions in any sliding window; more are skipped.' },
      ),
    ),
    circuitBreaker: Type.Optional(
      Type.Object(
        {
          maxConsecutiveFailures: Type.Integer({
            minimum: 1,
            maximum: 100,
            description: 'Failed executions in a row that open the breaker (an ineffective one, see verify, counts as failed).',
          }),
        },
        {
          description:
            'After this many consecutive failed executions the policy stops executing until a person resumes it (`kubectl remediator resume`).',
        },
      ),
    ),
    maintenanceWindows: Type.Optional(
      Type.Object(
        {
          mode: StringEnum(['OnlyDuring', 'NeverDuring'] as const, {
            description: 'OnlyDuring: execute only inside a window. NeverDuring: never inside one (a change freeze).',
          }),
          windows: Type.Array(MaintenanceWindow, {
            minItems: 1,
            maxItems: 16,
            description: 'The windows; a time is inside when it is inside any of them.',
          }),
        },
        {
          description:
            'When executions may happen. A request that may not run yet stays Approved until it may, or ends Expired once the approval timeout passed.',
        },
      ),
    ),
    rollout: Type.Optional(RolloutOverride),
    whenInstanceBusy: Type.Optional(
      StringEnum(WHEN_INSTANCE_BUSY, {
        default: 'Wait',
        description:
          'An instance may be remediated by one request at a time, across policies and namespaces. Wait (default): a request with a ' +
          'busy instance stays Approved until it is free (or its approval timeout passes); Skip: it is skipped (reason InstanceBusy).',
      }),
    ),
  },
  {
    description:
      'Brakes on execution: dry run, suspend, cooldown, rate limit, circuit breaker, maintenance windows, rollout and instance locks.',
  },
);

const Retention = Type.Object(
  {
    ttlAfterFinished: Type.Optional(
      Duration({
        description:
          "Delete a request this long after it reached an end phase (like a Job's ttlSecondsAfterFinished). Default: the controller's --retention-ttl-after-finished (24h).",
      }),
    ),
    historyLimit: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 10000,
        description:
          "Keep at most this many finished requests of this policy; older ones are deleted first. Default: the controller's --retention-history-limit (100).",
      }),
    ),
  },
  {
    description:
      "How long finished requests are kept. Cooldown, rate limit and the circuit breaker read the controller's execution ledger, not the requests, so deleting them resets nothing.",
  },
);

/** Bounds of verify.within: long enough for an alert to resolve, short enough to hold a request's deletion. */
export const VERIFY_WITHIN_BOUNDS = { min: '5s', max: '24h' } as const;

const Verify = Type.Object(
  {
    within: Duration({
      description:
        `How long after the remediation succeeded its alert has to resolve (${VERIFY_WITHIN_BOUNDS.min} to ${VERIFY_WITHIN_BOUNDS.max}). ` +
        'Until then the request is Verified=Unknown (reason Verifying); a resolution seen by the intake makes it Verified=True ' +
        '(AlertResolved). Without one by then, the metric (when given) decides; otherwise Verified=False (Ineffective), which ' +
        'counts as a failed execution for the circuit breaker.',
      'x-kubernetes-validations': [
        {
          rule: `duration(self) >= duration('${VERIFY_WITHIN_BOUNDS.min}') && duration(self) <= duration('${VERIFY_WITHIN_BOUNDS.max}')`,
          message: `verify.within must be between ${VERIFY_WITHIN_BOUNDS.min} and ${VERIFY_WITHIN_BOUNDS.max}`,
        },
      ],
    } as KubeSchemaOptions),
    metric: Type.Optional(
      Type.Object(
        {
          name: Type.String({
            maxLength: 63,
            description:
              'A metric of enrichment.metrics (its namespace, name, dimensions, statistic and period); read from the success to the end of within.',
          }),
          operator: StringEnum(COMPARISONS, {
            description: 'How the mean must compare to threshold for the metric to count as recovered.',
          }),
          threshold: Type.Number({ description: 'The value the mean is compared with.' }),
        },
        {
          description:
            "Re-read a metric once within has passed and the alert has not resolved: when its mean since the success meets the comparison on every target, Verified=True (MetricRecovered). Choose within to span several of the metric's periods.",
        },
      ),
    ),
  },
  {
    description:
      "Opt-in check, after each successful execution, that it worked: the alert that triggered it must resolve within a time, or a metric recover. Alert resolutions need a sender that reports them (Alertmanager's send_resolved, CloudWatch OK actions); see docs/verification.md.",
  },
);

const RunbookRef = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 253, description: 'Name of the cluster-scoped Runbook.' }) },
  {
    description:
      'The Runbook (cluster-scoped, written by cluster administrators) this policy runs; its namespace must be granted it. Required.',
  },
);

/**
 * `spec.action`: the inline action of AlertPolicies written before Runbooks existed (chart
 * and CRDs up to commit b9539a7). It stays in the schema, kept as stored and never run,
 * for three reasons: the API server prunes fields its schema does not know, so without it
 * the first write after a CRD upgrade (a status update included) would erase the only copy
 * of what the policy did, and `kubectl remediator migrate` could not read it; re-applying
 * the old YAML must not fail with "unknown field" but say what to do; and the controller
 * must be able to tell an old policy (Ready=False, MigrationRequired) from a broken one.
 * A new policy cannot carry it (a rule checked on create, `optionalOldSelf`), nor can
 * a policy have both. For the same reason spec.runbookRef is optional to the OpenAPI
 * schema and required by a rule instead: the API server refuses every update (a label
 * included) of an object missing a `required` field, but a rule that passes for objects
 * with the old action leaves them editable, as measured on kube-apiserver 1.35.
 */
const DeprecatedInlineAction = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  'x-kubernetes-preserve-unknown-fields': true,
  description:
    'Deprecated, never run: the inline action (ssm, sns, notify) of policies written before Runbooks. A policy that has it is ' +
    'Ready=False (MigrationRequired) until `kubectl remediator migrate` moves it into a Runbook a cluster administrator reviews, ' +
    'and the policy names that Runbook in spec.runbookRef (docs/upgrading.md). New policies cannot set it.',
});

export const AlertPolicySpec = Type.Object(
  {
    match: Type.Optional(Match),
    targets: Targets,
    enrichment: Type.Optional(Enrichment),
    // Optional to the schema only: the spec's first rule requires it of every policy but
    // those stored with the old inline action (see DeprecatedInlineAction).
    runbookRef: Type.Optional(RunbookRef),
    inputs: Type.Optional(
      StringMap({
        maxProperties: 32,
        description:
          "Values for the inputs the runbook declares, as templates over the alert (`{{ labels.service }}`); each rendered value must pass the runbook input's rules.",
      } as KubeSchemaOptions),
    ),
    notify: Type.Optional(Notify),
    action: Type.Optional(DeprecatedInlineAction),
    risk: Type.Optional(
      StringEnum(RISK_LEVELS, {
        description: "Low, Medium, High or Critical; never below the runbook's minRisk. Default: the runbook's minRisk.",
      }),
    ),
    approval: Type.Optional(Approval),
    safety: Type.Optional(Safety),
    retention: Type.Optional(Retention),
    verify: Type.Optional(Verify),
  },
  {
    description: 'Which alerts to act on, on which instances, with which Runbook, and how carefully.',
    'x-kubernetes-validations': [
      {
        rule: 'has(self.runbookRef) || has(self.action)',
        message: 'spec.runbookRef is required: the name of the Runbook this policy runs',
        reason: 'FieldValueRequired',
        fieldPath: '.runbookRef',
      },
      {
        // optionalOldSelf: also checked on create, where there is no old object.
        rule: '!has(self.action) || (oldSelf.hasValue() && has(oldSelf.value().action))',
        optionalOldSelf: true,
        message:
          'spec.action, the inline action of the schema before Runbooks, cannot be added: a cluster administrator puts the action ' +
          'in a Runbook and the policy names it in spec.runbookRef (`kubectl remediator migrate` does this for stored policies, ' +
          'docs/upgrading.md)',
        fieldPath: '.action',
      },
      {
        rule: '!has(self.action) || !has(self.runbookRef)',
        message:
          'spec.action is the inline action of the schema before Runbooks and never runs: remove it, the policy runs spec.runbookRef ' +
          '(docs/upgrading.md)',
        fieldPath: '.action',
      },
      {
        rule:
          '!has(self.verify) || !has(self.verify.metric) || (has(self.enrichment) && has(self.enrichment.metrics) && ' +
          'self.enrichment.metrics.exists(m, m.name == self.verify.metric.name))',
        message: 'verify.metric.name must name a metric of enrichment.metrics',
        fieldPath: '.verify.metric.name',
      },
    ],
  } as KubeSchemaOptions,
);

export const AlertPolicyStatus = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ description: 'The generation the controller last validated.' })),
    conditions: Type.Optional(
      Conditions(
        '`Ready`: True when the policy is valid and its namespace may use the runbook; False names what to fix, with `Stalled`=True ' +
          '(the kstatus condition GitOps health checks read as a final failure). `Suspended`: True ' +
          'while the circuit breaker is open (reason CircuitOpen) or spec.safety.suspend is set (reason SuspendedBySpec).',
      ),
    ),
    matched: Type.Optional(
      Type.Integer({ minimum: 0, description: 'RemediationRequests of this policy that exist now (deleted ones no longer count).' }),
    ),
    executed: Type.Optional(Type.Integer({ minimum: 0, description: 'Of those, the ones whose command was sent or message published.' })),
    succeeded: Type.Optional(Type.Integer({ minimum: 0, description: 'Of those, the ones in phase Succeeded.' })),
    failed: Type.Optional(Type.Integer({ minimum: 0, description: 'Of those, the ones in phase Failed.' })),
    skipped: Type.Optional(Type.Integer({ minimum: 0, description: 'Of those, the ones in phase Skipped.' })),
    lastTriggerTime: Type.Optional(Timestamp({ description: 'When the newest of its requests was created.' })),
    consecutiveFailures: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          'Failed executions in a row, ineffective ones (verify) included, from the execution ledger (a success or a circuit reset restarts the count).',
      }),
    ),
    circuitBreaker: Type.Optional(
      Type.Object(
        {
          open: Type.Boolean({ description: 'True: the policy executes nothing until a person resumes it (`kubectl remediator resume`).' }),
          openedAt: Type.Optional(Timestamp({ description: 'When the breaker opened.' })),
          message: Type.Optional(Type.String({ description: 'Why it opened.' })),
          resetToken: Type.Optional(
            Type.String({
              description:
                'What a reset must carry (annotation remediator.dev/circuit-reset-token, with remediator.dev/circuit-reset-at): a ' +
                'random value issued under the admission enforcement in force, so a reset written while nothing checked it never ' +
                'counts (ADR 0011). Absent while approvals are not enforced in the namespace: no reset counts then.',
            }),
          ),
        },
        { description: 'The circuit breaker, when spec.safety.circuitBreaker is set.' },
      ),
    ),
  },
  { description: 'What the controller observed; written only by the controller.' },
);

export const AlertPolicySchema = Type.Object({
  apiVersion: Type.Optional(Type.String()),
  kind: Type.Optional(Type.String()),
  metadata: Type.Optional(ObjectMeta),
  spec: AlertPolicySpec,
  status: Type.Optional(AlertPolicyStatus),
});

/**
 * The spec the controllers work with: runbookRef present, no inline action. The informer
 * caches hand out objects as stored; src/controllers/stored-shape.ts checks each against
 * this before a reconciler reads it.
 */
export type AlertPolicySpec = Omit<Static<typeof AlertPolicySpec>, 'runbookRef' | 'action'> & { runbookRef: Static<typeof RunbookRef> };
export type AlertPolicyStatus = Static<typeof AlertPolicyStatus>;
export type AlertPolicy = Omit<Static<typeof AlertPolicySchema>, 'spec'> & { spec: AlertPolicySpec };
export type LabelMatcher = Static<typeof LabelMatcher>;
export type MetricQuery = Static<typeof MetricQuery>;
export type Guard = Static<typeof Guard>;
export type Safety = Static<typeof Safety>;
export type MaintenanceWindow = Static<typeof MaintenanceWindow>;
export type Retention = Static<typeof Retention>;
export type Verify = Static<typeof Verify>;
export type RolloutOverride = Static<typeof RolloutOverride>;
export type WhenInstanceBusy = (typeof WHEN_INSTANCE_BUSY)[number];

/**
 * Annotation a person sets (to the current time) to close an open circuit breaker: failures before it no longer count.
 * The admission policy lets only holders of the approver verb set it; the controller ignores a time in the future.
 */
export const CIRCUIT_RESET_ANNOTATION = 'remediator.dev/circuit-reset-at';

/**
 * Set together with the reset time to status.circuitBreaker.resetToken: the admission policy checks it equals the token
 * in status when it is written, and the controller honours the reset only while the token's enforcement epoch is current.
 */
export const CIRCUIT_RESET_TOKEN_ANNOTATION = 'remediator.dev/circuit-reset-token';

/**
 * Who last changed the policy's spec. The admission policy makes every create and every spec change set it to the
 * writer's own user name; the plan records it and four eyes refuses that user as approver of High and Critical risk.
 */
export const CHANGED_BY_ANNOTATION = 'remediator.dev/changed-by';
export type AlertSource = (typeof ALERT_SOURCES)[number];
