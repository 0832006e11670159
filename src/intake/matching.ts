/**
 * Which AlertPolicies an alert triggers (SPEC §1 `match`), with Alertmanager's matcher
 * semantics: every matcher must hold; a missing label has the value `""` (so
 * `severity!=""` means "has a severity"); `=~` and `!~` are fully anchored
 * (`^(?:re)$`); `match.sources` limits the sources a policy accepts. A policy the
 * controller marked `Ready=False` (an invalid spec, e.g. a regex that does not compile)
 * never matches; one not reconciled yet does. Pure functions, no I/O.
 */
import type { AlertPolicy, LabelMatcher } from '../api/v1alpha1/index.js';
import { labelValue, type IntakeAlert } from './alert.js';

/** Compiled regexes by source text; `null` marks one that does not compile. Bounded, since policies come and go. */
const regexCache = new Map<string, RegExp | null>();
const REGEX_CACHE_MAX = 1024;

/**
 * The anchored regex for a matcher value. Compiled with the `u` flag, exactly as the
 * AlertPolicy reconciler validates it, so a regex the controller accepted behaves the
 * same here.
 */
export function anchoredRegex(value: string): RegExp | null {
  let re = regexCache.get(value);
  if (re !== undefined) return re;
  try {
    re = new RegExp(`^(?:${value})$`, 'u');
  } catch {
    re = null;
  }
  if (regexCache.size >= REGEX_CACHE_MAX) regexCache.clear();
  regexCache.set(value, re);
  return re;
}

export function matcherMatches(m: LabelMatcher, labels: Record<string, string>): boolean {
  const v = labelValue(labels, m.name);
  switch (m.op ?? '=') {
    case '=':
      return v === m.value;
    case '!=':
      return v !== m.value;
    case '=~': {
      const re = anchoredRegex(m.value);
      return re !== null && re.test(v);
    }
    case '!~': {
      // A regex that does not compile matches nothing, in both directions: an invalid
      // policy must never trigger (it is also Ready=False, see policyIsUsable).
      const re = anchoredRegex(m.value);
      return re !== null && !re.test(v);
    }
    default:
      return false;
  }
}

/** Ready is not False and the policy is not being deleted. */
export function policyIsUsable(policy: AlertPolicy): boolean {
  if (policy.metadata?.deletionTimestamp) return false;
  const ready = policy.status?.conditions?.find((c) => c.type === 'Ready');
  return ready?.status !== 'False';
}

export function policyMatches(policy: AlertPolicy, alert: Pick<IntakeAlert, 'source' | 'labels'>): boolean {
  const match = policy.spec.match;
  if (match?.sources && match.sources.length > 0 && !match.sources.includes(alert.source)) return false;
  return (match?.labels ?? []).every((m) => matcherMatches(m, alert.labels));
}

/**
 * The policies `alert` triggers, in a stable order (namespace, then name). With
 * `namespace`, only policies in that namespace are considered.
 */
export function matchingPolicies(policies: readonly AlertPolicy[], alert: Pick<IntakeAlert, 'source' | 'labels'>, namespace?: string): AlertPolicy[] {
  return policies
    .filter((p) => (namespace === undefined || p.metadata?.namespace === namespace) && policyIsUsable(p) && policyMatches(p, alert))
    .sort((a, b) => compare(a.metadata?.namespace ?? '', b.metadata?.namespace ?? '') || compare(a.metadata?.name ?? '', b.metadata?.name ?? ''));
}

/** Code-unit order: the same everywhere, unlike locale collation. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
