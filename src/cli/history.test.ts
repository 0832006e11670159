import { historyRequested, runHistory } from './history.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), now: () => 0 }, out, err };
}

describe('kubectl remediator history (flags)', () => {
  test('is recognised wherever kubectl users put the namespace', () => {
    expect(historyRequested(['history'])).toBe(true);
    expect(historyRequested(['-n', 'team', 'history', '--verify'])).toBe(true);
    expect(historyRequested(['--namespace', 'history', 'list'])).toBe(false);
    expect(historyRequested(['list', 'history'])).toBe(false);
    expect(historyRequested(['--verify'])).toBe(false);
  });

  test('says where to name the sink, and refuses what does not apply', async () => {
    const a = io();
    expect(await runHistory(['history', '-n', 'x'], a.io, {})).toBe(2);
    expect(a.err.join('\n')).toMatch(/--log-group GROUP or --bucket BUCKET.*controller\.audit/);
    const b = io();
    expect(await runHistory(['history', '--log-group', 'g', '--bucket', 'b'], b.io, {})).toBe(2);
    expect(b.err.join('\n')).toMatch(/not both/);
    const c = io();
    expect(await runHistory(['history', 'extra', '--log-group', 'g'], c.io, {})).toBe(2);
    const d = io();
    expect(await runHistory(['history', '-o', 'yaml', '--log-group', 'g'], d.io, {})).toBe(2);
    const e = io();
    expect(await runHistory(['history', '--help'], e.io, {})).toBe(0);
    expect(e.out.join('\n')).toMatch(/your own AWS credentials/);
  });
});
