/**
 * RemediationRequestReconciler drives one RemediationRequest through its phases:
 *
 *   Pending → AwaitingApproval → Approved → Executing → Succeeded | Failed
 *   (or an end: Rejected | Expired | Skipped | Cancelled)
 *
 * It is the thin part of a one-writer state machine: it loads the request, its policy
 * and runbook from the informer caches, announces the current phase, dispatches to the
 * phase's handler, and writes the status the handler built with the cached
 * resourceVersion — a stale view fails with a conflict and is retried rather than
 * overwriting newer state. An end phase is final: the reconciler never acts on it again,
 * except to verify a success when the policy asks (verify.ts), to settle it — record its
 * outcome (and verdict) in the execution ledger, drop the execution finalizer — and, once
 * its retention is up, delete it (retention.ts). A request deleted
 * while it executes is followed to its end first (the finalizer holds it).
 *
 *   planning.ts  Pending: runbook grant, targets, enrichment, guards, the plan
 *   approval.ts  AwaitingApproval: deadline, fail-closed approval of the exact plan
 *   intent.ts    Approved: fresh plan = approved plan, safety rules, intent
 *   engine.ts    every effect outside (SSM commands, SNS messages, notifications) and
 *                the exactly-once invariants, each where it is enforced
 *   ssm.ts       Executing (SSM): chunks in order, polling, refusals
 *   rollout.ts   Executing (SSM) over a fleet: fleet-wide limits, waves, alarms, cancels
 *   sns.ts       Executing (SNS)
 *   notify.ts    the policy's notify topic
 *   verify.ts    Succeeded, when the policy asks: did the alert resolve? (Verified)
 *
 * Read your writes: every write this reconciler makes (status, finalizers, deletion)
 * goes through one client that remembers the version it stored (WriteExpectations,
 * src/runtime/expectations.ts). A reconcile whose cached request is older than that
 * version does not act: it waits for the watch to deliver the write, or reads the
 * request from the server when the answer was lost or the event does not come.
 */
import { sameJson } from '../../runtime/same-json.js';
import type { Logger } from 'pino';
import {
  API_VERSION,
  END_PHASES,
  EXECUTION_FINALIZER,
  REMEDIATION_REQUEST,
  type AlertPolicy,
  type Phase,
  type RemediationRequest,
} from '../../api/v1alpha1/index.js';
import { isPermanentAwsError } from '../../cloud/errors.js';
import { AwsAssumeRoleDeniedError } from '../../cloud/location.js';
import { AwsAccessDeniedError } from '../../cloud/types.js';
import { isConflict, isNotFound, type ResourceClient } from '../../kube/resources.js';
import { WriteExpectations } from '../../runtime/expectations.js';
import { retentionOf, ttlLeftMs } from '../retention.js';
import { withRequestKstatus } from '../kstatus.js';
import { ledgerRetention } from '../ledger.js';
import { notifyAllowed } from '../runbook-grant.js';
import type { Reconciler, Request, Result } from '../../runtime/controller.js';
import { ApprovalGate } from './approval.js';
import type { CloudServices } from '../../cloud/clients.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import { ExecutionEngine, StaleViewError } from './engine.js';
import { IntentRecorder, recordCircuit } from './intent.js';
import { isPending, nextAnnouncement, notification, notifyEffectId, withPendingAnnouncements } from './notify.js';
import { Planner, sessionTags } from './planning.js';
import { ranBefore } from './rerun.js';
import { storedShapeTransition, usablePolicy } from '../stored-shape.js';
import { SnsExecution } from './sns.js';
import { SsmExecution } from './ssm.js';
import { Transitions, type Transition } from './transition.js';
import { isVerifying, verdictOf, Verifier } from './verify.js';

export type { RemediationRequestReconcilerDeps } from './deps.js';

export class RemediationRequestReconciler implements Reconciler {
  private readonly t: Transitions;
  private readonly planner: Planner;
  private readonly approvals: ApprovalGate;
  private readonly ssm: SsmExecution;
  private readonly sns: SnsExecution;
  private readonly intents: IntentRecorder;
  private readonly verifier: Verifier;
  /** What this process last stored (or read from the server) per request: the floor a decision is taken on. */
  readonly expectations: WriteExpectations;
  readonly engine: ExecutionEngine;
  /** The handlers' dependencies, with the request client that records every write in `expectations`. */
  private readonly deps: RemediationRequestReconcilerDeps;
  /** The policy cache as stored, older shapes included: only the stored-shape hook reads it. */
  private readonly policyAsStored: RemediationRequestReconcilerDeps['getPolicy'];

