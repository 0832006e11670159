/**
 * Executing (SSM), and every exactly-once invariant in one place:
 *
 *  - intent (phase Executing, the command's `Comment` carrying the request UID) is in
 *    status before `SendCommand` is ever called (see intent.ts);
 *  - whenever intent exists without a command id — after a crash, a lost response or a
 *    failed write — SSM is asked first for a command with that comment, and it is adopted;
 *  - if none is listed, a send happens at once only when this process wrote the intent
 *    and has not tried yet; otherwise ListCommands is given `sendSettleMs` to show a
 *    command someone may have sent just now;
 *  - a command id learnt from SSM is written even through write conflicts.
 *
 * Everything it sends comes from the approved plan in status, never from the current
 * policy or runbook.
 */
import type { Logger } from 'pino';
import type { RemediationRequest, RemediationRequestStatus } from '../../api/v1alpha1/index.js';
import { callOutcome, isPermanentAwsError } from '../../cloud/errors.js';
import { AwsAccessDeniedError, TERMINAL_INVOCATION_STATUSES, type InvocationResult } from '../../cloud/types.js';
import { isConflict } from '../../kube/resources.js';
import type { CloudClients, RemediationRequestReconcilerDeps } from './deps.js';
import type { Transition, Transitions } from './transition.js';

export const COMMENT_PREFIX = 'remediator:';

/** The SSM `Comment` that ties a command to its request (SSM allows 100 characters). */
export function commandComment(uid: string): string {
  return `${COMMENT_PREFIX}${uid}`;
}

