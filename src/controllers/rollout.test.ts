import fc from 'fast-check';
import type { SsmAction, SsmCommand } from '../api/v1alpha1/index.js';
import {
  alarmConfiguration,
  alarmVerdict,
  effectiveRollout,
  failedInstances,
  mayBeRunning,
  mergeWaveSizes,
  nextSend,
  outcome,
  plannedRolloutCommands,
  resolveMaxErrors,
  resolveSize,
  ROLLOUT_EXECUTION,
  RolloutError,
  rolloutProblems,
  waveEnded,
  waveMetricQueries,
  waveSizes,
  waveVerdict,
} from './rollout.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `i-${(0x10000000 + i).toString(16)}`);
const ssm = (extra: Partial<SsmAction> = {}): SsmAction => ({ parameters: [{ name: 'commands', values: ['true'] }], ...extra });

describe('sizes', () => {
  test('counts and percentages of the targets, rounded down, at least 1, at most the targets', () => {
    expect(resolveSize('10', 120)).toBe(10);
    expect(resolveSize('10%', 120)).toBe(12);
    expect(resolveSize('5%', 10)).toBe(1);
    expect(resolveSize('200', 120)).toBe(120);
    expect(resolveSize('100%', 7)).toBe(7);
  });
  test('maxErrors: a percentage rounds down and may be 0 (AWS: 10% of 50 stops at the sixth error)', () => {
    expect(resolveMaxErrors('10%', 50)).toBe(5);
    expect(resolveMaxErrors('0', 50)).toBe(0);
    expect(resolveMaxErrors('9%', 10)).toBe(0);
    expect(resolveMaxErrors('2', 120)).toBe(2);
  });
  test('waves: the last size repeats, the last wave is what is left', () => {
    expect(waveSizes(['1', '25%'], 120)).toEqual([1, 30, 30, 30, 29]);
    expect(waveSizes(undefined, 120)).toEqual([120]);
    expect(waveSizes(['5%', '50%'], 10)).toEqual([1, 5, 4]);
    expect(waveSizes(['1'], 0)).toEqual([]);
  });
  test('merge: each wave the smaller of the two at the same position', () => {
    expect(mergeWaveSizes(['1', '25%'], ['10%'], 120)).toEqual([1, 12, 12, 12, 12, 12, 12, 12, 12, 12, 11]);
    expect(mergeWaveSizes(undefined, ['50%'], 10)).toEqual([5, 5]);
    expect(mergeWaveSizes(['2'], undefined, 5)).toEqual([2, 2, 1]);
  });
  test('property: waves add up to the targets, each at least 1, and a policy never makes any wave larger', () => {
    const size = fc.oneof(
      fc.integer({ min: 1, max: 600 }).map(String),
      fc.integer({ min: 1, max: 100 }).map((p) => `${p}%`),
    );
    fc.assert(
      fc.property(
        fc.array(size, { minLength: 1, maxLength: 10 }),
        fc.option(fc.array(size, { minLength: 1, maxLength: 10 }), { nil: undefined }),
        fc.integer({ min: 1, max: 500 }),
        (runbook, policy, total) => {
          const merged = mergeWaveSizes(runbook, policy, total);
          const alone = waveSizes(runbook, total);
          expect(merged.reduce((a, b) => a + b, 0)).toBe(total);
          expect(merged.every((w) => w >= 1)).toBe(true);
          // Cumulatively, the merged rollout never has sent more than the runbook's by the same wave.
          let a = 0;
          let b = 0;
          for (let i = 0; i < merged.length; i++) {
            a += merged[i]!;
            b += alone[Math.min(i, alone.length - 1)] ?? 0;
            if (i < alone.length) expect(a).toBeLessThanOrEqual(Math.min(total, b));
          }
        },
      ),
    );
  });
});

