/** Derives the EC2 instance IDs a request acts on, and enforces the policy's blast-radius cap. */
import { DEFAULTS, type AlertPolicySpec, type RemediationRequestSpec } from '../api/v1alpha1/index.js';

const INSTANCE_ID = /^i-[0-9a-f]{8}([0-9a-f]{9})?$/;

export type TargetResult = { ok: true; targets: string[] } | { ok: false; reason: string; message: string };

export function resolveTargets(spec: RemediationRequestSpec, policy: AlertPolicySpec): TargetResult {
  let ids: string[];
  if (spec.targets && spec.targets.length > 0) {
    ids = [...spec.targets];
  } else {
    const labels = spec.alert.labels ?? {};
    ids = [];
    for (const name of policy.targets.fromLabels ?? []) {
      const value = labels[name];
      if (value === undefined || value === '') continue;
      // A label may carry several IDs separated by commas (e.g. a grouped alert).
      for (const part of value.split(',')) ids.push(part.trim());
    }
  }
  ids = [...new Set(ids.filter((id) => id !== ''))].sort();
  const bad = ids.filter((id) => !INSTANCE_ID.test(id));
  if (bad.length > 0) {
    return { ok: false, reason: 'InvalidTargets', message: `not EC2 instance IDs: ${bad.slice(0, 10).join(', ')}` };
  }
  if (ids.length === 0) {
    const from = policy.targets.fromLabels?.length ? `labels ${policy.targets.fromLabels.join(', ')}` : 'no target source';
    return { ok: false, reason: 'NoTargets', message: `no EC2 instance IDs found (policy reads ${from}); set spec.targets or add the label to the alert` };
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
