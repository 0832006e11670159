/**
 * Which AlertPolicies an alert triggers (`spec.match`, docs/api.md), with Alertmanager's matcher
 * semantics: every matcher must hold; a missing label has the value `""` (so
 * `severity!=""` means "has a severity"); `=~` and `!~` are fully anchored
 * (`^(?:re)$`) RE2 patterns, matched in linear time (src/runtime/regex.ts);
 * `match.sources` limits the sources a policy accepts. A policy the controller marked
 * `Ready=False` (an invalid spec, e.g. a regex that is not RE2) never matches; one not
 * reconciled yet does. Pure functions, no I/O.
 */
import type { AlertPolicy, LabelMatcher } from '../api/v1alpha1/index.js';
import { InvalidPatternError, UserPatternCache, type UserPattern } from '../runtime/regex.js';
import { labelValue, type IntakeAlert } from './alert.js';

/** Compiled matcher regexes by source text (and refusals), bounded: policies come and go. */
const patterns = new UserPatternCache();

/**
 * The anchored RE2 pattern for a matcher value (src/runtime/regex.ts, the one the
 * AlertPolicy reconciler validates with), or undefined when it is not a valid RE2
 * pattern: RE2 runs in time linear in the label value, so no tenant's matcher can
 * stall the intake, and its syntax is Alertmanager's.
 */
export function anchoredRegex(value: string): UserPattern | undefined {
  const entry = patterns.get(value);
  return entry instanceof InvalidPatternError ? undefined : entry;
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
      return re?.test(v) === true;
    }
    case '!~': {
      // A regex that does not compile matches nothing, in both directions: an invalid
      // policy must never trigger (it is also Ready=False, see policyIsUsable).
      const re = anchoredRegex(m.value);
      return re !== undefined && !re.test(v);
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
export function matchingPolicies(
  policies: readonly AlertPolicy[],
  alert: Pick<IntakeAlert, 'source' | 'labels'>,
  namespace?: string,
): AlertPolicy[] {
  return policies
    .filter((p) => (namespace === undefined || p.metadata?.namespace === namespace) && policyIsUsable(p) && policyMatches(p, alert))
    .sort(
      (a, b) =>
        compare(a.metadata?.namespace ?? '', b.metadata?.namespace ?? '') || compare(a.metadata?.name ?? '', b.metadata?.name ?? ''),
    );
}

/** Code-unit order: the same everywhere, unlike locale collation. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
