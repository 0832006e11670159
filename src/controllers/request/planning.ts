/**
 * Pending → AwaitingApproval | Approved (or Failed | Skipped), in one reconcile: check the
 * policy may use its runbook, derive the targets and hold them to every rule, describe
 * them, read their metrics, apply the opt-out tag and the guards, and render the plan.
 *
 * The rules are two named chains (chain.ts), listed in docs/security.md from these
 * arrays: PLANNING_CHECKS when a request is planned, and RECHECK_CHECKS, what the intent
 * step runs again just before anything is sent — the same rules and the same render from
 * current state, without reading agents or metrics again (it keeps what planning read),
 * so the plan can be compared with the one that was approved. The checks gather facts
 * (targets, enrichment) in their context; `writeResolution` alone writes them to status.
 */
import {
  RUNBOOK_DEFAULTS,
  parseDuration,
  type AlertPolicy,
  type InstanceEnrichment,
  type Plan,
  type RemediationRequest,
  type RemediationRequestStatus,
  type RiskLevel,
  type Runbook,
} from '../../api/v1alpha1/index.js';
import { alertLocation, sessionTagsFor } from '../../cloud/location.js';
import type { AdmissionEpoch } from '../admission.js';
import { isHybridNodeId, type AgentStatus, type InstanceFacts } from '../../cloud/types.js';
import { failedGuard, optedOutBy, planMetricQueries, seriesFrom } from '../enrichment.js';
import { renderPlan, templateContext, type RenderedSns } from '../plan-render.js';
import { approvalTimeoutMs, grantFor, inputProblems, runbookProblems, type RunbookGrant } from '../runbook-grant.js';
import { runChain, type Check, type ChainDoc, type Refusal } from '../chain.js';
import { candidates, checkTargets, outsideScope, renderSelector } from '../targets.js';
import { TemplateError } from '../template.js';
import type { CloudServices } from '../../cloud/clients.js';
import type { AwsLocation } from '../../cloud/location.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import type { Transition, Transitions } from './transition.js';
import type { Condition } from '../../runtime/conditions.js';

export interface Resolved {
  plan: Plan;
  sns?: RenderedSns;
  facts: InstanceFacts[];
  approval: 'Auto' | 'Manual';
  cloud: CloudServices;
}

export type Resolution = { ok: true; resolved: Resolved } | { ok: false; transition: Transition; refusal: PlanRefusal };

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

/** A planning check that refuses: the request ends Failed, or Skipped (suspended, opted out, a guard). */
export interface PlanRefusal extends Refusal {
  end: 'Failed' | 'Skipped';
  /** The `Enriched` condition to set with it, when the refusal is about what was read. */
  enriched?: EnrichedCondition;
}

type EnrichedCondition = { status: Condition['status']; reason: Refusal['reason']; message: string };
type Enrichment = NonNullable<RemediationRequestStatus['enrichment']>;

/** What the planning checks read, and the facts each gathers for the checks after it. */
export interface PlanContext {
  readonly deps: RemediationRequestReconcilerDeps;
  readonly rr: RemediationRequest;
  /** The status this reconcile started from (never written by a check). */
  readonly status: RemediationRequestStatus;
  readonly policy: AlertPolicy;
  readonly runbook: Runbook | undefined;
  /** The enforcement epoch the plan is bound to (see `Planner.plan` and `Planner.recheck`). */
  readonly admission: AdmissionEpoch | undefined;
  readonly now: () => string;
  grant?: RunbookGrant;
  /** The grant's risk, once the policy is known to be usable with its runbook. */
  risk?: RiskLevel;
  location?: AwsLocation;
  cloud?: CloudServices;
  policySelector?: Record<string, string>;
  scopeSelector?: Record<string, string>;
  /** The targets the rules derive and what EC2 (or SSM) says of them, before the scope check. */
  candidates?: { facts: InstanceFacts[]; targets: string[] };
  /** The same, once every instance is in scope: what status.targets says. */
  targets?: string[];
  facts?: InstanceFacts[];
  agents?: Map<string, AgentStatus>;
  enrichment?: Enrichment;
  enriched?: EnrichedCondition;
  rendered?: { plan: Plan; sns?: RenderedSns };
}

