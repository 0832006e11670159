/**
 * What a policy may do through its Runbook: whether its namespace is granted the
 * runbook, whether its risk respects the runbook's floor, whether it may auto-approve,
 * and whether its inputs are the ones the runbook declares. Pure functions over the
 * policy, the runbook and the namespace's labels: the AlertPolicy controller reports
 * them as `Ready=False`, and the request controller refuses to plan while they hold.
 */
import {
  DEFAULTS,
  parseDuration,
  RUNBOOK_DEFAULTS,
  riskRank,
  type AlertPolicy,
  type RiskLevel,
  type Runbook,
} from '../api/v1alpha1/index.js';
import type { Reason } from '../api/v1alpha1/reasons.js';
import { rolloutProblems } from './rollout.js';
import { selectorMatches } from './selector.js';
import {
  anchoredPattern,
  checkValue,
  forbiddenCharacter,
  parameterStoreReferences,
  placeholders,
  render,
  TemplateError,
  valuePolicy,
  type TemplateContext,
} from './template.js';

export interface RunbookGrant {
  /** The risk requests of this policy carry: the policy's own, or the runbook's floor. */
  risk: RiskLevel;
  /** Whether requests are approved without a person. */
  approval: 'Auto' | 'Manual';
}

export type GrantResult = { ok: true; grant: RunbookGrant } | { ok: false; reason: Reason; message: string };

/**
 * Checks `policy` may use `runbook` from its namespace. Every failure names what to fix
 * and who can fix it (the team, or a cluster administrator).
 */
export function grantFor(
  policy: AlertPolicy,
  runbook: Runbook | undefined,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
): GrantResult {
  const rbName = policy.spec.runbookRef.name;
  const ns = policy.metadata?.namespace ?? '';
  if (!runbook) {
    return {
      ok: false,
      reason: 'RunbookNotFound',
      message: `Runbook "${rbName}" does not exist; ask a cluster administrator, or fix spec.runbookRef`,
    };
  }
  if (namespaceLabels === undefined || !selectorMatches(runbook.spec.namespaceSelector, namespaceLabels)) {
    return {
      ok: false,
      reason: 'RunbookNotGranted',
      message: `Runbook "${rbName}" may not be used from namespace ${ns}: its namespaceSelector does not select it (a cluster administrator grants runbooks)`,
    };
  }
  const notify = notifyProblem(policy, runbook);
  if (notify) return { ok: false, reason: 'NotifyTopicNotGranted', message: notify };
  const floor = runbook.spec.minRisk ?? RUNBOOK_DEFAULTS.minRisk;
  const risk = policy.spec.risk ?? floor;
  if (riskRank(risk) < riskRank(floor)) {
    return {
      ok: false,
      reason: 'RiskBelowRunbookMinimum',
      message: `risk ${risk} is below the minimum risk ${floor} of Runbook "${rbName}"; raise spec.risk`,
    };
  }
  const maxAuto = runbook.spec.maxAutoApprovedRisk ?? RUNBOOK_DEFAULTS.maxAutoApprovedRisk;
  const mode = policy.spec.approval?.mode ?? (risk === 'Low' ? 'Auto' : 'Manual');
  if (mode === 'Auto' && riskRank(risk) > riskRank(maxAuto)) {
    if (policy.spec.approval?.mode === 'Auto') {
      return {
        ok: false,
        reason: 'AutoApprovalNotAllowed',
        message: `Runbook "${rbName}" allows auto-approval only up to ${maxAuto} risk, and this policy is ${risk}: set approval.mode Manual`,
      };
    }
    // The default (Auto for Low) gives way to the runbook quietly: a person approves.
    return { ok: true, grant: { risk, approval: 'Manual' } };
  }
  return { ok: true, grant: { risk, approval: mode } };
}

/**
 * Why the policy may not announce on its `notify.topicArn`, or undefined: the topic must be
 * one of its runbook's `notifyTopics` (the cluster administrator's grant).
 */
export function notifyProblem(policy: AlertPolicy, runbook: Runbook): string | undefined {
  const topic = policy.spec.notify?.topicArn;
  if (topic === undefined || (runbook.spec.notifyTopics ?? []).includes(topic)) return undefined;
  return (
    `notify.topicArn ${topic} is not granted by Runbook "${runbook.metadata?.name}" (its notifyTopics: ` +
    `${(runbook.spec.notifyTopics ?? []).join(', ') || 'none'}); ask a cluster administrator to add it, or remove spec.notify`
  );
}

/**
 * Whether a policy's requests may be announced on its notify topic now: its namespace is
 * granted its runbook and the runbook grants the topic. Checked before every publish, so a
 * policy that is not Ready (no runbook, not granted, topic not granted) announces nothing.
 */
export function notifyAllowed(
  policy: AlertPolicy,
  runbook: Runbook | undefined,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
): boolean {
  if (!runbook || namespaceLabels === undefined || !selectorMatches(runbook.spec.namespaceSelector, namespaceLabels)) return false;
  return notifyProblem(policy, runbook) === undefined;
}

