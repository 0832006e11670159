/**
 * Fail closed on approvals: the controller honours a manual approval only in namespaces
 * where it has seen, itself, that the approval ValidatingAdmissionPolicy is installed
 * with failurePolicy Fail, knows about plans, and is bound with the `Deny` action over
 * that namespace for RemediationRequests and AlertPolicies. Without it `spec.approval`
 * is a string anyone with `edit` could have written, so it is not trusted. Auto approval
 * does not depend on any of this.
 *
 * An enforced verdict carries its epoch (ADR 0011): the uid and generation of the policy
 * and of the binding, and, when coverage hangs on namespace labels, the namespace's uid
 * and resourceVersion. None of these ever returns to an earlier value, so two equal
 * epochs prove enforcement held without a gap between the two observations — the
 * controller need not have been running in between.
 *
 * Pure: the operator feeds it the informer caches of policies, bindings and namespaces.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  CHANGED_BY_ANNOTATION,
  CIRCUIT_RESET_TOKEN_ANNOTATION,
  GROUP,
  type AlertPolicy,
  type LabelSelector,
} from '../api/v1alpha1/index.js';
import type {
  MatchResources,
  NamedRule,
  ValidatingAdmissionPolicy,
  ValidatingAdmissionPolicyBinding,
} from '../api/admissionregistration/v1.js';
import { selectorMatches } from './selector.js';

/**
 * What enforcement the controller verified, by identities that never repeat: a deleted
 * and re-created object has a new uid, an edited one a higher generation, a relabelled
 * namespace a new resourceVersion. Its canonical JSON is compared (epochKey).
 */
export interface AdmissionEpoch {
  policy: { uid: string; generation: number };
  binding: { name: string; uid: string; generation: number };
  /** Present when a namespaceSelector decides coverage: labels come and go, the resourceVersion never returns. */
  namespace?: { uid: string; resourceVersion: string };
}

/** The namespace as the epoch needs it. */
export interface NamespaceIdentity {
  labels?: Readonly<Record<string, string>>;
  uid?: string;
  resourceVersion?: string;
}

export type AdmissionVerdict = { enforced: true; binding: string; epoch: AdmissionEpoch } | { enforced: false; message: string };

/** A stable string for an epoch (fields in a fixed order); '' for none. */
export function epochKey(epoch: AdmissionEpoch | undefined): string {
  if (!epoch) return '';
  const ns = epoch.namespace ? ` namespace ${epoch.namespace.uid}@${epoch.namespace.resourceVersion}` : '';
  return `policy ${epoch.policy.uid}@${epoch.policy.generation} binding ${epoch.binding.name}/${epoch.binding.uid}@${epoch.binding.generation}${ns}`;
}

/** The expression the shipped policy uses to bind an approval to the stored plan: its presence shows a current policy. */
export const PLAN_BINDING_MARKER = 'status.plan.digest';

/**
 * What a policy must also check to be current (ADR 0011): that a breaker reset carries the token in status, and that
 * every policy write records its writer.
 */
const CURRENT_MARKERS = [PLAN_BINDING_MARKER, 'circuitBreaker.resetToken', CHANGED_BY_ANNOTATION];

/** Approvals live on requests; breaker resets and the policy writer on policies: both must be guarded. */
const RESOURCES = ['remediationrequests', 'alertpolicies'] as const;

function ruleCovers(rule: NamedRule, resource: string, operations: readonly string[]): boolean {
  const groupOk = (rule.apiGroups ?? []).some((g) => g === '*' || g === GROUP);
  const resourceOk = (rule.resources ?? []).some((r) => r === '*' || r === resource || r === `${resource}/*`);
  const ops = rule.operations ?? [];
  return groupOk && resourceOk && operations.every((op) => ops.includes('*') || ops.includes(op));
}

const coversAll = (rules: readonly NamedRule[]) => RESOURCES.every((res) => rules.some((r) => ruleCovers(r, res, ['CREATE', 'UPDATE'])));

function excludes(rule: NamedRule): boolean {
  return (
    (rule.apiGroups ?? []).some((g) => g === '*' || g === GROUP) &&
    (rule.resources ?? []).some((r) => r === '*' || (RESOURCES as readonly string[]).includes(r))
  );
}

const hasSelector = (s: LabelSelector | undefined) =>
  s !== undefined && ((s.matchExpressions?.length ?? 0) > 0 || Object.keys(s.matchLabels ?? {}).length > 0);