  constructor(deps: RemediationRequestReconcilerDeps) {
    this.expectations = new WriteExpectations(deps.clock);
    this.engine = new ExecutionEngine(deps.clock, this.expectations);
    // Handlers see only policies of the current shape (stored-shape.ts); the hook in handle() reads them as stored.
    this.deps = {
      ...deps,
      requests: recordingWrites(deps.requests, this.expectations),
      getPolicy: (ns, name) => usablePolicy(deps.getPolicy(ns, name)),
    };
    this.policyAsStored = deps.getPolicy;
    this.t = new Transitions(deps.clock);
    this.planner = new Planner(this.deps, this.t);
    this.approvals = new ApprovalGate(this.deps, this.t);
    this.ssm = new SsmExecution(this.deps, this.t, this.engine);
    this.sns = new SnsExecution(this.deps, this.t, this.engine);
    this.intents = new IntentRecorder(this.deps, this.t, this.planner, this.engine);
    this.verifier = new Verifier(this.deps, this.t);
    deps.observeRequests?.((object, deleted) => this.observe(object, deleted));
  }

  /** The informer delivered a version of a request (or its deletion): our write is in the cache once it is this version. */
  observe(object: RemediationRequest, deleted = false): void {
    const key = `${object.metadata?.namespace}/${object.metadata?.name}`;
    if (deleted) this.expectations.forget(key);
    else this.expectations.observed(key, object.metadata?.resourceVersion);
  }

  async reconcile(req: Request, log: Logger): Promise<Result | void> {
    const key = `${req.namespace}/${req.name}`;
    let rr = this.deps.getRequest(req.namespace, req.name);
    switch (this.expectations.check(key, rr?.metadata?.resourceVersion, rr?.metadata?.uid)) {
      case 'stale':
        // The cache has not caught up with our own last write: its watch event re-queues the key.
        log.debug({ resourceVersion: rr?.metadata?.resourceVersion }, 'cached request older than our last write; waiting for it');
        return { requeueAfterMs: this.expectations.waitLeftMs(key) };
      case 'read':
        // Our last write's answer was lost, or its event did not come: the server's copy is the floor.
        rr = await this.deps.requests.get(req.namespace, req.name);
        if (!rr) {
          this.expectations.forget(key);
          return;
        }
        this.expectations.wrote(key, rr.metadata?.resourceVersion, rr.metadata?.uid);
        break;
      case 'fresh':
        break;
    }
    if (!rr) return;
    try {
      return await this.handle(req, rr, log);
    } catch (error) {
      if (!(error instanceof StaleViewError)) throw error;
      log.debug(error.message);
      return { requeueAfterMs: this.expectations.waitLeftMs(key) };
    }
  }

