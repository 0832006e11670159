/**
 * Executing (SSM): the commands a request's targets go out as, sent in order through the
 * execution engine (engine.ts, where the exactly-once invariants are stated and enforced),
 * followed to their end, and refusals recorded.
 *
 *  - intent (phase Executing, and the commands the targets go out as, each with a
 *    `Comment` carrying the request UID) is in status before `SendCommand` is ever
 *    called (see intent.ts, which takes the commands from `plannedCommands` here);
 *  - SendCommand takes at most 50 instances, so a larger request is several commands,
 *    sent one per reconcile, in order, each only once the previous one's id is in status;
 *  - each command is an engine effect whose id is its comment: sent at once when this
 *    process wrote the intent and has not tried it, else adopted from ListCommands (given
 *    `sendSettleMs` to list an attempt made just now) before it is sent;
 *  - the last command's id, learnt from SendCommand, is written with its first poll's
 *    results (or its end, for a command that finished by then): one write, not two; the
 *    engine keeps the id until then, and a crash before it is healed by adoption;
 *  - a command id learnt from SSM is written even through write conflicts;
 *  - SSM refusing a command (AccessDenied, a bad parameter) sends nothing more: with
 *    nothing sent the request fails at once, else it follows what was sent and then fails;
 *    the refusal is recorded on the command and every later one, and final.
 *
 * Everything it sends comes from the approved plan in status, never from the current
 * policy or runbook.
 */
import type { Logger } from 'pino';
import {
  END_PHASES,
  type AlertPolicy,
  type Invocation,
  type RemediationRequest,
  type RemediationRequestStatus,
  type SsmCommand,
  type SsmExecution as SsmExecutionStatus,
} from '../../api/v1alpha1/index.js';
import { callOutcome, isPermanentAwsError } from '../../cloud/errors.js';
import { MAX_INSTANCES_PER_COMMAND, OUTPUT_TAIL_CHARS } from '../../cloud/ssm.js';
import {
  AwsAccessDeniedError,
  TERMINAL_INVOCATION_STATUSES,
  type InvocationResult,
  type SendCommandInput,
  type SentCommand,
} from '../../cloud/types.js';
import { isConflict } from '../../kube/resources.js';
import type { CloudServices } from '../../cloud/clients.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import { type Decision, type Effect, type ExecutionEngine, viewOf } from './engine.js';
import { outcome, plannedRolloutCommands } from '../rollout.js';
import { alertResolved, RolloutExecution, usesRollout } from './rollout.js';
import type { Transition, Transitions } from './transition.js';

export const COMMENT_PREFIX = 'remediator:';

/** Invocation status of the instances of a command SSM refused: nothing reached them. */
export const NOT_SENT = 'NotSent';

/** The SSM `Comment` that ties a request's (only) command to it (SSM allows 100 characters). */
export function commandComment(uid: string): string {
  return `${COMMENT_PREFIX}${uid}`;
}

/**
 * The commands a request's targets go out as: at most 50 instances each. One command
 * keeps the comment `remediator:<uid>` requests always had; several are
 * `remediator:<uid>/<index>` (a UID is 36 characters, so this stays far below 100).
 */
export function plannedCommands(
  uid: string,
  targets: readonly string[],
  plan?: { maxConcurrency: string; rollout?: { waves: number[] } },
): SsmCommand[] {
  // A rollout's commands never span two waves, and each carries its share of the fleet's maxConcurrency (rollout.ts).
  if (plan?.rollout && targets.length > 0)
    return plannedRolloutCommands(commandComment(uid), targets, plan.rollout.waves, plan.maxConcurrency);
  const chunks: string[][] = [];
  for (let i = 0; i < targets.length; i += MAX_INSTANCES_PER_COMMAND) chunks.push(targets.slice(i, i + MAX_INSTANCES_PER_COMMAND));
  if (chunks.length <= 1) return [{ comment: commandComment(uid), instanceIds: [...targets] }];
  return chunks.map((instanceIds, i) => ({ comment: `${commandComment(uid)}/${i}`, instanceIds }));
}

