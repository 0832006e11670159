/**
 * Objects as the API server stores them may be older than this controller: the API
 * server validates an object when it is written, never again, so an AlertPolicy written
 * before Runbooks existed still has its inline `spec.action` and no `spec.runbookRef`
 * after the CRDs are upgraded, and a request written by an older controller has no
 * `status.plan`. The informer caches hand such objects out typed as the current schema;
 * this file is what makes that typing true. Each reconciler asks it first (one line at
 * the top of its reconcile) and a bad object gets `Ready=False` with a reason of the
 * catalogue (MigrationRequired, StoredShapeInvalid) and a message naming the fields and
 * what to do, instead of a TypeError on every retry.
 *
 * The check walks the same OpenAPI schema the CRD is generated from (types, required
 * fields, enums; values such as patterns are the API server's to judge on the next
 * write), so a field made required in a later release is caught without a rule here.
 * Requests need more than their spec as they progress: a plan once planned, an
 * execution record once executing; a request that started under an older controller is
 * never resumed (nothing is sent again), it ends Failed and says so.
 */
import type { Logger } from 'pino';
import {
  AlertPolicySpec,
  END_PHASES,
  type AlertPolicy,
  type RemediationRequest,
  RemediationRequestSpec,
  RemediationRequestStatus,
  type Runbook,
  RunbookSpec,
  toOpenApi,
} from '../api/v1alpha1/index.js';
import type { EventRecorder } from '../kube/resources.js';
import { isoNow, type Clock } from '../runtime/clock.js';
import type { KubeObject } from '../runtime/informer.js';
import { findCondition, setCondition, type Condition } from '../runtime/conditions.js';
import { withReadinessKstatus } from './kstatus.js';
import type { Transition, Transitions } from './request/transition.js';

/** What the controller may do with a stored object. */
export type StoredShape = { ok: true } | { ok: false; reason: 'MigrationRequired' | 'StoredShapeInvalid'; message: string };

const OK: StoredShape = { ok: true };

interface JsonSchema {
  type?: string;
  required?: string[];
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

const schemaOf = (s: Parameters<typeof toOpenApi>[0]) => toOpenApi(s) as JsonSchema;
const SCHEMAS = {
  policySpec: schemaOf(AlertPolicySpec),
  runbookSpec: schemaOf(RunbookSpec),
  requestSpec: schemaOf(RemediationRequestSpec),
  plan: (schemaOf(RemediationRequestStatus).properties?.['plan'] ?? {}) as JsonSchema,
};

/** At most this many problems are named: the first ones say enough. */
const MAX_PROBLEMS = 5;

function typeProblem(schema: JsonSchema, value: unknown): string | undefined {
  const t = schema.type;
  if (t === undefined) return undefined;
  const actual = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  if (t === 'integer') return Number.isInteger(value) ? undefined : `must be an integer, is ${actual}`;
  if (t === actual) return undefined;
  return `must be ${t === 'array' || t === 'object' || t === 'integer' ? `an ${t}` : `a ${t}`}, is ${actual}`;
}

/**
 * The places where `value` does not have the shape `schema` describes: missing required
 * fields, wrong types, values outside an enum. Unknown fields are not problems (the API
 * server prunes or keeps them as the schema says).
 */
export function shapeProblems(schema: JsonSchema, value: unknown, path: string, out: string[] = []): string[] {
  if (out.length >= MAX_PROBLEMS || schema['x-kubernetes-preserve-unknown-fields']) return out;
  const wrongType = typeProblem(schema, value);
  if (wrongType) {
    out.push(`${path} ${wrongType}`);
    return out;
  }
  if (schema.enum && !schema.enum.includes(value)) out.push(`${path} must be one of ${schema.enum.join(', ')}, is ${String(value)}`);
  if (Array.isArray(value) && schema.items) for (const [i, v] of value.entries()) shapeProblems(schema.items, v, `${path}[${i}]`, out);
  if (schema.type !== 'object' || typeof value !== 'object' || value === null) return out;
  const obj = value as Record<string, unknown>;
  for (const key of schema.required ?? []) if (obj[key] === undefined) out.push(`${path}.${key} is required`);
  for (const [key, sub] of Object.entries(schema.properties ?? {}))
    if (obj[key] !== undefined) shapeProblems(sub, obj[key], `${path}.${key}`, out);
  const extra = schema.additionalProperties;
  if (typeof extra === 'object')
    for (const [key, v] of Object.entries(obj)) if (!schema.properties?.[key]) shapeProblems(extra, v, `${path}.${key}`, out);
  return out.slice(0, MAX_PROBLEMS);
}

const invalid = (what: string, problems: string[], todo: string): StoredShape => ({
  ok: false,
  reason: 'StoredShapeInvalid',
  message: `${what} is stored without the shape this controller needs (written under an older schema): ${problems.join('; ')}. ${todo}`,
});

const verdicts = new WeakMap<object, StoredShape>();
/** Cached per object: an informer never changes an object it handed out, it replaces it. */
function memo(obj: object, judge: () => StoredShape): StoredShape {
  const known = verdicts.get(obj);
  if (known) return known;
  const v = judge();
  verdicts.set(obj, v);
  return v;
}

const nameOf = (o: { metadata?: { namespace?: string; name?: string } }) =>
  o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata?.name ?? '');

