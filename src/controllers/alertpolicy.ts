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
import { circuitState, validateSafety, type CircuitState, type ExecutionRecord } from './safety.js';
import { grantFor, inputProblems } from './runbooks.js';
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
  for (const t of Object.values(policy.spec.targets.tagSelector ?? {})) {
    try {
      placeholders(t);
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

export class AlertPolicyReconciler implements Reconciler {
  constructor(private readonly deps: AlertPolicyReconcilerDeps) {}

  async reconcile(req: Request, log: Logger): Promise<Result | void> {
    const policy = this.deps.getPolicy(req.namespace, req.name);
    if (!policy || policy.metadata?.deletionTimestamp) return;
    const now = isoNow(this.deps.clock);
    const status: AlertPolicyStatus = structuredClone(policy.status ?? {});
    const generation = policy.metadata?.generation;
    const problems = validatePolicy(policy);
    const runbook = this.deps.getRunbook(policy.spec.runbookRef.name);
    const grant = grantFor(policy, runbook, this.deps.namespaceLabels(req.namespace));
    if (grant.ok && runbook) problems.push(...inputProblems(policy, runbook));
    const wasReady = findCondition(status.conditions, 'Ready')?.status;
    status.conditions = setCondition(
      status.conditions,
      !grant.ok
        ? { type: 'Ready', status: 'False', reason: grant.reason, message: grant.message, observedGeneration: generation }
        : problems.length === 0
          ? {
              type: 'Ready',
              status: 'True',
              reason: 'Valid',
              message: `policy is valid and may use Runbook "${policy.spec.runbookRef.name}"`,
              observedGeneration: generation,
            }
          : {
              type: 'Ready',
              status: 'False',
              reason: 'InvalidSpec',
              message: `fix the policy: ${problems.join('; ')}`,
              observedGeneration: generation,
            },
      now,
    );
    status.observedGeneration = generation;

    const requests = this.deps.requestsOf(req.namespace, req.name);
    const count = (...phases: string[]) => requests.filter((r) => phases.includes(r.status?.phase ?? 'Pending')).length;
    status.matched = requests.length;
    status.succeeded = count('Succeeded');
    status.failed = count('Failed');
    status.executed = requests.filter(
      (r) => r.status?.execution?.ssm?.commandId !== undefined || r.status?.execution?.sns?.messageId !== undefined,
    ).length;
    status.skipped = count('Skipped');
    const last = requests
      .map((r) => r.metadata?.creationTimestamp ?? '')
      .sort()
      .at(-1);
    if (last) status.lastTriggerTime = last;
    for (const old of beyondHistoryLimit(requests, retentionOf(policy, this.deps.retentionDefaults).historyLimit)) {
      if (await this.deps.deleteRequest(req.namespace, old.metadata?.name ?? '', old.metadata?.uid ?? '')) {
        log.info(
          { request: old.metadata?.name, phase: old.status?.phase, completionTime: old.status?.completionTime },
          "finished request deleted: beyond the policy's historyLimit",
        );
      }
    }
    const verdict = this.deps.admission(req.namespace);
    const circuit = circuitState(
      policy,
      this.deps.executionsOf(req.namespace, req.name),
      this.deps.clock.now(),
      resetProven(policy, verdict),
      this.deps.breakerOpenedAt(req.namespace, req.name),
    );
    const wasOpen = policy.status?.circuitBreaker?.open ?? false;
    status.consecutiveFailures = circuit.consecutiveFailures;
    if (policy.spec.safety?.circuitBreaker || circuit.open) {
      // The token a reset must carry, re-issued whenever enforcement changes (ADR 0011).
      const token = resetToken(policy.status?.circuitBreaker?.resetToken, verdict);
      status.circuitBreaker = {
        open: circuit.open,
        ...(circuit.openedAt && { openedAt: circuit.openedAt }),
        ...(circuit.message && { message: circuit.message }),
        ...(token && { resetToken: token }),
      };
    } else {
      delete status.circuitBreaker;
    }
    status.conditions = setCondition(status.conditions, { ...suspendedCondition(policy, circuit), observedGeneration: generation }, now);

    withReadinessKstatus(status, generation, now);
    if (sameJson(status, policy.status ?? {})) return;
    const body: AlertPolicy = { apiVersion: API_VERSION, kind: ALERT_POLICY.kind, metadata: policy.metadata, spec: policy.spec, status };
    await this.deps.policies.replaceStatus(req.namespace, req.name, body);
    if (!wasOpen && circuit.open) void this.deps.events.record(body, 'Warning', 'CircuitOpen', circuit.message ?? 'circuit breaker open');
    if (wasOpen && !circuit.open)
      void this.deps.events.record(body, 'Normal', 'CircuitClosed', 'circuit breaker reset; the policy executes again');
    const nowReady = findCondition(status.conditions, 'Ready')?.status;
    if (wasReady !== nowReady) {
      const ready = findCondition(status.conditions, 'Ready');
      void this.deps.events.record(body, nowReady === 'True' ? 'Normal' : 'Warning', ready?.reason ?? 'Ready', ready?.message ?? '');
      log.info({ ready: nowReady }, 'policy readiness changed');
    }
  }
}