/** A request's commands; one recorded before `commands` existed is its single command. */
export function commandsOf(ssm: SsmExecutionStatus, targets: readonly string[]): SsmCommand[] {
  ssm.commands ??= [
    {
      comment: ssm.comment,
      instanceIds: [...targets],
      ...(ssm.commandId && { commandId: ssm.commandId }),
      ...(ssm.requestedAt && { requestedAt: ssm.requestedAt }),
    },
  ];
  return ssm.commands;
}

/**
 * Characters of stdout and of stderr kept per instance: the full 2 KB tail for up to
 * about a hundred targets, less for more, so status stays far below etcd's 1.5 MiB
 * object limit at 500 targets. The whole output is in CloudWatch Logs / S3 when the
 * runbook asks for it.
 */
export function tailBudget(targets: number): number {
  return Math.max(256, Math.min(OUTPUT_TAIL_CHARS, Math.floor(480_000 / Math.max(1, targets))));
}

/** GetCommandInvocation calls in flight at once while polling a large request. */
const POLL_CONCURRENCY = 8;

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** What a command is sent with when the rollout decides it (rollout.ts): its share of the fleet's limits, the alarm. */
export interface SendOptions {
  maxConcurrency: string;
  maxErrors: string;
  alarm?: { name: string; ignorePollAlarmFailure: boolean };
  /** The earliest anyone could have sent it (a predecessor's attempt), for the settle wait before a re-send. */
  earliestAttempt: number;
}

