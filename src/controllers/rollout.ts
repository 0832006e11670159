/**
 * The rules of a rollout, as pure functions: how a request's targets go out over the
 * fleet. No I/O and no clock of their own, so every rule has a unit test, and the
 * execution path (the execution engine) only reads their answers. docs/rollouts.md
 * states the same rules for people, next to AWS's own.
 *
 *  - Sizes: a count (`10`) or a percentage (`10%`) of the request's targets, rounded
 *    down, at least 1 (`resolveSize`); maxErrors may be 0 (`resolveMaxErrors`).
 *  - Merge: a policy may only make the runbook's rollout more cautious. Each wave is the
 *    smaller of the two at the same position (the last size of each repeats), the pause
 *    the longer, maxConcurrency and maxErrors the smaller once resolved; verification
 *    and alarms are the runbook's alone (`effectiveRollout`).
 *  - Commands: targets are taken in plan order into waves, each wave into commands of
 *    at most 50 instances (SendCommand's limit); each command's MaxConcurrency is
 *    min(fleet maxConcurrency, its size) (`plannedRolloutCommands`).
 *  - Fleet-wide concurrency: a command is sent only when the instances that may still be
 *    running in the commands already sent — for each, min(its MaxConcurrency, its
 *    invocations not yet ended) — plus its own MaxConcurrency stay within the fleet's
 *    maxConcurrency (`nextSend`). So the sum over commands never exceeds it, by SSM's own
 *    per-command guarantee, whatever the order in which invocations end.
 *  - Fleet-wide errors: every invocation that ended other than Success counts (a
 *    Cancelled one only when the controller did not cancel it). Each command is sent
 *    with MaxErrors = what is left of the budget, so SSM stops inside a command at the
 *    first failure past it; past the budget no further command or wave is sent, and the
 *    request fails. Within it, it succeeds and lists the failed instances (`outcome`).
 *  - Waves go in order: the next starts when every invocation of the current one ended,
 *    its pause passed and its verification (a per-instance metric recovered) held.
 */
import {
  MAX_COMMANDS,
  MAX_WAVES,
  parseDuration,
  type ROLLOUT_COMPARISONS,
  RUNBOOK_DEFAULTS,
  type PlanRollout,
  type RolloutOverride,
  type SsmAction,
  type SsmCommand,
} from '../api/v1alpha1/index.js';
import { MAX_INSTANCES_PER_COMMAND } from '../cloud/ssm.js';
import { TERMINAL_INVOCATION_STATUSES, type MetricDataQuery, type MetricDataResult } from '../cloud/types.js';
import { compare } from './enrichment.js';
import { TemplateError } from './template.js';

/**
 * Whether the execution path sends waves, pauses, verifies between waves and checks
 * alarms: it does (src/controllers/request/rollout.ts, through the execution engine).
 * Kept as a switch so that a controller that cannot keep a rollout fails closed: with it
 * false, a plan with a rollout fails before anything is sent (plan-render.ts) and the runbook's
 * Ready condition says so.
 */
export const ROLLOUT_EXECUTION: boolean = true;

/** A rollout the plan cannot hold (too many waves or commands): the request fails before anything is sent. */
export class RolloutError extends TemplateError {}

/** Invocation status of an instance whose command was never sent. */
const NOT_SENT = 'NotSent';

/** `10` or `10%` of `total`: rounded down, at least 1, at most `total` (at least 1). */
export function resolveSize(size: string, total: number): number {
  const n = Math.max(1, total);
  if (size.endsWith('%')) return Math.min(n, Math.max(1, Math.floor((Number(size.slice(0, -1)) * total) / 100)));
  return Math.min(n, Math.max(1, Number(size)));
}

/** maxErrors of `total`: a count, or a percentage rounded down (`10%` of 50 is 5: the sixth failure is one too many). */
export function resolveMaxErrors(maxErrors: string, total: number): number {
  if (maxErrors.endsWith('%')) return Math.floor((Number(maxErrors.slice(0, -1)) * total) / 100);
  return Number(maxErrors);
}

