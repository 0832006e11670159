/**
 * AlertPolicy (`remediator.dev/v1alpha1`, short name `ap`): which alerts a policy
 * matches, how their targets are found and enriched, what it does, and how carefully.
 *
 * The schema below is the API. Types are derived from it, the CRD is generated from
 * it, and the API server enforces it (OpenAPI plus CEL), so the three cannot drift.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Conditions, Duration, ObjectMeta, StringEnum, Timestamp, type KubeSchemaOptions } from './schema.js';

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
  op: StringEnum(MATCH_OPERATORS, { default: '=' }),
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
    maxTargets: Type.Optional(Type.Integer({
      minimum: 1,
      maximum: 500,
      default: DEFAULTS.maxTargets,
      description: 'Hard cap on the number of instances one request may touch (blast radius). A request over it fails.',
    })),
  },
  { description: 'How EC2 instance IDs are derived from an alert.' },
);

const Enrichment = Type.Object({
  tagKeys: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
      description: 'EC2 tag keys to record on the request; all tags when omitted.',
      maxItems: 64,
    }),
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

const Action = Type.Object(
  {
    ssm: Type.Optional(SsmAction),
  },
  {
    'x-kubernetes-validations': [{ rule: 'has(self.ssm)', message: 'action needs `ssm`' }],
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

const Safety = Type.Object({
  dryRun: Type.Optional(Type.Boolean({ description: 'Record what would be sent, send nothing.' })),
  suspend: Type.Optional(Type.Boolean({ description: 'Skip every request of this policy.' })),
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
export type RiskLevel = (typeof RISK_LEVELS)[number];
export type AlertSource = (typeof ALERT_SOURCES)[number];
