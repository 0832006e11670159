/**
 * AlertPolicyReconciler owns an AlertPolicy's status: the `Ready` condition (what only
 * the controller can judge — whether its namespace is granted the runbook, the risk
 * floor, inputs, regexes, templates; the API server already enforced the schema), the
 * counters, recomputed from the policy's retained RemediationRequests each time rather
 * than incremented, and the circuit breaker, computed from the execution ledger
 * (ledger.ts) so that deleting requests or the policy itself does not close it, and the
 * `Suspended` condition (breaker open or spec.safety.suspend). It also applies the
 * policy's history limit (retention.ts).
 *
 * Readiness is a named chain (chain.ts), READY_CHECKS, listed in docs/security.md; the
 * status is computed whole from it, the requests and the ledger (`policyStatus`), then
 * written, and only then are requests beyond the history limit deleted.
 *
 * src/controllers holds the reconcilers and the logic they share; they reach AWS only
 * through src/cloud's interfaces and Kubernetes only through src/kube's.
 */
import { sameJson } from '../runtime/same-json.js';
import type { Logger } from 'pino';
import {
  ALERT_POLICY,
  API_VERSION,
  parseDuration,
  type AlertPolicy,
  type AlertPolicyStatus,
  type RemediationRequest,
  type Runbook,
} from '../api/v1alpha1/index.js';
import type { EventRecorder, ResourceClient } from '../kube/resources.js';
import { isoNow, type Clock } from '../runtime/clock.js';
import { findCondition, setCondition, type Condition } from '../runtime/conditions.js';
import { withReadinessKstatus } from './kstatus.js';
import type { Reconciler, Request, Result } from '../runtime/controller.js';
import { resetProven, resetToken, type AdmissionVerdict } from './admission.js';
import { beyondHistoryLimit, retentionOf, type RetentionDefaults } from './retention.js';
import type { ExecutionRecord } from '../api/ledger/v1.js';
import { circuitState, validateSafety, type CircuitState } from './safety.js';
import { grantFor, inputProblems } from './runbook-grant.js';
import { runChainSync, type ChainDoc, type Check, type Refusal } from './chain.js';
import { alertPolicyShape, heldForStoredShape, type ShapeHookDeps } from './stored-shape.js';
import { anchoredPattern, placeholders } from './template.js';

export interface AlertPolicyReconcilerDeps {
  policies: ResourceClient<AlertPolicy>;
  getPolicy(namespace: string, name: string): AlertPolicy | undefined;
  getRunbook(name: string): Runbook | undefined;
  namespaceLabels(namespace: string): Record<string, string> | undefined;
  /** Whether (and under which epoch) the admission policy guards the namespace, and so the breaker reset. */
  admission(namespace: string): AdmissionVerdict;
  requestsOf(namespace: string, policy: string): RemediationRequest[];
  /** The policy's executions on record. */
  executionsOf(namespace: string, policy: string): readonly ExecutionRecord[];
  /** When the ledger recorded the policy's breaker open, if it did (it stays open until a trusted reset). */
  breakerOpenedAt(namespace: string, policy: string): number | undefined;
  /** Deletes a finished request (history limit); false when it was already gone. */
  deleteRequest(namespace: string, name: string, uid: string): Promise<boolean>;
  retentionDefaults: RetentionDefaults;
  events: EventRecorder;
  clock: Clock;
}

