// The emulator's model of SSM over time (ssm-simulation.ts), without a network: the
// schedule honours MaxConcurrency and MaxErrors as SSM documents them, a cancel leaves
// ended invocations alone, and maxRunning counts across commands.

import { maxRunning, schedule, statusAt, type SimulatedCommand } from './ssm-simulation.js';

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `i-${(from + i).toString(16).padStart(17, '0')}`);
const cmd = (instanceIds: string[], mc: string, me: string, at: number, failing: string[] = []): SimulatedCommand => ({
  commandId: `c${at}`,
  comment: undefined,
  region: 'r',
  instanceIds,
  maxConcurrency: mc,
  maxErrors: me,
  sentAt: at,
  invocations: schedule(instanceIds, mc, me, at, { runMs: 100, spreadMs: 0, failing }),
  cancellingMs: 10,
});

test('MaxConcurrency: at most that many in progress at once within a command; the next starts when one ends', () => {
  const c = cmd(ids(50), '10', '50', 0);
  expect(maxRunning([c]).max).toBe(10);
  expect(c.invocations.map((i) => i.startAt)).toEqual(Array.from({ length: 50 }, (_, i) => Math.floor(i / 10) * 100));
  // A percentage of the command's instances, rounded down, at least 1.
  expect(maxRunning([cmd(ids(50), '10%', '50', 0)]).max).toBe(5);
  expect(maxRunning([cmd(ids(5), '10%', '50', 0)]).max).toBe(1);
});

test('maxRunning counts across commands: two commands of 10 at once are 20', () => {
  expect(maxRunning([cmd(ids(50), '10', '50', 0), cmd(ids(50, 100), '10', '50', 50)]).max).toBe(20);
  // One after the other (the second sent when the first ended) never overlap.
  expect(maxRunning([cmd(ids(10), '10', '0', 0), cmd(ids(10, 100), '10', '0', 100)]).max).toBe(10);
});

test('MaxErrors 2: the third failure stops the command; what had not started is Cancelled', () => {
  const failing = ids(4);
  const c = cmd(ids(10), '1', '2', 0, failing);
  const at = (i: number, t: number) => statusAt(c, c.invocations[i]!, t).status;
  expect(c.invocations.slice(0, 3).map((i) => i.result)).toEqual(['Failed', 'Failed', 'Failed']);
  expect(c.invocations.slice(3).every((i) => i.startAt === undefined && i.result === 'Cancelled')).toBe(true);
  expect(at(3, 250)).toBe('Pending');
  expect(at(3, 400)).toBe('Cancelled');
});

test('CancelCommand: pending become Cancelled, running Cancelling then Cancelled, ended unchanged', () => {
  const c = cmd(ids(3), '1', '0', 0);
  c.cancelledAt = 150; // the first ended at 100, the second runs 100..200, the third would start at 200
  expect(statusAt(c, c.invocations[0]!, 1000).status).toBe('Success');
  expect(statusAt(c, c.invocations[1]!, 155).status).toBe('Cancelling');
  expect(statusAt(c, c.invocations[1]!, 1000).status).toBe('Cancelled');
  expect(statusAt(c, c.invocations[2]!, 1000).status).toBe('Cancelled');
  expect(statusAt(c, c.invocations[2]!, 140).status).toBe('Pending');
});