export class SsmExecution {
  private readonly rollout: RolloutExecution;

  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
    private readonly engine: ExecutionEngine,
  ) {
    this.rollout = new RolloutExecution(deps, t, engine, this);
  }

  async step(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    cloud: CloudServices,
    log: Logger,
    policy?: AlertPolicy,
  ): Promise<Transition> {
    const ssm = status.execution?.ssm;
    if (!ssm || !status.execution) return this.t.fail(rr, status, 'IntentLost', 'Executing without recorded intent; not sending anything');
    const commands = commandsOf(ssm, status.targets ?? []);
    // Several commands, a planned rollout, or a reason to stop what runs: the fleet-wide rules (rollout.ts).
    if (usesRollout(rr, status, policy, this.deps)) return this.rollout.step(rr, status, policy, cloud, log);
    // Commands go out in order; once SSM refused one, it and every later one are marked refused.
    const next = commands.findIndex((c) => !c.commandId && !c.refused);
    const last = commands[next];
    const uid = rr.metadata?.uid ?? '';
    const mine = next === commands.length - 1 && last ? this.engine.known<SentCommand>(uid, last.comment) : undefined;
    if (mine) return this.followUnrecorded(rr, status, cloud, next, mine);
    if (next >= 0) return this.send(rr, status, cloud, log, next);
    return this.poll(rr, status, cloud);
  }

  /**
   * The last command went out from this process and its id is only in memory (see
   * `send`): at the first poll its id and first results are written together, or, for a
   * command that finished by then, only its end. A crash before that write loses nothing
   * a successor needs: it finds the command by its comment, as after any lost write.
   */
  private async followUnrecorded(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    cloud: CloudServices,
    index: number,
    sent: SentCommand,
  ): Promise<Transition> {
    // When this process sent it, by its own clock (SSM's RequestedDateTime is AWS's clock).
    const sentAt = this.engine.attemptedAt(rr.metadata?.uid ?? '', status.execution!.ssm!.commands![index]!.comment) ?? 0;
    const due = sentAt + (this.deps.pollIntervalMs ?? 1_000) - this.deps.clock.now();
    // Woken early (the watch event of our own intent write): nothing to look at yet.
    if (due > 0) return { status, requeueAfterMs: due };
    this.t.condition(rr, status, 'Executed', 'Unknown', 'CommandSent', this.recordSent(status, index, sent));
    const message = status.message ?? '';
    const t = await this.poll(rr, status, cloud);
    if (END_PHASES.has(t.status.phase ?? 'Pending')) return t;
    const command = status.execution!.ssm!.commands![index]!;
    return {
      ...t,
      event: { type: 'Normal', reason: 'CommandSent', message },
      mustPersist: { comment: command.comment, commandId: sent.commandId, requestedAt: command.requestedAt ?? this.t.now() },
    };
  }

  /** Writes a sent command into the status being built (and its message); returns the condition's message. */
  recordSent(status: RemediationRequestStatus, index: number, sent: SentCommand, opts?: SendOptions): string {
    const ssm = status.execution!.ssm!;
    const commands = ssm.commands!;
    const command = commands[index]!;
    command.commandId = sent.commandId;
    command.requestedAt = sent.requestedAt ?? this.t.now();
    if (opts) {
      command.maxConcurrency = opts.maxConcurrency;
      command.maxErrors = opts.maxErrors;
    }
    if (index === 0) {
      ssm.commandId = command.commandId;
      ssm.requestedAt = command.requestedAt;
    }
    ssm.invocations ??= [];
    const listed = new Set(ssm.invocations.map((i) => i.instanceId));
    for (const instanceId of command.instanceIds) if (!listed.has(instanceId)) ssm.invocations.push({ instanceId, status: 'Pending' });
    const of = commands.length > 1 ? ` (command ${index + 1} of ${commands.length})` : '';
    status.message =
      commands.length > 1
        ? `SSM command ${index + 1} of ${commands.length} (${sent.commandId}) sent to ${command.instanceIds.length} instance(s)`
        : `SSM command ${sent.commandId} sent to ${command.instanceIds.join(', ')}`;
    return `SSM command ${sent.commandId} sent${of}`;
  }

  /** Command `index` as an engine effect: its id is its comment, found again by ListCommands. */
  private commandEffect(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    cloud: CloudServices,
    index: number,
    opts?: SendOptions,
  ): Effect<SentCommand> {
    const ssm = status.execution!.ssm!;
    const commands = ssm.commands!;
    const command = commands[index]!;
    const plan = status.plan?.ssm;
    const uid = rr.metadata?.uid ?? '';
    const previous = commands[index - 1]?.requestedAt;
    return {
      kind: 'ssm-command',
      id: command.comment,
      owner: uid,
      adopt: () => cloud.commands.findCommand(command.comment, command.instanceIds),
      // ListCommands may lag SendCommand by a moment. A command is never sent before the
      // previous one was accepted, so that is the earliest anyone could have sent it.
      settleMs: this.deps.sendSettleMs ?? 30_000,
      earliestAttempt: opts?.earliestAttempt ?? Math.max(Date.parse(ssm.intentRecordedAt), previous ? Date.parse(previous) : 0),
      perform: () => {
        const input: SendCommandInput = {
          documentName: plan!.documentName,
          instanceIds: command.instanceIds,
          parameters: plan!.parameters,
          comment: command.comment,
          timeoutSeconds: plan!.timeoutSeconds,
          maxConcurrency: opts?.maxConcurrency ?? plan!.maxConcurrency,
          maxErrors: opts?.maxErrors ?? plan!.maxErrors,
          ...(opts?.alarm && { alarm: opts.alarm }),
          ...(plan!.output?.cloudWatchLogGroup !== undefined && { cloudWatchOutput: { logGroupName: plan!.output.cloudWatchLogGroup } }),
          ...(plan!.output?.s3BucketName !== undefined && {
            s3Output: {
              bucketName: plan!.output.s3BucketName,
              ...(plan!.output.s3KeyPrefix !== undefined && { keyPrefix: plan!.output.s3KeyPrefix }),
            },
          }),
        };
        return cloud.commands.sendCommand(input);
      },
      // Nothing was sent yet (SSM lists no first command, and had time to): a resolved alert still cancels.
      withhold: () => (index === 0 && alertResolved(rr) ? 'AlertResolved' : !plan ? 'PlanMissing' : undefined),
      classify: (error) => {
        // SendCommand itself denied, or the request refused: final. A denied credential
        // exchange, or throttling, sent nothing; anything else may have reached SSM.
        if (error instanceof AwsAccessDeniedError) return error.iamAction === 'ssm:SendCommand' ? 'refused' : 'retry';
        if (isPermanentAwsError(error)) return 'refused';
        return callOutcome(error) === 'throttled' ? 'retry' : 'unknown';
      },
    };
  }

  /**
   * Whether command `index`, which status does not record as sent, was sent after all (by
   * a predecessor, or by this process with its answer lost): looked for, never sent. A
   * rollout that stops or ends asks this of each command it would report as not sent.
   */
  async lookFor(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    cloud: CloudServices,
    index: number,
    earliestAttempt: number,
  ): Promise<Decision<SentCommand>> {
    const effect = this.commandEffect(rr, status, cloud, index, { maxConcurrency: '', maxErrors: '', earliestAttempt });
    return this.engine.execute<SentCommand>(viewOf(rr), { ...effect, withhold: () => 'RolloutStopped' });
  }

  /**
   * Sends command `index` through the engine. `opts`: the rollout decided its limits and
   * alarm (rollout.ts), and its id is written at once (the next command's room depends on it).
   */
  async send(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    cloud: CloudServices,
    log: Logger,
    index: number,
    opts?: SendOptions,
  ): Promise<Transition> {
    const ssm = status.execution!.ssm!;
    const commands = ssm.commands!;
    const command = commands[index]!;
    const decision = await this.engine.execute<SentCommand>(viewOf(rr), this.commandEffect(rr, status, cloud, index, opts));
    if (decision.action === 'wait') {
      log.info(
        { waitMs: decision.ms, comment: command.comment },
        'a command without an id: waiting for SSM to list one that may have been sent before sending it',
      );
      return { status, requeueAfterMs: decision.ms };
    }
    if (decision.action === 'withheld') {
      if (decision.reason === 'AlertResolved')
        return this.t.enter(rr, status, 'Cancelled', 'AlertResolved', 'the alert resolved before any command was sent; nothing was run');
      return this.t.fail(rr, status, 'PlanMissing', 'the request has intent but no plan; nothing was sent');
    }
    if (decision.action === 'refused') {
      const denied = decision.error instanceof AwsAccessDeniedError;
      return this.refused(rr, status, index, denied ? 'AccessDenied' : 'CommandRejected', decision.error);
    }
    if (decision.action === 'unknown') throw new Error(`SSM command ${command.comment}: outcome unknown`);
    const adopted = decision.action === 'adopted';
    if (adopted) {
      log.info(
        { commandId: decision.result.commandId, comment: command.comment },
        'adopted a command sent before a crash, a lost response or a failed write',
      );
    }
    let sent = decision.result;
    const requestedAt = sent.requestedAt ?? this.t.now();
    sent = { ...sent, requestedAt };
    const more = index + 1 < commands.length;
    if (!more && !adopted && !opts) {
      // The last (usually the only) command, sent just now: its id goes to status with its
      // first results (`followUnrecorded`), one write instead of two.
      return { status, requeueAfterMs: this.deps.pollIntervalMs ?? 1_000 };
    }
    this.t.condition(rr, status, 'Executed', 'Unknown', 'CommandSent', this.recordSent(status, index, sent, opts));
    // The command id must reach status even if the request changed meanwhile.
    return {
      status,
      event: { type: 'Normal', reason: 'CommandSent', message: status.message ?? '' },
      // The next command goes out at once (a rollout looks for room first); the last one is followed at the poll pace.
      requeueAfterMs: more || opts ? 1 : this.pollDelay(requestedAt),
      mustPersist: {
        comment: command.comment,
        commandId: sent.commandId,
        requestedAt,
        ...(opts && { maxConcurrency: opts.maxConcurrency, maxErrors: opts.maxErrors }),
      },
    };
  }

  /**
   * SSM refused command `index`: it and every later command are not sent. With nothing
   * sent before it the request fails now; else the commands already sent are followed
   * to their end, and the request then fails naming what was not sent.
   */
  private refused(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    index: number,
    reason: 'AccessDenied' | 'CommandRejected',
    error: Error,
  ): Transition {
    const ssm = status.execution!.ssm!;
    const commands = ssm.commands!;
    const why = reason === 'AccessDenied' ? error.message : `SSM refused the command: ${error.message}`;
    if (reason === 'AccessDenied') this.t.condition(rr, status, 'CloudAccess', 'False', 'AccessDenied', error.message);
    for (const c of commands.slice(index)) c.refused = { reason, message: why };
    if (index === 0) {
      this.t.condition(rr, status, 'Executed', 'False', reason, `${why}; nothing was sent`);
      return this.t.fail(rr, status, reason, `${why}; nothing was sent`);
    }
    const notSent = commands.slice(index).flatMap((c) => c.instanceIds);
    const skipped = new Set(notSent);
    ssm.invocations = [
      ...(ssm.invocations ?? []).filter((i) => !skipped.has(i.instanceId)),
      ...notSent.map((instanceId) => ({ instanceId, status: NOT_SENT })),
    ];
    status.message = `${why}; ${notSent.length} instance(s) in ${commands.length - index} command(s) were not sent to; following the ${index} command(s) sent`;
    return { status, event: { type: 'Warning', reason, message: status.message }, requeueAfterMs: 1 };
  }

  private async poll(rr: RemediationRequest, status: RemediationRequestStatus, cloud: CloudServices): Promise<Transition> {
    const ssm = status.execution!.ssm!;
    const commands = ssm.commands!;
    const results = await this.readInvocations(status, cloud);
    const done = (r: InvocationResult) => r.status === NOT_SENT || TERMINAL_INVOCATION_STATUSES.has(r.status);
    if (!results.every(done)) return { status, requeueAfterMs: this.pollDelay(commands.at(-1)?.requestedAt ?? ssm.requestedAt) };
    return this.ended(rr, status, results);
  }

  /**
   * Reads every target's invocation not yet ended (those ended keep what status says) into
   * `ssm.invocations`. `unsent`: the status shown for an instance whose command is not sent.
   */
  async readInvocations(status: RemediationRequestStatus, cloud: CloudServices, unsent = NOT_SENT): Promise<InvocationResult[]> {
    const ssm = status.execution!.ssm!;
    const commands = ssm.commands!;
    const targets = status.targets ?? [];
    const budget = tailBudget(targets.length);
    const previous = new Map((ssm.invocations ?? []).map((i) => [i.instanceId, i]));
    const commandOf = new Map<string, SsmCommand>();
    for (const c of commands) for (const id of c.instanceIds) commandOf.set(id, c);
    const results: InvocationResult[] = await mapLimited(targets, POLL_CONCURRENCY, async (id) => {
      const prev = previous.get(id);
      const command = commandOf.get(id);
      if (!command?.commandId) return { instanceId: id, status: command?.refused ? NOT_SENT : unsent };
      if (prev && TERMINAL_INVOCATION_STATUSES.has(prev.status)) {
        return { instanceId: id, status: prev.status, responseCode: prev.responseCode, stdout: prev.stdoutTail, stderr: prev.stderrTail };
      }
      return cloud.commands.getInvocation(command.commandId, id);
    });
    const cut = (text: string | undefined) => (text !== undefined && text.length > budget ? text.slice(text.length - budget) : text);
    ssm.invocations = results.map(
      (r): Invocation => ({
        instanceId: r.instanceId,
        status: r.status,
        ...(r.responseCode !== undefined && { responseCode: r.responseCode }),
        ...(r.stdout !== undefined && { stdoutTail: cut(r.stdout) }),
        ...(r.stderr !== undefined && { stderrTail: cut(r.stderr) }),
      }),
    );
    return results;
  }

  /** Every invocation ended: the request's end, as the single command (or chunks) came out. */
  ended(rr: RemediationRequest, status: RemediationRequestStatus, results: InvocationResult[]): Transition {
    const commands = status.execution!.ssm!.commands!;
    const ids = commands.flatMap((c) => c.commandId ?? []);
    const what = ids.length > 1 ? `SSM commands ${ids.join(', ')}` : `SSM command ${ids[0]}`;
    const failed = results.filter((r) => r.status !== 'Success');
    const refusal = commands.find((c) => c.refused)?.refused;
    if (failed.length === 0) {
      this.t.condition(rr, status, 'Executed', 'True', 'Succeeded', `${what} succeeded on ${results.length} instance(s)`);
      const on = results.length > 10 ? `all ${results.length} instances` : results.map((r) => r.instanceId).join(', ');
      return this.t.enter(rr, status, 'Succeeded', 'CommandSucceeded', `${what} succeeded on ${on}`);
    }
    // The outcome is maxErrors' (rollout.ts `outcome`): within it, every instance having run, the request succeeds.
    const plan = status.plan?.ssm;
    const o =
      plan && !refusal
        ? outcome(commands, new Map(results.map((r) => [r.instanceId, r.status])), { maxErrors: plan.maxErrors, targets: results.length })
        : undefined;
    if (o?.phase === 'Succeeded') {
      this.t.condition(rr, status, 'Executed', 'True', 'Succeeded', `${what}: ${o.message}`);
      return this.t.enter(rr, status, 'Succeeded', 'CommandSucceeded', `${what}: ${o.message}`);
    }
    const listed = failed
      .slice(0, 20)
      .map((r) => `${r.instanceId}: ${r.status}${r.responseCode !== undefined ? ` (exit ${r.responseCode})` : ''}`);
    const summary = `${listed.join('; ')}${failed.length > listed.length ? `; and ${failed.length - listed.length} more` : ''}`;
    const reason = refusal?.reason ?? 'CommandFailed';
    this.t.condition(rr, status, 'Executed', 'False', reason, summary);
    return this.t.fail(
      rr,
      status,
      reason,
      `${what} failed on ${failed.length} of ${results.length} instance(s): ${summary}${refusal ? ` (not sent: ${refusal.message})` : ''}`,
    );
  }

  /**
   * The request changed between our read and the status write, after SSM accepted a
   * command: re-read it and write the command id onto the current version, so the id is
   * never lost and the command never sent again.
   */
  async persistCommand(
    ns: string,
    name: string,
    sent: NonNullable<Transition['mustPersist']>,
    wanted: RemediationRequestStatus,
    log: Logger,
  ): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const fresh = await this.deps.requests.get(ns, name);
      if (!fresh) return;
      const status = structuredClone(fresh.status ?? {});
      const ssm = status.execution?.ssm;
      if (!ssm) return;
      const commands = commandsOf(ssm, status.targets ?? []);
      const command = commands.find((c) => c.comment === sent.comment);
      if (!command || command.commandId) return;
      command.commandId = sent.commandId;
      command.requestedAt = sent.requestedAt;
      if (command === commands[0]) {
        ssm.commandId = sent.commandId;
        ssm.requestedAt = sent.requestedAt;
      }
      ssm.invocations = wanted.execution?.ssm?.invocations;
      if (sent.maxConcurrency !== undefined) command.maxConcurrency = sent.maxConcurrency;
      if (sent.maxErrors !== undefined) command.maxErrors = sent.maxErrors;
      if (wanted.execution?.ssm?.rollout) ssm.rollout = wanted.execution.ssm.rollout;
      status.phase = wanted.phase;
      status.message = wanted.message;
      status.conditions = wanted.conditions;
      try {
        await this.deps.requests.replaceStatus(ns, name, { ...fresh, status });
        log.info({ commandId: sent.commandId, comment: sent.comment }, 'recorded the command id after a write conflict');
        return;
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
    throw new Error(`could not record SSM command ${sent.commandId} after repeated conflicts; it will be adopted by its comment`);
  }

  /** Poll quickly at first, then back off: most commands finish in seconds, some take hours. */
  pollDelay(requestedAt: string | undefined): number {
    const base = this.deps.pollIntervalMs ?? 1_000;
    const max = this.deps.maxPollIntervalMs ?? 30_000;
    const elapsed = Math.max(0, this.deps.clock.now() - Date.parse(requestedAt ?? this.t.now()));
    return Math.min(max, Math.max(base, elapsed / 4));
  }
}