  /** One look at `rr` (the cached request, or the version this reconcile just wrote). */
  private async handle(req: Request, rr: RemediationRequest, log: Logger): Promise<Result | void> {
    const phase: Phase = rr.status?.phase ?? 'Pending';
    const policy = this.deps.getPolicy(req.namespace, rr.spec.policyRef.name);
    const held = rr.metadata?.finalizers?.includes(EXECUTION_FINALIZER) ?? false;
    // A request being verified keeps its finalizer until the verdict, deleted or not.
    const verifying = isVerifying(rr, policy, held);
    if (rr.metadata?.deletionTimestamp && phase !== 'Executing' && !verifying) {
      // Deleted before it executed (nothing more may start) or after it ended.
      if (held) await this.settle(rr, log);
      return;
    }

    // Stored under an older schema (the request, or the policy it needs): ends Failed, nothing sent (stored-shape.ts).
    const old = storedShapeTransition(rr, this.policyAsStored(req.namespace, rr.spec.policyRef.name), this.t);
    if (old) return void (await this.write(rr, old, log));

    // Announce what the request reached before moving on (level-triggered: a
    // notification that failed is recorded, one that was recorded is never sent again).
    // The engine publishes only on a version at least as new as our last write.
    const announce =
      policy &&
      notifyAllowed(policy, this.deps.getRunbook(policy.spec.runbookRef.name), this.deps.namespaceLabels(req.namespace)) &&
      nextAnnouncement(policy, rr);
    if (policy && announce) {
      const announced = await notification(
        rr,
        announce,
        policy,
        this.deps.cloudFor({ region: this.deps.defaultRegion }).publisher,
        this.t,
        this.engine,
      );
      if (announced) {
        await this.write(rr, announced, log);
        return;
      }
    }
    if (END_PHASES.has(phase)) {
      if (verifying) {
        // The outcome goes to the ledger now (the breaker and cooldown see the success);
        // the verdict and the finalizer's removal follow once it is known.
        await this.settle(rr, log, { keepFinalizer: true });
        const step = await this.verifier.step(rr, policy, () => this.cloudOfPlan(rr).metrics);
        await this.write(rr, step, log);
        return step.requeueAfterMs ? { requeueAfterMs: step.requeueAfterMs } : undefined;
      }
      if (held) {
        await this.settle(rr, log);
        return;
      }
      const entry = this.deps.ledger.entry(req.namespace, rr.spec.policyRef.name, rr.metadata?.uid ?? '');
      if (entry && entry.outcome === undefined) {
        // Its intent reached the ledger, the finalizer did not (lost, or a crash between the
        // two), and it ended: settled all the same, or the entry stays unfinished for the
        // ledger's retention — counted as running by the rate limits and the instance locks.
        await this.settle(rr, log, { keepFinalizer: true });
      }
      // Nothing more will be sent for it: the engine forgets it.
      this.engine.forget(rr.metadata?.uid ?? '');
      return this.retain(rr, policy, log);
    }

    let step: Transition;
    try {
      step = await this.decide(rr, phase, policy, log);
    } catch (error) {
      if (error instanceof AwsAssumeRoleDeniedError && phase !== 'Executing') {
        // The runbook's account cannot be entered: nothing was sent, and nothing will be
        // until an administrator fixes the role's trust. The request ends and names the role.
        const status = this.t.base(rr);
        this.t.condition(rr, status, 'CloudAccess', 'False', 'AssumeRoleDenied', error.message);
        step = this.t.fail(rr, status, 'AssumeRoleDenied', `${error.message}; nothing was sent`);
        await this.write(rr, step, log);
        return;
      }
      if (error instanceof AwsAccessDeniedError) {
        const status = this.t.base(rr);
        this.t.condition(rr, status, 'CloudAccess', 'False', 'AccessDenied', error.message);
        status.message = error.message;
        await this.write(rr, { status, event: { type: 'Warning', reason: 'AccessDenied', message: error.message } }, log);
        // The role may be fixed at any time: keep retrying, with the queue's backoff.
        throw error;
      }
      if (!isPermanentAwsError(error) || phase === 'Executing') throw error;
      // AWS refused the request itself (a bad parameter, a missing resource): retrying
      // cannot help, so the request ends and says what AWS said.
      step = this.t.fail(rr, this.t.base(rr), 'AwsRequestInvalid', `AWS refused the call: ${(error as Error).message}`);
    }
    const refusedForGood = step.status.execution?.ssm?.commands?.some((c) => c.refused?.reason === 'AccessDenied');
    if (!refusedForGood && step.status.conditions?.some((c) => c.type === 'CloudAccess' && c.status === 'False')) {
      // The AWS call that was denied went through this time: the role was fixed. (A
      // SendCommand SSM denied stays denied: that command is never sent again.)
      this.t.condition(rr, step.status, 'CloudAccess', 'True', 'Restored', 'AWS calls succeed again');
    }
    const written = await this.write(rr, step, log);
    if (written && phase !== 'Executing' && written.status?.phase === 'Executing') {
      // This reconcile recorded the intent on the version that had none: nothing can have
      // been sent, so the send follows at once instead of after the watch round trip.
      return this.handle(req, written, log);
    }
    return step.requeueAfterMs ? { requeueAfterMs: step.requeueAfterMs } : undefined;
  }