/** The wave sizes of `sizes` over `total` targets: in order, the last repeating, the last wave cut to what is left. */
export function waveSizes(sizes: readonly string[] | undefined, total: number): number[] {
  return mergeWaveSizes(sizes, undefined, total);
}

/** Each wave the smaller of the runbook's and the policy's at the same position (the last of each repeating). */
export function mergeWaveSizes(runbook: readonly string[] | undefined, policy: readonly string[] | undefined, total: number): number[] {
  if (total <= 0) return [];
  const at = (list: readonly string[] | undefined, i: number): number =>
    list && list.length > 0 ? resolveSize(list[Math.min(i, list.length - 1)]!, total) : total;
  const out: number[] = [];
  let left = total;
  for (let i = 0; left > 0; i++) {
    const size = Math.min(at(runbook, i), at(policy, i), left);
    out.push(size);
    left -= size;
  }
  return out;
}

/** The stricter of two sizes once resolved; the runbook's text on a tie (so a plan approved before keeps its digest). */
function stricter(runbook: string, policy: string | undefined, resolve: (s: string) => number): string {
  if (policy === undefined) return runbook;
  return resolve(policy) < resolve(runbook) ? policy : runbook;
}

export interface EffectiveRollout {
  maxConcurrency: string;
  maxErrors: string;
  /** Absent when the rollout is today's: one wave, no pause, no verification, no alarms (plans stay as they were). */
  rollout?: PlanRollout;
}

/**
 * The rollout a plan carries: the runbook's, made more cautious by the policy's
 * `spec.safety.rollout`. Throws RolloutError when it needs more waves or commands than a
 * request may hold.
 */
export function effectiveRollout(ssm: SsmAction, override: RolloutOverride | undefined, total: number): EffectiveRollout {
  const runbookConcurrency = ssm.maxConcurrency ?? RUNBOOK_DEFAULTS.ssmMaxConcurrency;
  const runbookErrors = ssm.maxErrors ?? RUNBOOK_DEFAULTS.ssmMaxErrors;
  const maxConcurrency = stricter(runbookConcurrency, override?.maxConcurrency, (s) => resolveSize(s, total));
  const maxErrors = stricter(runbookErrors, override?.maxErrors, (s) => resolveMaxErrors(s, total));
  const r = ssm.rollout;
  const waves = mergeWaveSizes(
    r?.waves?.map((w) => w.size),
    override?.waves?.map((w) => w.size),
    total,
  );
  const pauseMs = Math.max(
    r?.pauseBetweenWaves ? parseDuration(r.pauseBetweenWaves) : 0,
    override?.pauseBetweenWaves ? parseDuration(override.pauseBetweenWaves) : 0,
  );
  const alarms = r?.alarms ?? [];
  // A pause or a verification between waves means nothing with one wave; alarms still do.
  const plain = waves.length <= 1 && alarms.length === 0;
  if (plain) return { maxConcurrency, maxErrors };
  if (waves.length > MAX_WAVES) {
    throw new RolloutError(
      `the rollout needs ${waves.length} waves for ${total} targets; a request may have at most ${MAX_WAVES}: use larger waves (a percentage) in the runbook or the policy`,
    );
  }
  const commands = waves.reduce((n, w) => n + Math.ceil(w / MAX_INSTANCES_PER_COMMAND), 0);
  if (commands > MAX_COMMANDS) {
    throw new RolloutError(`the rollout needs ${commands} commands; a request may have at most ${MAX_COMMANDS}: use fewer, larger waves`);
  }
  const v = r?.verify;
  return {
    maxConcurrency,
    maxErrors,
    rollout: {
      waves,
      ...(pauseMs > 0 && waves.length > 1 && { pauseSeconds: Math.ceil(pauseMs / 1000) }),
      ...(v &&
        waves.length > 1 && {
          verify: {
            withinSeconds: Math.ceil(parseDuration(v.within) / 1000),
            namespace: v.metric.namespace,
            metricName: v.metric.metricName,
            statistic: v.metric.statistic ?? 'Average',
            periodSeconds: v.metric.periodSeconds ?? 60,
            operator: v.metric.operator,
            threshold: v.metric.threshold,
          },
        }),
      ...(alarms.length > 0 && { alarms: [...alarms], ignorePollAlarmFailure: r?.ignorePollAlarmFailure ?? false }),
    },
  };
}