/** Problems only the controller can find in a policy; empty when the policy is usable. */
export function validatePolicy(policy: AlertPolicy): string[] {
  const problems: string[] = [];
  for (const m of policy.spec.match?.labels ?? []) {
    if (m.op === '=~' || m.op === '!~') {
      try {
        anchoredPattern(m.value);
      } catch (error) {
        problems.push(`match.labels[${m.name}]: invalid regex ${JSON.stringify(m.value)}: ${(error as Error).message}`);
      }
    }
  }
  for (const template of Object.values(policy.spec.targets.tagSelector ?? {})) {
    try {
      placeholders(template);
    } catch (error) {
      problems.push(`targets.tagSelector: ${(error as Error).message}`);
    }
  }
  const metricNames = new Set((policy.spec.enrichment?.metrics ?? []).map((m) => m.name));
  for (const g of policy.spec.enrichment?.guards ?? []) {
    if (g.metric && !metricNames.has(g.metric))
      problems.push(`enrichment.guards: metric "${g.metric}" is not defined in enrichment.metrics`);
  }
  for (const m of policy.spec.enrichment?.metrics ?? []) {
    for (const v of Object.values(m.dimensions ?? {})) {
      try {
        placeholders(v);
      } catch (error) {
        problems.push(`enrichment.metrics[${m.name}].dimensions: ${(error as Error).message}`);
      }
    }
  }
  problems.push(...validateSafety(policy));
  if (policy.spec.approval?.timeout) {
    try {
      parseDuration(policy.spec.approval.timeout);
    } catch (error) {
      problems.push(`approval.timeout: ${(error as Error).message}`);
    }
  }
  return problems;
}

/**
 * `Suspended`, on every policy so that `kubectl get ap` and kstatus can show it: True
 * while the circuit breaker is open (the one a person must resume, so it wins) or
 * spec.safety.suspend is set, False otherwise.
 */
export function suspendedCondition(policy: AlertPolicy, circuit: CircuitState): Omit<Condition, 'lastTransitionTime'> {
  if (circuit.open) return { type: 'Suspended', status: 'True', reason: 'CircuitOpen', message: circuit.message ?? '' };
  if (policy.spec.safety?.suspend)
    return {
      type: 'Suspended',
      status: 'True',
      reason: 'SuspendedBySpec',
      message: 'spec.safety.suspend is true: every request is skipped',
    };
  if (policy.spec.safety?.circuitBreaker)
    return {
      type: 'Suspended',
      status: 'False',
      reason: 'CircuitClosed',
      message: `${circuit.consecutiveFailures} consecutive failure(s)`,
    };
  return { type: 'Suspended', status: 'False', reason: 'Active', message: 'the policy acts on matching alerts' };
}

interface ReadyContext {
  readonly policy: AlertPolicy;
  readonly runbook: Runbook | undefined;
  readonly namespaceLabels: Record<string, string> | undefined;
}

const runbookGranted: Check<ReadyContext, Refusal> = {
  name: 'runbook granted',
  doc: "the policy's runbook exists, selects its namespace, and allows its risk, approval mode and notify topic (`RunbookNotFound`, `RunbookNotGranted`, `RiskBelowRunbookMinimum`, `AutoApprovalNotAllowed`, `NotifyTopicNotGranted`).",
  run(ctx) {
    const grant = grantFor(ctx.policy, ctx.runbook, ctx.namespaceLabels);
    return grant.ok ? undefined : { reason: grant.reason, message: grant.message };
  },
};

const specValid: Check<ReadyContext, Refusal> = {
  name: 'spec valid',
  doc: "what the schema cannot say holds: regexes, templates, guards' metrics, safety settings, the approval timeout, and the inputs the runbook declares (`InvalidSpec`).",
  run(ctx) {
    const problems = validatePolicy(ctx.policy);
    if (ctx.runbook) problems.push(...inputProblems(ctx.policy, ctx.runbook));
    return problems.length === 0 ? undefined : { reason: 'InvalidSpec', message: `fix the policy: ${problems.join('; ')}` };
  },
};

/** What makes a policy Ready, in order; a policy that passes both is `Valid`. */
const READY_CHECKS = [runbookGranted, specValid];

export const POLICY_READY_CHAIN: ChainDoc = {
  title: 'A policy is Ready (AlertPolicy controller)',
  where: 'src/controllers/alertpolicy.ts: READY_CHECKS',
  checks: READY_CHECKS,
};

