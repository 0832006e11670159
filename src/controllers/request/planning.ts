/**
 * Pending → AwaitingApproval | Approved (or Failed | Skipped), in one reconcile: check the
 * policy may use its runbook, derive the targets and hold them to every rule, describe
 * them, read their metrics, apply the opt-out tag and the guards, and render the plan.
 *
 * `resolve` is also what the intent step runs again just before anything is sent: the
 * same rules, the same render, from current state, so a plan can be compared with the
 * one that was approved.
 */
import {
  RUNBOOK_DEFAULTS,
  parseDuration,
  type AlertPolicy,
  type InstanceEnrichment,
  type Plan,
  type RemediationRequest,
  type RemediationRequestStatus,
  type Runbook,
} from '../../api/v1alpha1/index.js';
import { alertLocation, sessionTagsFor } from '../../cloud/location.js';
import type { AdmissionEpoch } from '../admission.js';
import { isHybridNodeId, type AgentStatus, type InstanceFacts } from '../../cloud/types.js';
import { failedGuard, optedOutBy, planMetricQueries, seriesFrom } from '../enrichment.js';
import { renderPlan, templateContext, type RenderedSns } from '../plan.js';
import { approvalTimeoutMs, grantFor, inputProblems, runbookProblems } from '../runbooks.js';
import { candidates, checkTargets, outsideScope, renderSelector } from '../targets.js';
import { TemplateError } from '../template.js';
import type { CloudClients, CloudLocation, RemediationRequestReconcilerDeps } from './deps.js';
import type { Transition, Transitions } from './transition.js';

export interface Resolved {
  plan: Plan;
  sns?: RenderedSns;
  facts: InstanceFacts[];
  approval: 'Auto' | 'Manual';
  cloud: CloudClients;
}

export type Resolution = { ok: true; resolved: Resolved } | { ok: false; transition: Transition };

/** Session tags on the assumed role's session: IAM in the workload account can condition on them. */
export function sessionTags(rr: RemediationRequest): Record<string, string> {
  return sessionTagsFor(rr.metadata?.namespace ?? '', rr.spec.policyRef.name);
}

/** The agent fields of an instance's enrichment; a node SSM does not know is NotRegistered. */
function agentFacts(agent: AgentStatus | undefined): Pick<InstanceEnrichment, 'pingStatus' | 'platform' | 'agentVersion'> {
  if (!agent) return { pingStatus: 'NotRegistered' };
  return {
    pingStatus: agent.pingStatus,
    ...(agent.platformType && { platform: agent.platformType }),
    ...(agent.agentVersion && { agentVersion: agent.agentVersion }),
  };
}

function agentFactsOf(before: InstanceEnrichment | undefined): Pick<InstanceEnrichment, 'pingStatus' | 'platform' | 'agentVersion'> {
  if (!before) return {};
  return {
    ...(before.pingStatus !== undefined && { pingStatus: before.pingStatus }),
    ...(before.platform !== undefined && { platform: before.platform }),
    ...(before.agentVersion !== undefined && { agentVersion: before.agentVersion }),
  };
}

