/**
 * Fail closed on approvals: the controller honours a manual approval only in namespaces
 * where it has seen, itself, that the approval ValidatingAdmissionPolicy is installed
 * with failurePolicy Fail, knows about plans, and is bound with the `Deny` action over
 * that namespace for RemediationRequests. Without it `spec.approval` is a string anyone
 * with `edit` could have written, so it is not trusted. Auto approval does not depend on
 * any of this.
 *
 * Pure: the operator feeds it the informer caches of policies, bindings and namespaces.
 */
import { GROUP, type LabelSelector } from '../api/v1alpha1/index.js';
import { selectorMatches } from './selector.js';

interface NamedRule {
  apiGroups?: string[];
  resources?: string[];
  operations?: string[];
}

interface MatchResources {
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  resourceRules?: NamedRule[];
  excludeResourceRules?: NamedRule[];
}

export interface ValidatingAdmissionPolicy {
  metadata?: { name?: string };
  spec?: { failurePolicy?: string; matchConstraints?: MatchResources; validations?: Array<{ expression?: string }> };
}

export interface ValidatingAdmissionPolicyBinding {
  metadata?: { name?: string };
  spec?: { policyName?: string; validationActions?: string[]; matchResources?: MatchResources; paramRef?: unknown };
}

export type AdmissionVerdict = { enforced: true; binding: string } | { enforced: false; message: string };

/** The expression the shipped policy uses to bind an approval to the stored plan: its presence shows a current policy. */
export const PLAN_BINDING_MARKER = 'status.plan.digest';

const RESOURCE = 'remediationrequests';

function ruleCovers(rule: NamedRule, operations: readonly string[]): boolean {
  const groupOk = (rule.apiGroups ?? []).some((g) => g === '*' || g === GROUP);
  const resourceOk = (rule.resources ?? []).some((r) => r === '*' || r === RESOURCE || r === `${RESOURCE}/*`);
  const ops = rule.operations ?? [];
  return groupOk && resourceOk && operations.every((op) => ops.includes('*') || ops.includes(op));
}

function excludes(rule: NamedRule): boolean {
  return (rule.apiGroups ?? []).some((g) => g === '*' || g === GROUP) && (rule.resources ?? []).some((r) => r === '*' || r === RESOURCE);
}

/** Why `m` does not cover updates of requests in a namespace with these labels, or undefined. */
function coverageGap(m: MatchResources | undefined, labels: Readonly<Record<string, string>>, needRules: boolean): string | undefined {
  if (m?.namespaceSelector && !selectorMatches(m.namespaceSelector, labels)) return 'its namespaceSelector does not select the namespace';
  const objectSelector = m?.objectSelector;
  if (objectSelector && ((objectSelector.matchExpressions?.length ?? 0) > 0 || Object.keys(objectSelector.matchLabels ?? {}).length > 0)) {
    // Request labels are written by the requester: a selector on them can be stepped around.
    return 'it has an objectSelector, which a requester can step around by labelling the request';
  }
  if ((m?.excludeResourceRules ?? []).some(excludes)) return 'it excludes remediationrequests';
  const rules = m?.resourceRules;
  if (needRules && !(rules ?? []).some((r) => ruleCovers(r, ['CREATE', 'UPDATE'])))
    return 'it does not match CREATE and UPDATE of remediationrequests';
  if (!needRules && rules && rules.length > 0 && !rules.some((r) => ruleCovers(r, ['CREATE', 'UPDATE']))) {
    return 'its resourceRules leave out remediationrequests';
  }
  return undefined;
}

export function admissionVerdict(
  policyName: string,
  policy: ValidatingAdmissionPolicy | undefined,
  bindings: readonly ValidatingAdmissionPolicyBinding[],
  namespace: string,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
): AdmissionVerdict {
  const fix = 'install the chart with admissionPolicy.enabled=true and validationActions [Deny] covering this namespace (docs/security.md)';
  if (!policy)
    return { enforced: false, message: `ValidatingAdmissionPolicy ${policyName} is not installed, so approvals cannot be trusted: ${fix}` };
  if ((policy.spec?.failurePolicy ?? 'Fail') !== 'Fail') {
    return {
      enforced: false,
      message: `ValidatingAdmissionPolicy ${policyName} has failurePolicy ${policy.spec?.failurePolicy}; it must be Fail: ${fix}`,
    };
  }
  if (!(policy.spec?.validations ?? []).some((v) => v.expression?.includes(PLAN_BINDING_MARKER))) {
    return {
      enforced: false,
      message: `ValidatingAdmissionPolicy ${policyName} does not bind approvals to plans (an older chart?): upgrade the chart`,
    };
  }
  const labels = namespaceLabels ?? { 'kubernetes.io/metadata.name': namespace };
  const policyGap = coverageGap(policy.spec?.matchConstraints, labels, true);
  if (policyGap)
    return { enforced: false, message: `ValidatingAdmissionPolicy ${policyName} does not cover namespace ${namespace}: ${policyGap}` };
  const reasons: string[] = [];
  for (const b of bindings) {
    if (b.spec?.policyName !== policyName) continue;
    const name = b.metadata?.name ?? '';
    if (!(b.spec.validationActions ?? []).includes('Deny')) {
      reasons.push(`binding ${name} only ${(b.spec.validationActions ?? []).join('/') || 'has no action'} (it must Deny)`);
      continue;
    }
    if (b.spec.paramRef) {
      reasons.push(`binding ${name} has a paramRef the policy does not use`);
      continue;
    }
    const gap = coverageGap(b.spec.matchResources, labels, false);
    if (gap) {
      reasons.push(`binding ${name}: ${gap}`);
      continue;
    }
    return { enforced: true, binding: name };
  }
  const why = reasons.length > 0 ? reasons.join('; ') : 'no binding refers to it';
  return {
    enforced: false,
    message: `approvals in namespace ${namespace} are not enforced by ValidatingAdmissionPolicy ${policyName} (${why}): ${fix}`,
  };
}