type PlanCheck = Check<PlanContext, PlanRefusal>;

const failed = (reason: Refusal['reason'], message: string): PlanRefusal => ({ end: 'Failed', reason, message });
const skipped = (reason: Refusal['reason'], message: string): PlanRefusal => ({ end: 'Skipped', reason, message });
const ns = (ctx: PlanContext) => ctx.rr.metadata?.namespace ?? '';
/** The status as the checks so far would write it: what templates see of the enrichment. */
const planned = (ctx: PlanContext): RemediationRequestStatus => ({ ...ctx.status, enrichment: ctx.enrichment ?? ctx.status.enrichment });
const agentGuard = (policy: AlertPolicy) => (policy.spec.enrichment?.guards ?? []).find((g) => g.agentOnline)?.agentOnline;

/** Where the request runs: the alert's own region when the runbook allows it, else the runbook's first (see alertLocation). */
async function locate(ctx: PlanContext, runbook: Runbook): Promise<AwsLocation | Refusal> {
  const { deps, rr } = ctx;
  const account = runbook.spec.scope?.account;
  const own = rr.spec.alert.account !== undefined && !account ? await deps.ownAccount?.() : undefined;
  const regions = runbook.spec.scope?.regions ?? [deps.defaultRegion];
  const checked = alertLocation(rr.spec.alert, { name: runbook.metadata?.name ?? '', regions, roleArn: account?.roleArn }, own);
  if (!checked.ok) return { reason: checked.reason, message: checked.message };
  return {
    region: checked.region,
    ...(account && { roleArn: account.roleArn, externalId: account.externalId, sessionTags: sessionTags(rr) }),
  };
}

const runbookGranted: PlanCheck = {
  name: 'runbook granted',
  doc: "the policy's runbook exists, selects the policy's namespace, and allows its risk and approval mode (`RunbookNotFound`, `RunbookNotGranted`, `RiskBelowRunbookMinimum`, `AutoApprovalNotAllowed`, `NotifyTopicNotGranted`).",
  run(ctx) {
    const granted = grantFor(ctx.policy, ctx.runbook, ctx.deps.namespaceLabels(ns(ctx)));
    if (!granted.ok) return failed(granted.reason, `${granted.message}; nothing was run`);
    if (!ctx.runbook) return failed('RunbookNotFound', 'no runbook');
    ctx.grant = granted.grant;
    return undefined;
  },
};

const policyUsable: PlanCheck = {
  name: 'policy usable',
  doc: "the runbook's document is allowlisted and the policy's inputs are the runbook's (`InvalidPolicy`).",
  run(ctx) {
    const runbook = ctx.runbook!;
    const problems = [...runbookProblems(runbook, ctx.deps.allowedDocuments), ...inputProblems(ctx.policy, runbook)];
    if (problems.length > 0)
      return failed(
        'InvalidPolicy',
        `policy ${ctx.policy.metadata?.name} with Runbook "${runbook.metadata?.name}" cannot run: ${problems.join('; ')}`,
      );
    ctx.risk = ctx.grant!.risk;
    return undefined;
  },
};

const notSuspended: PlanCheck = {
  name: 'not suspended',
  doc: 'the policy is not suspended (`spec.safety.suspend`: Skipped, `Suspended`).',
  run: (ctx) =>
    ctx.policy.spec.safety?.suspend
      ? skipped('Suspended', `policy ${ctx.policy.metadata?.name} is suspended (spec.safety.suspend)`)
      : undefined,
};