export class Planner {
  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
  ) {}

  /** Where the request runs: the alert's own region when the runbook allows it, else the runbook's first (see alertLocation). */
  async location(rr: RemediationRequest, runbook: Runbook): Promise<CloudLocation | { refused: string; reason: string }> {
    const account = runbook.spec.scope?.account;
    const own = rr.spec.alert.account !== undefined && !account ? await this.deps.ownAccount?.() : undefined;
    const regions = runbook.spec.scope?.regions ?? [this.deps.defaultRegion];
    const checked = alertLocation(rr.spec.alert, { name: runbook.metadata?.name ?? '', regions, roleArn: account?.roleArn }, own);
    if (!checked.ok) return { refused: checked.message, reason: checked.reason };
    return {
      region: checked.region,
      ...(account && { roleArn: account.roleArn, externalId: account.externalId, sessionTags: sessionTags(rr) }),
    };
  }

  /**
   * Applies every rule and renders the plan into `status` (targets, enrichment). With
   * `readMetrics` false the metrics already in status are used (the intent check).
   * `admission` is the enforcement epoch the plan is bound to: the one verified now when
   * planning, and by default the one the approved plan carries (the intent check compares
   * what would run, not when the approval was proven; that was settled at approval).
   */
  async resolve(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    policy: AlertPolicy,
    runbook: Runbook | undefined,
    readMetrics: boolean,
    admission: AdmissionEpoch | undefined = status.plan?.admission,
  ): Promise<Resolution> {
    const refuse = (reason: string, message: string): Resolution => ({ ok: false, transition: this.t.fail(rr, status, reason, message) });
    const ns = rr.metadata?.namespace ?? '';
    const granted = grantFor(policy, runbook, this.deps.namespaceLabels(ns));
    if (!granted.ok || !runbook)
      return granted.ok ? refuse('RunbookNotFound', 'no runbook') : refuse(granted.reason, `${granted.message}; nothing was run`);
    const problems = [...runbookProblems(runbook, this.deps.allowedDocuments), ...inputProblems(policy, runbook)];
    if (problems.length > 0)
      return refuse(
        'InvalidPolicy',
        `policy ${policy.metadata?.name} with Runbook "${runbook.metadata?.name}" cannot run: ${problems.join('; ')}`,
      );
    status.risk = granted.grant.risk;
    if (policy.spec.safety?.suspend) {
      return {
        ok: false,
        transition: this.t.enter(rr, status, 'Skipped', 'Suspended', `policy ${policy.metadata?.name} is suspended (spec.safety.suspend)`),
      };
    }
    const location = await this.location(rr, runbook);
    if ('refused' in location) return refuse(location.reason, `${location.refused}; nothing was run`);
    let cloud: CloudClients;
    try {
      cloud = this.deps.cloudFor(location);
    } catch (error) {
      return refuse('LocationUnavailable', `${(error as Error).message}; nothing was run`);
    }

    let policySelector: Record<string, string> | undefined;
    let scopeSelector: Record<string, string> | undefined;
    try {
      policySelector = renderSelector(policy.spec.targets.tagSelector, templateContext(rr, status));
      scopeSelector = renderSelector(runbook.spec.scope?.tagSelector, {
        alert: { name: '', source: '' },
        labels: {},
        annotations: {},
        namespace: ns,
      });
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      return refuse('InvalidTargets', `targets.tagSelector: ${error.message}`);
    }
    const found = candidates(rr.spec, policy.spec, policySelector, scopeSelector);
    if (!found.ok) return refuse(found.reason, found.message);
    const runbookMax = runbook.spec.scope?.maxTargets ?? RUNBOOK_DEFAULTS.maxTargets;
    const maxTargets = Math.min(policy.spec.targets.maxTargets ?? runbookMax, runbookMax);
    let facts: InstanceFacts[];
    let targets: string[];
    if ('selector' in found) {
      facts = await cloud.instances.findByTags(found.selector);
      const checked = checkTargets(
        facts.map((f) => f.instanceId),
        policy.spec,
        maxTargets,
      );
      if (!checked.ok) return refuse(checked.reason, checked.message);
      targets = checked.targets;
    } else {
      const checked = checkTargets(found.ids, policy.spec, maxTargets);
      if (!checked.ok) return refuse(checked.reason, checked.message);
      targets = checked.targets;
      // EC2 knows nothing of hybrid `mi-` nodes: they are described by SSM's agent view below.
      const hybrid = targets.filter(isHybridNodeId);
      const described = await cloud.instances.describe(targets.filter((id) => !isHybridNodeId(id)));
      if (described.missing.length > 0) {
        this.t.condition(rr, status, 'Enriched', 'False', 'InstancesNotFound', `not found: ${described.missing.join(', ')}`);
        return refuse(
          'InstancesNotFound',
          `EC2 instances not found in region ${location.region}${location.roleArn ? ` through ${location.roleArn}` : ''}: ${described.missing.join(', ')}; check the alert's instance IDs and the runbook's scope`,
        );
      }
      facts = [...described.found, ...hybrid.map((instanceId) => ({ instanceId, tags: {} }))];
    }
    const required = this.deps.requiredTargetTag;
    const outside = outsideScope(facts, [
      { what: "the policy's targets.tagSelector", tags: policySelector },
      { what: `the scope of Runbook "${runbook.metadata?.name}"`, tags: scopeSelector },
      {
        what: "the tag the controller's IAM policy requires for ssm:SendCommand (--required-target-tag)",
        tags: required && { [required.key]: required.value },
      },
    ]);
    if (outside) return refuse(outside.reason, outside.message);

    status.targets = targets;
    status.targetCount = targets.length;
    const keys = policy.spec.enrichment?.tagKeys;
    // SSM's view of the agents: read while planning when a guard needs it or a target is a
    // hybrid node (EC2 tells nothing of those); the intent check keeps what planning read.
    const agentGuard = (policy.spec.enrichment?.guards ?? []).find((g) => g.agentOnline)?.agentOnline;
    let agents: Map<string, AgentStatus> | undefined;
    if (readMetrics && (agentGuard || targets.some(isHybridNodeId))) agents = await cloud.agents.agentStatus(targets);
    const before = new Map((status.enrichment?.instances ?? []).map((i) => [i.instanceId, i]));
    const instances: InstanceEnrichment[] = [...facts]
      .sort((a, b) => a.instanceId.localeCompare(b.instanceId))
      .map((f) => {
        const agent = agents ? agentFacts(agents.get(f.instanceId)) : agentFactsOf(before.get(f.instanceId));
        return {
          instanceId: f.instanceId,
          state: f.state,
          instanceType: f.instanceType,
          availabilityZone: f.availabilityZone,
          privateIpAddress: f.privateIpAddress,
          tags: keys ? Object.fromEntries(Object.entries(f.tags).filter(([k]) => keys.includes(k))) : f.tags,
          ...agent,
        };
      });
    const metrics = status.enrichment?.metrics;
    status.enrichment = { observedAt: status.enrichment?.observedAt ?? this.t.now(), instances, ...(metrics && { metrics }) };
    // The opt-out tag always wins, before metrics are even read.
    const optedOut = optedOutBy(policy.spec, facts, this.deps.optOutTag);
    if (optedOut) return { ok: false, transition: this.t.enter(rr, status, 'Skipped', 'OptOut', optedOut) };

    if (readMetrics) {
      status.enrichment.observedAt = this.t.now();
      const planned = planMetricQueries(policy.spec, targets, templateContext(rr, status));
      if (planned.length > 0) {
        const lookback = Math.max(...(policy.spec.enrichment?.metrics ?? []).map((m) => parseDuration(m.lookback ?? '10m')));
        const end = new Date(this.deps.clock.now());
        const results = await cloud.metricsReader.getMetricData(
          planned.map((p) => p.query),
          new Date(end.getTime() - lookback),
          end,
        );
        status.enrichment.metrics = seriesFrom(planned, results);
      }
      const series = status.enrichment.metrics ?? [];
      this.t.condition(
        rr,
        status,
        'Enriched',
        'True',
        'Enriched',
        `described ${facts.length} instance(s)${series.length ? `, read ${series.length} metric series` : ''}`,
      );
      if (agentGuard) {
        const offline = instances.filter((i) => i.pingStatus !== 'Online');
        if (offline.length > 0) {
          const listed = offline
            .slice(0, 10)
            .map((i) => `${i.instanceId} (${i.pingStatus})`)
            .join(', ');
          const message = `guard not met: the SSM agent is not Online on ${offline.length} target(s): ${listed}${offline.length > 10 ? ', ...' : ''}; nothing was sent`;
          return {
            ok: false,
            transition:
              agentGuard === 'Fail'
                ? this.t.fail(rr, status, 'AgentOffline', message)
                : this.t.enter(rr, status, 'Skipped', 'Guard', message),
          };
        }
      }
      const guard = failedGuard(policy.spec.enrichment?.guards ?? [], facts, series);
      if (guard) return { ok: false, transition: this.t.enter(rr, status, 'Skipped', 'Guard', `guard not met: ${guard}`) };
    }

    try {
      const manual = granted.grant.approval === 'Manual';
      const { plan, sns } = renderPlan({
        rr,
        policy,
        runbook,
        risk: granted.grant.risk,
        targets,
        region: location.region,
        status,
        ...(manual && {
          approvalDeadline: new Date(Date.parse(status.startTime ?? this.t.now()) + approvalTimeoutMs(policy)).toISOString(),
        }),
        ...(manual && admission && { admission }),
      });
      return { ok: true, resolved: { plan, sns, facts, approval: granted.grant.approval, cloud } };
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      return refuse('InvalidParameter', `${error.message}; nothing was sent`);
    }
  }

  /** Pending (or a changed spec while awaiting approval): plan, then ask a person or approve. */
  async plan(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    policy: AlertPolicy,
  ): Promise<{ transition: Transition; resolved?: Resolved }> {
    status.startTime ??= this.t.now();
    const runbook = this.deps.getRunbook(policy.spec.runbookRef.name);
    const verdict = this.deps.admission(rr.metadata?.namespace ?? '');
    const r = await this.resolve(rr, status, policy, runbook, true, verdict.enforced ? verdict.epoch : undefined);
    if (!r.ok) return { transition: r.transition };
    const given = rr.spec.approval;
    if (given?.decision === 'Approved' && r.resolved.approval === 'Manual') {
      // An approval already there when this plan is rendered was not written against it,
      // and nothing proves admission checked it: it never counts (ADR 0011). It cannot be
      // withdrawn either (it is immutable), so the request ends.
      status.plan = r.resolved.plan;
      this.t.condition(rr, status, 'Approved', 'False', 'ApprovalNotProven', `the approval by ${given.approver} predates the plan`);
      return {
        transition: this.t.fail(
          rr,
          status,
          'ApprovalNotProven',
          `the approval by ${given.approver} was given before the plan ${r.resolved.plan.digest} was rendered under the admission enforcement in force now, so nothing proves it was checked; nothing was run — create a new request and approve its plan`,
        ),
      };
    }
    status.plan = r.resolved.plan;
    delete status.approval;
    if (r.resolved.approval === 'Auto') {
      this.t.condition(rr, status, 'Approved', 'True', 'AutoApproved', `policy ${policy.metadata?.name} auto-approves ${status.risk} risk`);
      return {
        transition: this.t.enter(rr, status, 'Approved', 'AutoApproved', `auto-approved by policy ${policy.metadata?.name}`),
        resolved: r.resolved,
      };
    }
    this.t.condition(rr, status, 'Approved', 'Unknown', 'AwaitingApproval', `waiting for an approval of plan ${r.resolved.plan.digest}`);
    const t = this.t.enter(
      rr,
      status,
      'AwaitingApproval',
      'ApprovalRequired',
      `${status.risk} risk: review the plan and approve with kubectl remediator approve ${rr.metadata?.name} -n ${rr.metadata?.namespace}`,
    );
    t.requeueAfterMs = Math.max(0, Date.parse(status.startTime) + approvalTimeoutMs(policy) - this.deps.clock.now());
    return { transition: t };
  }
}