  /** One step of the state machine, for whatever the request and its policy look like now. */
  private async decide(rr: RemediationRequest, phase: Phase, policy: AlertPolicy | undefined, log: Logger): Promise<Transition> {
    const status = this.t.base(rr);
    if (phase === 'Executing') {
      // The command may already run: follow it (or find it) from the plan, policy or not.
      const cloud = this.cloudOfPlan(rr);
      return status.execution?.sns ? this.sns.step(rr, status, policy, cloud) : this.ssm.step(rr, status, cloud, log, policy);
    }
    // An explicit rejection wins in every phase before execution, Auto policies included.
    if (rr.spec.approval?.decision === 'Rejected' && phase !== 'AwaitingApproval') {
      status.approval = rr.spec.approval;
      const a = rr.spec.approval;
      return this.t.enter(rr, status, 'Rejected', 'RejectedByApprover', `rejected by ${a.approver}${a.reason ? `: ${a.reason}` : ''}`);
    }
    if (!policy) {
      if (phase === 'Pending' || phase === 'Enriching') {
        // Requeued when the policy appears (the policy informer enqueues its requests).
        status.phase ??= 'Pending';
        status.reason = 'PolicyNotFound';
        status.message = `AlertPolicy "${rr.spec.policyRef.name}" not found in namespace ${rr.metadata?.namespace}; create it or fix spec.policyRef`;
        status.observedGeneration = rr.metadata?.generation;
        return { status };
      }
      return this.t.fail(
        rr,
        status,
        'PolicyNotFound',
        `AlertPolicy "${rr.spec.policyRef.name}" was deleted before execution; nothing was run`,
      );
    }
    if (rr.spec.alert.status === 'resolved') {
      return this.t.enter(rr, status, 'Cancelled', 'AlertResolved', 'the alert resolved before execution; nothing was run');
    }
    // The same request re-created after it ran (rerun.ts): ends here, whatever the cooldown says.
    const ran = ranBefore(this.deps.ledger, rr, this.deps.clock.now());
    if (ran) return this.t.enter(rr, status, 'Skipped', 'AlreadyRan', ran);
    switch (phase) {
      case 'Pending':
      case 'Enriching':
        return this.planAndMaybeIntend(rr, policy);
      case 'AwaitingApproval': {
        const decided = await this.approvals.decide(rr, status, policy);
        return decided === 'replan' ? this.planAndMaybeIntend(rr, policy) : decided;
      }
      case 'Approved':
        return this.intents.record(rr, status, policy);
      default:
        return { status };
    }
  }

  /** Plans; an auto-approved plan goes on to record its intent in the same write. */
  private async planAndMaybeIntend(rr: RemediationRequest, policy: AlertPolicy): Promise<Transition> {
    const status = this.t.base(rr);
    const { transition, resolved } = await this.planner.plan(rr, status, policy);
    if (!resolved || transition.status.phase !== 'Approved') return transition;
    const intent = await this.intents.record(rr, transition.status, policy, resolved);
    // Held or skipped: that says more than the plan's Event. Executing: the send's Event follows.
    return intent.status.phase === 'Executing' ? intent : { ...intent, event: intent.event ?? transition.event };
  }

  private cloudOfPlan(rr: RemediationRequest): CloudServices {
    const plan = rr.status?.plan;
    return this.deps.cloudFor(
      plan?.roleArn
        ? {
            region: plan.region,
            roleArn: plan.roleArn,
            externalId: plan.externalId,
            sessionTags: sessionTags(rr),
          }
        : { region: plan?.region ?? this.deps.defaultRegion },
    );
  }