/** Why `m` does not cover updates of requests in a namespace with these labels, or undefined. */
function coverageGap(m: MatchResources | undefined, labels: Readonly<Record<string, string>>, needRules: boolean): string | undefined {
  if (m?.namespaceSelector && !selectorMatches(m.namespaceSelector, labels)) return 'its namespaceSelector does not select the namespace';
  const objectSelector = m?.objectSelector;
  if (objectSelector && ((objectSelector.matchExpressions?.length ?? 0) > 0 || Object.keys(objectSelector.matchLabels ?? {}).length > 0)) {
    // Request labels are written by the requester: a selector on them can be stepped around.
    return 'it has an objectSelector, which a requester can step around by labelling the request';
  }
  if ((m?.excludeResourceRules ?? []).some(excludes)) return 'it excludes remediationrequests or alertpolicies';
  const rules = m?.resourceRules;
  if (needRules && !coversAll(rules ?? [])) return 'it does not match CREATE and UPDATE of remediationrequests and alertpolicies';
  if (!needRules && rules && rules.length > 0 && !coversAll(rules)) {
    return 'its resourceRules leave out remediationrequests or alertpolicies';
  }
  return undefined;
}

export function admissionVerdict(
  policyName: string,
  policy: ValidatingAdmissionPolicy | undefined,
  bindings: readonly ValidatingAdmissionPolicyBinding[],
  namespace: string,
  ns: NamespaceIdentity | undefined,
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
  // A sign of the chart version (the administrator is trusted), read from validations and the variables they use.
  const expressions = [...(policy.spec?.validations ?? []), ...(policy.spec?.variables ?? [])].map((v) => v.expression ?? '');
  const missing = CURRENT_MARKERS.filter((m) => !expressions.some((e) => e.includes(m)));
  if (missing.length > 0) {
    return {
      enforced: false,
      message: `ValidatingAdmissionPolicy ${policyName} does not check ${missing.join(', ')} (an older chart?): upgrade the chart`,
    };
  }
  const labels = ns?.labels ?? { 'kubernetes.io/metadata.name': namespace };
  const policyGap = coverageGap(policy.spec?.matchConstraints, labels, true);
  if (policyGap)
    return { enforced: false, message: `ValidatingAdmissionPolicy ${policyName} does not cover namespace ${namespace}: ${policyGap}` };
  const reasons: string[] = [];
  // The first enforcing binding by name: the same state always gives the same epoch.
  const sorted = [...bindings].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  for (const b of sorted) {
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
    const selected = hasSelector(policy.spec?.matchConstraints?.namespaceSelector) || hasSelector(b.spec.matchResources?.namespaceSelector);
    if (!policy.metadata?.uid || !b.metadata?.uid || (selected && (!ns?.uid || !ns.resourceVersion))) {
      // Without identities there is no epoch to bind plans to: unknown is a refusal.
      reasons.push(`binding ${name}: the controller has not seen the identities (uid, generation) it binds plans to yet`);
      continue;
    }
    const epoch: AdmissionEpoch = {
      policy: { uid: policy.metadata.uid, generation: policy.metadata.generation ?? 0 },
      binding: { name, uid: b.metadata.uid, generation: b.metadata.generation ?? 0 },
      ...(selected && { namespace: { uid: ns?.uid ?? '', resourceVersion: ns?.resourceVersion ?? '' } }),
    };
    return { enforced: true, binding: name, epoch };
  }
  const why = reasons.length > 0 ? reasons.join('; ') : 'no binding refers to it';
  return {
    enforced: false,
    message: `approvals in namespace ${namespace} are not enforced by ValidatingAdmissionPolicy ${policyName} (${why}): ${fix}`,
  };
}

const prefixOf = (epoch: AdmissionEpoch) => createHash('sha256').update(epochKey(epoch)).digest('hex').slice(0, 16);

/**
 * The breaker-reset token to publish in the policy's status: the one there while it was
 * issued under the current epoch, else a new random one; none while not enforced. Its
 * prefix names the epoch; its random part proves a reset carrying it was written after
 * it was issued, so under that epoch, so checked by admission.
 */
export function resetToken(current: string | undefined, verdict: AdmissionVerdict): string | undefined {
  if (!verdict.enforced) return undefined;
  const prefix = prefixOf(verdict.epoch);
  return current?.startsWith(`${prefix}.`) ? current : `${prefix}.${randomBytes(16).toString('hex')}`;
}

/**
 * Whether the policy's breaker reset (annotation remediator.dev/circuit-reset-at) may
 * count: enforcement holds now, the reset carries the token in status, and that token
 * was issued under the current epoch. Anything else — a reset set during a gap, before
 * the namespace was covered, or against a token from before a re-created binding — is
 * ignored.
 */
export function resetProven(policy: AlertPolicy, verdict: AdmissionVerdict): boolean {
  if (!verdict.enforced) return false;
  const token = policy.status?.circuitBreaker?.resetToken;
  const given = policy.metadata?.annotations?.[CIRCUIT_RESET_TOKEN_ANNOTATION];
  return token !== undefined && given === token && token.startsWith(`${prefixOf(verdict.epoch)}.`);
}
