// An emulator's view of SSM Run Command over time, for the test bed's gateway (gateway.ts).
// moto's GetCommandInvocation answers Success the moment a command is sent, so nothing a
// controller does about concurrency, errors or cancelling can be observed against it.
// With a simulation on for a region, the gateway runs each command sent there as SSM
// documents it:
//
//  - MaxConcurrency: at most that many of the command's invocations in progress at
//    once (a count, or a percentage of its instances, rounded down, at least 1); the
//    next starts when one ends. Each runs `runMs` (plus a small spread per instance).
//  - MaxErrors: "When the command fails one more time beyond the value of MaxErrors,
//    the systems stops sending the command to additional targets" (API_SendCommand):
//    once more than MaxErrors invocations failed, no further one starts. Those never
//    started are reported Cancelled — the API reference does not name their status;
//    this is the test bed's assumption, and the controller reads it as "did not run".
//  - Instances a test marks as failing end Failed with exit code 1; others Success.
//  - CancelCommand (API_CancelCommand; moto lacks it): invocations not started become
//    Cancelled; those in progress are Cancelling for `cancellingMs`, then Cancelled;
//    ended ones are unchanged.
//
// AlarmConfiguration is checked for shape by the contract layer (contract.ts) and
// recorded here, but SSM's own stop on an alarm is not emulated: the controller's check
// between waves is what the tests exercise.
//
// Every command's schedule is computed when it is sent (pure functions below, so they
// have unit tests), and `maxRunning` sweeps all of a region's schedules: the number of
// invocations in progress at once across every command, as the emulator ran them.

export interface SimulationSettings {
  /** How long each invocation runs. */
  runMs: number;
  /** Extra run time per instance, spread deterministically over 0..spreadMs (default runMs / 4). */
  spreadMs?: number;
  /** Instances whose invocations fail (exit code 1). */
  failing?: string[];
  /** How long a cancelled in-progress invocation stays Cancelling (default 200 ms). */
  cancellingMs?: number;
}

export interface SimulatedInvocation {
  instanceId: string;
  /** Undefined: never started (MaxErrors stopped the command first). */
  startAt?: number;
  /** When it ended; for one never started, when MaxErrors stopped the command. */
  endAt: number;
  /** The status it ends with if nothing cancels it. */
  result: 'Success' | 'Failed' | 'Cancelled';
}

export interface SimulatedCommand {
  commandId: string;
  comment: string | undefined;
  region: string;
  instanceIds: string[];
  maxConcurrency: string;
  maxErrors: string;
  alarm?: { name: string; ignorePollAlarmFailure: boolean };
  sentAt: number;
  cancelledAt?: number;
  invocations: SimulatedInvocation[];
  cancellingMs: number;
}

/** A count, or a percentage of `of` rounded down; at least `min`. */
function resolve(value: string, of: number, min: number): number {
  const n = value.endsWith('%') ? Math.floor((Number(value.slice(0, -1)) * of) / 100) : Number(value);
  return Math.max(min, Number.isFinite(n) ? n : min);
}

function spread(instanceId: string, spreadMs: number): number {
  let h = 0;
  for (const c of instanceId) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return spreadMs > 0 ? h % (spreadMs + 1) : 0;
}

/** The schedule SSM would run a command on, as SSM documents MaxConcurrency and MaxErrors. */
export function schedule(
  instanceIds: readonly string[],
  maxConcurrency: string,
  maxErrors: string,
  sentAt: number,
  settings: SimulationSettings,
): SimulatedInvocation[] {
  const slots = Math.min(resolve(maxConcurrency, instanceIds.length, 1), Math.max(1, instanceIds.length));
  const allowed = resolve(maxErrors, instanceIds.length, 0);
  const failing = new Set(settings.failing ?? []);
  const spreadMs = settings.spreadMs ?? Math.floor(settings.runMs / 4);
  const free: number[] = Array.from({ length: slots }, () => sentAt);
  const out: SimulatedInvocation[] = [];
  let stopped = false;
  for (const instanceId of instanceIds) {
    // The slot that frees first.
    let k = 0;
    for (let i = 1; i < free.length; i++) if (free[i]! < free[k]!) k = i;
    const startAt = free[k]!;
    const failedBefore = out.filter((x) => x.result === 'Failed' && x.endAt <= startAt).length;
    if (stopped || failedBefore > allowed) {
      stopped = true;
      out.push({ instanceId, endAt: startAt, result: 'Cancelled' });
      continue;
    }
    const endAt = startAt + settings.runMs + spread(instanceId, spreadMs);
    free[k] = endAt;
    out.push({ instanceId, startAt, endAt, result: failing.has(instanceId) ? 'Failed' : 'Success' });
  }
  return out;
}

/** An invocation's status at `now`, with a cancel applied. */
export function statusAt(
  cmd: Pick<SimulatedCommand, 'cancelledAt' | 'cancellingMs'>,
  inv: SimulatedInvocation,
  now: number,
): { status: string; responseCode: number } {
  const c = cmd.cancelledAt;
  if (inv.startAt === undefined) {
    // Never started: Pending until MaxErrors stopped the command, or a cancel came first.
    const until = c === undefined ? inv.endAt : Math.min(c, inv.endAt);
    return { status: now < until ? 'Pending' : 'Cancelled', responseCode: -1 };
  }
  const endedBeforeCancel = c === undefined || inv.endAt <= c;
  if (endedBeforeCancel) {
    if (now < inv.startAt) return { status: 'Pending', responseCode: -1 };
    if (now < inv.endAt) return { status: 'InProgress', responseCode: -1 };
    return { status: inv.result, responseCode: inv.result === 'Success' ? 0 : 1 };
  }
  // Cancelled before it ended.
  if (now < c) return { status: now < inv.startAt ? 'Pending' : 'InProgress', responseCode: -1 };
  if (inv.startAt >= c) return { status: 'Cancelled', responseCode: -1 };
  return { status: now < c + cmd.cancellingMs ? 'Cancelling' : 'Cancelled', responseCode: -1 };
}

/** When an invocation really ran: [start, end) with a cancel applied; undefined if it never started. */
export function runningSpan(
  cmd: Pick<SimulatedCommand, 'cancelledAt' | 'cancellingMs'>,
  inv: SimulatedInvocation,
): [number, number] | undefined {
  if (inv.startAt === undefined) return undefined;
  const c = cmd.cancelledAt;
  if (c !== undefined && inv.startAt >= c) return undefined;
  const end = c !== undefined && inv.endAt > c ? c + cmd.cancellingMs : inv.endAt;
  return [inv.startAt, end];
}

/** The most invocations in progress at once across `commands`, and when. */
export function maxRunning(commands: readonly SimulatedCommand[]): { max: number; at: number | undefined } {
  const events: Array<[number, number]> = [];
  for (const c of commands) {
    for (const inv of c.invocations) {
      const span = runningSpan(c, inv);
      if (!span) continue;
      events.push([span[0], 1], [span[1], -1]);
    }
  }
  // Ends before starts at the same instant: a slot freed and reused is not two at once.
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  let at: number | undefined;
  for (const [t, d] of events) {
    now += d;
    if (now > max) {
      max = now;
      at = t;
    }
  }
  return { max, at };
}
