/**
 * Derives the EC2 instance IDs a request acts on — explicit `spec.targets`, alert labels,
 * CloudWatch alarm dimensions, and tag selectors, combined — and enforces the policy's
 * blast-radius cap before anything is described or run.
 */
import { DEFAULT_ALLOWED_PATTERN, DEFAULT_MAX_VALUE_LENGTH, DEFAULTS, type AlertPolicySpec, type RemediationRequestSpec } from '../api/v1alpha1/index.js';
import { render, type TemplateContext } from './template.js';

const INSTANCE_ID = /^i-[0-9a-f]{8}([0-9a-f]{9})?$/;

export type TargetResult = { ok: true; targets: string[] } | { ok: false; reason: string; message: string };

/** IDs named by the request itself or its alert (no AWS call needed). */
export function namedTargets(spec: RemediationRequestSpec, policy: AlertPolicySpec): string[] {
  if (spec.targets && spec.targets.length > 0) return [...spec.targets];
  const labels = spec.alert.labels ?? {};
  const names = [...(policy.targets.fromLabels ?? []), ...(spec.alert.source === 'cloudwatch' ? (policy.targets.fromDimensions ?? []) : [])];
  const ids: string[] = [];
  for (const name of names) {
    const value = labels[name];
    if (value === undefined || value === '') continue;
    // A label may carry several IDs separated by commas (e.g. a grouped alert).
    for (const part of value.split(',')) ids.push(part.trim());
  }
  return ids;
}

/** The tag selector with its templates rendered; undefined when the policy has none or spec.targets is explicit. */
export function renderedTagSelector(spec: RemediationRequestSpec, policy: AlertPolicySpec, ctx: TemplateContext): Record<string, string> | undefined {
  if ((spec.targets && spec.targets.length > 0) || !policy.targets.tagSelector) return undefined;
  const valuePolicy = { allowedPattern: DEFAULT_ALLOWED_PATTERN, maxLength: DEFAULT_MAX_VALUE_LENGTH };
  return Object.fromEntries(Object.entries(policy.targets.tagSelector).map(([k, v]) => [k, render(v, ctx, valuePolicy)]));
}

/** Validates, de-duplicates and caps the combined IDs. */
export function checkTargets(candidates: readonly string[], policy: AlertPolicySpec): TargetResult {
  const ids = [...new Set(candidates.filter((id) => id !== ''))].sort();
  const bad = ids.filter((id) => !INSTANCE_ID.test(id));
  if (bad.length > 0) {
    return { ok: false, reason: 'InvalidTargets', message: `not EC2 instance IDs: ${bad.slice(0, 10).join(', ')}` };
  }
  if (ids.length === 0) {
    const t = policy.targets;
    const sources = [
      t.fromLabels?.length ? `labels ${t.fromLabels.join(', ')}` : '',
      t.fromDimensions?.length ? `dimensions ${t.fromDimensions.join(', ')}` : '',
      t.tagSelector ? `tags ${Object.entries(t.tagSelector).map(([k, v]) => `${k}=${v}`).join(',')}` : '',
    ].filter(Boolean);
    return {
      ok: false,
      reason: 'NoTargets',
      message: `no EC2 instance found (policy reads ${sources.join('; ') || 'no target source'}); set spec.targets or check the alert's labels`,
    };
  }
  const maxTargets = policy.targets.maxTargets ?? DEFAULTS.maxTargets;
  if (ids.length > maxTargets) {
    return {
      ok: false,
      reason: 'TooManyTargets',
      message: `${ids.length} targets exceed the policy's maxTargets of ${maxTargets}; nothing was run`,
    };
  }
  return { ok: true, targets: ids };
}

/** Targets from the request and alert alone (no tag lookup). */
export function resolveTargets(spec: RemediationRequestSpec, policy: AlertPolicySpec): TargetResult {
  return checkTargets(namedTargets(spec, policy), policy);
}