describe('effectiveRollout (the merge rule)', () => {
  test("today's runbook gives today's plan: no rollout, the runbook's strings (approved digests unchanged)", () => {
    expect(effectiveRollout(ssm(), undefined, 120)).toEqual({ maxConcurrency: '50', maxErrors: '0' });
    expect(effectiveRollout(ssm({ maxConcurrency: '10%', maxErrors: '1' }), undefined, 120)).toEqual({
      maxConcurrency: '10%',
      maxErrors: '1',
    });
  });
  test('a policy may lower maxConcurrency and maxErrors, never raise them', () => {
    const rb = ssm({ maxConcurrency: '10%', maxErrors: '5' });
    expect(effectiveRollout(rb, { maxConcurrency: '5', maxErrors: '2' }, 120)).toMatchObject({ maxConcurrency: '5', maxErrors: '2' });
    expect(effectiveRollout(rb, { maxConcurrency: '50', maxErrors: '50%' }, 120)).toMatchObject({
      maxConcurrency: '10%',
      maxErrors: '5',
    });
    // Compared once resolved: 10% of 120 is 12, fewer than 20.
    expect(effectiveRollout(rb, { maxConcurrency: '20' }, 120).maxConcurrency).toBe('10%');
  });
  test('waves, the longer pause, the runbook verification and alarms', () => {
    const rb = ssm({
      rollout: {
        waves: [{ size: '1' }, { size: '25%' }],
        pauseBetweenWaves: '30s',
        verify: { within: '2m', metric: { namespace: 'CWAgent', metricName: 'errors', operator: '<', threshold: 1 } },
        alarms: ['fleet-5xx', 'fleet-latency'],
      },
    });
    const e = effectiveRollout(rb, { waves: [{ size: '10%' }], pauseBetweenWaves: '1m' }, 120);
    expect(e.rollout).toEqual({
      waves: [1, 12, 12, 12, 12, 12, 12, 12, 12, 12, 11],
      pauseSeconds: 60,
      verify: {
        withinSeconds: 120,
        namespace: 'CWAgent',
        metricName: 'errors',
        statistic: 'Average',
        periodSeconds: 60,
        operator: '<',
        threshold: 1,
      },
      alarms: ['fleet-5xx', 'fleet-latency'],
      ignorePollAlarmFailure: false,
    });
    // A pause or a verification with a single wave is no rollout: the plan stays as it was.
    expect(effectiveRollout(ssm({ rollout: { pauseBetweenWaves: '1m' } }), { pauseBetweenWaves: '5m' }, 120).rollout).toBeUndefined();
    expect(effectiveRollout(ssm({ rollout: { alarms: ['a'] } }), undefined, 120).rollout).toEqual({
      waves: [120],
      alarms: ['a'],
      ignorePollAlarmFailure: false,
    });
    // A shorter pause from the policy changes nothing.
    expect(effectiveRollout(rb, { pauseBetweenWaves: '1s' }, 120).rollout?.pauseSeconds).toBe(30);
  });
  test('a rollout too long for one request is refused before anything is sent, saying what to change', () => {
    expect(() => effectiveRollout(ssm({ rollout: { waves: [{ size: '1' }] } }), undefined, 500)).toThrow(RolloutError);
    expect(() => effectiveRollout(ssm({ rollout: { waves: [{ size: '1' }] } }), undefined, 500)).toThrow(/500 waves .* at most 100/);
  });
});

describe('plannedRolloutCommands', () => {
  test('waves into commands of at most 50, each with its share of the fleet concurrency', () => {
    const c = plannedRolloutCommands('remediator:u', ids(120), [1, 30, 89], '10');
    expect(c.map((x) => [x.wave, x.instanceIds.length, x.maxConcurrency])).toEqual([
      [0, 1, '1'],
      [1, 30, '10'],
      [2, 50, '10'],
      [2, 39, '10'],
    ]);
    expect(c.map((x) => x.comment)).toEqual(['remediator:u/0', 'remediator:u/1', 'remediator:u/2', 'remediator:u/3']);
    expect(c.flatMap((x) => x.instanceIds)).toEqual(ids(120));
  });
  test('one command keeps the comment requests always had', () => {
    expect(plannedRolloutCommands('remediator:u', ids(3), [3], '50')).toEqual([
      { comment: 'remediator:u', instanceIds: ids(3), wave: 0, maxConcurrency: '3' },
    ]);
  });
});

/** A command as SSM runs it: at most `maxConcurrency` invocations in progress; MaxErrors stops delivery. */
interface Simulated {
  command: SsmCommand;
  running: Set<string>;
  pending: string[];
  maxErrors: number;
  errors: number;
}