export class SsmExecution {
  /** Requests whose intent this process wrote: the first send needs no settle wait. */
  private readonly intentsWritten = new Set<string>();
  /** Requests whose last send ended ambiguously (it may have reached SSM), and when. */
  private readonly ambiguousSends = new Map<string, number>();

  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
  ) {}

  /** Called once the intent write succeeded. */
  intentWritten(uid: string): void {
    this.intentsWritten.add(uid);
  }

  /** Called once a request's end phase is written: nothing more to remember. */
  forget(uid: string): void {
    this.intentsWritten.delete(uid);
    this.ambiguousSends.delete(uid);
  }

  async step(rr: RemediationRequest, status: RemediationRequestStatus, cloud: CloudClients, log: Logger): Promise<Transition> {
    const ssm = status.execution?.ssm;
    const plan = status.plan?.ssm;
    if (!ssm || !status.execution) return this.t.fail(rr, status, 'IntentLost', 'Executing without recorded intent; not sending anything');
    return ssm.commandId ? this.poll(rr, status, cloud) : this.send(rr, status, cloud, log, plan);
  }

  private async send(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    cloud: CloudClients,
    log: Logger,
    plan: NonNullable<RemediationRequestStatus['plan']>['ssm'],
  ): Promise<Transition> {
    const ssm = status.execution!.ssm!;
    const targets = status.targets ?? [];
    const uid = rr.metadata?.uid ?? '';
    let sent = await cloud.commands.findCommand(ssm.comment, targets);
    if (sent) {
      log.info({ commandId: sent.commandId }, 'adopted a command sent before a crash or lost response');
    } else {
      // ListCommands may lag SendCommand by a moment. Unless this process wrote the intent
      // and has not tried yet, someone may have sent it just now (a crashed predecessor, or
      // our own attempt whose answer was lost): give SSM time to list it before sending.
      const ours = this.intentsWritten.has(uid) && !this.ambiguousSends.has(uid);
      const since = this.ambiguousSends.get(uid) ?? Date.parse(ssm.intentRecordedAt);
      const wait = since + (this.deps.sendSettleMs ?? 30_000) - this.deps.clock.now();
      if (!ours && wait > 0) {
        log.info({ waitMs: wait }, 'intent without a command id: waiting for SSM to list a command that may have been sent before sending one');
        return { status, requeueAfterMs: wait };
      }
      if (!plan) return this.t.fail(rr, status, 'PlanMissing', 'the request has intent but no plan; nothing was sent');
      try {
        sent = await cloud.commands.sendCommand({
          documentName: plan.documentName,
          instanceIds: targets,
          parameters: plan.parameters,
          comment: ssm.comment,
          timeoutSeconds: plan.timeoutSeconds,
          maxConcurrency: plan.maxConcurrency,
          maxErrors: plan.maxErrors,
        });
      } catch (error) {
        if (isPermanentAwsError(error)) {
          // SSM refused the command outright: it was not accepted, and the same command never will be.
          return this.t.fail(rr, status, 'CommandRejected', `SSM refused the command: ${(error as Error).message}; nothing was run`);
        }
        // Access denied and throttling are definite refusals; anything else may have reached SSM.
        if (!(error instanceof AwsAccessDeniedError) && callOutcome(error) !== 'throttled') this.ambiguousSends.set(uid, this.deps.clock.now());
        throw error;
      }
      this.ambiguousSends.delete(uid);
    }
    const now = this.t.now();
    ssm.commandId = sent.commandId;
    ssm.requestedAt = sent.requestedAt ?? now;
    ssm.invocations = targets.map((instanceId) => ({ instanceId, status: 'Pending' }));
    this.t.condition(rr, status, 'Executed', 'Unknown', 'CommandSent', `SSM command ${sent.commandId} sent`);
    status.message = `SSM command ${sent.commandId} sent to ${targets.join(', ')}`;
    // The command id must reach status even if the request changed meanwhile.
    return {
      status,
      event: { type: 'Normal', reason: 'CommandSent', message: status.message },
      requeueAfterMs: this.pollDelay(ssm.requestedAt),
      mustPersist: { commandId: sent.commandId, requestedAt: ssm.requestedAt },
    };
  }

  private async poll(rr: RemediationRequest, status: RemediationRequestStatus, cloud: CloudClients): Promise<Transition> {
    const ssm = status.execution!.ssm!;
    const commandId = ssm.commandId!;
    const targets = status.targets ?? [];
    const previous = new Map((ssm.invocations ?? []).map((i) => [i.instanceId, i]));
    const results: InvocationResult[] = await Promise.all(
      targets.map((id) => {
        const prev = previous.get(id);
        return prev && TERMINAL_INVOCATION_STATUSES.has(prev.status)
          ? Promise.resolve({ instanceId: id, status: prev.status, responseCode: prev.responseCode, stdout: prev.stdoutTail, stderr: prev.stderrTail })
          : cloud.commands.getInvocation(commandId, id);
      }),
    );
    ssm.invocations = results.map((r) => ({
      instanceId: r.instanceId,
      status: r.status,
      ...(r.responseCode !== undefined && { responseCode: r.responseCode }),
      ...(r.stdout !== undefined && { stdoutTail: r.stdout }),
      ...(r.stderr !== undefined && { stderrTail: r.stderr }),
    }));
    if (!results.every((r) => TERMINAL_INVOCATION_STATUSES.has(r.status))) return { status, requeueAfterMs: this.pollDelay(ssm.requestedAt) };
    const failed = results.filter((r) => r.status !== 'Success');
    if (failed.length === 0) {
      this.t.condition(rr, status, 'Executed', 'True', 'Succeeded', `command ${commandId} succeeded on ${results.length} instance(s)`);
      return this.t.enter(rr, status, 'Succeeded', 'CommandSucceeded', `SSM command ${commandId} succeeded on ${results.map((r) => r.instanceId).join(', ')}`);
    }
    const summary = failed.map((r) => `${r.instanceId}: ${r.status}${r.responseCode !== undefined ? ` (exit ${r.responseCode})` : ''}`).join('; ');
    this.t.condition(rr, status, 'Executed', 'False', 'CommandFailed', summary);
    return this.t.fail(rr, status, 'CommandFailed', `SSM command ${commandId} failed on ${failed.length} of ${results.length} instance(s): ${summary}`);
  }

  /**
   * The request changed between our read and the status write, after SSM accepted a
   * command: re-read it and write the command id onto the current version, so the id is
   * never lost and the command never sent again.
   */
  async persistCommand(ns: string, name: string, sent: { commandId: string; requestedAt: string }, wanted: RemediationRequestStatus, log: Logger): Promise<void> {
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
    const elapsed = Math.max(0, this.deps.clock.now() - Date.parse(requestedAt ?? this.t.now()));
    return Math.min(max, Math.max(base, elapsed / 4));
  }
}