const locationAllowed: PlanCheck = {
  name: 'location allowed',
  doc: "the alert's account and region are the runbook's (`AlertLocationUnknown`, `LocationNotAllowed`).",
  async run(ctx) {
    const location = await locate(ctx, ctx.runbook!);
    if ('reason' in location) return failed(location.reason, `${location.message}; nothing was run`);
    ctx.location = location;
    return undefined;
  },
};

const locationReachable: PlanCheck = {
  name: 'location reachable',
  doc: 'the controller has clients for that account and region (`LocationUnavailable`).',
  run(ctx) {
    try {
      ctx.cloud = ctx.deps.cloudFor(ctx.location!);
    } catch (error) {
      return failed('LocationUnavailable', `${(error as Error).message}; nothing was run`);
    }
    return undefined;
  },
};

const selectorsRendered: PlanCheck = {
  name: 'selectors rendered',
  doc: "the policy's `targets.tagSelector` and the runbook scope's render from the alert and namespace (`InvalidTargets`).",
  run(ctx) {
    try {
      ctx.policySelector = renderSelector(ctx.policy.spec.targets.tagSelector, templateContext(ctx.rr, ctx.status));
      ctx.scopeSelector = renderSelector(ctx.runbook!.spec.scope?.tagSelector, {
        alert: { name: '', source: '' },
        labels: {},
        annotations: {},
        namespace: ns(ctx),
      });
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      return failed('InvalidTargets', `targets.tagSelector: ${error.message}`);
    }
    return undefined;
  },
};

const targetsDerived: PlanCheck = {
  name: 'targets derived',
  doc: "explicit `spec.targets` only narrow what the alert names through the policy's rules; the cap is the lower `maxTargets`; named instances exist (`TargetNotAllowed`, `NoTargets`, `InvalidTargets`, `TooManyTargets`, `InstancesNotFound`).",
  async run(ctx) {
    const { policy, runbook } = ctx;
    const found = candidates(ctx.rr.spec, policy.spec, ctx.policySelector, ctx.scopeSelector);
    if (!found.ok) return failed(found.reason, found.message);
    const runbookMax = runbook!.spec.scope?.maxTargets ?? RUNBOOK_DEFAULTS.maxTargets;
    const maxTargets = Math.min(policy.spec.targets.maxTargets ?? runbookMax, runbookMax);
    const cloud = ctx.cloud!;
    if ('selector' in found) {
      const facts = await cloud.instances.findByTags(found.selector);
      const checked = checkTargets(
        facts.map((f) => f.instanceId),
        policy.spec,
        maxTargets,
      );
      if (!checked.ok) return failed(checked.reason, checked.message);
      ctx.candidates = { facts, targets: checked.targets };
      return undefined;
    }
    const checked = checkTargets(found.ids, policy.spec, maxTargets);
    if (!checked.ok) return failed(checked.reason, checked.message);
    const targets = checked.targets;
    // EC2 knows nothing of hybrid `mi-` nodes: they are described by SSM's agent view below.
    const hybrid = targets.filter(isHybridNodeId);
    const described = await cloud.instances.describe(targets.filter((id) => !isHybridNodeId(id)));
    if (described.missing.length > 0) {
      const { region, roleArn } = ctx.location!;
      return {
        ...failed(
          'InstancesNotFound',
          `EC2 instances not found in region ${region}${roleArn ? ` through ${roleArn}` : ''}: ${described.missing.join(', ')}; check the alert's instance IDs and the runbook's scope`,
        ),
        enriched: { status: 'False', reason: 'InstancesNotFound', message: `not found: ${described.missing.join(', ')}` },
      };
    }
    ctx.candidates = { facts: [...described.found, ...hybrid.map((instanceId) => ({ instanceId, tags: {} }))], targets };
    return undefined;
  },
};