describe('fleet-wide rate control (simulated SSM, any order of completion)', () => {
  test('property: instances running at once never exceed maxConcurrency, whatever the order invocations end in', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 160 }),
        fc.integer({ min: 1, max: 60 }),
        fc.array(fc.nat(), { minLength: 50, maxLength: 400 }),
        fc.integer({ min: 0, max: 4 }),
        (total, limit, choices, lag) => {
          const targets = ids(total);
          const commands = plannedRolloutCommands('c', targets, [total], String(limit));
          const truth = new Map<string, string>();
          const seen = new Map<string, string>(); // the controller's view: updated only at polls
          const sims: Simulated[] = [];
          let step = 0;
          let maxRunning = 0;
          const start = () => {
            for (const s of sims) {
              while (s.running.size < Number(s.command.maxConcurrency) && s.pending.length > 0 && s.errors <= s.maxErrors) {
                const id = s.pending.shift()!;
                s.running.add(id);
                truth.set(id, 'InProgress');
              }
            }
            maxRunning = Math.max(
              maxRunning,
              sims.reduce((n, s) => n + s.running.size, 0),
            );
          };
          for (const choice of choices) {
            step++;
            if (step % (lag + 1) === 0) for (const [k, v] of truth) seen.set(k, v);
            const d = nextSend(commands, seen, 0, { maxConcurrency: String(limit), maxErrors: '100%', targets: total });
            if (d.kind === 'send') {
              const c = commands[d.index]!;
              c.commandId = `cmd-${d.index}`;
              for (const id of c.instanceIds) truth.set(id, 'Pending');
              sims.push({ command: c, running: new Set(), pending: [...c.instanceIds], maxErrors: Number(d.maxErrors), errors: 0 });
              start();
              continue;
            }
            const running = sims.flatMap((s) => [...s.running].map((id) => [s, id] as const));
            if (running.length === 0) continue;
            const [s, id] = running[choice % running.length]!;
            s.running.delete(id);
            truth.set(id, choice % 7 === 0 ? 'Failed' : 'Success');
            start();
          }
          expect(maxRunning).toBeLessThanOrEqual(limit);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('120 instances, maxConcurrency 10: the next command waits until the first has room', () => {
    const commands = plannedRolloutCommands('c', ids(120), [120], '10');
    const fleet = { maxConcurrency: '10', maxErrors: '0', targets: 120 };
    const s = new Map<string, string>();
    expect(nextSend(commands, s, 0, fleet)).toEqual({ kind: 'send', index: 0, maxConcurrency: '10', maxErrors: '0' });
    commands[0]!.commandId = 'a';
    expect(nextSend(commands, s, 0, fleet).kind).toBe('wait');
    // 45 of the first 50 ended: 5 may still run, and the next command may run 10.
    for (const id of commands[0]!.instanceIds.slice(0, 45)) s.set(id, 'Success');
    expect(mayBeRunning(commands, s)).toBe(5);
    expect(nextSend(commands, s, 0, fleet).kind).toBe('wait');
    for (const id of commands[0]!.instanceIds) s.set(id, 'Success');
    expect(nextSend(commands, s, 0, fleet)).toMatchObject({ kind: 'send', index: 1 });
  });

  test('maxErrors counts over the fleet: each command gets what is left, and past it nothing more is sent', () => {
    const commands = plannedRolloutCommands('c', ids(120), [120], '50');
    const fleet = { maxConcurrency: '50', maxErrors: '2', targets: 120 };
    const s = new Map<string, string>();
    commands[0]!.commandId = 'a';
    const first = commands[0]!.instanceIds;
    first.forEach((id, i) => s.set(id, i < 2 ? 'Failed' : 'Success'));
    expect(nextSend(commands, s, 0, fleet)).toEqual({ kind: 'send', index: 1, maxConcurrency: '50', maxErrors: '0' });
    commands[1]!.commandId = 'b';
    s.set(commands[1]!.instanceIds[0]!, 'TimedOut');
    expect(nextSend(commands, s, 0, fleet)).toEqual({ kind: 'stop', failed: 3, allowed: 2 });
  });
});

describe('outcome', () => {
  const commands = (): SsmCommand[] => {
    const c = plannedRolloutCommands('c', ids(6), [6], '6');
    c[0]!.commandId = 'a';
    return c;
  };
  test('within the budget: Succeeded, naming the failed instances', () => {
    const s = new Map(ids(6).map((id, i) => [id, i === 4 ? 'Failed' : 'Success']));
    const o = outcome(commands(), s, { maxErrors: '1', targets: 6 });
    expect(o).toMatchObject({ phase: 'Succeeded', failedInstances: [ids(6)[4]] });
    expect(o.message).toMatch(/1 failed within maxErrors 1/);
  });
  test('past it: Failed', () => {
    const s = new Map(ids(6).map((id, i) => [id, i < 2 ? 'Failed' : 'Success']));
    expect(outcome(commands(), s, { maxErrors: '1', targets: 6 }).phase).toBe('Failed');
  });
  test('instances that did not run (never sent, or stopped by SSM) fail the request but are not counted as errors', () => {
    const s = new Map(ids(6).map((id, i) => [id, i === 0 ? 'Failed' : i < 3 ? 'Success' : 'Cancelled']));
    const c = commands();
    expect(failedInstances(c, s)).toEqual([ids(6)[0]]);
    const o = outcome(c, s, { maxErrors: '1', targets: 6 });
    expect(o).toMatchObject({ phase: 'Failed', notSent: ids(6).slice(3) });
  });
  test('waveEnded: every command sent and every invocation ended', () => {
    const c = plannedRolloutCommands('c', ids(4), [1, 3], '4');
    const s = new Map<string, string>();
    expect(waveEnded(c, s, 0)).toBe(false);
    c[0]!.commandId = 'a';
    s.set(ids(4)[0]!, 'InProgress');
    expect(waveEnded(c, s, 0)).toBe(false);
    s.set(ids(4)[0]!, 'Success');
    expect(waveEnded(c, s, 0)).toBe(true);
    expect(waveEnded(c, s, 1)).toBe(false);
  });
});

