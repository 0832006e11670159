/**
 * Executing (SSM) as a rollout: the fleet-wide rules of src/controllers/rollout.ts driven
 * through the execution engine. Every reconcile polls what runs, brings the rollout's
 * counts up to date, reads the plan's alarms, and asks `rolloutStep` (rollout-step.ts) for
 * the one next thing, which it does here:
 *
 *  - send: the next command, once the fleet has room for its MaxConcurrency, with
 *    MaxErrors = what is left of the budget and the plan's first alarm (ssm.ts `send`,
 *    an engine effect: adopted by comment after a crash, never sent twice);
 *  - start a wave: `rollout.currentWave` moves on in status once the previous wave ended,
 *    paused, verified and passed its alarms. Deterministic from status, so a restart
 *    resumes the same wave and sends only what it had not sent;
 *  - stop (the error budget spent, a wave ineffective, an alarm, the request deleted, its
 *    alert resolved — spec or the intake's `status.alertResolvedAt` —, its policy's breaker open): `rollout.stopped` is written first — the
 *    intent of the cancels — and only then is `CancelCommand` made for each command still
 *    running, each an engine effect (`repeatable`: a second CancelCommand changes nothing),
 *    its `cancelledAt` recorded;
 *  - end: once nothing runs, the request ends Succeeded (within maxErrors, naming the
 *    failed instances), Failed, or Cancelled (a stop from outside), saying what ran and
 *    what did not.
 *
 * Requests of one command with no rollout keep the plain path of ssm.ts (SSM's own
 * per-command limits are the fleet's), until something asks to stop them.
 */
import type { Logger } from 'pino';
import type { AlertPolicy, RemediationRequest, RemediationRequestStatus, RolloutStatus, SsmCommand } from '../../api/v1alpha1/index.js';
import type { InvocationResult, MetricDataResult, SentCommand } from '../../cloud/types.js';
import { type AlarmState, alarmConfiguration, waveInstances, waveVerdict } from '../rollout.js';
import { initialRollout, markStopped, type RolloutAction, type RolloutInput, rolloutStep, tally } from '../rollout-step.js';
import type { CloudServices } from '../../cloud/clients.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import { type Decision, type ExecutionEngine, viewOf } from './engine.js';
import type { Transition, Transitions } from './transition.js';

/** What the rollout needs of the plain SSM path (ssm.ts). */
export interface SsmSender {
  send(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    cloud: CloudServices,
    log: Logger,
    index: number,
    opts: { maxConcurrency: string; maxErrors: string; alarm?: { name: string; ignorePollAlarmFailure: boolean }; earliestAttempt: number },
  ): Promise<Transition>;
  readInvocations(status: RemediationRequestStatus, cloud: CloudServices, unsent?: string): Promise<unknown>;
  lookFor(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    cloud: CloudServices,
    index: number,
    earliestAttempt: number,
  ): Promise<Decision<SentCommand>>;
  recordSent(status: RemediationRequestStatus, index: number, sent: SentCommand): string;
  ended(rr: RemediationRequest, status: RemediationRequestStatus, results: InvocationResult[]): Transition;
  pollDelay(requestedAt: string | undefined): number;
}

type StopRequest = NonNullable<RolloutInput['stopRequested']>;

/**
 * Whether the request's alert resolved: `spec.alert.status: resolved` (set by the intake
 * before execution, or by whoever may edit the spec), or `status.alertResolvedAt`, which
 * the intake records once the request is Executing — in status, since the spec of an
 * approved request is frozen and status is the controller's alone (teams cannot write it).
 */
export function alertResolved(rr: RemediationRequest): boolean {
  return rr.spec.alert.status === 'resolved' || !!rr.status?.alertResolvedAt;
}

