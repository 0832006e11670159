import { BatchingMetricsReader } from './cloudwatch-batching.js';
import type { MetricDataQuery, MetricDataResult, MetricsReader } from './types.js';

class CountingReader implements MetricsReader {
  calls: Array<{ queries: MetricDataQuery[]; start: Date; end: Date }> = [];
  async getMetricData(queries: readonly MetricDataQuery[], start: Date, end: Date): Promise<Map<string, MetricDataResult>> {
    this.calls.push({ queries: [...queries], start, end });
    // The value says which instance was asked, so a mix-up of ids shows.
    return new Map(
      queries.map((q) => [q.id, { values: [Number(q.dimensions['InstanceId']?.slice(2))], timestamps: ['2025-03-01T10:00:00.000Z'] }]),
    );
  }
}

const cpu = (id: string, instance: string): MetricDataQuery => ({
  id,
  namespace: 'AWS/EC2',
  metricName: 'CPUUtilization',
  dimensions: { InstanceId: instance },
  statistic: 'Average',
  periodSeconds: 60,
});
const window = (end: number, lookbackMs = 600_000) => [new Date(end - lookbackMs), new Date(end)] as const;

describe('BatchingMetricsReader', () => {
  test('concurrent requests share one GetMetricData call, identical queries are asked once, and each caller gets its own ids', async () => {
    const inner = new CountingReader();
    const r = new BatchingMetricsReader(inner, 10, 5_000);
    const [a, b] = await Promise.all([
      r.getMetricData([cpu('cpu0', 'i-1'), cpu('cpu1', 'i-2')], ...window(1_000_000)),
      r.getMetricData([cpu('cpu0', 'i-2'), cpu('cpu1', 'i-3')], ...window(1_000_005)),
    ]);
    expect(inner.calls).toHaveLength(1);
    expect(inner.calls[0]!.queries).toHaveLength(3);
    // The call covers the latest caller's window.
    expect(inner.calls[0]!.end.getTime()).toBe(1_000_005);
    expect(inner.calls[0]!.end.getTime() - inner.calls[0]!.start.getTime()).toBe(600_000);
    expect([...a.entries()].map(([id, v]) => [id, v.values[0]])).toEqual([
      ['cpu0', 1],
      ['cpu1', 2],
    ]);
    expect([...b.entries()].map(([id, v]) => [id, v.values[0]])).toEqual([
      ['cpu0', 2],
      ['cpu1', 3],
    ]);
  });

  test('different lookbacks are different calls', async () => {
    const inner = new CountingReader();
    const r = new BatchingMetricsReader(inner, 10, 5_000);
    await Promise.all([
      r.getMetricData([cpu('cpu', 'i-1')], ...window(1_000_000)),
      r.getMetricData([cpu('cpu', 'i-1')], ...window(1_000_000, 300_000)),
    ]);
    expect(inner.calls).toHaveLength(2);
  });

  test('answers are kept briefly, then asked again', async () => {
    const inner = new CountingReader();
    let now = 1_000;
    const r = new BatchingMetricsReader(inner, 1, 5_000, { now: () => now });
    await r.getMetricData([cpu('cpu', 'i-1')], ...window(now));
    expect((await r.getMetricData([cpu('other', 'i-1')], ...window(now))).get('other')?.values).toEqual([1]);
    expect(inner.calls).toHaveLength(1);
    now += 6_000;
    await r.getMetricData([cpu('cpu', 'i-1')], ...window(now));
    expect(inner.calls).toHaveLength(2);
  });

  test('refresh-ahead: a call also asks again the questions in use past half their TTL, for the same lookback', async () => {
    const inner = new CountingReader();
    let now = 1_000;
    const r = new BatchingMetricsReader(inner, 1, 5_000, { now: () => now });
    await r.getMetricData([cpu('cpu', 'i-1')], ...window(now));
    await r.getMetricData([cpu('cpu', 'i-9')], ...window(now, 300_000));
    now += 3_000;
    await r.getMetricData([cpu('cpu', 'i-1')], ...window(now)); // in use, cached
    await r.getMetricData([cpu('cpu', 'i-2')], ...window(now)); // new: i-1 rides along, i-9 (another lookback) does not
    expect(inner.calls[2]!.queries.map((q) => q.dimensions['InstanceId']).sort()).toEqual(['i-1', 'i-2']);
    now += 3_000;
    expect((await r.getMetricData([cpu('a', 'i-1'), cpu('b', 'i-2')], ...window(now))).get('a')?.values).toEqual([1]);
    expect(inner.calls).toHaveLength(3);
  });

  test('refresh-ahead: a storm asking about each instance once asks each question once, however many calls go out', async () => {
    const inner = new CountingReader();
    let now = 1_000;
    const r = new BatchingMetricsReader(inner, 0, 5_000, { now: () => now });
    const ids = Array.from({ length: 40 }, (_, i) => `i-${i + 1}`);
    for (const id of ids) {
      expect((await r.getMetricData([cpu('cpu', id)], ...window(now))).get('cpu')?.values).toEqual([Number(id.slice(2))]);
      now += 200; // 40 alerts over 8 s: every call goes out while the earlier answers are past half the TTL
    }
    // Two requests waiting for the same call are its first readers, not repeat interest.
    await Promise.all([r.getMetricData([cpu('a', 'i-99')], ...window(now)), r.getMetricData([cpu('b', 'i-99')], ...window(now))]);
    now += 3_000;
    await r.getMetricData([cpu('cpu', 'i-100')], ...window(now));
    expect(inner.calls).toHaveLength(42);
    expect(inner.calls.flatMap((c) => c.queries.map((q) => q.dimensions['InstanceId'])).sort()).toEqual([...ids, 'i-99', 'i-100'].sort());
  });

  test('refresh-ahead: a question asked again (a hit after the call that answered it) is refreshed ahead', async () => {
    const inner = new CountingReader();
    let now = 1_000;
    const r = new BatchingMetricsReader(inner, 0, 5_000, { now: () => now });
    await r.getMetricData([cpu('cpu', 'i-1')], ...window(now));
    await r.getMetricData([cpu('cpu', 'i-2')], ...window(now));
    now += 1_000;
    await r.getMetricData([cpu('cpu', 'i-1')], ...window(now)); // a hit: asked again
    now += 2_000;
    await r.getMetricData([cpu('cpu', 'i-3')], ...window(now)); // i-1 rides along; i-2, read once, does not
    expect(inner.calls.map((c) => c.queries.map((q) => q.dimensions['InstanceId']).sort())).toEqual([['i-1'], ['i-2'], ['i-1', 'i-3']]);
  });

  test('freshness by default: an answer is kept half its period (5 s at least, 30 s at most), never longer', async () => {
    const inner = new CountingReader();
    let now = 1_000;
    const r = new BatchingMetricsReader(inner, 0, undefined, { now: () => now });
    const fine = { ...cpu('fine', 'i-1'), periodSeconds: 1 };
    const coarse = { ...cpu('coarse', 'i-2'), periodSeconds: 300 };
    await r.getMetricData([cpu('cpu', 'i-3'), fine, coarse], ...window(now));
    expect(inner.calls).toHaveLength(1);
    now += 5_000; // 5 s: the one-second metric is at its floor, still kept
    await r.getMetricData([fine], ...window(now));
    expect(inner.calls).toHaveLength(1);
    now += 1; // past 5 s: asked again
    await r.getMetricData([fine], ...window(now));
    expect(inner.calls).toHaveLength(2);
    now = 1_000 + 30_000; // the one-minute metric (half: 30 s) and the five-minute one (capped at 30 s) are still kept
    await r.getMetricData([cpu('cpu', 'i-3'), coarse], ...window(now));
    expect(inner.calls).toHaveLength(2);
    now += 1;
    await r.getMetricData([cpu('cpu', 'i-3'), coarse], ...window(now));
    expect(inner.calls).toHaveLength(3);
  });

  test('asking ahead for the fleet: the first call of a burst answers for every instance, the rest are cached', async () => {
    const inner = new CountingReader();
    const fleet = ['i-1', 'i-2', 'i-3', 'i-4'];
    let now = 1_000_000;
    const r = new BatchingMetricsReader(inner, 0, 'half-period', { now: () => now }, () => fleet);
    const first = await r.getMetricData([cpu('cpu0', 'i-2')], ...window(now));
    expect(first.get('cpu0')!.values).toEqual([2]);
    expect(inner.calls).toHaveLength(1);
    expect(new Set(inner.calls[0]!.queries.map((q) => q.dimensions['InstanceId']))).toEqual(new Set(fleet));
    for (const id of fleet) {
      now += 1_000;
      const got = await r.getMetricData([cpu('cpu0', id)], ...window(now));
      // Each its own answer, not another instance's.
      expect(got.get('cpu0')!.values).toEqual([Number(id.slice(2))]);
    }
    expect(inner.calls).toHaveLength(1);
    // A query about an instance outside the fleet, or without an instance, asks only itself.
    await r.getMetricData([cpu('cpu0', 'i-9')], ...window(now));
    expect(inner.calls[1]!.queries.map((q) => q.dimensions['InstanceId'])).toEqual(['i-9']);
    // Never older than half the period: 30 s after the first answer, asked again.
    now = 1_000_000 + 30_001;
    await r.getMetricData([cpu('cpu0', 'i-3')], ...window(now));
    expect(inner.calls).toHaveLength(3);
  });

  test('asking ahead fills in what has no answer within its TTL: it does not ask the fleet again past half the TTL', async () => {
    const inner = new CountingReader();
    const fleet = Array.from({ length: 10 }, (_, i) => `i-${i + 1}`);
    let now = 1_000_000;
    const r = new BatchingMetricsReader(inner, 0, 'half-period', { now: () => now }, () => fleet);
    for (const id of fleet) {
      await r.getMetricData([cpu('cpu0', id)], ...window(now)); // the first asks for the fleet, the rest read it once
      now += 2_000;
    }
    // 20 s on, past half the 30 s TTL: a question about an instance outside the fleet asks only itself.
    await r.getMetricData([cpu('cpu0', 'i-99')], ...window(now));
    expect(inner.calls.map((c) => c.queries.length)).toEqual([10, 1]);
    // Past the TTL the next call asks the fleet ahead again.
    now = 1_000_000 + 40_000;
    await r.getMetricData([cpu('cpu0', 'i-1')], ...window(now));
    expect(new Set(inner.calls[2]!.queries.map((q) => q.dimensions['InstanceId']))).toEqual(new Set(fleet));
  });

  test('a failed call fails every waiter', async () => {
    const r = new BatchingMetricsReader({ getMetricData: () => Promise.reject(new Error('throttled')) }, 1);
    await expect(
      Promise.all([r.getMetricData([cpu('a', 'i-1')], ...window(1)), r.getMetricData([cpu('b', 'i-2')], ...window(1))]),
    ).rejects.toThrow('throttled');
  });
});
