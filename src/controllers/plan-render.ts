/**
 * The plan: exactly what will run, rendered before anyone approves it — the document
 * and its rendered parameters (or the topic and message), the targets, the account and
 * region, whether for real (dryRun), until when it may be approved, by whom, the runbook
 * and the policy it came from by uid and generation (a re-created object is another
 * one) with a hash of the policy's whole spec, who last changed that spec, and the
 * admission enforcement verified when it was rendered — with a digest over its
 * canonical JSON. An approval names the digest; before anything is sent the controller
 * renders the plan again from current state and sends nothing if the digest differs.
 */
import { createHash } from 'node:crypto';
import {
  CHANGED_BY_ANNOTATION,
  RUNBOOK_DEFAULTS,
  type AlertPolicy,
  type Plan,
  type RemediationRequest,
  type RemediationRequestStatus,
  type RiskLevel,
  type Runbook,
  type SnsAction,
} from '../api/v1alpha1/index.js';
import { effectiveRollout, ROLLOUT_EXECUTION, RolloutError } from './rollout.js';
import type { AdmissionEpoch } from './admission.js';
import { renderInputs } from './runbook-grant.js';
import { render, valuePolicy, type TemplateContext } from './template.js';

/** SNS text is not a shell command, but control characters still have no place in it. */
const SNS_VALUE_POLICY = {
  allowedPattern: '[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F]*',
  maxLength: 1024,
  allow: ['LeadingDash', 'DotDot', 'Empty'] as const,
};

/** Values substituted into an SNS subject: printable ASCII only, on one line (API_Publish). */
const SNS_SUBJECT_VALUE_POLICY = { ...SNS_VALUE_POLICY, allowedPattern: '[ -~]*', maxLength: 100 };

export interface RenderedSns {
  subject?: string;
  message: string;
  attributes: Record<string, string>;
  messageGroupId?: string;
}

export interface PlanInputs {
  rr: RemediationRequest;
  policy: AlertPolicy;
  runbook: Runbook;
  risk: RiskLevel;
  targets: readonly string[];
  region: string;
  /** Status holding the enrichment the templates read. */
  status: RemediationRequestStatus;
  /** When a manual approval comes too late (absent for auto approval). */
  approvalDeadline?: string;
  /** The admission enforcement verified for the namespace; absent when approvals are not enforced there. */
  admission?: AdmissionEpoch;
}

/** The template context of a request: its alert, its single target's facts, its enrichment, its namespace. */
export function templateContext(rr: RemediationRequest, status: RemediationRequestStatus): TemplateContext {
  const a = rr.spec.alert;
  const instances = status.enrichment?.instances ?? [];
  const only = instances.length === 1 ? instances[0] : undefined;
  return {
    alert: { name: a.name, source: a.source, fingerprint: a.fingerprint, status: a.status },
    labels: a.labels ?? {},
    annotations: a.annotations ?? {},
    instance: only && {
      id: only.instanceId,
      state: only.state,
      type: only.instanceType,
      zone: only.availabilityZone,
      privateIp: only.privateIpAddress,
    },
    tags: only?.tags,
    enrichment: enrichmentValues(status),
    namespace: rr.metadata?.namespace ?? '',
  };
}

/** `{{ enrichment.x }}` values: the target count, and each metric's mean when the request has one series of it. */
function enrichmentValues(status: RemediationRequestStatus): Record<string, string> {
  const values: Record<string, string> = { targetCount: String(status.enrichment?.instances.length ?? 0) };
  const series = status.enrichment?.metrics ?? [];
  for (const s of series) {
    if (s.mean !== undefined && series.filter((x) => x.name === s.name).length === 1) values[s.name] = String(s.mean);
  }
  return values;
}