const targetsInScope: PlanCheck = {
  name: 'targets in scope',
  doc: "every instance carries the policy's selector tags, the runbook scope's tags and the tag the IAM policy requires (`TargetOutOfScope`).",
  run(ctx) {
    const required = ctx.deps.requiredTargetTag;
    const { facts, targets } = ctx.candidates!;
    const outside = outsideScope(facts, [
      { what: "the policy's targets.tagSelector", tags: ctx.policySelector },
      { what: `the scope of Runbook "${ctx.runbook!.metadata?.name}"`, tags: ctx.scopeSelector },
      {
        what: "the tag the controller's IAM policy requires for ssm:SendCommand (--required-target-tag)",
        tags: required && { [required.key]: required.value },
      },
    ]);
    if (outside) return failed(outside.reason, outside.message);
    ctx.targets = targets;
    ctx.facts = facts;
    return undefined;
  },
};

const agentsRead: PlanCheck = {
  name: 'agents read',
  doc: "SSM's view of the agents is read when a guard needs it or a target is a hybrid node (refuses nothing).",
  async run(ctx) {
    // Read while planning only: the intent check keeps what planning read.
    if (agentGuard(ctx.policy) || ctx.targets!.some(isHybridNodeId)) ctx.agents = await ctx.cloud!.agents.agentStatus(ctx.targets!);
    return undefined;
  },
};

const targetsDescribed: PlanCheck = {
  name: 'targets described',
  doc: 'the enrichment lists each target as EC2 and SSM describe it, with the tags the policy keeps (refuses nothing).',
  run(ctx) {
    const keys = ctx.policy.spec.enrichment?.tagKeys;
    const before = new Map((ctx.status.enrichment?.instances ?? []).map((i) => [i.instanceId, i]));
    const agents = ctx.agents;
    const instances: InstanceEnrichment[] = [...ctx.facts!]
      .sort((a, b) => a.instanceId.localeCompare(b.instanceId))
      .map((f) => ({
        instanceId: f.instanceId,
        state: f.state,
        instanceType: f.instanceType,
        availabilityZone: f.availabilityZone,
        privateIpAddress: f.privateIpAddress,
        tags: keys ? Object.fromEntries(Object.entries(f.tags).filter(([k]) => keys.includes(k))) : f.tags,
        ...(agents ? agentFacts(agents.get(f.instanceId)) : agentFactsOf(before.get(f.instanceId))),
      }));
    const metrics = ctx.status.enrichment?.metrics;
    ctx.enrichment = { observedAt: ctx.status.enrichment?.observedAt ?? ctx.now(), instances, ...(metrics && { metrics }) };
    return undefined;
  },
};

const notOptedOut: PlanCheck = {
  name: 'not opted out',
  doc: "no target carries the admin's opt-out tag or the policy's own; it always wins, before metrics are read (Skipped, `OptOut`).",
  run(ctx) {
    const optedOut = optedOutBy(ctx.policy.spec, ctx.facts!, ctx.deps.optOutTag);
    return optedOut ? skipped('OptOut', optedOut) : undefined;
  },
};

const metricsRead: PlanCheck = {
  name: 'metrics read',
  doc: "the metrics the policy's enrichment and guards need are read from CloudWatch (refuses nothing).",
  async run(ctx) {
    const { policy, deps } = ctx;
    const enrichment: Enrichment = { ...ctx.enrichment!, observedAt: ctx.now() };
    ctx.enrichment = enrichment;
    const queries = planMetricQueries(policy.spec, ctx.targets!, templateContext(ctx.rr, planned(ctx)));
    if (queries.length > 0) {
      const lookback = Math.max(...(policy.spec.enrichment?.metrics ?? []).map((m) => parseDuration(m.lookback ?? '10m')));
      const end = new Date(deps.clock.now());
      const results = await ctx.cloud!.metrics.getMetricData(
        queries.map((p) => p.query),
        new Date(end.getTime() - lookback),
        end,
      );
      enrichment.metrics = seriesFrom(queries, results);
    }
    const series = enrichment.metrics ?? [];
    ctx.enriched = {
      status: 'True',
      reason: 'Enriched',
      message: `described ${ctx.facts!.length} instance(s)${series.length ? `, read ${series.length} metric series` : ''}`,
    };
    return undefined;
  },
};

