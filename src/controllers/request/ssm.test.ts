import { plannedCommands, tailBudget } from './ssm.js';

const UID = '0b9f3c2e-8d1a-4c7e-9f00-123456789abc';
const ids = (n: number) => Array.from({ length: n }, (_, i) => `i-${i.toString(16).padStart(17, '0')}`);

describe('plannedCommands', () => {
  test('up to 50 targets are one command with the comment requests always had', () => {
    expect(plannedCommands(UID, ids(50))).toEqual([{ comment: `remediator:${UID}`, instanceIds: ids(50) }]);
  });

  test('more go out as commands of at most 50, in order, each with its own comment within 100 characters', () => {
    const targets = ids(120);
    const commands = plannedCommands(UID, targets);
    expect(commands.map((c) => c.instanceIds.length)).toEqual([50, 50, 20]);
    expect(commands.map((c) => c.comment)).toEqual([0, 1, 2].map((i) => `remediator:${UID}/${i}`));
    expect(commands.flatMap((c) => c.instanceIds)).toEqual(targets);
    expect(Math.max(...plannedCommands(UID, ids(500)).map((c) => c.comment.length))).toBeLessThanOrEqual(100);
    expect(plannedCommands(UID, ids(500))).toHaveLength(10);
  });
});

describe('tailBudget', () => {
  test('keeps the full 2 KB tails for ordinary requests and shrinks them for the largest fleets', () => {
    expect(tailBudget(1)).toBe(2048);
    expect(tailBudget(120)).toBe(2048);
    expect(tailBudget(500)).toBe(960);
    // stdout and stderr of 500 instances stay far below etcd's 1.5 MiB object limit.
    expect(2 * 500 * tailBudget(500)).toBeLessThan(1_000_000);
  });
});
