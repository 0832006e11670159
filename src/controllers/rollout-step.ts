/**
 * The rollout as a state machine the execution engine drives: given what the status
 * records (the commands, their invocations, the rollout's progress) and what was just
 * read (alarm states, a wave's verification, a reason to stop), `rolloutStep` names the
 * one thing to do next. It decides; it never acts. Each answer that changes the world
 * (`send`, `startWave`, `stop`, `cancel`) is an effect for the engine: intent in status
 * first, then the call, adopted after a crash (ADR 0014). Pure, so every path has a unit
 * test (rollout-step.test.ts).
 */
import type { PlanRollout, RolloutStatus, RolloutStopReason, SsmCommand } from '../api/v1alpha1/index.js';
import { TERMINAL_INVOCATION_STATUSES } from '../cloud/types.js';
import {
  alarmVerdict,
  failedInstances,
  nextSend,
  outcome,
  resolveMaxErrors,
  waveEnded,
  waveInstances,
  waveMetricQueries,
  type AlarmState,
  type Outcome,
} from './rollout.js';
import type { MetricDataQuery } from '../cloud/types.js';

export interface RolloutInput {
  targets: number;
  maxConcurrency: string;
  maxErrors: string;
  /** The plan's rollout; absent: one wave, no alarms. */
  plan?: PlanRollout;
  commands: readonly SsmCommand[];
  /** Invocation status by instance, as last polled. */
  statuses: ReadonlyMap<string, string>;
  rollout: RolloutStatus;
  now: number;
  /** When the current wave's last invocation was seen ended (the engine records it in the wave's endedAt). */
  waveEndedAt?: number;
  /** The plan's alarms as just read; undefined when not read this step. */
  alarms?: ReadonlyMap<string, AlarmState>;
  /** The verification of the current wave, once read. */
  verification?: { wave: number; recovered: boolean; message: string };
  /** A reason from outside to stop: the request deleted, its alert resolved, its policy's breaker open. */
  stopRequested?: { reason: Extract<RolloutStopReason, 'RequestDeleted' | 'AlertResolved' | 'CircuitOpen'>; message: string };
}

export type RolloutAction =
  | { kind: 'send'; index: number; maxConcurrency: string; maxErrors: string }
  /** Nothing to do until invocations move: poll them. */
  | { kind: 'poll' }
  /** Read the plan's alarms before going on. */
  | { kind: 'readAlarms'; alarms: string[] }
  /** Wait until `at` (the pause, or the verification's `within`). */
  | { kind: 'waitUntil'; at: number }
  /** Read the metric of wave `wave` (from its end to now). */
  | { kind: 'verify'; wave: number; queries: MetricDataQuery[] }
  | { kind: 'startWave'; wave: number }
  /** Record the stop (intent) before anything else; `cancel`: running commands are to be cancelled. */
  | { kind: 'stop'; reason: RolloutStopReason; message: string; cancel: boolean }
  /** CancelCommand for each of these (not yet recorded as cancelled). */
  | { kind: 'cancel'; commandIds: string[] }
  /** Everything ended: the request's end phase. */
  | { kind: 'end'; phase: 'Succeeded' | 'Failed' | 'Cancelled'; reason: string; message: string; outcome: Outcome };

const ended = (s: string | undefined) => s !== undefined && (s === 'NotSent' || TERMINAL_INVOCATION_STATUSES.has(s));

/** Sent commands, not cancelled, with an invocation not ended. */
function running(commands: readonly SsmCommand[], statuses: ReadonlyMap<string, string>): SsmCommand[] {
  return commands.filter((c) => c.commandId && !c.cancelledAt && c.instanceIds.some((id) => !ended(statuses.get(id))));
}

/** Stops by an outside reason end Cancelled; stops by what the rollout saw end Failed. */
const CANCELLING: ReadonlySet<RolloutStopReason> = new Set(['RequestDeleted', 'AlertResolved', 'CircuitOpen']);