/** A reason from outside to stop a request whose commands may run: deleted, its alert resolved, its policy's breaker open. */
export function stopRequested(
  rr: RemediationRequest,
  policy: AlertPolicy | undefined,
  deps: Pick<RemediationRequestReconcilerDeps, 'ledger'>,
): StopRequest | undefined {
  if (rr.metadata?.deletionTimestamp) return { reason: 'RequestDeleted', message: 'the request was deleted while its commands ran' };
  if (alertResolved(rr)) return { reason: 'AlertResolved', message: 'the alert resolved while the commands ran' };
  const ns = rr.metadata?.namespace ?? '';
  const opened = policy ? deps.ledger.breakerOpenedAt(ns, rr.spec.policyRef.name) : undefined;
  if (opened !== undefined) {
    return { reason: 'CircuitOpen', message: `the circuit breaker of policy ${rr.spec.policyRef.name} opened while the commands ran` };
  }
  return undefined;
}

/** Whether the request goes out by the fleet-wide rules: several commands, a planned rollout, or a stop to carry out. */
export function usesRollout(
  rr: RemediationRequest,
  status: RemediationRequestStatus,
  policy: AlertPolicy | undefined,
  deps: Pick<RemediationRequestReconcilerDeps, 'ledger'>,
): boolean {
  const ssm = status.execution?.ssm;
  if (!ssm) return false;
  if (ssm.rollout || (ssm.commands?.length ?? 1) > 1 || status.plan?.ssm?.rollout) return true;
  // One command: only once it went out is there anything to stop (before that, ssm.ts withholds it).
  const sent = ssm.commands?.[0]?.commandId ?? ssm.commandId;
  return sent !== undefined && stopRequested(rr, policy, deps) !== undefined;
}

const CANCEL_PREFIX = 'cancel:';