/**
 * What is wrong with a runbook's rollout, for its Ready condition (runbook-grant.ts): found
 * when the runbook is written, not when a request first uses it.
 */
export function rolloutProblems(ssm: SsmAction, maxTargets: number): string[] {
  const r = ssm.rollout;
  if (!r) return [];
  const problems: string[] = [];
  let declared = (r.waves?.length ?? 0) > 0 || (r.alarms?.length ?? 0) > 0;
  try {
    // Evaluated whatever `declared` is already: it is also the check that the rollout fits a request.
    const planned = effectiveRollout(ssm, undefined, maxTargets).rollout !== undefined;
    declared = declared || planned;
  } catch (error) {
    if (!(error instanceof RolloutError)) throw error;
    problems.push(`action.ssm.rollout at scope.maxTargets ${maxTargets}: ${error.message}`);
  }
  if (declared && !ROLLOUT_EXECUTION) {
    problems.unshift(
      'action.ssm.rollout: this controller cannot execute rollouts yet; every request using this runbook would fail before sending',
    );
  }
  return problems;
}

/**
 * The commands a rollout goes out as, fixed when the intent is recorded: each wave's
 * targets (in plan order) in commands of at most 50, each with its share of the fleet's
 * maxConcurrency. One command keeps the comment `remediator:<uid>`; several are
 * `remediator:<uid>/<index>` — the comments requests always had.
 */
export function plannedRolloutCommands(
  comment: string,
  targets: readonly string[],
  waves: readonly number[],
  maxConcurrency: string,
): SsmCommand[] {
  const fleet = resolveSize(maxConcurrency, targets.length);
  const chunks: Array<{ wave: number; instanceIds: string[] }> = [];
  let at = 0;
  waves.forEach((size, wave) => {
    const ids = targets.slice(at, at + size);
    at += size;
    for (let i = 0; i < ids.length; i += MAX_INSTANCES_PER_COMMAND)
      chunks.push({ wave, instanceIds: ids.slice(i, i + MAX_INSTANCES_PER_COMMAND) });
  });
  return chunks.map((c, i) => ({
    comment: chunks.length === 1 ? comment : `${comment}/${i}`,
    instanceIds: c.instanceIds,
    wave: c.wave,
    maxConcurrency: String(Math.min(fleet, c.instanceIds.length)),
  }));
}

/** The instances of a wave, in order. */
export function waveInstances(commands: readonly SsmCommand[], wave: number): string[] {
  return commands.filter((c) => (c.wave ?? 0) === wave).flatMap((c) => c.instanceIds);
}

const ended = (status: string | undefined): boolean =>
  status !== undefined && (status === NOT_SENT || TERMINAL_INVOCATION_STATUSES.has(status));

/**
 * Instances that may be running now in the commands already sent: for each command
 * accepted and not cancelled, min(its MaxConcurrency, its invocations not ended). An
 * invocation the controller last saw running may have ended since: the count errs high,
 * never low.
 */
export function mayBeRunning(commands: readonly SsmCommand[], statuses: ReadonlyMap<string, string>): number {
  let n = 0;
  for (const c of commands) {
    if (!c.commandId || c.cancelledAt) continue;
    const open = c.instanceIds.filter((id) => !ended(statuses.get(id))).length;
    n += Math.min(Number(c.maxConcurrency ?? c.instanceIds.length), open);
  }
  return n;
}

/** Ended without running to an end of its own: never sent, or cancelled (by the controller, SSM's MaxErrors or a person). */
const DID_NOT_RUN: ReadonlySet<string> = new Set([NOT_SENT, 'Cancelled']);

/**
 * Failed instances across the fleet: invocations that ended other than Success, not
 * counting those that did not run (NotSent, Cancelled): what the error budget counts.
 */