const agentsOnline: PlanCheck = {
  name: 'agents online',
  doc: "with an `agentOnline` guard, every target's SSM agent is Online (`AgentOffline` when the guard says Fail; Skipped, `Guard`, when it says Skip).",
  run(ctx) {
    const guard = agentGuard(ctx.policy);
    if (!guard) return undefined;
    const offline = ctx.enrichment!.instances.filter((i) => i.pingStatus !== 'Online');
    if (offline.length === 0) return undefined;
    const listed = offline
      .slice(0, 10)
      .map((i) => `${i.instanceId} (${i.pingStatus})`)
      .join(', ');
    const message = `guard not met: the SSM agent is not Online on ${offline.length} target(s): ${listed}${offline.length > 10 ? ', ...' : ''}; nothing was sent`;
    return guard === 'Fail' ? failed('AgentOffline', message) : skipped('Guard', message);
  },
};

const guardsMet: PlanCheck = {
  name: 'guards met',
  doc: "the policy's metric and tag guards hold (Skipped, `Guard`).",
  run(ctx) {
    const guard = failedGuard(ctx.policy.spec.enrichment?.guards ?? [], ctx.facts!, ctx.enrichment!.metrics ?? []);
    return guard ? skipped('Guard', `guard not met: ${guard}`) : undefined;
  },
};

const planRendered: PlanCheck = {
  name: 'plan rendered',
  doc: "every value substituted into the runbook's templates passes its rules, and the plan and its digest are rendered (`InvalidParameter`).",
  run(ctx) {
    const { rr, policy, status } = ctx;
    const grant = ctx.grant!;
    const manual = grant.approval === 'Manual';
    try {
      ctx.rendered = renderPlan({
        rr,
        policy,
        runbook: ctx.runbook!,
        risk: grant.risk,
        targets: ctx.targets!,
        region: ctx.location!.region,
        status: { ...planned(ctx), risk: ctx.risk, targets: ctx.targets, targetCount: ctx.targets!.length },
        ...(manual && {
          approvalDeadline: new Date(Date.parse(status.startTime ?? ctx.now()) + approvalTimeoutMs(policy)).toISOString(),
        }),
        ...(manual && ctx.admission && { admission: ctx.admission }),
      });
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      return failed('InvalidParameter', `${error.message}; nothing was sent`);
    }
    return undefined;
  },
};

/** The rules a request is planned by, in order. */
export const PLANNING_CHECKS: readonly PlanCheck[] = [
  runbookGranted,
  policyUsable,
  notSuspended,
  locationAllowed,
  locationReachable,
  selectorsRendered,
  targetsDerived,
  targetsInScope,
  agentsRead,
  targetsDescribed,
  notOptedOut,
  metricsRead,
  agentsOnline,
  guardsMet,
  planRendered,
];

/** The same rules again just before the intent, on current state: what planning read of agents and metrics is kept. */
export const RECHECK_CHECKS: readonly PlanCheck[] = PLANNING_CHECKS.filter(
  (c) => ![agentsRead, metricsRead, agentsOnline, guardsMet].includes(c),
);

export const PLANNING_CHAIN: ChainDoc = {
  title: 'Planning (Pending)',
  where: 'src/controllers/request/planning.ts: PLANNING_CHECKS',
  checks: PLANNING_CHECKS,
};

export const RECHECK_CHAIN: ChainDoc = {
  title: 'Planning again before the intent (Approved)',
  where: 'src/controllers/request/planning.ts: RECHECK_CHECKS',
  checks: RECHECK_CHECKS,
};

/**
 * Writes what the chain gathered into `status` — the risk, the targets, the enrichment
 * and its condition, as far as the checks got — and, for a refusal, the phase it ends in.
 */
