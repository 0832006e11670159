import type { PlanRollout, RolloutStatus, SsmCommand } from '../api/v1alpha1/index.js';
import { plannedRolloutCommands } from './rollout.js';
import { rolloutStep, type RolloutInput } from './rollout-step.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `i-${(0x10000000 + i).toString(16)}`);
const T0 = Date.parse('2026-12-06T23:00:00Z');
const verify = {
  withinSeconds: 60,
  namespace: 'CWAgent',
  metricName: 'errors',
  statistic: 'Average',
  periodSeconds: 60,
  operator: '<',
  threshold: 1,
};

function start(plan: PlanRollout, maxConcurrency = '10', maxErrors = '0', n = 21) {
  const targets = ids(n);
  const commands = plannedRolloutCommands('remediator:u', targets, plan.waves, maxConcurrency);
  const rollout: RolloutStatus = {
    currentWave: 0,
    waves: plan.waves.map((size) => ({ size, state: 'Pending' })),
    errors: { allowed: 0, seen: 0 },
  };
  const statuses = new Map<string, string>();
  const input = (extra: Partial<RolloutInput> = {}): RolloutInput => ({
    targets: n,
    maxConcurrency,
    maxErrors,
    plan,
    commands,
    statuses,
    rollout,
    now: T0,
    ...extra,
  });
  const send = (c: SsmCommand, i: number) => {
    c.commandId = `cmd-${i}`;
    for (const id of c.instanceIds) statuses.set(id, 'InProgress');
  };
  return { targets, commands, rollout, statuses, input, send };
}

test('a canary, a pause, a verification, then the next wave; the last wave ends the request', () => {
  const s = start({ waves: [1, 10, 10], pauseSeconds: 30, verify });
  expect(rolloutStep(s.input())).toEqual({ kind: 'send', index: 0, maxConcurrency: '1', maxErrors: '0' });
  s.send(s.commands[0]!, 0);
  expect(rolloutStep(s.input())).toEqual({ kind: 'poll' });
  s.statuses.set(s.targets[0]!, 'Success');
  // The verification's within (60 s) is longer than the pause (30 s): it decides when.
  expect(rolloutStep(s.input({ waveEndedAt: T0 }))).toEqual({ kind: 'waitUntil', at: T0 + 60_000 });
  const due = s.input({ waveEndedAt: T0, now: T0 + 60_000 });
  expect(rolloutStep(due)).toMatchObject({ kind: 'verify', wave: 0, queries: [{ dimensions: { InstanceId: s.targets[0] } }] });
  expect(rolloutStep({ ...due, verification: { wave: 0, recovered: true, message: 'ok' } })).toEqual({ kind: 'startWave', wave: 1 });
  s.rollout.currentWave = 1;
  expect(rolloutStep(s.input())).toMatchObject({ kind: 'send', index: 1 });
  s.send(s.commands[1]!, 1);
  for (const id of s.commands[1]!.instanceIds) s.statuses.set(id, 'Success');
  s.rollout.currentWave = 2;
  expect(rolloutStep(s.input())).toMatchObject({ kind: 'send', index: 2 });
  s.send(s.commands[2]!, 2);
  for (const id of s.commands[2]!.instanceIds) s.statuses.set(id, 'Success');
  expect(rolloutStep(s.input())).toMatchObject({ kind: 'end', phase: 'Succeeded' });
});

test('an ineffective first wave stops the rollout; the other waves are never sent and the request fails naming them', () => {
  const s = start({ waves: [1, 10, 10], verify });
  s.send(s.commands[0]!, 0);
  s.statuses.set(s.targets[0]!, 'Success');
  const after = s.input({
    waveEndedAt: T0,
    now: T0 + 60_000,
    verification: { wave: 0, recovered: false, message: 'wave 1 ineffective: i-x' },
  });
  expect(rolloutStep(after)).toEqual({ kind: 'stop', reason: 'Ineffective', message: 'wave 1 ineffective: i-x', cancel: false });
  s.rollout.stopped = { reason: 'Ineffective', message: 'wave 1 ineffective: i-x', at: 'now' };
  const end = rolloutStep(s.input());
  expect(end).toMatchObject({ kind: 'end', phase: 'Failed', reason: 'Ineffective' });
  expect(end.kind === 'end' && end.outcome.phase === 'Failed' && end.outcome.notSent).toHaveLength(20);
});

