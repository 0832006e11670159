/**
 * What changed since a previous plan. A request's status keeps only its current plan, so
 * the page remembers, for as long as it runs, the plans it has shown for each request
 * (by uid) and compares the newest with the one before: the digest change, and which
 * fields of the plan differ. A person who looked at a request, left, and comes back to
 * a re-rendered plan sees what is different before approving it.
 */
import type { Plan } from '../../api/v1alpha1/index.js';

export interface PlanChange {
  field: string;
  before: string;
  after: string;
}

export interface PlanHistory {
  /** The plan shown before the current one, and when the page first showed it. */
  previous?: { plan: Plan; seenAt: number };
  /** Fields that differ between the previous plan and the current one (digest excluded). */
  changes: PlanChange[];
}

/** Flattens a plan into dotted paths and printable values, so two plans compare field by field. */
function flatten(value: unknown, path: string, out: Map<string, string>): void {
  if (Array.isArray(value)) {
    // Lists of strings read best whole (targets, command lines).
    if (value.every((v) => typeof v === 'string')) out.set(path, value.join('\n'));
    else for (const [i, v] of value.entries()) flatten(v, `${path}[${i}]`, out);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) flatten(v, path ? `${path}.${k}` : k, out);
  } else if (value !== undefined) {
    out.set(path, String(value));
  }
}

export function diffPlans(before: Plan, after: Plan): PlanChange[] {
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  flatten({ ...before, digest: undefined }, '', a);
  flatten({ ...after, digest: undefined }, '', b);
  const fields = [...new Set([...a.keys(), ...b.keys()])].sort();
  return fields.filter((f) => a.get(f) !== b.get(f)).map((f) => ({ field: f, before: a.get(f) ?? '(none)', after: b.get(f) ?? '(none)' }));
}

/** Per-request memory of the distinct plans shown, newest last, a few per request. */
export class PlanMemory {
  private readonly seen = new Map<string, Array<{ plan: Plan; seenAt: number }>>();

  constructor(private readonly keep = 5) {}

  /** Records that `plan` is being shown for request `uid`, and says what changed since the one before. */
  show(uid: string, plan: Plan, now: number): PlanHistory {
    const list = this.seen.get(uid) ?? [];
    if (list.at(-1)?.plan.digest !== plan.digest) {
      list.push({ plan, seenAt: now });
      if (list.length > this.keep) list.shift();
      this.seen.set(uid, list);
    }
    const previous = list.length >= 2 ? list[list.length - 2] : undefined;
    return previous ? { previous, changes: diffPlans(previous.plan, plan) } : { changes: [] };
  }
}