function writeResolution(
  transitions: Transitions,
  ctx: PlanContext,
  status: RemediationRequestStatus,
  refusal: PlanRefusal | undefined,
): Resolution {
  const { rr } = ctx;
  if (ctx.risk) status.risk = ctx.risk;
  if (ctx.targets) {
    status.targets = ctx.targets;
    status.targetCount = ctx.targets.length;
  }
  if (ctx.enrichment) status.enrichment = ctx.enrichment;
  const enriched = refusal?.enriched ?? ctx.enriched;
  if (enriched) transitions.condition(rr, status, 'Enriched', enriched.status, enriched.reason, enriched.message);
  if (refusal) {
    const transition =
      refusal.end === 'Failed'
        ? transitions.fail(rr, status, refusal.reason, refusal.message)
        : transitions.enter(rr, status, 'Skipped', refusal.reason, refusal.message);
    return { ok: false, transition, refusal };
  }
  const { plan, sns } = ctx.rendered!;
  return { ok: true, resolved: { plan, sns, facts: ctx.facts!, approval: ctx.grant!.approval, cloud: ctx.cloud! } };
}

export class Planner {
  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
  ) {}

  /** Runs `checks` for the request and writes their result into `status`. */
  private async resolve(
    checks: readonly PlanCheck[],
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    policy: AlertPolicy,
    admission: AdmissionEpoch | undefined,
  ): Promise<Resolution> {
    const ctx: PlanContext = {
      deps: this.deps,
      rr,
      status: structuredClone(status),
      policy,
      runbook: this.deps.getRunbook(policy.spec.runbookRef.name),
      admission,
      now: () => this.t.now(),
    };
    const refused = await runChain(checks, ctx);
    return writeResolution(this.t, ctx, status, refused?.verdict);
  }

  /**
   * The approved plan's rules on current state, rendered again for comparison. The
   * enforcement epoch is the one the approved plan carries: the intent check compares
   * what would run, not when the approval was proven (that was settled at approval).
   */
  recheck(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Promise<Resolution> {
    return this.resolve(RECHECK_CHECKS, rr, status, policy, status.plan?.admission);
  }

  /** Pending (or a changed spec while awaiting approval): plan, then ask a person or approve. */
  async plan(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    policy: AlertPolicy,
  ): Promise<{ transition: Transition; resolved?: Resolved }> {
    status.startTime ??= this.t.now();
    // Bound to the enforcement verified now: an approval can only name a plan admission checks.
    const verdict = this.deps.admission(rr.metadata?.namespace ?? '');
    const r = await this.resolve(PLANNING_CHECKS, rr, status, policy, verdict.enforced ? verdict.epoch : undefined);
    if (!r.ok) return { transition: r.transition };
    status.plan = r.resolved.plan;
    const given = rr.spec.approval;
    if (given?.decision === 'Approved' && r.resolved.approval === 'Manual') {
      // An approval already there when this plan is rendered was not written against it,
      // and nothing proves admission checked it: it never counts (ADR 0011). It cannot be
      // withdrawn either (it is immutable), so the request ends.
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
    delete status.approval;
    if (r.resolved.approval === 'Auto') {
      this.t.condition(rr, status, 'Approved', 'True', 'AutoApproved', `policy ${policy.metadata?.name} auto-approves ${status.risk} risk`);
      return {
        transition: this.t.enter(rr, status, 'Approved', 'AutoApproved', `auto-approved by policy ${policy.metadata?.name}`),
        resolved: r.resolved,
      };
    }
    this.t.condition(rr, status, 'Approved', 'Unknown', 'AwaitingApproval', `waiting for an approval of plan ${r.resolved.plan.digest}`);
    const waiting = this.t.enter(
      rr,
      status,
      'AwaitingApproval',
      'ApprovalRequired',
      `${status.risk} risk: review the plan and approve with kubectl remediator approve ${rr.metadata?.name} -n ${rr.metadata?.namespace}`,
    );
    waiting.requeueAfterMs = Math.max(0, Date.parse(status.startTime) + approvalTimeoutMs(policy) - this.deps.clock.now());
    return { transition: waiting };
  }
}
