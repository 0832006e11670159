/**
 * RemediationRequestReconciler drives one RemediationRequest through its phases:
 *
 *   Pending → Enriching → AwaitingApproval → Approved → Executing → Succeeded | Failed
 *   (or an end: Rejected | Expired | Skipped | Cancelled)
 *
 * Each reconcile reads the request from the informer cache, performs at most one
 * transition, and writes status with the cached resourceVersion, so a stale view fails
 * with a conflict and is retried instead of overwriting newer state. An end phase is
 * final: the reconciler never acts on it again.
 *
 * Exactly-once execution: before `SendCommand` the reconciler writes its intent
 * (phase Executing, the command's comment carrying the request UID) and only then, in a
 * later reconcile, sends. Whenever intent exists without a command id — after a crash,
 * a lost response or a failed write — it first asks SSM for a command with that comment
 * and adopts it, so a second command is never sent.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import {
  API_VERSION,
  DEFAULTS,
  END_PHASES,
  REMEDIATION_REQUEST,
  type AlertPolicy,
  type InstanceEnrichment,
  type Phase,
  type RemediationRequest,
  type RemediationRequestStatus,
  type SnsAction,
} from '../api/v1alpha1/index.js';
import type { CommandRunner, InstanceDescriber, InvocationResult, MetricsReader, Publisher } from '../cloud/types.js';
import { callOutcome, isPermanentAwsError } from '../cloud/errors.js';
import { AwsAccessDeniedError, TERMINAL_INVOCATION_STATUSES } from '../cloud/types.js';
import { isConflict, type EventRecorder, type EventType, type ResourceClient } from '../kube/resources.js';
import type { Metrics } from '../observability/metrics.js';
import { isoNow, type Clock } from '../runtime/clock.js';
import { setCondition } from '../runtime/conditions.js';
import type { Reconciler, Request, Result } from '../runtime/controller.js';
import { parseDuration } from './duration.js';
import { failedGuard, optedOutBy, planMetricQueries, seriesFrom } from './enrichment.js';
import { circuitState, cooldownBlock, ExecutionLedger, executionsOf, maintenanceBlock, rateLimitBlock } from './safety.js';
import { renderSsmParameters } from './ssmparameters.js';
import { checkTargets, namedTargets, renderedTagSelector } from './targets.js';
import { render, TemplateError, type TemplateContext } from './template.js';

/** SNS text is not a shell command, but control characters still have no place in it. */
const SNS_VALUE_POLICY = { allowedPattern: '[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F]*', maxLength: 1024 };

export interface RemediationRequestReconcilerDeps {
  requests: ResourceClient<RemediationRequest>;
  getRequest(namespace: string, name: string): RemediationRequest | undefined;
  getPolicy(namespace: string, name: string): AlertPolicy | undefined;
  /** Every request of a policy (from the cache): what cooldown, rate limit and the circuit breaker read. */
  requestsOf(namespace: string, policy: string): RemediationRequest[];
  instances: InstanceDescriber;
  commands: CommandRunner;
  metricsReader: MetricsReader;
  publisher: Publisher;
  events: EventRecorder;
  metrics: Metrics;
  clock: Clock;
  /** SSM documents a policy may use. */
  allowedDocuments: ReadonlySet<string>;
  /** First invocation poll delay; doubles up to `maxPollIntervalMs`. */
  pollIntervalMs?: number;
  maxPollIntervalMs?: number;
  /** How long ListCommands is given to show a command that may have been sent before one is sent again. */
  sendSettleMs?: number;
}

/** A transition decided by one reconcile step. */
interface Transition {
  status: RemediationRequestStatus;
  event?: { type: EventType; reason: string; message: string };
  requeueAfterMs?: number;
  /** Runs once the status write succeeded. */
  afterWrite?: () => void;
  /** Runs when the status write failed. */
  onWriteFailed?: () => void;
  /**
   * A command id learnt from SSM that must not be lost to a write conflict: on 409 the
   * write is retried on a fresh read of the request instead of giving up.
   */
  mustPersist?: { commandId: string; requestedAt: string };
}

export const COMMENT_PREFIX = 'remediator:';

/** The SSM `Comment` that ties a command to its request (SSM allows 100 characters). */
export function commandComment(uid: string): string {
  return `${COMMENT_PREFIX}${uid}`;
}