export function failedInstances(commands: readonly SsmCommand[], statuses: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const c of commands) {
    for (const id of c.instanceIds) {
      const s = statuses.get(id);
      if (!s || !ended(s) || s === 'Success' || DID_NOT_RUN.has(s)) continue;
      out.push(id);
    }
  }
  return out;
}

export type SendDecision =
  /** Send command `index` now, with these MaxConcurrency and MaxErrors. */
  | { kind: 'send'; index: number; maxConcurrency: string; maxErrors: string }
  /** The fleet has no room for the next command yet: poll, and look again. */
  | { kind: 'wait'; reason: string }
  /** Every command of the wave is sent (or refused). */
  | { kind: 'waveSent' }
  /** The error budget is spent: send nothing more. */
  | { kind: 'stop'; failed: number; allowed: number };

/**
 * What to send next in wave `wave`: the first of its commands neither sent nor refused,
 * once the fleet has room for its MaxConcurrency, with MaxErrors set to what is left of
 * the budget. Commands go out in order, one at a time.
 */
export function nextSend(
  commands: readonly SsmCommand[],
  statuses: ReadonlyMap<string, string>,
  wave: number,
  fleet: { maxConcurrency: string; maxErrors: string; targets: number },
): SendDecision {
  const allowed = resolveMaxErrors(fleet.maxErrors, fleet.targets);
  const failed = failedInstances(commands, statuses).length;
  if (failed > allowed) return { kind: 'stop', failed, allowed };
  const index = commands.findIndex((c) => (c.wave ?? 0) === wave && !c.commandId && !c.refused);
  if (index < 0) return { kind: 'waveSent' };
  const command = commands[index]!;
  const limit = resolveSize(fleet.maxConcurrency, fleet.targets);
  const own = Number(command.maxConcurrency ?? Math.min(limit, command.instanceIds.length));
  const running = mayBeRunning(commands, statuses);
  if (running + own > limit) {
    return { kind: 'wait', reason: `${running} instance(s) may be running; maxConcurrency ${fleet.maxConcurrency} is ${limit}` };
  }
  return { kind: 'send', index, maxConcurrency: String(own), maxErrors: String(allowed - failed) };
}

/** Whether every invocation of wave `wave` ended (or was never sent). */
export function waveEnded(commands: readonly SsmCommand[], statuses: ReadonlyMap<string, string>, wave: number): boolean {
  const mine = commands.filter((c) => (c.wave ?? 0) === wave);
  return mine.every((c) => (c.refused ? true : !!c.commandId && c.instanceIds.every((id) => ended(statuses.get(id)))));
}

export type Outcome =
  | { phase: 'Succeeded'; failedInstances: string[]; message: string }
  /** `notSent`: instances on which the command did not run (never sent, or cancelled). */
  | { phase: 'Failed'; failedInstances: string[]; notSent: string[]; message: string };

/**
 * How a rollout whose commands all ended (or were never sent) comes out: Succeeded when
 * every instance ran and the failures stay within maxErrors (naming the failed ones),
 * Failed past it or when some instances were never sent to.
 */
export function outcome(
  commands: readonly SsmCommand[],
  statuses: ReadonlyMap<string, string>,
  fleet: { maxErrors: string; targets: number },
): Outcome {
  const failed = failedInstances(commands, statuses);
  const allowed = resolveMaxErrors(fleet.maxErrors, fleet.targets);
  // Instances of a command never sent, or whose invocation did not run (SSM stopped the command at its MaxErrors, someone cancelled it).
  const notSent = commands.flatMap((c) => c.instanceIds.filter((id) => !c.commandId || DID_NOT_RUN.has(statuses.get(id) ?? NOT_SENT)));
  const list = (ids: readonly string[]) =>
    ids.length > 10 ? `${ids.slice(0, 10).join(', ')} and ${ids.length - 10} more` : ids.join(', ');
  if (failed.length <= allowed && notSent.length === 0) {
    const within = failed.length > 0 ? `; ${failed.length} failed within maxErrors ${fleet.maxErrors} (${allowed}): ${list(failed)}` : '';
    return {
      phase: 'Succeeded',
      failedInstances: failed,
      message: `ran on ${fleet.targets - failed.length} of ${fleet.targets} instance(s)${within}`,
    };
  }
  const past = failed.length > allowed ? `${failed.length} failed, past maxErrors ${fleet.maxErrors} (${allowed}): ${list(failed)}` : '';
  const unsent = notSent.length > 0 ? `${notSent.length} did not run (never sent, or cancelled)` : '';
  return {
    phase: 'Failed',
    failedInstances: failed,
    notSent,
    message: [past, unsent].filter(Boolean).join('; ') || `failed on ${list(failed)}`,
  };
}