export class RolloutExecution {
  /** When this process first looked at each request (its clock): a predecessor's send may be as late as that. */
  private readonly firstLook = new Map<string, number>();
  /** Commands (`uid comment`) looked for after the rollout stopped and not found: never sent, by anyone. */
  private readonly absent = new Set<string>();

  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
    private readonly engine: ExecutionEngine,
    private readonly ssm: SsmSender,
  ) {}

  async step(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    policy: AlertPolicy | undefined,
    cloud: CloudServices,
    log: Logger,
  ): Promise<Transition> {
    const ssm = status.execution!.ssm!;
    const commands = ssm.commands!;
    const plan = status.plan?.ssm;
    const uid = rr.metadata?.uid ?? '';
    if (!plan) return this.t.fail(rr, status, 'PlanMissing', 'the request has intent but no plan; nothing was sent');
    if (!this.firstLook.has(uid)) this.firstLook.set(uid, this.deps.clock.now());
    const targets = status.targets ?? [];
    // A command id this process learnt and status does not record yet (a failed write; the plain path's last command).
    let persist: Transition['mustPersist'];
    commands.forEach((c, i) => {
      const known = c.commandId ? undefined : this.engine.known<SentCommand>(uid, c.comment);
      if (!known) return;
      this.ssm.recordSent(status, i, known);
      persist = { comment: c.comment, commandId: known.commandId, requestedAt: c.requestedAt ?? this.t.now() };
    });
    ssm.rollout ??= initialRollout(commands, plan.maxErrors, targets.length);
    const rollout = ssm.rollout;
    await this.ssm.readInvocations(status, cloud, 'Pending');
    const statuses = new Map<string, string>();
    const sentIds = new Set(commands.filter((c) => c.commandId || c.refused).flatMap((c) => c.instanceIds));
    for (const inv of ssm.invocations ?? []) if (sentIds.has(inv.instanceId)) statuses.set(inv.instanceId, inv.status);
    // To the millisecond: the pause counts from it (status times are usually whole seconds).
    tally(rollout, commands, statuses, this.nowMs());

    const input: RolloutInput = {
      targets: targets.length,
      maxConcurrency: plan.maxConcurrency,
      maxErrors: plan.maxErrors,
      ...(plan.rollout && { plan: plan.rollout }),
      commands,
      statuses,
      rollout,
      now: this.deps.clock.now(),
      ...(rollout.waves[rollout.currentWave]?.endedAt && {
        waveEndedAt: Date.parse(rollout.waves[rollout.currentWave]!.endedAt!),
      }),
      stopRequested: stopRequested(rr, policy, this.deps),
    };
    if (!input.stopRequested) delete input.stopRequested;
    const alarms = plan.rollout?.alarms ?? [];
    // Read at every look while the rollout goes on: before each command, each wave, and while commands run.
    if (alarms.length > 0 && !rollout.stopped) input.alarms = await this.readAlarms(cloud, alarms);

    const refusal = commands.find((c) => c.refused)?.refused;
    for (let look = 0; look < 4; look++) {
      const action = rolloutStep({ ...input, now: this.deps.clock.now() });
      // SSM refused a command: nothing more goes out; what was sent is followed to its end.
      if (refusal && !rollout.stopped && ['end', 'startWave', 'waitUntil', 'verify'].includes(action.kind)) {
        return (await this.lookForUnsent(rr, status, cloud, persist)) ?? this.refusedEnd(rr, status, persist);
      }
      if (action.kind === 'stop' || action.kind === 'end') {
        // Before saying what was not sent, make sure: a predecessor may have sent it and not recorded it.
        const found = await this.lookForUnsent(rr, status, cloud, persist);
        if (found) return found;
      }
      switch (action.kind) {
        case 'readAlarms':
          input.alarms = await this.readAlarms(cloud, action.alarms);
          continue;
        case 'verify':
          input.verification = { wave: action.wave, ...(await this.verifyWave(status, cloud, action.wave, action.queries)) };
          continue;
        case 'send':
          return this.send(rr, status, cloud, log, action, persist);
        case 'poll':
          return { status, requeueAfterMs: this.pollMs(commands), ...(persist && { mustPersist: persist }) };
        case 'waitUntil': {
          const wave = rollout.waves[rollout.currentWave]!;
          wave.state = input.verification || !plan.rollout?.verify ? 'Pausing' : 'Verifying';
          rollout.nextWaveAt = new Date(action.at).toISOString();
          status.message = `wave ${rollout.currentWave + 1} of ${rollout.waves.length} ended (${wave.succeeded ?? 0} succeeded, ${wave.failed ?? 0} failed); next wave at ${rollout.nextWaveAt}`;
          return { status, requeueAfterMs: Math.max(50, action.at - this.deps.clock.now() + 50), ...(persist && { mustPersist: persist }) };
        }
        case 'startWave':
          return this.startWave(rr, status, rollout, action.wave, input.verification?.message, persist);
        case 'stop':
          return this.stop(rr, status, rollout, commands, action, cloud, persist);
        case 'cancel':
          return this.cancel(rr, status, rollout, commands, action.commandIds, cloud, log, persist);
        case 'end':
          return this.end(rr, status, action, persist);
      }
    }
    return { status, requeueAfterMs: this.pollMs(commands), ...(persist && { mustPersist: persist }) };
  }

  private nowMs(): string {
    return new Date(this.deps.clock.now()).toISOString();
  }

  private pollMs(commands: readonly SsmCommand[]): number {
    const last = commands.filter((c) => c.requestedAt).at(-1)?.requestedAt;
    return this.ssm.pollDelay(last);
  }

  private async readAlarms(cloud: CloudServices, names: readonly string[]): Promise<Map<string, AlarmState>> {
    if (!cloud.alarms) throw new Error('this controller has no CloudWatch alarm reader: the rollout holds until it has one');
    return cloud.alarms.alarmStates(names);
  }

  private async verifyWave(
    status: RemediationRequestStatus,
    cloud: CloudServices,
    wave: number,
    queries: Extract<RolloutAction, { kind: 'verify' }>['queries'],
  ): Promise<{ recovered: boolean; message: string }> {
    const rollout = status.execution!.ssm!.rollout!;
    const verify = status.plan!.ssm!.rollout!.verify!;
    const endedAt = Date.parse(rollout.waves[wave]?.endedAt ?? '') || this.deps.clock.now();
    const results: Map<string, MetricDataResult> = await cloud.metrics.getMetricData(
      queries,
      new Date(endedAt),
      new Date(this.deps.clock.now()),
    );
    const v = waveVerdict(verify, wave, waveInstances(status.execution!.ssm!.commands!, wave), results);
    rollout.waves[wave]!.message = v.message.slice(0, 1024);
    return v;
  }

  private async send(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    cloud: CloudServices,
    log: Logger,
    action: Extract<RolloutAction, { kind: 'send' }>,
    persist: Transition['mustPersist'],
  ): Promise<Transition> {
    const rollout = status.execution!.ssm!.rollout!;
    const uid = rr.metadata?.uid ?? '';
    const wave = rollout.waves[rollout.currentWave];
    const earliestAttempt = this.earliestAttempt(status, uid, action.index);
    if (wave && !wave.startedAt) wave.startedAt = this.nowMs();
    if (wave) wave.state = 'Running';
    const alarm = alarmConfiguration(status.plan?.ssm?.rollout);
    const t = await this.ssm.send(rr, status, cloud, log, action.index, {
      maxConcurrency: action.maxConcurrency,
      maxErrors: action.maxErrors,
      ...(alarm && { alarm: { name: alarm.alarmName, ignorePollAlarmFailure: alarm.ignorePollAlarmFailure } }),
      earliestAttempt,
    });
    return !t.mustPersist && persist ? { ...t, mustPersist: persist } : t;
  }

  /** The earliest anyone could have sent command `index`: not before the intent, the previous command's acceptance, its wave's start, or (for a predecessor's attempt) this process's first look. */
  private earliestAttempt(status: RemediationRequestStatus, uid: string, index: number): number {
    const ssm = status.execution!.ssm!;
    const previous = ssm.commands![index - 1]?.requestedAt;
    const wave = ssm.rollout?.waves[ssm.commands![index]?.wave ?? 0];
    return Math.max(
      Date.parse(ssm.intentRecordedAt),
      previous ? Date.parse(previous) : 0,
      Date.parse(wave?.startedAt ?? '') || 0,
      this.firstLook.get(uid) ?? 0,
    );
  }

  /**
   * Each command of a started wave that status does not record as sent is looked for
   * (never sent): one found is recorded (a transition to write); one that may still show
   * up in ListCommands is waited for. Undefined: none was sent, by anyone.
   */
  private async lookForUnsent(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    cloud: CloudServices,
    persist: Transition['mustPersist'],
  ): Promise<Transition | undefined> {
    const ssm = status.execution!.ssm!;
    const uid = rr.metadata?.uid ?? '';
    const current = ssm.rollout?.currentWave ?? 0;
    const commands = ssm.commands!;
    for (const [index, c] of commands.entries()) {
      if (c.commandId || c.refused || (c.wave ?? 0) > current || this.absent.has(`${uid} ${c.comment}`)) continue;
      const d = await this.ssm.lookFor(rr, status, cloud, index, this.earliestAttempt(status, uid, index));
      if (d.action === 'adopted' || d.action === 'performed') {
        this.ssm.recordSent(status, index, d.result);
        return {
          status,
          requeueAfterMs: 1,
          mustPersist: { comment: c.comment, commandId: d.result.commandId, requestedAt: c.requestedAt ?? this.t.now() },
        };
      }
      if (d.action === 'wait') return { status, requeueAfterMs: d.ms, ...(persist && { mustPersist: persist }) };
      this.absent.add(`${uid} ${c.comment}`);
    }
    return undefined;
  }

  private startWave(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    rollout: RolloutStatus,
    wave: number,
    verified: string | undefined,
    persist: Transition['mustPersist'],
  ): Transition {
    const previous = rollout.waves[rollout.currentWave]!;
    previous.state = previous.failed ? 'Failed' : 'Succeeded';
    if (verified) previous.message = verified.slice(0, 1024);
    rollout.currentWave = wave;
    rollout.waves[wave]!.state = 'Running';
    delete rollout.nextWaveAt;
    status.message = `wave ${wave + 1} of ${rollout.waves.length} (${rollout.waves[wave]!.size} instance(s)) starting`;
    this.t.condition(rr, status, 'Executed', 'Unknown', 'WaveStarted', status.message);
    return {
      status,
      event: { type: 'Normal', reason: 'WaveStarted', message: status.message },
      requeueAfterMs: 1,
      ...(persist && { mustPersist: persist }),
    };
  }

  /** The stop is recorded before anything is cancelled: its write is the intent of the cancels. */
  private stop(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    rollout: RolloutStatus,
    commands: readonly SsmCommand[],
    action: Extract<RolloutAction, { kind: 'stop' }>,
    cloud: CloudServices,
    persist: Transition['mustPersist'],
  ): Transition {
    const uid = rr.metadata?.uid ?? '';
    // Without a canceller (a controller built without one) the commands run to their end; the message says so.
    const cancel = action.cancel && cloud.cancels !== undefined;
    const message = action.cancel && !cancel ? `${action.message}; CancelCommand is not available here: what runs goes on` : action.message;
    rollout.stopped = { reason: action.reason, message: message.slice(0, 1024), at: this.t.now(), ...(cancel && { cancel: true }) };
    markStopped(rollout, action.reason, message);
    const waves = rollout.waves.length > 1 ? ` at wave ${rollout.currentWave + 1} of ${rollout.waves.length}` : '';
    status.message = `rollout stopped${waves}: ${message}${cancel ? '; cancelling the commands still running' : ''}`;
    this.t.condition(rr, status, 'Executed', 'Unknown', action.reason, status.message);
    const cancels = cancel ? commands.filter((c) => c.commandId && !c.cancelledAt).map((c) => `${CANCEL_PREFIX}${c.comment}`) : [];
    return {
      status,
      event: { type: 'Warning', reason: action.reason, message: status.message },
      requeueAfterMs: 1,
      // Written on the version without the stop: these cancels are ours to make at once.
      afterWrite: () => this.engine.intentWritten(uid, cancels),
      ...(persist && { mustPersist: persist }),
    };
  }

  private async cancel(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    rollout: RolloutStatus,
    commands: SsmCommand[],
    commandIds: readonly string[],
    cloud: CloudServices,
    log: Logger,
    persist: Transition['mustPersist'],
  ): Promise<Transition> {
    const uid = rr.metadata?.uid ?? '';
    const canceller = cloud.cancels!;
    for (const commandId of commandIds) {
      const command = commands.find((c) => c.commandId === commandId)!;
      const decision = await this.engine.execute<true>(viewOf(rr), {
        kind: 'ssm-cancel',
        id: `${CANCEL_PREFIX}${command.comment}`,
        owner: uid,
        repeatable: true,
        perform: async () => {
          await canceller.cancelCommand(commandId);
          return true;
        },
      });
      if (decision.action === 'refused') {
        // CancelCommand denied or refused for good: what runs goes on to its end, and the stop says so.
        rollout.stopped!.message = `${rollout.stopped!.message}; CancelCommand refused: ${decision.error.message}`.slice(0, 1024);
        delete rollout.stopped!.cancel;
        log.warn({ commandId, error: decision.error.message }, 'CancelCommand refused; following the command to its end');
        break;
      }
      if (decision.action === 'performed' || decision.action === 'adopted') command.cancelledAt = this.t.now();
    }
    const cancelled = commands.filter((c) => c.cancelledAt).length;
    return {
      status,
      event: { type: 'Normal', reason: 'CommandCancelled', message: `CancelCommand accepted for ${cancelled} command(s)` },
      requeueAfterMs: this.deps.pollIntervalMs ?? 1_000,
      ...(persist && { mustPersist: persist }),
    };
  }

  /** SSM refused a command and what was sent has ended: the request fails as a refused fleet always did (ssm.ts). */
  private refusedEnd(rr: RemediationRequest, status: RemediationRequestStatus, persist: Transition['mustPersist']): Transition {
    const ssm = status.execution!.ssm!;
    const rollout = ssm.rollout!;
    for (const inv of ssm.invocations ?? []) if (inv.status === 'Pending' && !sentTo(ssm.commands!, inv.instanceId)) inv.status = 'NotSent';
    rollout.waves.forEach((w, i) => {
      if (i === rollout.currentWave) w.state = 'Failed';
      else if (i > rollout.currentWave) w.state = 'NotSent';
    });
    delete rollout.nextWaveAt;
    const results: InvocationResult[] = (ssm.invocations ?? []).map((i) => ({
      instanceId: i.instanceId,
      status: i.status,
      ...(i.responseCode !== undefined && { responseCode: i.responseCode }),
    }));
    const t = this.ssm.ended(rr, status, results);
    return persist ? { ...t, mustPersist: persist } : t;
  }

  private end(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    action: Pick<Extract<RolloutAction, { kind: 'end' }>, 'phase' | 'reason' | 'message' | 'outcome'>,
    persist: Transition['mustPersist'],
  ): Transition {
    const ssm = status.execution!.ssm!;
    const rollout = ssm.rollout!;
    const o = action.outcome;
    // What never ran says so: instances of commands never sent are NotSent.
    for (const inv of ssm.invocations ?? []) if (inv.status === 'Pending' && !sentTo(ssm.commands!, inv.instanceId)) inv.status = 'NotSent';
    if (!rollout.stopped || o.phase === 'Succeeded') {
      const last = rollout.waves[rollout.currentWave];
      if (last) last.state = o.phase === 'Succeeded' ? (last.failed ? 'Failed' : 'Succeeded') : 'Failed';
      rollout.waves.forEach((w, i) => {
        if (i > rollout.currentWave) w.state = 'NotSent';
      });
    }
    rollout.failedInstances = o.failedInstances.slice(0, 500);
    if (rollout.failedInstances.length === 0) delete rollout.failedInstances;
    delete rollout.nextWaveAt;
    const ids = ssm.commands!.flatMap((c) => c.commandId ?? []);
    const what = ids.length === 0 ? 'no SSM command was sent' : ids.length > 1 ? `SSM commands ${ids.join(', ')}` : `SSM command ${ids[0]}`;
    const targets = status.targets ?? [];
    // A clean success reads as it always did; anything else says what ran and what did not.
    const clean = action.phase === 'Succeeded' && o.failedInstances.length === 0;
    const on = targets.length > 10 ? `all ${targets.length} instances` : targets.join(', ');
    const at =
      rollout.stopped && rollout.waves.length > 1 ? `rollout stopped at wave ${rollout.currentWave + 1} of ${rollout.waves.length}: ` : '';
    const message = clean ? `${what} succeeded on ${on}` : `${what}: ${at}${action.message}`;
    let t: Transition;
    if (action.phase === 'Succeeded') {
      this.t.condition(rr, status, 'Executed', 'True', 'Succeeded', message);
      t = this.t.enter(rr, status, 'Succeeded', action.reason, message);
    } else if (action.phase === 'Cancelled') {
      this.t.condition(rr, status, 'Executed', 'False', action.reason, message);
      t = this.t.enter(rr, status, 'Cancelled', action.reason, message, 'Warning');
    } else {
      this.t.condition(rr, status, 'Executed', 'False', action.reason, message);
      t = this.t.fail(rr, status, action.reason, message);
    }
    return persist ? { ...t, mustPersist: persist } : t;
  }
}

function sentTo(commands: readonly SsmCommand[], instanceId: string): boolean {
  return commands.some((c) => c.commandId && c.instanceIds.includes(instanceId));
}
