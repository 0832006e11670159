/**
 * Schemas of everything the intake accepts, checked before any field is read.
 *
 * Validation is TypeBox compiled with `TypeCompiler` (from `@sinclair/typebox`, which
 * already defines the API): no new dependency, one schema language across the project,
 * static types derived from the same objects, and a checker compiled once at load that
 * reports every error with its JSON path. ajv would add a dependency for nothing we need.
 *
 * Limits mirror the RemediationRequest `spec.alert` schema (name ≤ 256, fingerprint ≤
 * 128, startsAt ≤ 64) so that anything accepted here is also accepted by the API
 * server: a client mistake must be a 4xx here, never a 5xx from a refused create.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { ValueError } from '@sinclair/typebox/errors';
import { IntakeError } from './errors.js';

export const LIMITS = {
  /** Request bodies are read up to this many bytes; more is a 413. */
  maxBodyBytes: 1024 * 1024,
  alertName: 256,
  fingerprint: 128,
  timestamp: 64,
  labelName: 256,
  labelValue: 4096,
  annotationValue: 32768,
  labelsPerAlert: 128,
  defaultMaxAlerts: 500,
} as const;

const AlertStatus = Type.Union([Type.Literal('firing'), Type.Literal('resolved')]);

const Labels = Type.Record(Type.String({ pattern: `^.{1,${LIMITS.labelName}}$` }), Type.String({ maxLength: LIMITS.labelValue }), {
  maxProperties: LIMITS.labelsPerAlert,
  additionalProperties: false,
});
const Annotations = Type.Record(
  Type.String({ pattern: `^.{1,${LIMITS.labelName}}$` }),
  Type.String({ maxLength: LIMITS.annotationValue }),
  {
    maxProperties: LIMITS.labelsPerAlert,
    additionalProperties: false,
  },
);

/**
 * Prometheus Alertmanager webhook payload, version 4 (`notify/webhook` in Alertmanager).
 * Unknown fields are allowed, so a newer Alertmanager adding one keeps working; every
 * field we know is type-checked.
 */
export const AlertmanagerAlert = Type.Object({
  status: AlertStatus,
  labels: Labels,
  annotations: Type.Optional(Annotations),
  startsAt: Type.String({ minLength: 1, maxLength: LIMITS.timestamp }),
  endsAt: Type.Optional(Type.String({ maxLength: LIMITS.timestamp })),
  generatorURL: Type.Optional(Type.String({ maxLength: 4096 })),
  fingerprint: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.fingerprint })),
});

export const AlertmanagerPayload = Type.Object({
  version: Type.String({ maxLength: 16 }),
  groupKey: Type.Optional(Type.String({ maxLength: 65536 })),
  truncatedAlerts: Type.Optional(Type.Integer({ minimum: 0 })),
  status: AlertStatus,
  receiver: Type.String({ maxLength: 1024 }),
  groupLabels: Type.Optional(Labels),
  commonLabels: Type.Optional(Labels),
  commonAnnotations: Type.Optional(Annotations),
  externalURL: Type.Optional(Type.String({ maxLength: 4096 })),
  alerts: Type.Array(AlertmanagerAlert),
});

/** `POST /v1/alerts`: one alert. Unknown fields are refused, so a typo (`lables`) is an error, not a silent no-op. */
export const GenericAlert = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: LIMITS.alertName }),
    labels: Type.Optional(Labels),
    annotations: Type.Optional(Annotations),
    status: Type.Optional(AlertStatus),
    fingerprint: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.fingerprint })),
    startsAt: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.timestamp })),
  },
  { additionalProperties: false },
);

