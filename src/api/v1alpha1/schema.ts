/**
 * Schema builders for Kubernetes structural OpenAPI v3.
 *
 * The CRD schemas are the single source of truth for the API: every type in this
 * package is derived from its schema with TypeBox's `Static`, and the CRD YAML is
 * generated from the same objects (`npm run manifests`). TypeBox's own `Record`,
 * literal unions and `Date` emit keywords a structural schema forbids
 * (`patternProperties`, `const`, `anyOf` of constants), so the few shapes that need
 * them are built here with `Type.Unsafe` around plain Kubernetes-legal schema.
 */
import { Type, type Static, type TSchema, type SchemaOptions, type TUnsafe } from '@sinclair/typebox';
import { DURATION_PATTERN } from './duration.js';

export interface CelRule {
  rule: string;
  message: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  fieldPath?: string;
  /** Evaluate a transition rule on create too, with `oldSelf` an optional (CEL `optional`) that has no value there. */
  optionalOldSelf?: boolean;
}

/** Options a structural schema may carry beyond JSON Schema. */
export interface KubeSchemaOptions extends SchemaOptions {
  'x-kubernetes-validations'?: CelRule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

/** A string restricted to the given values (`enum`, not `anyOf` of `const`). */
export function StringEnum<const T extends readonly string[]>(values: T, options: KubeSchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: [...values] });
}

/** A map of string to string (`additionalProperties`, not `patternProperties`). */
export function StringMap(options: KubeSchemaOptions = {}): TUnsafe<Record<string, string>> {
  return Type.Unsafe<Record<string, string>>({
    ...options,
    type: 'object',
    additionalProperties: { type: 'string' },
  });
}

/** An RFC 3339 timestamp, kept as a string on the wire and in TypeScript. */
export function Timestamp(options: KubeSchemaOptions = {}): TUnsafe<string> {
  return Type.Unsafe<string>({ ...options, type: 'string', format: 'date-time' });
}

/**
 * A duration such as `30s`, `5m` or `1h30m` (duration.ts): the API server rejects what
 * the controller could not read.
 */
export function Duration(options: KubeSchemaOptions = {}): TUnsafe<string> {
  return Type.Unsafe<string>({ ...options, type: 'string', pattern: DURATION_PATTERN });
}

/** `metav1.LabelSelector`, as upstream defines it (matchLabels and matchExpressions). */
export function LabelSelector(options: KubeSchemaOptions = {}) {
  return Type.Object(
    {
      matchLabels: Type.Optional(StringMap({ description: 'Labels that must all be present with these values.' })),
      matchExpressions: Type.Optional(
        Type.Array(
          Type.Object({
            key: Type.String({ minLength: 1, maxLength: 317, description: 'The label key.' }),
            operator: StringEnum(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const, { description: 'How the key relates to the values.' }),
            values: Type.Optional(Type.Array(Type.String({ maxLength: 63 }), { maxItems: 64, description: 'For In and NotIn.' })),
          }),
          { maxItems: 16, description: 'Requirements that must all hold.' },
        ),
      ),
    },
    options,
  );
}
export type LabelSelector = Static<ReturnType<typeof LabelSelector>>;

/** `metav1.Condition`, exactly as upstream defines it (descriptions shortened). */
export const Condition = Type.Object({
  type: Type.String({
    maxLength: 316,
    pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
    description: 'The aspect this condition reports on, in CamelCase (for example `Ready`).',
  }),
  status: StringEnum(['True', 'False', 'Unknown'] as const, { description: 'True, False or Unknown.' }),
  observedGeneration: Type.Optional(
    Type.Integer({
      minimum: 0,
      description: 'The `.metadata.generation` the condition was set from; older than the current one means it may be stale.',
    }),
  ),
  lastTransitionTime: Timestamp({ description: 'When the status last changed (not when the condition was last written).' }),
  reason: Type.String({
    minLength: 1,
    maxLength: 1024,
    pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
    description: 'Why, in one CamelCase word that tools and alerts can match on.',
  }),
  message: Type.String({ maxLength: 32768, description: 'Why, in a sentence for people.' }),
});

/** The `conditions` list of a status; `description` names the condition types the kind uses. */
export function Conditions(description: string) {
  return Type.Array(Condition, {
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
    maxItems: 16,
    description,
  } as KubeSchemaOptions);
}

export const ObjectMeta = Type.Unsafe<{
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  managedFields?: unknown[];
}>({ type: 'object' });

/** Strip TypeBox's symbol keys by a JSON round trip: what remains is the plain schema. */
export function toOpenApi(schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}