/** The `Ready` condition from the chain's verdict. */
function readyCondition(ctx: ReadyContext): Omit<Condition, 'lastTransitionTime'> {
  const refused = runChainSync(READY_CHECKS, ctx)?.verdict;
  const generation = ctx.policy.metadata?.generation;
  if (refused) return { type: 'Ready', status: 'False', reason: refused.reason, message: refused.message, observedGeneration: generation };
  return {
    type: 'Ready',
    status: 'True',
    reason: 'Valid',
    message: `policy is valid and may use Runbook "${ctx.policy.spec.runbookRef.name}"`,
    observedGeneration: generation,
  };
}

/** The counters, recomputed from the policy's retained requests. */
function counters(requests: readonly RemediationRequest[]): Partial<AlertPolicyStatus> {
  const count = (...phases: string[]) => requests.filter((r) => phases.includes(r.status?.phase ?? 'Pending')).length;
  const last = requests
    .map((r) => r.metadata?.creationTimestamp ?? '')
    .sort()
    .at(-1);
  return {
    matched: requests.length,
    succeeded: count('Succeeded'),
    failed: count('Failed'),
    executed: requests.filter((r) => r.status?.execution?.ssm?.commandId !== undefined || r.status?.execution?.sns?.messageId !== undefined)
      .length,
    skipped: count('Skipped'),
    ...(last && { lastTriggerTime: last }),
  };
}

/** The whole status of a policy, from its readiness, its requests and its breaker. */
function policyStatus(
  policy: AlertPolicy,
  ready: Omit<Condition, 'lastTransitionTime'>,
  requests: readonly RemediationRequest[],
  circuit: CircuitState,
  verdict: AdmissionVerdict,
  now: string,
): AlertPolicyStatus {
  const generation = policy.metadata?.generation;
  const status: AlertPolicyStatus = { ...structuredClone(policy.status ?? {}), ...counters(requests) };
  status.conditions = setCondition(status.conditions, ready, now);
  status.observedGeneration = generation;
  status.consecutiveFailures = circuit.consecutiveFailures;
  delete status.circuitBreaker;
  if (policy.spec.safety?.circuitBreaker || circuit.open) {
    // The token a reset must carry, re-issued whenever enforcement changes (ADR 0011).
    const token = resetToken(policy.status?.circuitBreaker?.resetToken, verdict);
    status.circuitBreaker = {
      open: circuit.open,
      ...(circuit.openedAt && { openedAt: circuit.openedAt }),
      ...(circuit.message && { message: circuit.message }),
      ...(token && { resetToken: token }),
    };
  }
  status.conditions = setCondition(status.conditions, { ...suspendedCondition(policy, circuit), observedGeneration: generation }, now);
  withReadinessKstatus(status, generation, now);
  return status;
}

export class AlertPolicyReconciler implements Reconciler {
  /**
   * This controller's last status write per policy: the object the server answered with,
   * and the versions its writes replaced since the cache last caught up. Until the cache
   * shows the answer, a reconcile works on it instead, so that it neither writes against
   * a resourceVersion it has already replaced (a 409 per burst recount) nor recomputes
   * from a status it replaced.
   */
  private readonly written = new Map<string, { replaced: Set<string>; answer: AlertPolicy }>();

  constructor(private readonly deps: AlertPolicyReconcilerDeps) {}

  /**
   * The policy as this controller last knows it. resourceVersions are compared only for
   * equality: the cache moves forward one version at a time, so a cache still holding a
   * version our writes replaced is behind them; any other version is ours or newer.
   */
  private current(key: string, cached: AlertPolicy): AlertPolicy {
    const w = this.written.get(key);
    if (!w) return cached;
    const rv = cached.metadata?.resourceVersion;
    if (rv !== undefined && w.answer.metadata?.uid === cached.metadata?.uid && w.replaced.has(rv)) return w.answer;
    this.written.delete(key);
    return cached;
  }