test('an alarm in ALARM stops the rollout and cancels what runs; once cancelled, it ends Failed', () => {
  const s = start({ waves: [1, 20], alarms: ['fleet-5xx'] });
  // Each command goes out only after the alarms were read.
  expect(rolloutStep(s.input())).toEqual({ kind: 'readAlarms', alarms: ['fleet-5xx'] });
  expect(rolloutStep(s.input({ alarms: new Map([['fleet-5xx', 'OK']]) }))).toMatchObject({ kind: 'send', index: 0 });
  s.send(s.commands[0]!, 0);
  const stop = rolloutStep(s.input({ alarms: new Map([['fleet-5xx', 'ALARM']]) }));
  expect(stop).toMatchObject({ kind: 'stop', reason: 'AlarmTriggered', cancel: true });
  s.rollout.stopped = { reason: 'AlarmTriggered', message: 'alarm', at: 'now', cancel: true };
  expect(rolloutStep(s.input())).toEqual({ kind: 'cancel', commandIds: ['cmd-0'] });
  s.commands[0]!.cancelledAt = 'now';
  expect(rolloutStep(s.input())).toEqual({ kind: 'poll' });
  s.statuses.set(s.targets[0]!, 'Cancelled');
  expect(rolloutStep(s.input())).toMatchObject({ kind: 'end', phase: 'Failed', reason: 'AlarmTriggered' });
});

test('deleting the request mid-run cancels and ends Cancelled with what ran and what did not', () => {
  const s = start({ waves: [1, 20] }, '20');
  s.send(s.commands[0]!, 0);
  s.statuses.set(s.targets[0]!, 'Success');
  s.rollout.currentWave = 1;
  s.send(s.commands[1]!, 1);
  const deleted = rolloutStep(s.input({ stopRequested: { reason: 'RequestDeleted', message: 'the request was deleted' } }));
  expect(deleted).toMatchObject({ kind: 'stop', reason: 'RequestDeleted', cancel: true });
  s.rollout.stopped = { reason: 'RequestDeleted', message: 'the request was deleted', at: 'now', cancel: true };
  // Only the command still running is cancelled.
  expect(rolloutStep(s.input())).toEqual({ kind: 'cancel', commandIds: ['cmd-1'] });
  s.commands[1]!.cancelledAt = 'now';
  for (const id of s.commands[1]!.instanceIds.slice(0, 5)) s.statuses.set(id, 'Success');
  for (const id of s.commands[1]!.instanceIds.slice(5)) s.statuses.set(id, 'Cancelled');
  const end = rolloutStep(s.input());
  expect(end).toMatchObject({ kind: 'end', phase: 'Cancelled', reason: 'RequestDeleted' });
  expect(end.kind === 'end' && end.outcome.phase === 'Failed' && end.outcome.notSent).toHaveLength(15);
});

test('maxErrors past the budget stops sending; what runs finishes; the request fails', () => {
  const s = start({ waves: [1, 20] }, '20', '0');
  s.send(s.commands[0]!, 0);
  s.statuses.set(s.targets[0]!, 'Failed');
  expect(rolloutStep(s.input({ waveEndedAt: T0 }))).toMatchObject({ kind: 'stop', reason: 'MaxErrorsExceeded', cancel: false });
});

test('after a restart mid-wave the same status gives the same next step: the unsent command, never a sent one again', () => {
  const s = start({ waves: [1, 120] }, '10', '5', 121);
  s.send(s.commands[0]!, 0);
  s.statuses.set(s.targets[0]!, 'Success');
  s.rollout.currentWave = 1;
  // Wave 2 is three commands (50, 50, 20); the first is sent and has finished.
  s.send(s.commands[1]!, 1);
  for (const id of s.commands[1]!.instanceIds) s.statuses.set(id, 'Success');
  const a = rolloutStep(s.input());
  const b = rolloutStep(structuredClone(s.input()));
  expect(a).toEqual({ kind: 'send', index: 2, maxConcurrency: '10', maxErrors: '5' });
  expect(b).toEqual(a);
});