export function rolloutStep(input: RolloutInput): RolloutAction {
  const { commands, statuses, rollout, plan } = input;
  const fleet = { maxConcurrency: input.maxConcurrency, maxErrors: input.maxErrors, targets: input.targets };

  // 1. A recorded stop: cancel what it said to cancel, then wait for the ends, then end.
  if (rollout.stopped) {
    const stopped = rollout.stopped;
    const open = running(commands, statuses);
    if (stopped.cancel && open.length > 0) return { kind: 'cancel', commandIds: open.map((c) => c.commandId!) };
    const sent = commands.filter((c) => c.commandId);
    if (sent.some((c) => c.instanceIds.some((id) => !ended(statuses.get(id))))) return { kind: 'poll' };
    const o = outcome(commands, statuses, fleet);
    // Every instance ran and succeeded after all (the cancel came too late to stop any): that is the outcome, not a cancel.
    if (o.phase === 'Succeeded') {
      return {
        kind: 'end',
        phase: 'Succeeded',
        reason: 'CommandSucceeded',
        message: `${o.message} (${stopped.message}: nothing was left to stop)`,
        outcome: o,
      };
    }
    return {
      kind: 'end',
      phase: CANCELLING.has(stopped.reason) ? 'Cancelled' : 'Failed',
      reason: stopped.reason,
      message: `${stopped.message}; ${o.message}`,
      outcome: o,
    };
  }

  // 2. Asked to stop from outside: record it, cancelling what runs.
  if (input.stopRequested) {
    const r = input.stopRequested;
    return { kind: 'stop', reason: r.reason, message: r.message, cancel: running(commands, statuses).length > 0 };
  }

  // 3. Alarms, whenever they were read.
  const alarms = plan?.alarms ?? [];
  if (alarms.length > 0 && input.alarms) {
    const v = alarmVerdict(alarms, input.alarms, plan?.ignorePollAlarmFailure ?? false);
    if (v.abort) {
      return {
        kind: 'stop',
        reason: 'AlarmTriggered',
        message: `wave ${rollout.currentWave + 1}: ${v.message}`,
        cancel: running(commands, statuses).length > 0,
      };
    }
  }

  // 4. The current wave: send what fits, or follow it.
  const wave = rollout.currentWave;
  const d = nextSend(commands, statuses, wave, fleet);
  if (d.kind === 'stop') {
    // What runs goes on to its end (SSM stops each command at its own MaxErrors); nothing more is sent.
    return {
      kind: 'stop',
      reason: 'MaxErrorsExceeded',
      message: `${d.failed} instances failed, past maxErrors ${input.maxErrors} (${d.allowed}); nothing more is sent`,
      cancel: false,
    };
  }
  if (d.kind === 'send') {
    // Each command goes out only after the alarms were read in this same step.
    if (alarms.length > 0 && !input.alarms) return { kind: 'readAlarms', alarms: [...alarms] };
    return d;
  }
  if (!waveEnded(commands, statuses, wave)) return { kind: 'poll' };

  // 5. The wave ended: the last one ends the request; otherwise pause, verify, alarms, next.
  const waves = plan?.waves.length ?? 1;
  if (wave >= waves - 1) {
    const o = outcome(commands, statuses, fleet);
    return {
      kind: 'end',
      phase: o.phase,
      reason: o.phase === 'Succeeded' ? 'CommandSucceeded' : 'CommandFailed',
      message: o.message,
      outcome: o,
    };
  }
  const endedAt = input.waveEndedAt ?? input.now;
  const pauseMs = (plan?.pauseSeconds ?? 0) * 1000;
  const verify = plan?.verify;
  const due = endedAt + Math.max(pauseMs, verify ? verify.withinSeconds * 1000 : 0);
  if (input.now < due) return { kind: 'waitUntil', at: due };
  if (verify) {
    const v = input.verification;
    if (!v || v.wave !== wave) return { kind: 'verify', wave, queries: waveMetricQueries(verify, wave, waveInstances(commands, wave)) };
    if (!v.recovered) return { kind: 'stop', reason: 'Ineffective', message: v.message, cancel: false };
  }
  if (alarms.length > 0 && !input.alarms) return { kind: 'readAlarms', alarms: [...alarms] };
  // Errors within the budget, checked again at the boundary (a late failure of this wave).
  const failedSoFar = commands
    .flatMap((c) => c.instanceIds)
    .filter((id) => {
      const s = statuses.get(id);
      return s !== undefined && ended(s) && s !== 'Success' && s !== 'NotSent' && s !== 'Cancelled';
    }).length;
  if (failedSoFar > resolveMaxErrors(input.maxErrors, input.targets)) {
    return {
      kind: 'stop',
      reason: 'MaxErrorsExceeded',
      message: `${failedSoFar} instances failed, past maxErrors ${input.maxErrors}`,
      cancel: false,
    };
  }
  return { kind: 'startWave', wave: wave + 1 };
}