/** The JSON document SNS POSTs to an HTTP(S) subscription (all three message types). */
export const SnsEnvelope = Type.Object({
  Type: Type.String({ maxLength: 64 }),
  MessageId: Type.String({ minLength: 1, maxLength: 256 }),
  TopicArn: Type.String({ minLength: 1, maxLength: 1024 }),
  Subject: Type.Optional(Type.Union([Type.String({ maxLength: 1024 }), Type.Null()])),
  Message: Type.String(),
  Timestamp: Type.String({ minLength: 1, maxLength: LIMITS.timestamp }),
  SignatureVersion: Type.Optional(Type.String({ maxLength: 8 })),
  Signature: Type.Optional(Type.String({ maxLength: 4096 })),
  SigningCertURL: Type.Optional(Type.String({ maxLength: 2048 })),
  SubscribeURL: Type.Optional(Type.String({ maxLength: 4096 })),
  Token: Type.Optional(Type.String({ maxLength: 4096 })),
  UnsubscribeURL: Type.Optional(Type.String({ maxLength: 4096 })),
});

const NullableString = (maxLength: number) => Type.Union([Type.String({ maxLength }), Type.Null()]);

/** A CloudWatch alarm state change, the `Message` of an SNS notification from an alarm action. */
export const CloudWatchAlarm = Type.Object({
  AlarmName: Type.String({ minLength: 1, maxLength: 255 }),
  AlarmDescription: Type.Optional(NullableString(LIMITS.annotationValue)),
  AWSAccountId: Type.Optional(Type.String({ maxLength: 64 })),
  NewStateValue: Type.String({ maxLength: 64 }),
  NewStateReason: Type.Optional(NullableString(LIMITS.annotationValue)),
  StateChangeTime: Type.String({ minLength: 1, maxLength: LIMITS.timestamp }),
  Region: Type.Optional(NullableString(256)),
  AlarmArn: Type.String({ minLength: 1, maxLength: 2048 }),
  OldStateValue: Type.Optional(NullableString(64)),
  Trigger: Type.Optional(
    Type.Object({
      MetricName: Type.Optional(NullableString(255)),
      Namespace: Type.Optional(NullableString(255)),
      Dimensions: Type.Optional(
        Type.Array(
          Type.Object({
            name: Type.String({ minLength: 1, maxLength: LIMITS.labelName }),
            value: Type.String({ maxLength: LIMITS.labelValue }),
          }),
          { maxItems: 64 },
        ),
      ),
    }),
  ),
});

/**
 * Grafana alerting's webhook contact point (`version: "1"`): Grafana's embedded
 * Alertmanager's notification plus Grafana's own fields (`orgId`, `state`, `title`,
 * `message`, per alert `values`, `silenceURL`, `dashboardURL`, ...), which are tolerated.
 */
export const GrafanaPayload = Type.Object({
  version: Type.String({ maxLength: 16 }),
  receiver: Type.String({ maxLength: 1024 }),
  status: AlertStatus,
  orgId: Type.Optional(Type.Integer()),
  alerts: Type.Array(AlertmanagerAlert),
});

/**
 * The Datadog webhook payload documented in docs/intake.md, built from Datadog's template
 * variables. Datadog substitutes every variable as a string (an unset one as ""), so
 * every field is a string; unknown fields are tolerated, so a payload with extra
 * variables keeps working.
 */
export const DatadogPayload = Type.Object({
  alert_id: Type.String({ minLength: 1, maxLength: 64 }),
  alert_transition: Type.String({ minLength: 1, maxLength: 64 }),
  title: Type.String({ maxLength: 1024 }),
  alert_cycle_key: Type.Optional(Type.String({ maxLength: 128 })),
  alert_scope: Type.Optional(Type.String({ maxLength: LIMITS.labelValue })),
  alert_type: Type.Optional(Type.String({ maxLength: 64 })),
  alert_priority: Type.Optional(Type.String({ maxLength: 16 })),
  tags: Type.Optional(Type.String({ maxLength: 16384 })),
  hostname: Type.Optional(Type.String({ maxLength: 256 })),
  date: Type.Optional(Type.String({ maxLength: LIMITS.timestamp })),
  link: Type.Optional(Type.String({ maxLength: 4096 })),
  event_msg: Type.Optional(Type.String({ maxLength: LIMITS.annotationValue })),
});

const PagerDutyReference = Type.Object({
  id: Type.Optional(Type.String({ maxLength: 64 })),
  summary: Type.Optional(Type.String({ maxLength: 1024 })),
});