describe('verification between waves and alarms', () => {
  const verify = {
    withinSeconds: 60,
    namespace: 'CWAgent',
    metricName: 'errors',
    statistic: 'Average',
    periodSeconds: 60,
    operator: '<',
    threshold: 1,
  };
  test('one query per instance of the wave, by InstanceId', () => {
    expect(waveMetricQueries(verify, 2, ['i-1', 'i-2'])).toEqual([
      {
        id: 'w2_0',
        namespace: 'CWAgent',
        metricName: 'errors',
        dimensions: { InstanceId: 'i-1' },
        statistic: 'Average',
        periodSeconds: 60,
      },
      {
        id: 'w2_1',
        namespace: 'CWAgent',
        metricName: 'errors',
        dimensions: { InstanceId: 'i-2' },
        statistic: 'Average',
        periodSeconds: 60,
      },
    ]);
  });
  test('recovered only when every instance has datapoints that meet the comparison', () => {
    const ok = new Map([
      ['w0_0', { values: [0, 0.5], timestamps: [] }],
      ['w0_1', { values: [0], timestamps: [] }],
    ]);
    expect(waveVerdict(verify, 0, ['i-1', 'i-2'], ok).recovered).toBe(true);
    const noData = new Map([['w0_0', { values: [0], timestamps: [] }]]);
    expect(waveVerdict(verify, 0, ['i-1', 'i-2'], noData)).toMatchObject({ recovered: false });
    expect(waveVerdict(verify, 0, ['i-1', 'i-2'], noData).message).toMatch(/i-2: no datapoints/);
    const worse = new Map([
      ['w0_0', { values: [3, 5], timestamps: [] }],
      ['w0_1', { values: [0], timestamps: [] }],
    ]);
    expect(waveVerdict(verify, 0, ['i-1', 'i-2'], worse).message).toMatch(/wave 1 ineffective.*i-1: errors averaged 4/);
  });
  test('an alarm in ALARM aborts; an unknown one aborts unless ignorePollAlarmFailure', () => {
    expect(
      alarmVerdict(
        ['a', 'b'],
        new Map([
          ['a', 'OK'],
          ['b', 'INSUFFICIENT_DATA'],
        ]),
        false,
      ),
    ).toEqual({ abort: false });
    expect(
      alarmVerdict(
        ['a', 'b'],
        new Map([
          ['a', 'OK'],
          ['b', 'ALARM'],
        ]),
        true,
      ),
    ).toMatchObject({ abort: true, message: expect.stringMatching(/b in ALARM/) });
    expect(alarmVerdict(['a'], new Map(), false)).toMatchObject({ abort: true });
    expect(alarmVerdict(['a'], new Map(), true)).toEqual({ abort: false });
  });
  test('SendCommand gets exactly one alarm: the first', () => {
    expect(alarmConfiguration({ waves: [1], alarms: ['x', 'y'], ignorePollAlarmFailure: true })).toEqual({
      alarmName: 'x',
      ignorePollAlarmFailure: true,
    });
    expect(alarmConfiguration({ waves: [1] })).toBeUndefined();
  });
});

describe('rolloutProblems (the runbook Ready condition)', () => {
  test('a rollout the controller cannot execute yet, or cannot hold at maxTargets, is named when the runbook is written', () => {
    expect(rolloutProblems(ssm(), 500)).toEqual([]);
    const waves = rolloutProblems(ssm({ rollout: { waves: [{ size: '1' }] } }), 500);
    if (!ROLLOUT_EXECUTION) expect(waves).toContainEqual(expect.stringMatching(/cannot execute rollouts yet/));
    expect(waves).toContainEqual(expect.stringMatching(/at scope.maxTargets 500: .*500 waves/));
    expect(rolloutProblems(ssm({ rollout: { waves: [{ size: '1' }] } }), 10).some((p) => p.includes('maxTargets'))).toBe(false);
  });
});