/** A rollout's status before anything of it went out: one entry per wave of its commands, the first Running. */
export function initialRollout(commands: readonly SsmCommand[], maxErrors: string, targets: number): RolloutStatus {
  const sizes: number[] = [];
  for (const c of commands) {
    const w = c.wave ?? 0;
    sizes[w] = (sizes[w] ?? 0) + c.instanceIds.length;
  }
  return {
    currentWave: 0,
    waves: Array.from(sizes, (size, i) => ({ size: size ?? 0, state: i === 0 ? 'Running' : 'Pending' })),
    errors: { allowed: resolveMaxErrors(maxErrors, targets), seen: 0 },
  };
}

/**
 * Brings the rollout's counts up to date with what was just polled: each started wave's
 * successes and failures, the fleet's errors, the failed instances, and the moment the
 * current wave was first seen ended (what its pause counts from).
 */
export function tally(rollout: RolloutStatus, commands: readonly SsmCommand[], statuses: ReadonlyMap<string, string>, now: string): void {
  const failed = failedInstances(commands, statuses);
  const failedSet = new Set(failed);
  rollout.errors.seen = failed.length;
  if (failed.length > 0) rollout.failedInstances = failed.slice(0, 500);
  rollout.waves.forEach((w, i) => {
    if (i > rollout.currentWave) return;
    const ids = waveInstances(commands, i);
    w.succeeded = ids.filter((id) => statuses.get(id) === 'Success').length;
    w.failed = ids.filter((id) => failedSet.has(id)).length;
  });
  const current = rollout.waves[rollout.currentWave];
  if (current && !current.endedAt && !rollout.stopped && waveEnded(commands, statuses, rollout.currentWave)) current.endedAt = now;
}

/** What a stop does to the waves: the current one takes the stop's state, later ones were never sent. */
export function markStopped(rollout: RolloutStatus, reason: RolloutStopReason, message: string): void {
  const state: Record<RolloutStopReason, RolloutStatus['waves'][number]['state']> = {
    MaxErrorsExceeded: 'Failed',
    Ineffective: 'Ineffective',
    AlarmTriggered: 'Aborted',
    RequestDeleted: 'Cancelled',
    AlertResolved: 'Cancelled',
    CircuitOpen: 'Cancelled',
  };
  rollout.waves.forEach((w, i) => {
    if (i === rollout.currentWave && w.endedAt && reason !== 'Ineffective' && reason !== 'MaxErrorsExceeded') {
      // It had ended before the stop (an alarm or a cancel between waves): it keeps its own result.
      w.state = w.failed ? 'Failed' : 'Succeeded';
    } else if (i === rollout.currentWave) {
      w.state = state[reason];
      w.message = message.slice(0, 1024);
    } else if (i > rollout.currentWave) {
      w.state = 'NotSent';
    }
  });
  delete rollout.nextWaveAt;
}