export class RemediationRequestReconciler implements Reconciler {
  private readonly ledger = new ExecutionLedger();
  /** Requests whose intent this process wrote: the first send needs no settle wait. */
  private readonly intentsWritten = new Set<string>();
  /** Requests whose last send ended ambiguously (it may have reached SSM), and when. */
  private readonly ambiguousSends = new Map<string, number>();
  /** Serialises the execute decision per policy, so concurrent workers cannot both fit under one rate limit. */
  private readonly policyLocks = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: RemediationRequestReconcilerDeps) {}

  private async withPolicyLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.policyLocks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.policyLocks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.policyLocks.get(key) === tail) this.policyLocks.delete(key);
    }
  }

  async reconcile(req: Request, log: Logger): Promise<Result | void> {
    const rr = this.deps.getRequest(req.namespace, req.name);
    if (!rr || rr.metadata?.deletionTimestamp) return;
    const phase: Phase = rr.status?.phase ?? 'Pending';
    const policy = this.deps.getPolicy(req.namespace, rr.spec.policyRef.name);

    // Announce the phase the request is in before moving on (level-triggered: a
    // notification that failed is retried, one that was recorded is never sent again).
    if (policy && (await this.notify(rr, phase, policy, log))) return;
    if (END_PHASES.has(phase)) return;

    let step: Transition | undefined;
    try {
      step = await this.decide(rr, phase, policy, log);
    } catch (error) {
      if (error instanceof AwsAccessDeniedError) {
        step = this.accessDenied(rr, error);
        await this.write(rr, step, log);
        // The role may be fixed at any time: keep retrying, with the queue's backoff.
        throw error;
      }
      if (isPermanentAwsError(error) && phase !== 'Executing') {
        // AWS refused the request itself (a bad parameter, a missing resource): retrying
        // cannot help, so the request ends and says what AWS said.
        step = this.enter(rr, this.base(rr), 'Failed', 'AwsRequestInvalid', `AWS refused the call: ${(error as Error).message}`, 'Warning');
      } else {
        throw error;
      }
    }
    if (step.status.conditions?.some((c) => c.type === 'CloudAccess' && c.status === 'False')) {
      // The AWS call that was denied went through this time: the role was fixed.
      step.status.conditions = setCondition(
        step.status.conditions,
        { type: 'CloudAccess', status: 'True', reason: 'Restored', message: 'AWS calls succeed again', observedGeneration: rr.metadata?.generation },
        this.now(),
      );
    }
    await this.write(rr, step, log);
    return step.requeueAfterMs ? { requeueAfterMs: step.requeueAfterMs } : undefined;
  }

  /** One step of the state machine, for whatever the request and its policy look like now. */
  private async decide(rr: RemediationRequest, phase: Phase, policy: AlertPolicy | undefined, log: Logger): Promise<Transition> {
    // An explicit rejection wins in every phase before execution, Auto policies included.
    if (rr.spec.approval?.decision === 'Rejected' && phase !== 'Executing' && phase !== 'AwaitingApproval') {
      const status = this.base(rr);
      status.approval = rr.spec.approval;
      return this.enter(rr, status, 'Rejected', 'RejectedByApprover', `rejected by ${rr.spec.approval.approver}${rr.spec.approval.reason ? `: ${rr.spec.approval.reason}` : ''}`);
    }
    if (policy) return this.step(rr, phase, policy, log);
    if (phase === 'Executing') {
      // The command may already run: keep following it (or find it) without the policy.
      const status = this.base(rr);
      return status.execution?.sns ? this.publish(rr, status, undefined) : this.execute(rr, status, log);
    }
    if (phase === 'Pending') return this.policyMissing(rr);
    // The policy went away after the request started: nothing was sent, and nothing will be.
    return this.enter(rr, this.base(rr), 'Failed', 'PolicyNotFound', `AlertPolicy "${rr.spec.policyRef.name}" was deleted before execution; nothing was run`, 'Warning');
  }

  private now(): string {
    return isoNow(this.deps.clock);
  }

  private base(rr: RemediationRequest): RemediationRequestStatus {
    return structuredClone(rr.status ?? {});
  }

  /** Enter `phase`, setting the message and condition bookkeeping shared by every transition. */
  private enter(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    phase: Phase,
    reason: string,
    message: string,
    eventType: EventType = 'Normal',
  ): Transition {
    status.phase = phase;
    status.reason = reason;
    status.message = message;
    status.observedGeneration = rr.metadata?.generation;
    if (END_PHASES.has(phase)) {
      status.completionTime ??= this.now();
      const uid = rr.metadata?.uid ?? '';
      this.intentsWritten.delete(uid);
      this.ambiguousSends.delete(uid);
    }
    return { status, event: { type: eventType, reason, message: `${phase}: ${message}` } };
  }

  private policyMissing(rr: RemediationRequest): Transition {
    const status = this.base(rr);
    const message = `AlertPolicy "${rr.spec.policyRef.name}" not found in namespace ${rr.metadata?.namespace}; create it or fix spec.policyRef`;
    status.phase ??= 'Pending';
    status.message = message;
    status.reason = 'PolicyNotFound';
    status.observedGeneration = rr.metadata?.generation;
    // Requeued when the policy appears (the policy informer enqueues its requests).
    return { status };
  }

  private accessDenied(rr: RemediationRequest, error: AwsAccessDeniedError): Transition {
    const status = this.base(rr);
    status.conditions = setCondition(
      status.conditions,
      { type: 'CloudAccess', status: 'False', reason: 'AccessDenied', message: error.message, observedGeneration: rr.metadata?.generation },
      this.now(),
    );
    status.message = error.message;
    return { status, event: { type: 'Warning', reason: 'AccessDenied', message: error.message } };
  }

  private async step(rr: RemediationRequest, phase: Phase, policy: AlertPolicy, log: Logger): Promise<Transition> {
    const status = this.base(rr);
    const resolved = rr.spec.alert.status === 'resolved';
    if (resolved && phase !== 'Executing') {
      return this.enter(rr, status, 'Cancelled', 'AlertResolved', 'the alert resolved before execution; nothing was run');
    }
    switch (phase) {
      case 'Pending':
        return this.start(rr, status, policy);
      case 'Enriching':
        return this.enrich(rr, status, policy);
      case 'AwaitingApproval':
        return this.awaitApproval(rr, status, policy);
      case 'Approved':
        return this.withPolicyLock(`${rr.metadata?.namespace}/${policy.metadata?.name}`, async () => this.recordIntent(rr, status, policy));
      case 'Executing':
        return status.execution?.sns ? this.publish(rr, status, policy) : this.execute(rr, status, log);
      default:
        return { status };
    }
  }

  private async start(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Promise<Transition> {
    status.startTime ??= this.now();
    status.risk = policy.spec.risk ?? DEFAULTS.risk;
    if (policy.spec.safety?.suspend) {
      return this.enter(rr, status, 'Skipped', 'Suspended', `policy ${policy.metadata?.name} is suspended (spec.safety.suspend)`);
    }
    const candidates = namedTargets(rr.spec, policy.spec);
    let selector: Record<string, string> | undefined;
    try {
      selector = renderedTagSelector(rr.spec, policy.spec, this.templateContext(rr, status));
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      return this.enter(rr, status, 'Failed', 'InvalidTargets', `targets.tagSelector: ${error.message}`, 'Warning');
    }
    if (selector) candidates.push(...(await this.deps.instances.findByTags(selector)).map((f) => f.instanceId));
    const targets = checkTargets(candidates, policy.spec);
    if (!targets.ok) return this.enter(rr, status, 'Failed', targets.reason, targets.message, 'Warning');
    status.targets = targets.targets;
    status.targetCount = targets.targets.length;
    return this.enter(rr, status, 'Enriching', 'TargetsResolved', `enriching ${targets.targets.length} instance(s): ${targets.targets.join(', ')}`);
  }

  private async enrich(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Promise<Transition> {
    const targets = status.targets ?? [];
    const { found, missing } = await this.deps.instances.describe(targets);
    const now = this.now();
    if (missing.length > 0) {
      status.conditions = setCondition(
        status.conditions,
        { type: 'Enriched', status: 'False', reason: 'InstancesNotFound', message: `not found: ${missing.join(', ')}`, observedGeneration: rr.metadata?.generation },
        now,
      );
      return this.enter(rr, status, 'Failed', 'InstancesNotFound', `EC2 instances not found: ${missing.join(', ')}; check the alert's instance IDs and the controller's region`, 'Warning');
    }
    const keys = policy.spec.enrichment?.tagKeys;
    const instances: InstanceEnrichment[] = found.map((f) => ({
      instanceId: f.instanceId,
      state: f.state,
      instanceType: f.instanceType,
      availabilityZone: f.availabilityZone,
      privateIpAddress: f.privateIpAddress,
      tags: keys ? Object.fromEntries(Object.entries(f.tags).filter(([k]) => keys.includes(k))) : f.tags,
    }));
    status.enrichment = { observedAt: now, instances };
    status.policyGeneration = policy.metadata?.generation;
    // The opt-out tag always wins, before metrics are even read.
    const optedOut = optedOutBy(policy.spec, found);
    if (optedOut) {
      return this.enter(rr, status, 'Skipped', 'OptOut', optedOut);
    }
    const planned = planMetricQueries(policy.spec, targets, this.templateContext(rr, status));
    if (planned.length > 0) {
      const lookback = Math.max(...(policy.spec.enrichment?.metrics ?? []).map((m) => parseDuration(m.lookback ?? '10m')));
      const end = new Date(this.deps.clock.now());
      const results = await this.deps.metricsReader.getMetricData(planned.map((p) => p.query), new Date(end.getTime() - lookback), end);
      status.enrichment.metrics = seriesFrom(planned, results);
    }
    status.conditions = setCondition(
      status.conditions,
      {
        type: 'Enriched',
        status: 'True',
        reason: 'Enriched',
        message: `described ${found.length} instance(s)${planned.length ? `, read ${planned.length} metric series` : ''}`,
        observedGeneration: rr.metadata?.generation,
      },
      now,
    );
    const guard = failedGuard(policy.spec.enrichment?.guards ?? [], found, status.enrichment.metrics ?? []);
    if (guard) return this.enter(rr, status, 'Skipped', 'Guard', `guard not met: ${guard}`);
    if (approvalMode(policy) === 'Auto') {
      status.conditions = setCondition(
        status.conditions,
        { type: 'Approved', status: 'True', reason: 'AutoApproved', message: `policy ${policy.metadata?.name} auto-approves ${policy.spec.risk} risk`, observedGeneration: rr.metadata?.generation },
        now,
      );
      return this.enter(rr, status, 'Approved', 'AutoApproved', `auto-approved by policy ${policy.metadata?.name}`);
    }
    status.conditions = setCondition(
      status.conditions,
      { type: 'Approved', status: 'Unknown', reason: 'AwaitingApproval', message: 'waiting for spec.approval', observedGeneration: rr.metadata?.generation },
      now,
    );
    const t = this.enter(rr, status, 'AwaitingApproval', 'ApprovalRequired', `${policy.spec.risk} risk: approve with kubectl remediator approve ${rr.metadata?.name} -n ${rr.metadata?.namespace}`);
    t.requeueAfterMs = this.expiryDelay(status, policy);
    return t;
  }

  private expiryDelay(status: RemediationRequestStatus, policy: AlertPolicy): number {
    const timeout = parseDuration(policy.spec.approval?.timeout ?? DEFAULTS.approvalTimeout);
    const started = Date.parse(status.startTime ?? this.now());
    return Math.max(0, started + timeout - this.deps.clock.now());
  }

  private awaitApproval(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Transition {
    const approval = rr.spec.approval;
    const now = this.now();
    const gen = rr.metadata?.generation;
    if (approval) {
      const allowed = policy.spec.approval?.approvers;
      if (allowed && allowed.length > 0 && !allowed.includes(approval.approver)) {
        status.conditions = setCondition(
          status.conditions,
          { type: 'Approved', status: 'False', reason: 'ApproverNotAllowed', message: `${approval.approver} is not an approver of policy ${policy.metadata?.name}`, observedGeneration: gen },
          now,
        );
        return this.enter(rr, status, 'Rejected', 'ApproverNotAllowed', `${approval.approver} may not approve for policy ${policy.metadata?.name} (allowed: ${allowed.join(', ')})`, 'Warning');
      }
      const risk = policy.spec.risk ?? DEFAULTS.risk;
      if (approval.decision === 'Approved' && (risk === 'High' || risk === 'Critical') && rr.spec.requestedBy !== undefined && approval.approver === rr.spec.requestedBy) {
        // Four eyes: the admission policy already refuses this; the controller checks too.
        status.conditions = setCondition(status.conditions, { type: 'Approved', status: 'False', reason: 'SelfApproval', message: `${risk} risk needs an approver other than the requester ${rr.spec.requestedBy}`, observedGeneration: gen }, now);
        return this.enter(rr, status, 'Rejected', 'SelfApproval', `${approval.approver} requested this ${risk} risk remediation and may not approve it too`, 'Warning');
      }
      status.approval = approval;
      if (approval.decision === 'Rejected') {
        status.conditions = setCondition(status.conditions, { type: 'Approved', status: 'False', reason: 'Rejected', message: `rejected by ${approval.approver}`, observedGeneration: gen }, now);
        return this.enter(rr, status, 'Rejected', 'RejectedByApprover', `rejected by ${approval.approver}${approval.reason ? `: ${approval.reason}` : ''}`);
      }
      status.conditions = setCondition(status.conditions, { type: 'Approved', status: 'True', reason: 'ManuallyApproved', message: `approved by ${approval.approver}`, observedGeneration: gen }, now);
      return this.enter(rr, status, 'Approved', 'ManuallyApproved', `approved by ${approval.approver}${approval.reason ? `: ${approval.reason}` : ''}`);
    }
    const remaining = this.expiryDelay(status, policy);
    if (remaining <= 0) {
      status.conditions = setCondition(status.conditions, { type: 'Approved', status: 'False', reason: 'Expired', message: 'no decision before the approval timeout', observedGeneration: gen }, now);
      return this.enter(rr, status, 'Expired', 'ApprovalTimedOut', `no approval within ${policy.spec.approval?.timeout ?? DEFAULTS.approvalTimeout}`);
    }
    return { status, requeueAfterMs: remaining };
  }

  private templateContext(rr: RemediationRequest, status: RemediationRequestStatus): TemplateContext {
    const a = rr.spec.alert;
    const instances = status.enrichment?.instances ?? [];
    const only = instances.length === 1 ? instances[0] : undefined;
    return {
      alert: { name: a.name, source: a.source, fingerprint: a.fingerprint, status: a.status },
      labels: a.labels ?? {},
      annotations: a.annotations ?? {},
      instance: only && { id: only.instanceId, state: only.state, type: only.instanceType, zone: only.availabilityZone, privateIp: only.privateIpAddress },
      tags: only?.tags,
      enrichment: enrichmentValues(status),
    };
  }

  /** Safety rules checked at the moment of execution; a reason to skip, or undefined. */
  private safetyBlock(rr: RemediationRequest, policy: AlertPolicy): { reason: string; message: string } | undefined {
    const ns = rr.metadata?.namespace ?? '';
    const name = rr.metadata?.name ?? '';
    const now = this.deps.clock.now();
    const requests = this.deps.requestsOf(ns, policy.metadata?.name ?? '');
    if (policy.spec.safety?.suspend) return { reason: 'Suspended', message: `policy ${policy.metadata?.name} is suspended (spec.safety.suspend)` };
    const circuit = circuitState(policy, requests);
    if (circuit.open) return { reason: 'CircuitOpen', message: circuit.message ?? 'circuit breaker open' };
    const window = maintenanceBlock(policy, now);
    if (window) return { reason: 'MaintenanceWindow', message: window };
    const records = this.ledger.merge(`${ns}/${policy.metadata?.name}`, executionsOf(requests), now);
    const cooldown = cooldownBlock(policy, name, rr.status?.targets ?? [], records, now);
    if (cooldown) return { reason: 'Cooldown', message: cooldown };
    const rate = rateLimitBlock(policy, name, records, now);
    if (rate) return { reason: 'RateLimited', message: rate };
    return undefined;
  }

  /** Approved → Executing: check safety, validate and render everything, then record intent. Nothing is sent yet. */
  private async recordIntent(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Promise<Transition> {
    if (status.policyGeneration !== undefined && policy.metadata?.generation !== status.policyGeneration && approvalMode(policy) === 'Manual') {
      // What was approved is what the policy said then; a changed policy needs a new decision.
      return this.enter(rr, status, 'Failed', 'PolicyChanged', `policy ${policy.metadata?.name} changed after this request was approved (generation ${status.policyGeneration} → ${policy.metadata?.generation}); nothing was run — create a new request to approve the new version`, 'Warning');
    }
    let blocked: { reason: string; message: string } | undefined;
    try {
      blocked = this.safetyBlock(rr, policy);
    } catch (error) {
      return this.enter(rr, status, 'Failed', 'InvalidPolicy', `policy ${policy.metadata?.name} cannot be applied: ${(error as Error).message}`, 'Warning');
    }
    if (blocked) return this.enter(rr, status, 'Skipped', blocked.reason, blocked.message);
    // An approval can come hours after enrichment: the opt-out tag is checked again now.
    const { found } = await this.deps.instances.describe(status.targets ?? []);
    const optedOut = optedOutBy(policy.spec, found);
    if (optedOut) {
      return this.enter(rr, status, 'Skipped', 'OptOut', `${optedOut} (tagged after enrichment)`);
    }
    const t = policy.spec.action.sns ? this.snsIntent(rr, status, policy) : this.ssmIntent(rr, status, policy);
    if (t.status.phase === 'Executing') {
      // Counted at once, still inside the policy lock, so the next request checked
      // against the rate limit sees it; forgotten again if the status write fails (the
      // safe direction: a moment of over-counting, never under-counting).
      const key = `${rr.metadata?.namespace}/${policy.metadata?.name}`;
      const request = rr.metadata?.name ?? '';
      this.ledger.record(key, { request, targets: status.targets ?? [], at: this.deps.clock.now() });
      t.afterWrite = () => this.intentsWritten.add(rr.metadata?.uid ?? '');
      t.onWriteFailed = () => this.ledger.forget(key, request);
    }
    return t;
  }

  private snsIntent(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Transition {
    const sns = policy.spec.action.sns!;
    let rendered: RenderedSns;
    try {
      rendered = renderSns(sns, this.templateContext(rr, status), policy.metadata?.name);
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      return this.enter(rr, status, 'Failed', 'InvalidParameter', `${error.message}; nothing was published`, 'Warning');
    }
    const { subject, message } = rendered;
    const now = this.now();
    const record = { topicArn: sns.topicArn, intentRecordedAt: now, ...(subject !== undefined && { subject }), message: message.slice(0, 4096) };
    if (policy.spec.safety?.dryRun) {
      status.execution = { dryRun: true, sns: record };
      status.conditions = setCondition(status.conditions, { type: 'Executed', status: 'False', reason: 'DryRun', message: 'dry run: nothing was published', observedGeneration: rr.metadata?.generation }, now);
      return this.enter(rr, status, 'Succeeded', 'DryRun', `dry run: would have published to ${sns.topicArn}`);
    }
    status.execution = { sns: { ...record, attempts: 0 } };
    status.conditions = setCondition(status.conditions, { type: 'Executed', status: 'Unknown', reason: 'Publishing', message: 'intent recorded; publishing', observedGeneration: rr.metadata?.generation }, now);
    return this.enter(rr, status, 'Executing', 'IntentRecorded', `publishing to ${sns.topicArn}`);
  }

  /** Executing (SNS): publish once; FIFO topics deduplicate a retry after a lost response by the request UID. */
  private async publish(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy | undefined): Promise<Transition> {
    const record = status.execution!.sns!;
    if (record.messageId) return { status };
    const sns = policy?.spec.action.sns;
    if (!sns) return this.enter(rr, status, 'Failed', 'PolicyChanged', 'the policy is gone or no longer has an sns action; nothing was published', 'Warning');
    // Rendered again from the same inputs as at intent (status keeps only a truncated copy).
    const { message, attributes, messageGroupId } = renderSns(sns, this.templateContext(rr, status), policy?.metadata?.name);
    let messageId: string;
    try {
      ({ messageId } = await this.deps.publisher.publish({
        topicArn: record.topicArn,
        subject: record.subject,
        message,
        attributes,
        messageGroupId,
        deduplicationId: rr.metadata?.uid,
      }));
    } catch (error) {
      if (isPermanentAwsError(error)) {
        return this.enter(rr, status, 'Failed', 'PublishRejected', `SNS refused the message: ${(error as Error).message}; nothing was published`, 'Warning');
      }
      throw error;
    }
    const now = this.now();
    record.messageId = messageId;
    record.publishedAt = now;
    record.attempts = (record.attempts ?? 0) + 1;
    status.conditions = setCondition(status.conditions, { type: 'Executed', status: 'True', reason: 'Published', message: `SNS message ${messageId}`, observedGeneration: rr.metadata?.generation }, now);
    return this.enter(rr, status, 'Succeeded', 'MessagePublished', `published SNS message ${messageId} to ${record.topicArn}`);
  }

  private ssmIntent(rr: RemediationRequest, status: RemediationRequestStatus, policy: AlertPolicy): Transition {
    const action = policy.spec.action.ssm;
    if (!action) return this.enter(rr, status, 'Failed', 'NoAction', `policy ${policy.metadata?.name} has no action`, 'Warning');
    const ssm = { ...action, documentName: action.documentName ?? DEFAULTS.ssmDocument };
    if (!this.deps.allowedDocuments.has(ssm.documentName)) {
      return this.enter(rr, status, 'Failed', 'DocumentNotAllowed', `SSM document ${ssm.documentName} is not in the controller's allowlist (${[...this.deps.allowedDocuments].join(', ')})`, 'Warning');
    }
    let parameters: Record<string, string[]>;
    try {
      parameters = renderSsmParameters(ssm, this.templateContext(rr, status));
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      return this.enter(rr, status, 'Failed', 'InvalidParameter', `${error.message}; nothing was sent`, 'Warning');
    }
    const now = this.now();
    if (policy.spec.safety?.dryRun) {
      status.execution = {
        dryRun: true,
        ssm: { documentName: ssm.documentName, comment: commandComment(rr.metadata?.uid ?? ''), intentRecordedAt: now, parameters },
      };
      status.conditions = setCondition(status.conditions, { type: 'Executed', status: 'False', reason: 'DryRun', message: 'dry run: nothing was sent', observedGeneration: rr.metadata?.generation }, now);
      return this.enter(rr, status, 'Succeeded', 'DryRun', `dry run: would have sent ${ssm.documentName} to ${(status.targets ?? []).join(', ')}`);
    }
    status.execution = {
      ssm: { documentName: ssm.documentName, comment: commandComment(rr.metadata?.uid ?? ''), intentRecordedAt: now, parameters },
    };
    status.conditions = setCondition(status.conditions, { type: 'Executed', status: 'Unknown', reason: 'Sending', message: 'intent recorded; sending the command', observedGeneration: rr.metadata?.generation }, now);
    return this.enter(rr, status, 'Executing', 'IntentRecorded', `sending ${ssm.documentName} to ${(status.targets ?? []).join(', ')}`);
  }

  private async execute(rr: RemediationRequest, status: RemediationRequestStatus, log: Logger): Promise<Transition> {
    const ssm = status.execution?.ssm;
    const policy = this.deps.getPolicy(rr.metadata?.namespace ?? '', rr.spec.policyRef.name);
    const action = policy?.spec.action.ssm;
    if (!ssm || !status.execution) return this.enter(rr, status, 'Failed', 'IntentLost', 'Executing without recorded intent; not sending anything', 'Warning');
    const targets = status.targets ?? [];
    const now = this.now();

    if (!ssm.commandId) {
      const uid = rr.metadata?.uid ?? '';
      // Intent exists but no command id: a previous attempt may have sent it. Look first.
      let sent = await this.deps.commands.findCommand(ssm.comment, targets);
      if (sent) {
        log.info({ commandId: sent.commandId }, 'adopted a command sent before a crash or lost response');
      } else {
        // ListCommands may lag SendCommand by a moment. Unless this process wrote the
        // intent and has not tried yet, someone may have sent it just now (a crashed
        // predecessor, or our own attempt whose answer was lost): give SSM time to list
        // it before sending.
        const ours = this.intentsWritten.has(uid) && !this.ambiguousSends.has(uid);
        const since = this.ambiguousSends.get(uid) ?? Date.parse(ssm.intentRecordedAt);
        const settle = this.deps.sendSettleMs ?? 30_000;
        const wait = since + settle - this.deps.clock.now();
        if (!ours && wait > 0) {
          log.info({ waitMs: wait }, 'intent without a command id: waiting for SSM to list a command that may have been sent before sending one');
          return { status, requeueAfterMs: wait };
        }
        if (!action) return this.enter(rr, status, 'Failed', 'PolicyNotFound', 'the policy disappeared before the command was sent; nothing was sent', 'Warning');
        try {
          sent = await this.deps.commands.sendCommand({
            documentName: ssm.documentName,
            instanceIds: targets,
            parameters: ssm.parameters ?? {},
            comment: ssm.comment,
            timeoutSeconds: action.timeoutSeconds ?? DEFAULTS.ssmTimeoutSeconds,
            maxConcurrency: action.maxConcurrency ?? DEFAULTS.ssmMaxConcurrency,
            maxErrors: action.maxErrors ?? DEFAULTS.ssmMaxErrors,
          });
        } catch (error) {
          if (isPermanentAwsError(error)) {
            // SSM refused the command outright: it was not accepted, and the same command never will be.
            return this.enter(rr, status, 'Failed', 'CommandRejected', `SSM refused the command: ${(error as Error).message}; nothing was run`, 'Warning');
          }
          // Access denied and throttling are definite refusals; anything else may have reached SSM.
          if (!(error instanceof AwsAccessDeniedError) && callOutcome(error) !== 'throttled') this.ambiguousSends.set(uid, this.deps.clock.now());
          throw error;
        }
        this.ambiguousSends.delete(uid);
      }
      ssm.commandId = sent.commandId;
      ssm.requestedAt = sent.requestedAt ?? now;
      ssm.invocations = targets.map((instanceId) => ({ instanceId, status: 'Pending' }));
      status.conditions = setCondition(status.conditions, { type: 'Executed', status: 'Unknown', reason: 'CommandSent', message: `SSM command ${sent.commandId} sent`, observedGeneration: rr.metadata?.generation }, now);
      status.message = `SSM command ${sent.commandId} sent to ${targets.join(', ')}`;
      // The command id must reach status even if the request changed meanwhile.
      return { status, event: { type: 'Normal', reason: 'CommandSent', message: status.message }, requeueAfterMs: this.pollDelay(ssm.requestedAt), mustPersist: { commandId: sent.commandId, requestedAt: ssm.requestedAt } };
    }

    const commandId = ssm.commandId;
    const previous = new Map((ssm.invocations ?? []).map((i) => [i.instanceId, i]));
    const results: InvocationResult[] = await Promise.all(
      targets.map((id) => {
        const prev = previous.get(id);
        return prev && TERMINAL_INVOCATION_STATUSES.has(prev.status)
          ? Promise.resolve({ instanceId: id, status: prev.status, responseCode: prev.responseCode, stdout: prev.stdoutTail, stderr: prev.stderrTail })
          : this.deps.commands.getInvocation(commandId, id);
      }),
    );
    ssm.invocations = results.map((r) => ({
      instanceId: r.instanceId,
      status: r.status,
      ...(r.responseCode !== undefined && { responseCode: r.responseCode }),
      ...(r.stdout !== undefined && { stdoutTail: r.stdout }),
      ...(r.stderr !== undefined && { stderrTail: r.stderr }),
    }));
    if (!results.every((r) => TERMINAL_INVOCATION_STATUSES.has(r.status))) {
      return { status, requeueAfterMs: this.pollDelay(ssm.requestedAt) };
    }
    const failed = results.filter((r) => r.status !== 'Success');
    const gen = rr.metadata?.generation;
    if (failed.length === 0) {
      status.conditions = setCondition(status.conditions, { type: 'Executed', status: 'True', reason: 'Succeeded', message: `command ${commandId} succeeded on ${results.length} instance(s)`, observedGeneration: gen }, now);
      return this.enter(rr, status, 'Succeeded', 'CommandSucceeded', `SSM command ${commandId} succeeded on ${results.map((r) => r.instanceId).join(', ')}`);
    }
    const summary = failed.map((r) => `${r.instanceId}: ${r.status}${r.responseCode !== undefined ? ` (exit ${r.responseCode})` : ''}`).join('; ');
    status.conditions = setCondition(status.conditions, { type: 'Executed', status: 'False', reason: 'CommandFailed', message: summary, observedGeneration: gen }, now);
    return this.enter(rr, status, 'Failed', 'CommandFailed', `SSM command ${commandId} failed on ${failed.length} of ${results.length} instance(s): ${summary}`, 'Warning');
  }

  /**
   * Publishes the notify message for `phase` if the policy announces it and it was not
   * sent yet; returns true when it wrote status (the next reconcile continues).
   */
  private async notify(rr: RemediationRequest, phase: Phase, policy: AlertPolicy, log: Logger): Promise<boolean> {
    const notify = policy.spec.action.notify;
    if (!notify || !(notify.on as readonly string[]).includes(phase)) return false;
    if ((rr.status?.notifications ?? []).some((n) => n.phase === phase)) return false;
    if (!rr.status?.phase) return false;
    const status = this.base(rr);
    const name = rr.metadata?.name ?? '';
    const subject = `[remediator] ${name}: ${phase}`.slice(0, 100);
    const message = JSON.stringify(
      {
        request: name,
        namespace: rr.metadata?.namespace,
        policy: policy.metadata?.name,
        phase,
        risk: status.risk,
        reason: status.reason,
        message: status.message,
        alert: { name: rr.spec.alert.name, source: rr.spec.alert.source, labels: rr.spec.alert.labels },
        targets: status.targets,
        approval: status.approval,
        commandId: status.execution?.ssm?.commandId,
      },
      null,
      2,
    );
    let entry: NonNullable<RemediationRequestStatus['notifications']>[number];
    let event: Transition['event'];
    try {
      const { messageId } = await this.deps.publisher.publish({
        topicArn: notify.topicArn,
        subject,
        message,
        attributes: { phase, policy: policy.metadata?.name ?? '', request: name },
        messageGroupId: policy.metadata?.name,
        deduplicationId: `${rr.metadata?.uid}-${phase}`,
      });
      entry = { phase, messageId, sentAt: this.now() };
      event = { type: 'Normal', reason: 'Notified', message: `announced ${phase} on ${notify.topicArn} (message ${messageId})` };
    } catch (error) {
      // A notification is best effort: after the SDK's retries, record why it failed and
      // move on — it must never hold up the remediation itself.
      const why = error instanceof Error ? error.message : String(error);
      entry = { phase, error: why.slice(0, 1024), sentAt: this.now() };
      event = { type: 'Warning', reason: 'NotifyFailed', message: `could not announce ${phase} on ${notify.topicArn}: ${why}` };
    }
    status.notifications = [...(status.notifications ?? []).filter((n) => n.phase !== phase), entry];
    await this.write(rr, { status, event }, log);
    return true;
  }

  /**
   * The request changed between our read and the status write, after SSM accepted a
   * command: re-read it and write the command id onto the current version, so the id is
   * never lost and the command never sent again.
   */
  private async persistCommand(ns: string, name: string, sent: { commandId: string; requestedAt: string }, wanted: RemediationRequestStatus, log: Logger): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const fresh = await this.deps.requests.get(ns, name);
      if (!fresh) return;
      if (fresh.status?.execution?.ssm?.commandId) return;
      const status = structuredClone(fresh.status ?? {});
      status.execution = { ...status.execution, ssm: { ...wanted.execution!.ssm!, ...status.execution?.ssm, ...sent, invocations: wanted.execution?.ssm?.invocations } };
      status.phase = wanted.phase;
      status.message = wanted.message;
      status.conditions = wanted.conditions;
      try {
        await this.deps.requests.replaceStatus(ns, name, { ...fresh, status });
        log.info({ commandId: sent.commandId }, 'recorded the command id after a write conflict');
        return;
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
    throw new Error(`could not record SSM command ${sent.commandId} after repeated conflicts; it will be adopted by its comment`);
  }

  /** Poll quickly at first, then back off: most commands finish in seconds, some take hours. */
  private pollDelay(requestedAt: string | undefined): number {
    const base = this.deps.pollIntervalMs ?? 1_000;
    const max = this.deps.maxPollIntervalMs ?? 30_000;
    const elapsed = Math.max(0, this.deps.clock.now() - Date.parse(requestedAt ?? this.now()));
    return Math.min(max, Math.max(base, elapsed / 4));
  }

  /** Write status only when it changed, then record the transition's Event. */
  private async write(rr: RemediationRequest, step: Transition, log: Logger): Promise<void> {
    if (isDeepStrictEqual(step.status, rr.status ?? {})) return;
    const body: RemediationRequest = {
      apiVersion: API_VERSION,
      kind: REMEDIATION_REQUEST.kind,
      metadata: rr.metadata,
      spec: rr.spec,
      status: step.status,
    };
    const ns = rr.metadata?.namespace ?? '';
    const name = rr.metadata?.name ?? '';
    try {
      await this.deps.requests.replaceStatus(ns, name, body);
    } catch (error) {
      if (!step.mustPersist || !isConflict(error)) {
        step.onWriteFailed?.();
        throw error;
      }
      await this.persistCommand(ns, name, step.mustPersist, step.status, log);
    }
    step.afterWrite?.();
    const from = rr.status?.phase ?? 'Pending';
    const to = step.status.phase ?? 'Pending';
    if (from !== to) {
      this.deps.metrics.phaseTransitions.inc({ namespace: ns, phase: to });
      log.info({ from, to, reason: step.status.reason, policy: rr.spec.policyRef.name }, step.status.message ?? 'phase changed');
    }
    if (step.event) await this.deps.events.record(body, step.event.type, step.event.reason, step.event.message);
  }
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

interface RenderedSns {
  subject?: string;
  message: string;
  attributes: Record<string, string>;
  messageGroupId?: string;
}

/** Renders an sns action's templates; throws TemplateError on a value the allowlists refuse. */
function renderSns(sns: SnsAction, ctx: TemplateContext, policyName: string | undefined): RenderedSns {
  return {
    subject: sns.subject !== undefined ? render(sns.subject, ctx, SNS_VALUE_POLICY).slice(0, 100) : undefined,
    message: render(sns.message, ctx, { ...SNS_VALUE_POLICY, maxLength: 65536 }),
    attributes: Object.fromEntries(Object.entries(sns.messageAttributes ?? {}).map(([k, v]) => [k, render(v, ctx, SNS_VALUE_POLICY)])),
    messageGroupId: sns.messageGroupId ? render(sns.messageGroupId, ctx, { allowedPattern: '[A-Za-z0-9!-~]*', maxLength: 128 }) : policyName,
  };
}

export function approvalMode(policy: AlertPolicy): 'Auto' | 'Manual' {
  return policy.spec.approval?.mode ?? ((policy.spec.risk ?? DEFAULTS.risk) === 'Low' ? 'Auto' : 'Manual');
}