  /**
   * An ended (or deleted) request that holds the execution finalizer: its outcome goes to
   * the ledger, stored, then the finalizer goes. An intent that never reached Executing
   * sent nothing, and leaves the ledger.
   */
  private async settle(rr: RemediationRequest, log: Logger, opts: { keepFinalizer?: boolean } = {}): Promise<void> {
    const ns = rr.metadata?.namespace ?? '';
    const name = rr.metadata?.name ?? '';
    const uid = rr.metadata?.uid ?? '';
    const policyName = rr.spec.policyRef.name;
    const status = rr.status ?? {};
    const phase = status.phase ?? 'Pending';
    const e = status.execution;
    const intentAt = e && !e.dryRun ? (e.ssm?.intentRecordedAt ?? e.sns?.intentRecordedAt) : undefined;
    const ledger = this.deps.ledger;
    if (intentAt && END_PHASES.has(phase)) {
      if (!ledger.entry(ns, policyName, uid)) {
        // Recorded before this ledger existed, or lost with an old leader: record it now.
        const policy = this.deps.getPolicy(ns, policyName);
        ledger.record(ns, policyName, policy ? ledgerRetention(policy) : { windowMs: 0, lastOutcomes: 10 }, {
          uid,
          request: name,
          runbook: status.plan?.runbook.name ?? policy?.spec.runbookRef.name ?? '',
          targets: status.targets ?? [],
          at: Date.parse(intentAt),
          ...(rr.spec.requestedBy && { requestedBy: rr.spec.requestedBy }),
        });
      }
      ledger.finish(
        ns,
        policyName,
        uid,
        phase === 'Succeeded' ? 'Succeeded' : 'Failed',
        Date.parse(status.completionTime ?? '') || this.deps.clock.now(),
        {
          ...(e?.ssm?.commandId && { commandIds: [e.ssm.commandId] }),
          ...(e?.sns?.messageId && { messageId: e.sns.messageId }),
          ...(status.approval?.approver && { approver: status.approval.approver }),
        },
      );
      const verdict = verdictOf(rr);
      if (verdict !== undefined) ledger.verdict(ns, policyName, uid, verdict);
      // The outcome may open the breaker: recorded with it, so that it stays open whatever
      // the policy says before the next request arrives (stored by the persist below).
      const policy = this.deps.getPolicy(ns, policyName);
      if (policy) recordCircuit(this.deps, policy, this.deps.clock.now());
    } else if (!intentAt) {
      ledger.forget(ns, policyName, uid);
    } else {
      return; // still executing: settled once it ends
    }
    await ledger.persist(ns, policyName);
    if (opts.keepFinalizer) return;
    await this.deps.requests.setFinalizers(
      ns,
      name,
      (rr.metadata?.finalizers ?? []).filter((f) => f !== EXECUTION_FINALIZER),
      rr.metadata?.resourceVersion ?? '',
    );
    log.debug({ phase }, 'execution settled in the ledger; finalizer removed');
  }

  /** A finished request is deleted once its policy's ttlAfterFinished is up. */
  private async retain(rr: RemediationRequest, policy: AlertPolicy | undefined, log: Logger): Promise<Result | void> {
    const left = ttlLeftMs(rr, retentionOf(policy, this.deps.retentionDefaults), this.deps.clock.now());
    if (left === undefined) return;
    if (left > 0) return { requeueAfterMs: left };
    // Audit hook (src/controllers/audit.ts): the record goes to the sink first; a failed write throws and holds the deletion.
    await this.deps.audit?.beforeDelete(rr.metadata?.namespace ?? '', rr.metadata?.name ?? '', rr.metadata?.uid ?? '');
    const deleted = await this.deps.requests.delete(rr.metadata?.namespace ?? '', rr.metadata?.name ?? '', rr.metadata?.uid ?? '');
    if (deleted)
      log.info(
        { policy: rr.spec.policyRef.name, phase: rr.status?.phase, completionTime: rr.status?.completionTime },
        'finished request deleted: ttlAfterFinished passed',
      );
  }

  /**
   * Write status only when it changed, then record the transition's Event off the
   * critical path. Returns the stored request when this write stored it as asked.
   */
  private async write(rr: RemediationRequest, step: Transition, log: Logger): Promise<RemediationRequest | undefined> {
    withRequestKstatus(step.status, this.t.now());
    if (sameJson(step.status, rr.status ?? {})) return undefined;
    const ns = rr.metadata?.namespace ?? '';
    const name = rr.metadata?.name ?? '';
    let metadata = rr.metadata;
    // The ledger entry and the finalizer both go before the status, side by side: either
    // alone after a crash is safe (an over-count; a finalizer settled at the end), and the
    // status — what allows a send — waits for both.
    const [recorded, held] = await Promise.allSettled([
      step.beforeWrite?.(),
      step.addFinalizer && !metadata?.finalizers?.includes(EXECUTION_FINALIZER)
        ? this.deps.requests.setFinalizers(
            ns,
            name,
            [...(metadata?.finalizers ?? []), EXECUTION_FINALIZER],
            metadata?.resourceVersion ?? '',
          )
        : undefined,
    ]);
    if (recorded.status === 'rejected' || held.status === 'rejected') {
      throw recorded.status === 'rejected' ? recorded.reason : (held as PromiseRejectedResult).reason;
    }
    if (held.value) metadata = held.value.metadata;
    const body: RemediationRequest = {
      apiVersion: API_VERSION,
      kind: REMEDIATION_REQUEST.kind,
      metadata,
      spec: rr.spec,
      status: step.status,
    };
    // Each phase the policy announces that this status reaches is recorded as pending in
    // the same write: the intent of its notification (engine.ts, invariant 1).
    const policy = this.deps.getPolicy(ns, rr.spec.policyRef.name);
    if (policy) body.status = withPendingAnnouncements(policy, { ...rr, status: step.status });
    const had = new Set((rr.status?.notifications ?? []).map((n) => n.phase));
    const announcing = (body.status?.notifications ?? []).filter((n) => isPending(n) && !had.has(n.phase)).map((n) => n.phase);
    let stored: RemediationRequest | undefined;
    try {
      stored = await this.deps.requests.replaceStatus(ns, name, body);
    } catch (error) {
      if (!step.mustPersist || !isConflict(error)) throw error;
      await this.ssm.persistCommand(ns, name, step.mustPersist, step.status, log);
    }
    step.afterWrite?.();
    const from = rr.status?.phase ?? 'Pending';
    const to = step.status.phase ?? 'Pending';
    const uid = rr.metadata?.uid ?? '';
    if (stored && announcing.length > 0)
      this.engine.intentWritten(
        uid,
        announcing.map((phase) => notifyEffectId(uid, phase)),
      );
    if (from !== to) {
      this.deps.metrics.phaseTransitions.inc({ namespace: ns, phase: to });
      log.info({ from, to, reason: step.status.reason, policy: rr.spec.policyRef.name }, step.status.message ?? 'phase changed');
      if (END_PHASES.has(to)) log.info({ audit: auditRecord(body) }, 'remediation ended');
    }
    if (step.event) void this.deps.events.record(body, step.event.type, step.event.reason, step.event.message);
    return stored;
  }
}