/** Renders an sns action's templates; throws TemplateError on a value the allowlists refuse. */
export function renderSns(sns: SnsAction, ctx: TemplateContext, policyName: string | undefined): RenderedSns {
  return {
    // SNS refuses a subject with line breaks, control or non-ASCII characters: a value that
    // would bring one in fails the request (it is not altered behind the approver's back).
    subject: sns.subject !== undefined ? render(sns.subject, ctx, SNS_SUBJECT_VALUE_POLICY).slice(0, 100) : undefined,
    message: render(sns.message, ctx, { ...SNS_VALUE_POLICY, maxLength: 65536 }),
    attributes: Object.fromEntries(Object.entries(sns.messageAttributes ?? {}).map(([k, v]) => [k, render(v, ctx, SNS_VALUE_POLICY)])),
    messageGroupId: sns.messageGroupId
      ? render(sns.messageGroupId, ctx, { allowedPattern: '[A-Za-z0-9!-~]*', maxLength: 128 })
      : policyName,
  };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** JSON with object keys sorted at every level: the same plan always gives the same digest. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export function planDigest(plan: Omit<Plan, 'digest'>): string {
  return `sha256:${sha256(canonicalJson(plan))}`;
}

/**
 * Renders the plan. Throws TemplateError when an input or a parameter value is refused
 * by its rules (the request then fails: nothing is sent).
 */
export function renderPlan(p: PlanInputs): { plan: Plan; sns?: RenderedSns } {
  const ctx = templateContext(p.rr, p.status);
  ctx.inputs = renderInputs(p.policy, p.runbook, ctx);
  const action = p.runbook.spec.action;
  const account = p.runbook.spec.scope?.account;
  const base: Omit<Plan, 'digest'> = {
    runbook: { name: p.runbook.metadata?.name ?? '', generation: p.runbook.metadata?.generation ?? 0, uid: p.runbook.metadata?.uid ?? '' },
    policyGeneration: p.policy.metadata?.generation ?? 0,
    policy: {
      name: p.policy.metadata?.name ?? '',
      uid: p.policy.metadata?.uid ?? '',
      specSha256: sha256(canonicalJson(p.policy.spec)),
      ...(p.policy.metadata?.annotations?.[CHANGED_BY_ANNOTATION] !== undefined && {
        changedBy: p.policy.metadata.annotations[CHANGED_BY_ANNOTATION],
      }),
    },
    dryRun: p.policy.spec.safety?.dryRun === true,
    ...(p.approvalDeadline !== undefined && { approvalDeadline: p.approvalDeadline }),
    ...(p.policy.spec.approval?.approvers && { approvers: [...p.policy.spec.approval.approvers] }),
    ...(p.admission && { admission: p.admission }),
    risk: p.risk,
    targets: [...p.targets],
    region: p.region,
    ...(account && { roleArn: account.roleArn, ...(account.externalId && { externalId: account.externalId }) }),
  };
  let sns: RenderedSns | undefined;
  if (action.ssm) {
    const parameters: Record<string, string[]> = {};
    for (const param of action.ssm.parameters) parameters[param.name] = param.values.map((v) => render(v, ctx, valuePolicy(param)));
    const o = action.ssm.output;
    const output = o && {
      ...(o.cloudWatchLogGroup !== undefined && { cloudWatchLogGroup: o.cloudWatchLogGroup }),
      ...(o.s3BucketName !== undefined && {
        s3BucketName: o.s3BucketName,
        ...(o.s3KeyPrefix !== undefined && { s3KeyPrefix: o.s3KeyPrefix }),
      }),
    };
    // How it goes out over the fleet (rollout.ts): the runbook's, made more cautious by the
    // policy. Absent for a plain rollout, so plans approved before rollouts existed keep their digest.
    const rollout = effectiveRollout(action.ssm, p.policy.spec.safety?.rollout, p.targets.length);
    if (rollout.rollout && !ROLLOUT_EXECUTION) {
      throw new RolloutError(
        'the runbook (or the policy) declares a rollout (several waves, or alarms), which this controller cannot execute yet; remove spec.action.ssm.rollout (and spec.safety.rollout.waves) or upgrade the controller',
      );
    }
    base.ssm = {
      documentName: action.ssm.documentName ?? RUNBOOK_DEFAULTS.ssmDocument,
      parameters,
      timeoutSeconds: action.ssm.timeoutSeconds ?? RUNBOOK_DEFAULTS.ssmTimeoutSeconds,
      maxConcurrency: rollout.maxConcurrency,
      maxErrors: rollout.maxErrors,
      // Where the full output goes is part of what the approver approves.
      ...(output && Object.keys(output).length > 0 && { output }),
      ...(rollout.rollout && { rollout: rollout.rollout }),
    };
  } else if (action.sns) {
    sns = renderSns(action.sns, ctx, p.policy.metadata?.name);
    base.sns = {
      topicArn: action.sns.topicArn,
      ...(sns.subject !== undefined && { subject: sns.subject }),
      messageSha256: sha256(canonicalJson(sns)),
      messagePreview: sns.message.slice(0, 1024),
    };
  }
  return { plan: { digest: planDigest(base), ...base }, sns };
}