  private shapeDeps(req: Request): ShapeHookDeps<AlertPolicy> {
    return { ...this.deps, writeStatus: (body) => this.deps.policies.replaceStatus(req.namespace, req.name, body) };
  }

  private remember(key: string, replaced: string | undefined, answer: AlertPolicy): void {
    const w = this.written.get(key);
    const versions = w && w.answer.metadata?.uid === answer.metadata?.uid ? w.replaced : new Set<string>();
    if (replaced !== undefined) versions.add(replaced);
    this.written.set(key, { replaced: versions, answer });
  }

  async reconcile(req: Request, log: Logger): Promise<Result | void> {
    const cached = this.deps.getPolicy(req.namespace, req.name);
    const key = `${req.namespace}/${req.name}`;
    if (!cached || cached.metadata?.deletionTimestamp) {
      this.written.delete(key);
      return;
    }
    const policy = this.current(key, cached);
    if (await heldForStoredShape(policy, alertPolicyShape(policy), this.shapeDeps(req), log)) return;
    const ready = readyCondition({
      policy,
      runbook: this.deps.getRunbook(policy.spec.runbookRef.name),
      namespaceLabels: this.deps.namespaceLabels(req.namespace),
    });
    const requests = this.deps.requestsOf(req.namespace, req.name);
    const verdict = this.deps.admission(req.namespace);
    const circuit = circuitState(
      policy,
      this.deps.executionsOf(req.namespace, req.name),
      this.deps.clock.now(),
      resetProven(policy, verdict),
      this.deps.breakerOpenedAt(req.namespace, req.name),
    );
    const status = policyStatus(policy, ready, requests, circuit, verdict, isoNow(this.deps.clock));
    if (!sameJson(status, policy.status ?? {})) await this.write(policy, status, circuit, log);
    await this.applyHistoryLimit(policy, requests, log);
  }

  private async write(policy: AlertPolicy, status: AlertPolicyStatus, circuit: CircuitState, log: Logger): Promise<void> {
    const { namespace = '', name = '' } = policy.metadata ?? {};
    const body: AlertPolicy = { apiVersion: API_VERSION, kind: ALERT_POLICY.kind, metadata: policy.metadata, spec: policy.spec, status };
    const answer = await this.deps.policies.replaceStatus(namespace, name, body);
    this.remember(`${namespace}/${name}`, policy.metadata?.resourceVersion, answer);
    const wasOpen = policy.status?.circuitBreaker?.open ?? false;
    if (!wasOpen && circuit.open) void this.deps.events.record(body, 'Warning', 'CircuitOpen', circuit.message ?? 'circuit breaker open');
    if (wasOpen && !circuit.open)
      void this.deps.events.record(body, 'Normal', 'CircuitClosed', 'circuit breaker reset; the policy executes again');
    const wasReady = findCondition(policy.status?.conditions, 'Ready')?.status;
    const ready = findCondition(status.conditions, 'Ready');
    if (wasReady !== ready?.status) {
      void this.deps.events.record(body, ready?.status === 'True' ? 'Normal' : 'Warning', ready?.reason ?? 'Ready', ready?.message ?? '');
      log.info({ ready: ready?.status }, 'policy readiness changed');
    }
  }

  /** Deletes the finished requests beyond the policy's history limit, once its status is written. */
  private async applyHistoryLimit(policy: AlertPolicy, requests: RemediationRequest[], log: Logger): Promise<void> {
    const namespace = policy.metadata?.namespace ?? '';
    for (const old of beyondHistoryLimit(requests, retentionOf(policy, this.deps.retentionDefaults).historyLimit)) {
      if (await this.deps.deleteRequest(namespace, old.metadata?.name ?? '', old.metadata?.uid ?? '')) {
        log.info(
          { request: old.metadata?.name, phase: old.status?.phase, completionTime: old.status?.completionTime },
          "finished request deleted: beyond the policy's historyLimit",
        );
      }
    }
  }
}