/** Problems with the policy's inputs against the runbook's declared inputs. */
export function inputProblems(policy: AlertPolicy, runbook: Runbook): string[] {
  const declared = new Map((runbook.spec.inputs ?? []).map((i) => [i.name, i]));
  const given = policy.spec.inputs ?? {};
  const problems: string[] = [];
  for (const name of Object.keys(given)) {
    if (!declared.has(name))
      problems.push(
        `inputs.${name}: Runbook "${runbook.metadata?.name}" declares no such input (it takes ${[...declared.keys()].join(', ') || 'none'})`,
      );
  }
  for (const name of declared.keys()) {
    if (!(name in given)) problems.push(`inputs.${name}: required by Runbook "${runbook.metadata?.name}"`);
  }
  for (const [name, template] of Object.entries(given)) {
    try {
      const literal = literalInputProblem(template);
      if (literal) throw new TemplateError(literal);
      const used = placeholders(template);
      for (const p of used) {
        if (p.startsWith('inputs.') || p.startsWith('enrichment.'))
          throw new TemplateError(`{{ ${p} }} cannot be used in an input; inputs read the alert`);
      }
      // A constant input is judged now, so the policy is not Ready rather than failing each request.
      const input = declared.get(name);
      if (input && used.length === 0) {
        const rule = valuePolicy(input);
        checkValue(template, rule, anchoredPattern(rule.allowedPattern), `value ${JSON.stringify(template.slice(0, 64))}`);
      }
    } catch (error) {
      problems.push(`inputs.${name}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/**
 * The policy's inputs rendered from the alert, each held as a whole — the policy's
 * literal text included — to its runbook input's rule: its own allowedPattern, or the
 * default rule where it declares none. A parameter's wider rule applies on top when the
 * input is substituted, and never widens this one. Throws TemplateError naming the input
 * whose value is refused.
 */
export function renderInputs(policy: AlertPolicy, runbook: Runbook, ctx: TemplateContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const input of runbook.spec.inputs ?? []) {
    const template = policy.spec.inputs?.[input.name];
    if (template === undefined)
      throw new TemplateError(`policy sets no value for input ${input.name}, which Runbook "${runbook.metadata?.name}" requires`);
    const refusal = literalInputProblem(template);
    if (refusal) throw new TemplateError(`input ${input.name}: ${refusal}`);
    const rule = valuePolicy(input);
    let rendered: string;
    try {
      rendered = render(template, ctx, rule);
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      throw new TemplateError(`input ${input.name}: ${error.message}`);
    }
    checkValue(rendered, rule, anchoredPattern(rule.allowedPattern), `input ${input.name} = ${JSON.stringify(rendered.slice(0, 64))}`);
    out[input.name] = rendered;
  }
  return out;
}

/**
 * What a policy's input template may never contain, whatever the runbook's rules: a
 * Parameter Store reference (only a Runbook may name a parameter for SSM to resolve on
 * the instance), or a control or bidirectional character.
 */
function literalInputProblem(template: string): string | undefined {
  if (parameterStoreReferences(template).length > 0)
    return 'a Parameter Store reference ({{ssm:...}} or {{ssm-secure:...}}) may only be written in a Runbook, not in a policy input';
  const control = forbiddenCharacter(template);
  if (control) return `contains the control or bidirectional character ${control}`;
  return undefined;
}

/** Problems only the controller can find in a runbook (regexes, templates, the document allowlist). */
export function runbookProblems(runbook: Runbook, allowedDocuments: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const checkPattern = (where: string, pattern: string | undefined) => {
    if (pattern === undefined) return;
    try {
      anchoredPattern(pattern);
    } catch (error) {
      problems.push(`${where}.allowedPattern: ${(error as Error).message}`);
    }
  };
  for (const i of runbook.spec.inputs ?? []) checkPattern(`inputs[${i.name}]`, i.allowedPattern);
  const declared = new Set((runbook.spec.inputs ?? []).map((i) => i.name));
  const checkTemplate = (where: string, t: string) => {
    try {
      for (const p of placeholders(t)) {
        if (p.startsWith('inputs.') && !declared.has(p.slice('inputs.'.length)))
          problems.push(`${where}: {{ ${p} }} is not a declared input`);
      }
    } catch (error) {
      problems.push(`${where}: ${(error as Error).message}`);
    }
  };
  const ssm = runbook.spec.action.ssm;
  if (ssm) {
    const document = ssm.documentName ?? RUNBOOK_DEFAULTS.ssmDocument;
    if (!allowedDocuments.has(document)) {
      problems.push(
        `action.ssm.documentName ${document} is not allowed; the controller allows ${[...allowedDocuments].join(', ')} (flag --allowed-documents)`,
      );
    }
    for (const p of ssm.parameters) {
      checkPattern(`action.ssm.parameters[${p.name}]`, p.allowedPattern);
      for (const v of p.values) checkTemplate(`action.ssm.parameters[${p.name}]`, v);
    }
    problems.push(...rolloutProblems(ssm, runbook.spec.scope?.maxTargets ?? RUNBOOK_DEFAULTS.maxTargets));
  }
  const sns = runbook.spec.action.sns;
  if (sns) {
    for (const template of [sns.subject ?? '', sns.message, sns.messageGroupId ?? '', ...Object.values(sns.messageAttributes ?? {})])
      checkTemplate('action.sns', template);
  }
  for (const [k, v] of Object.entries(runbook.spec.scope?.tagSelector ?? {})) {
    try {
      const used = placeholders(v);
      if (used.some((p) => p !== 'namespace')) problems.push(`scope.tagSelector.${k}: only {{ namespace }} may be used in a scope`);
    } catch (error) {
      problems.push(`scope.tagSelector.${k}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/** The approval timeout of a policy, in ms. */
export function approvalTimeoutMs(policy: AlertPolicy): number {
  return parseDuration(policy.spec.approval?.timeout ?? DEFAULTS.approvalTimeout);
}