/** The metric queries that verify a wave: the plan's metric on each of its instances. */
export function waveMetricQueries(
  verify: NonNullable<PlanRollout['verify']>,
  wave: number,
  instanceIds: readonly string[],
): MetricDataQuery[] {
  return instanceIds.map((id, i) => ({
    id: `w${wave}_${i}`,
    namespace: verify.namespace,
    metricName: verify.metricName,
    dimensions: { InstanceId: id },
    statistic: verify.statistic,
    periodSeconds: verify.periodSeconds,
  }));
}

/**
 * A wave's verification: recovered when every instance has datapoints and their mean
 * meets the comparison. An instance without datapoints has not shown it recovered.
 */
export function waveVerdict(
  verify: NonNullable<PlanRollout['verify']>,
  wave: number,
  instanceIds: readonly string[],
  results: ReadonlyMap<string, MetricDataResult>,
): { recovered: boolean; message: string } {
  const bad: string[] = [];
  instanceIds.forEach((id, i) => {
    const values = results.get(`w${wave}_${i}`)?.values ?? [];
    if (values.length === 0) {
      bad.push(`${id}: no datapoints`);
      return;
    }
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    if (!compare(mean, verify.operator as (typeof ROLLOUT_COMPARISONS)[number], verify.threshold))
      bad.push(`${id}: ${verify.metricName} averaged ${Math.round(mean * 100) / 100}`);
  });
  const wanted = `${verify.metricName} ${verify.operator} ${verify.threshold}`;
  if (bad.length === 0) return { recovered: true, message: `wave ${wave + 1}: ${wanted} on all ${instanceIds.length} instance(s)` };
  const shown = bad.slice(0, 10).join('; ') + (bad.length > 10 ? `; and ${bad.length - 10} more` : '');
  return { recovered: false, message: `wave ${wave + 1} ineffective: wanted ${wanted} on every instance; ${shown}` };
}

/** An alarm's state as CloudWatch reports it; undefined when CloudWatch does not know the alarm. */
export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA' | undefined;

/**
 * Whether the alarms let the rollout go on: any in ALARM aborts; one CloudWatch does not
 * know (deleted, misspelt, another region) aborts too unless ignorePollAlarmFailure, as
 * SSM does when it cannot read an alarm.
 */
export function alarmVerdict(
  alarms: readonly string[],
  states: ReadonlyMap<string, AlarmState>,
  ignorePollAlarmFailure: boolean,
): { abort: false } | { abort: true; message: string } {
  const firing = alarms.filter((a) => states.get(a) === 'ALARM');
  if (firing.length > 0) return { abort: true, message: `CloudWatch alarm ${firing.join(', ')} in ALARM` };
  const unknown = alarms.filter((a) => !states.has(a) || states.get(a) === undefined);
  if (unknown.length > 0 && !ignorePollAlarmFailure) {
    return { abort: true, message: `CloudWatch alarm ${unknown.join(', ')} not found (and ignorePollAlarmFailure is false)` };
  }
  return { abort: false };
}

/** AlarmConfiguration for SendCommand: SSM takes exactly one alarm per command (API_AlarmConfiguration). */
export function alarmConfiguration(rollout: PlanRollout | undefined): { alarmName: string; ignorePollAlarmFailure: boolean } | undefined {
  const first = rollout?.alarms?.[0];
  return first === undefined ? undefined : { alarmName: first, ignorePollAlarmFailure: rollout?.ignorePollAlarmFailure ?? false };
}