/**
 * The request client the handlers get: every write goes through it, so every write —
 * status, finalizers, deletion — sets the floor the next decision is taken on. A write
 * refused with 409 (or 404) stored nothing; any other failure may have stored it, and
 * the next reconcile reads the request from the server.
 */
function recordingWrites(client: ResourceClient<RemediationRequest>, expectations: WriteExpectations): ResourceClient<RemediationRequest> {
  const track = async (key: string, write: () => Promise<RemediationRequest>): Promise<RemediationRequest> => {
    try {
      const stored = await write();
      expectations.wrote(key, stored?.metadata?.resourceVersion, stored?.metadata?.uid);
      return stored;
    } catch (error) {
      if (!isConflict(error) && !isNotFound(error)) expectations.wrote(key, undefined);
      throw error;
    }
  };
  return {
    names: client.names,
    watchPath: client.watchPath,
    listAll: (options) => client.listAll(options),
    get: (ns, name) => client.get(ns, name),
    create: (ns, body) => track(`${ns}/${body.metadata?.name}`, () => client.create(ns, body)),
    replaceStatus: (ns, name, body) => track(`${ns}/${name}`, () => client.replaceStatus(ns, name, body)),
    setFinalizers: (ns, name, finalizers, rv) => track(`${ns}/${name}`, () => client.setFinalizers(ns, name, finalizers, rv)),
    delete: async (ns, name, uid) => {
      // Deleted or marked for deletion: either way the next look reads the server.
      try {
        return await client.delete(ns, name, uid);
      } finally {
        expectations.wrote(`${ns}/${name}`, undefined);
      }
    },
  };
}

/**
 * The audit record of an ended request, one structured log line: what must outlive the
 * object once retention deletes it (who asked, who approved, what ran where, the outcome).
 */
export function auditRecord(rr: RemediationRequest): Record<string, unknown> {
  const s = rr.status ?? {};
  const e = s.execution;
  return {
    namespace: rr.metadata?.namespace,
    request: rr.metadata?.name,
    uid: rr.metadata?.uid,
    policy: rr.spec.policyRef.name,
    runbook: s.plan?.runbook.name,
    alert: { source: rr.spec.alert.source, name: rr.spec.alert.name, fingerprint: rr.spec.alert.fingerprint },
    requestedBy: rr.spec.requestedBy,
    approvedBy: s.approval?.decision === 'Approved' ? s.approval.approver : undefined,
    planDigest: s.plan?.digest,
    risk: s.risk,
    targets: s.targets,
    region: s.plan?.region,
    ...(e?.ssm && { document: e.ssm.documentName, commandId: e.ssm.commandId }),
    ...(e?.sns && { topicArn: e.sns.topicArn, messageId: e.sns.messageId }),
    dryRun: e?.dryRun === true || undefined,
    phase: s.phase,
    reason: s.reason,
    message: s.message,
    startTime: s.startTime,
    completionTime: s.completionTime,
  };
}