/** A PagerDuty v3 webhook delivery (`{ "event": ... }`); incident events are read, others acknowledged. */
export const PagerDutyWebhook = Type.Object({
  event: Type.Object({
    id: Type.String({ minLength: 1, maxLength: 128 }),
    event_type: Type.String({ minLength: 1, maxLength: 128 }),
    resource_type: Type.String({ maxLength: 64 }),
    occurred_at: Type.String({ minLength: 1, maxLength: LIMITS.timestamp }),
    data: Type.Object({
      id: Type.String({ minLength: 1, maxLength: 64 }),
      type: Type.Optional(Type.String({ maxLength: 64 })),
      title: Type.Optional(Type.String({ maxLength: 1024 })),
      number: Type.Optional(Type.Integer()),
      status: Type.Optional(Type.String({ maxLength: 64 })),
      incident_key: Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Null()])),
      created_at: Type.Optional(Type.String({ maxLength: LIMITS.timestamp })),
      html_url: Type.Optional(Type.String({ maxLength: 4096 })),
      urgency: Type.Optional(Type.String({ maxLength: 64 })),
      service: Type.Optional(PagerDutyReference),
      priority: Type.Optional(Type.Union([PagerDutyReference, Type.Null()])),
    }),
  }),
});

export type GrafanaPayload = Static<typeof GrafanaPayload>;
export type DatadogPayload = Static<typeof DatadogPayload>;
export type PagerDutyWebhook = Static<typeof PagerDutyWebhook>;
export type AlertmanagerPayload = Static<typeof AlertmanagerPayload>;
export type AlertmanagerAlert = Static<typeof AlertmanagerAlert>;
export type GenericAlert = Static<typeof GenericAlert>;
export type SnsEnvelope = Static<typeof SnsEnvelope>;
export type CloudWatchAlarm = Static<typeof CloudWatchAlarm>;

export const checkers = {
  alertmanager: TypeCompiler.Compile(AlertmanagerPayload),
  generic: TypeCompiler.Compile(GenericAlert),
  sns: TypeCompiler.Compile(SnsEnvelope),
  cloudwatch: TypeCompiler.Compile(CloudWatchAlarm),
  grafana: TypeCompiler.Compile(GrafanaPayload),
  datadog: TypeCompiler.Compile(DatadogPayload),
  pagerduty: TypeCompiler.Compile(PagerDutyWebhook),
};

/** `/alerts/0/labels/a~1b` → `alerts[0].labels["a/b"]`. */
export function jsonPath(pointer: string, root = ''): string {
  if (pointer === '') return root || '(body)';
  let out = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(key)) out += `[${key}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(key)}]`;
  }
  return out;
}

function describe(error: ValueError, root: string): string {
  const path = jsonPath(error.path, root);
  const schema = error.schema as TSchema & { anyOf?: Array<{ const?: unknown }> };
  if (error.message === 'Unexpected property')
    return `${path}: unknown field (or a label/annotation name that is empty or over ${LIMITS.labelName} characters)`;
  if (error.message === 'Expected required property') return `${path}: required field is missing`;
  if (schema.anyOf?.every((s) => s.const !== undefined)) {
    return `${path}: must be one of ${schema.anyOf.map((s) => JSON.stringify(s.const)).join(', ')}`;
  }
  return `${path}: ${error.message.charAt(0).toLowerCase()}${error.message.slice(1)}`;
}

/**
 * Checks `value` against a compiled schema and returns it typed, or throws a 422 that
 * lists (up to five of) the problems by JSON path.
 */
export function validate<T extends TSchema>(checker: TypeCheck<T>, value: unknown, what: string, root = ''): Static<T> {
  if (checker.Check(value)) return value;
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const error of checker.Errors(value)) {
    // A union reports one error per branch; the first per path is the useful one.
    if (seen.has(error.path)) continue;
    seen.add(error.path);
    problems.push(describe(error, root));
    if (problems.length >= 5) break;
  }
  throw new IntakeError(422, `invalid ${what}: ${problems.join('; ')}`, 'bad_request', problems);
}
