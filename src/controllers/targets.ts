/**
 * Derives the instances a request acts on, and holds them to every rule at once: the
 * policy's target rules (labels, alarm dimensions, tag selector), the runbook's scope
 * (tag selector, which may name the request's namespace) and caps, before anything is
 * sent. Explicit `spec.targets` may only narrow what the rules allow, never widen it.
 */
import { INSTANCE_ID_PATTERN, type AlertPolicySpec, type RemediationRequestSpec } from '../api/v1alpha1/index.js';
import type { Reason } from '../api/v1alpha1/reasons.js';
import type { InstanceFacts } from '../cloud/types.js';
import { DEFAULT_VALUE_POLICY, render, type TemplateContext } from './template.js';

const INSTANCE_ID = new RegExp(INSTANCE_ID_PATTERN);

export type Refusal = { ok: false; reason: Reason; message: string };
export type TargetResult = { ok: true; targets: string[] } | Refusal;

/** Where the candidates come from: ids to describe, or a tag selector to look up. */
export type Candidates = { ok: true; ids: string[] } | { ok: true; selector: Record<string, string> } | Refusal;

/** IDs the alert names through the policy's label and dimension sources. */
export function namedTargets(spec: RemediationRequestSpec, policy: AlertPolicySpec): string[] {
  const labels = spec.alert.labels ?? {};
  const names = [
    ...(policy.targets.fromLabels ?? []),
    ...(spec.alert.source === 'cloudwatch' ? (policy.targets.fromDimensions ?? []) : []),
  ];
  const ids: string[] = [];
  for (const name of names) {
    const value = labels[name];
    if (value === undefined || value === '') continue;
    // A label may carry several IDs separated by commas (e.g. a grouped alert).
    for (const part of value.split(',')) ids.push(part.trim());
  }
  return ids;
}

/** A tag selector with its templates rendered (values must pass the default allowlist). */
export function renderSelector(
  selector: Readonly<Record<string, string>> | undefined,
  ctx: TemplateContext,
): Record<string, string> | undefined {
  if (!selector) return undefined;
  return Object.fromEntries(Object.entries(selector).map(([k, v]) => [k, render(v, ctx, DEFAULT_VALUE_POLICY)]));
}

function hasLabelSources(policy: AlertPolicySpec): boolean {
  return (policy.targets.fromLabels?.length ?? 0) > 0 || (policy.targets.fromDimensions?.length ?? 0) > 0;
}

/**
 * The candidates before any AWS call. Explicit targets must each be named by the alert
 * when the policy reads targets from its labels or dimensions (whether or not it also has
 * a tag selector); under a policy that selects by tags alone they are left to the tag
 * checks. Anything else is refused here, naming the instance.
 */
export function candidates(
  spec: RemediationRequestSpec,
  policy: AlertPolicySpec,
  policySelector: Record<string, string> | undefined,
  scopeSelector: Record<string, string> | undefined,
): Candidates {
  const named = namedTargets(spec, policy);
  if (spec.targets && spec.targets.length > 0) {
    // When the policy reads its targets from the alert, the alert's own names are the
    // bound, tag selector or not: a tag selector only narrows them further (checked on the
    // instances' tags later). Only a policy that selects by tags alone leaves explicit
    // targets to those tag checks.
    const outside = hasLabelSources(policy) ? spec.targets.filter((t) => !named.includes(t)) : policySelector ? [] : [...spec.targets];
    if (outside.length > 0) {
      return {
        ok: false,
        reason: 'TargetNotAllowed',
        message: `spec.targets ${outside.join(', ')} may only narrow the policy's targets, and the alert does not name them (policy reads ${describeSources(policy)}); nothing was run`,
      };
    }
    return { ok: true, ids: [...spec.targets] };
  }
  if (hasLabelSources(policy)) return { ok: true, ids: named };
  if (policySelector) {
    const merged: Record<string, string> = { ...policySelector };
    for (const [k, v] of Object.entries(scopeSelector ?? {})) {
      if (merged[k] !== undefined && merged[k] !== v) {
        return {
          ok: false,
          reason: 'NoTargets',
          message: `the policy selects ${k}=${merged[k]} but the runbook's scope requires ${k}=${v}: no instance can match`,
        };
      }
      merged[k] = v;
    }
    return { ok: true, selector: merged };
  }
  return { ok: false, reason: 'NoTargets', message: 'the policy has no target rule (targets.fromLabels, fromDimensions or tagSelector)' };
}

function describeSources(policy: AlertPolicySpec): string {
  const t = policy.targets;
  const sources = [
    t.fromLabels?.length ? `labels ${t.fromLabels.join(', ')}` : '',
    t.fromDimensions?.length ? `dimensions ${t.fromDimensions.join(', ')}` : '',
    t.tagSelector
      ? `tags ${Object.entries(t.tagSelector)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')}`
      : '',
  ].filter(Boolean);
  return sources.join('; ') || 'no target source';
}

/** Validates, de-duplicates and caps the IDs. */
export function checkTargets(ids: readonly string[], policy: AlertPolicySpec, maxTargets: number): TargetResult {
  const unique = [...new Set(ids.filter((id) => id !== ''))].sort();
  const bad = unique.filter((id) => !INSTANCE_ID.test(id));
  if (bad.length > 0) {
    return { ok: false, reason: 'InvalidTargets', message: `not EC2 instance or managed node IDs: ${bad.slice(0, 10).join(', ')}` };
  }
  if (unique.length === 0) {
    return {
      ok: false,
      reason: 'NoTargets',
      message: `no instance found (policy reads ${describeSources(policy)}); check the alert's labels or the instances' tags`,
    };
  }
  if (unique.length > maxTargets) {
    return {
      ok: false,
      reason: 'TooManyTargets',
      message: `${unique.length} targets exceed maxTargets ${maxTargets} (policy and runbook); nothing was run`,
    };
  }
  return { ok: true, targets: unique };
}

/**
 * Every instance must carry the policy's selector tags and the runbook scope's tags (and
 * the tag the IAM policy requires, when set). The first instance outside is named.
 */
export function outsideScope(
  facts: readonly InstanceFacts[],
  rules: Array<{ what: string; tags: Readonly<Record<string, string>> | undefined }>,
): Refusal | undefined {
  for (const f of facts) {
    for (const rule of rules) {
      for (const [k, v] of Object.entries(rule.tags ?? {})) {
        if (f.tags[k] !== v) {
          const has = f.tags[k] === undefined ? `no tag ${k}` : `${k}=${f.tags[k]}`;
          return {
            ok: false,
            reason: 'TargetOutOfScope',
            message: `${f.instanceId} is outside ${rule.what}: it needs ${k}=${v} and has ${has}; nothing was run`,
          };
        }
      }
    }
  }
  return undefined;
}