/** An AlertPolicy: an inline action (the schema before Runbooks) needs migrating; anything else missing, re-applying. */
export function alertPolicyShape(policy: AlertPolicy): StoredShape {
  return memo(policy, () => {
    const spec = policy.spec as unknown as Record<string, unknown> | undefined;
    const ns = policy.metadata?.namespace ?? '';
    const name = policy.metadata?.name ?? '';
    if (spec && typeof spec === 'object' && spec['action'] !== undefined) {
      return {
        ok: false,
        reason: 'MigrationRequired',
        message:
          spec['runbookRef'] === undefined
            ? `AlertPolicy ${ns}/${name} has an inline spec.action and no spec.runbookRef (the schema before Runbooks): it runs ` +
              `nothing until migrated. Run \`kubectl remediator migrate ${name} -n ${ns}\`: it writes a Runbook for a cluster ` +
              'administrator to review and this policy using it (docs/upgrading.md)'
            : `AlertPolicy ${ns}/${name} has both spec.runbookRef and the old inline spec.action, which never runs: remove spec.action ` +
              '(docs/upgrading.md)',
      };
    }
    const problems = shapeProblems(SCHEMAS.policySpec, spec, 'spec');
    // Required by a rule, not by the OpenAPI schema (alertpolicy.ts says why).
    if (problems.length === 0 && spec?.['runbookRef'] === undefined) problems.push('spec.runbookRef is required');
    return problems.length === 0
      ? OK
      : invalid(`AlertPolicy ${ns}/${name}`, problems, 'Re-apply it with those fields (docs/upgrading.md).');
  });
}

export function runbookShape(runbook: Runbook): StoredShape {
  return memo(runbook, () => {
    const problems = shapeProblems(SCHEMAS.runbookSpec, runbook.spec, 'spec');
    return problems.length === 0
      ? OK
      : invalid(`Runbook ${nameOf(runbook)}`, problems, 'A cluster administrator re-applies it with those fields (docs/upgrading.md).');
  });
}

/** Phases whose handlers read status.plan (planning.ts writes it before a request leaves Pending). */
const PLANNED = new Set(['AwaitingApproval', 'Approved', 'Executing']);

/** A request, with the policy it names: what the phase it is in needs. Ended requests need nothing more. */
export function requestShape(rr: RemediationRequest, policy: AlertPolicy | undefined): StoredShape {
  const phase = rr.status?.phase ?? 'Pending';
  if (END_PHASES.has(phase)) return OK;
  const started = phase === 'Executing';
  const problems = shapeProblems(SCHEMAS.requestSpec, rr.spec, 'spec');
  if (PLANNED.has(phase)) {
    if (rr.status?.plan === undefined) problems.push(`status.plan is missing in phase ${phase}`);
    else shapeProblems(SCHEMAS.plan, rr.status.plan, 'status.plan', problems);
  }
  if (problems.length > 0) {
    return invalid(
      `RemediationRequest ${nameOf(rr)}`,
      problems,
      started
        ? 'It started executing under an older controller and is not followed: nothing is sent again; check its command in ' +
            'SSM (status.execution) for the outcome. A new alert creates a new request.'
        : 'Nothing ran, and it cannot be approved as stored. A new alert (or a new request) is planned under the current schema.',
    );
  }
  // Executing follows the plan, policy or not (its policy is hidden from it, see usablePolicy).
  if (!started && policy) {
    const p = alertPolicyShape(policy);
    if (!p.ok) return { ...p, message: `${p.message}. Nothing ran for this request.` };
  }
  return OK;
}

/** The policy when its stored shape is usable; undefined (as if absent) otherwise, so no handler reads a field it lacks. */
export function usablePolicy(policy: AlertPolicy | undefined): AlertPolicy | undefined {
  return policy && alertPolicyShape(policy).ok ? policy : undefined;
}

/** The request reconciler's hook: a request (or its policy) of an older schema ends Failed, nothing sent. */
export function storedShapeTransition(rr: RemediationRequest, policy: AlertPolicy | undefined, t: Transitions): Transition | undefined {
  const shape = requestShape(rr, policy);
  if (shape.ok) return undefined;
  return t.fail(rr, { ...t.base(rr) }, shape.reason, shape.message);
}

interface StatusHolder extends KubeObject {
  status?: { conditions?: Condition[]; observedGeneration?: number };
}

export interface ShapeHookDeps<T extends StatusHolder> {
  clock: Clock;
  events: EventRecorder;
  /** Writes the status subresource (the body carries the object's resourceVersion). */
  writeStatus(body: T): Promise<unknown>;
}

/**
 * The policy and runbook reconcilers' hook: true when `obj` has a bad stored shape, after
 * its `Ready=False` condition was written (once; an Event when it changes). Nothing
 * else of its status is touched: counters and the breaker stay as they were.
 */
export async function heldForStoredShape<T extends StatusHolder>(
  obj: T,
  shape: StoredShape,
  deps: ShapeHookDeps<T>,
  log: Logger,
): Promise<boolean> {
  if (shape.ok) return false;
  const generation = obj.metadata?.generation;
  const before = findCondition(obj.status?.conditions, 'Ready');
  if (
    before?.status === 'False' &&
    before.reason === shape.reason &&
    before.message === shape.message &&
    before.observedGeneration === generation
  )
    return true;
  const now = isoNow(deps.clock);
  // Stalled=True next to Ready=False: a GitOps health check gets its final verdict at once (kstatus.ts).
  const status = withReadinessKstatus(
    {
      ...structuredClone(obj.status ?? {}),
      observedGeneration: generation,
      conditions: setCondition(
        obj.status?.conditions,
        { type: 'Ready', status: 'False', reason: shape.reason, message: shape.message, observedGeneration: generation },
        now,
      ),
    },
    generation,
    now,
  );
  const body = { ...obj, status };
  await deps.writeStatus(body);
  void deps.events.record(body, 'Warning', shape.reason, shape.message);
  log.warn({ reason: shape.reason }, shape.message);
  return true;
}
