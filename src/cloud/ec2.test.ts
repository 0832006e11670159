import { BatchingInstanceDescriber, Ec2InstanceDescriber, MAX_IDS_PER_CALL } from './ec2.js';
import type { DescribeResult, InstanceDescriber, InstanceFacts } from './types.js';

class CountingDescriber implements InstanceDescriber {
  calls: string[][] = [];
  async describe(ids: readonly string[]): Promise<DescribeResult> {
    this.calls.push([...ids]);
    const found: InstanceFacts[] = ids.filter((id) => id !== 'i-missing0').map((instanceId) => ({ instanceId, tags: { Env: 'prod' } }));
    return { found, missing: ids.filter((id) => id === 'i-missing0') };
  }
  async findByTags(): Promise<InstanceFacts[]> {
    return [];
  }
}

describe('BatchingInstanceDescriber', () => {
  test('concurrent requests share one DescribeInstances call, and each gets its own answer', async () => {
    const inner = new CountingDescriber();
    const d = new BatchingInstanceDescriber(inner, 10, 5_000);
    const [a, b, c] = await Promise.all([
      d.describe(['i-00000001', 'i-00000002']),
      d.describe(['i-00000002', 'i-00000003']),
      d.describe(['i-missing0']),
    ]);
    expect(inner.calls).toHaveLength(1);
    expect(new Set(inner.calls[0])).toEqual(new Set(['i-00000001', 'i-00000002', 'i-00000003', 'i-missing0']));
    expect(a.found.map((f) => f.instanceId)).toEqual(['i-00000001', 'i-00000002']);
    expect(b.found.map((f) => f.instanceId)).toEqual(['i-00000002', 'i-00000003']);
    expect(c).toEqual({ found: [], missing: ['i-missing0'] });
  });

  test('answers are cached briefly, then asked again', async () => {
    const inner = new CountingDescriber();
    let now = 1_000;
    const d = new BatchingInstanceDescriber(inner, 1, 5_000, { now: () => now });
    await d.describe(['i-00000001']);
    await d.describe(['i-00000001']);
    expect(inner.calls).toHaveLength(1);
    now += 6_000;
    await d.describe(['i-00000001']);
    expect(inner.calls).toHaveLength(2);
  });

  test('one call in flight: requests arriving meanwhile go out together in the next call', async () => {
    const calls: string[][] = [];
    let release!: () => void;
    const slow = new Promise<void>((r) => {
      release = r;
    });
    const inner: InstanceDescriber = {
      describe: async (ids) => {
        calls.push([...ids]);
        if (calls.length === 1) await slow;
        return { found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] };
      },
      findByTags: async () => [],
    };
    const d = new BatchingInstanceDescriber(inner, 1, 5_000);
    const first = d.describe(['i-00000001']);
    await new Promise((r) => setTimeout(r, 20)); // the first call is out, and slow
    const later = ['i-00000002', 'i-00000003', 'i-00000004'].map((id, k) =>
      new Promise((r) => setTimeout(r, 5 * k)).then(() => d.describe([id])),
    );
    await new Promise((r) => setTimeout(r, 40));
    release();
    await Promise.all([first, ...later]);
    expect(calls).toEqual([['i-00000001'], ['i-00000002', 'i-00000003', 'i-00000004']]);
  });

  test('idle: a request goes out on the next turn of the event loop, with no batching window to wait out', async () => {
    const inner = new CountingDescriber();
    const d = new BatchingInstanceDescriber(inner);
    const answer = d.describe(['i-00000001']);
    const sameTurn = d.describe(['i-00000002']);
    await new Promise((r) => setImmediate(r));
    // Both asked in one turn share the call; it is already out.
    expect(inner.calls.map((c) => new Set(c))).toEqual([new Set(['i-00000001', 'i-00000002'])]);
    await Promise.all([answer, sameTurn]);
  });

  test('freshness: a tag set on an instance is seen by every describe more than the TTL after EC2 reported it', async () => {
    let tags: Record<string, string> = { Env: 'prod' };
    const asked: number[] = [];
    let now = 1_000;
    const inner: InstanceDescriber = {
      describe: async (ids) => {
        asked.push(now);
        return { found: ids.map((instanceId) => ({ instanceId, tags: { ...tags } })), missing: [] };
      },
      findByTags: async () => [{ instanceId: 'i-00000001', tags: { ...tags } }],
    };
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, { now: () => now });
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toEqual({ Env: 'prod' });
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toEqual({ Env: 'prod' }); // looked up again: refreshed ahead
    tags = { Env: 'prod', 'remediator.dev/opt-out': 'true' };
    now += 2_600; // past half the TTL: the next call (for another instance) refreshes it ahead
    await d.describe(['i-00000002']);
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toHaveProperty(['remediator.dev/opt-out'], 'true');
    tags = { Env: 'prod' };
    now += 5_000; // exactly the TTL after the refresh: still served from the cache...
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toHaveProperty(['remediator.dev/opt-out']);
    now += 1; // ...and never a moment longer
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toEqual({ Env: 'prod' });
    expect(asked).toEqual([1_000, 3_600, 8_601]);
    // Selecting targets by tag never reads the cache.
    tags = { Env: 'staging' };
    expect((await d.findByTags({ Env: 'staging' }))[0]!.tags).toEqual({ Env: 'staging' });
  });

  test('fleet sweep: the first call describes the tagged fleet, so a burst about 50 instances costs one call per TTL', async () => {
    const fleet = Array.from({ length: 50 }, (_, i) => `i-${i.toString(16).padStart(8, '0')}`);
    const byTag: Array<Record<string, string>> = [];
    const byId: string[][] = [];
    let now = 1_000;
    const inner: InstanceDescriber = {
      describe: async (ids) => (byId.push([...ids]), { found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] }),
      findByTags: async (tags) => (byTag.push({ ...tags }), fleet.map((instanceId) => ({ instanceId, tags: { ...tags } }))),
    };
    const d = new BatchingInstanceDescriber(
      inner,
      0,
      5_000,
      { now: () => now },
      { tags: { 'remediator.dev/managed': 'true' }, sweepWhenQuiet: true },
    );
    for (let i = 0; i < 200; i++) {
      const [found] = (await d.describe([fleet[i % 50]!])).found;
      expect(found?.tags).toEqual({ 'remediator.dev/managed': 'true' });
      now += 50; // 200 alerts over 10 s
    }
    expect(byTag).toHaveLength(2); // at 1 s, and once the first answers were past their TTL
    expect(byId).toEqual([]);
    // An instance outside the tagged fleet is asked for by id, in the same call as a sweep or alone.
    expect((await d.describe(['i-outside0'])).found[0]!.tags).toEqual({});
    expect(byId).toEqual([['i-outside0']]);
    expect(d.fleet()).toHaveLength(50);
  });

  test('fleet sweep: requests that queued behind the sweep are answered by it, with no call by id', async () => {
    const fleet = ['i-00000001', 'i-00000002', 'i-00000003'];
    const asked: string[] = [];
    let release!: () => void;
    const inner: InstanceDescriber = {
      describe: async (ids) => (
        asked.push(`id:${ids.join(',')}`), { found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] }
      ),
      findByTags: async () => {
        asked.push('sweep');
        await new Promise<void>((r) => (release = r));
        return fleet.map((instanceId) => ({ instanceId, tags: { m: 't' } }));
      },
    };
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, undefined, { tags: { m: 't' }, sweepWhenQuiet: true });
    const first = d.describe(['i-00000001']);
    await new Promise((r) => setImmediate(r));
    // Arrive while the sweep is in flight: they queue for the next call.
    const later = [d.describe(['i-00000002']), d.describe(['i-00000003'])];
    await new Promise((r) => setImmediate(r));
    release();
    await Promise.all([first, ...later]);
    expect(asked).toEqual(['sweep']);
    expect((await later[1]!).found[0]!.tags).toEqual({ m: 't' });
  });

  test('fleet sweep freshness: a target tag removed is never served after the TTL; the instance is then asked for by id', async () => {
    let tagged = true;
    const asked: string[] = [];
    let now = 1_000;
    const inner: InstanceDescriber = {
      describe: async (ids) => (
        asked.push(`id:${ids.join(',')}`),
        {
          found: ids.map((instanceId) => ({ instanceId, tags: (tagged ? { managed: 'true' } : {}) as Record<string, string> })),
          missing: [],
        }
      ),
      findByTags: async () => (asked.push('sweep'), tagged ? [{ instanceId: 'i-00000001', tags: { managed: 'true' } }] : []),
    };
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, { now: () => now }, { tags: { managed: 'true' }, sweepWhenQuiet: true });
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toEqual({ managed: 'true' });
    tagged = false; // removed on EC2 right after the sweep answered
    now += 5_000; // the TTL: still served as it was read...
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toEqual({ managed: 'true' });
    now += 1; // ...and never a moment longer: the sweep no longer finds it, so it is asked for by id
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toEqual({});
    expect(asked).toEqual(['sweep', 'sweep', 'id:i-00000001']);
    // Later sweeps do not bring it back, and its facts (untagged) stay as read by id.
    now += 2_600;
    await d.describe(['i-00000002']);
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toEqual({});
  });

  test('fleet sweep: a fleet larger than the limit is not swept again for a while (by id instead)', async () => {
    let now = 1_000;
    let sweeps = 0;
    const inner: InstanceDescriber = {
      describe: async (ids) => ({ found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] }),
      findByTags: async () => (
        sweeps++,
        [
          { instanceId: 'i-00000001', tags: {} },
          { instanceId: 'i-00000002', tags: {} },
        ]
      ),
    };
    const d = new BatchingInstanceDescriber(
      inner,
      0,
      5_000,
      { now: () => now },
      { tags: { m: 't' }, sweepWhenQuiet: true, maxInstances: 1, pauseMs: 60_000 },
    );
    await d.describe(['i-00000001']);
    now += 6_000;
    await d.describe(['i-00000001']);
    expect(sweeps).toBe(1);
    expect(d.fleet()).toEqual([]);
    now += 60_000;
    await d.describe(['i-00000001']);
    expect(sweeps).toBe(2);
  });

  test('a lone alert after a quiet spell is asked for by id alone; the next miss within the TTL, a burst, sweeps', async () => {
    const fleet = ['i-00000001', 'i-00000002', 'i-00000003'];
    const asked: string[] = [];
    let now = 1_000;
    const inner: InstanceDescriber = {
      describe: async (ids) => (
        asked.push(`id:${ids.join(',')}`), { found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] }
      ),
      findByTags: async () => (asked.push('sweep'), fleet.map((instanceId) => ({ instanceId, tags: { m: 't' } }))),
    };
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, { now: () => now }, { tags: { m: 't' } });
    await d.describe([fleet[0]!]);
    expect(asked).toEqual(['id:i-00000001']); // what the bare call costs: no describe of the fleet
    now += 1_000;
    await d.describe([fleet[1]!]);
    expect(asked).toEqual(['id:i-00000001', 'sweep']); // a second alert within the TTL: the sweep answers it
    now += 100;
    expect((await d.describe([fleet[2]!])).found[0]!.tags).toEqual({ m: 't' });
    expect(asked).toHaveLength(2); // ...and the rest of the burst from the cache
    now += 60_000; // quiet again: a lone alert by id alone
    await d.describe([fleet[2]!]);
    expect(asked).toEqual(['id:i-00000001', 'sweep', 'id:i-00000003']);
  });

  test('a failed call fails every waiter', async () => {
    const d = new BatchingInstanceDescriber({ describe: () => Promise.reject(new Error('throttled')), findByTags: async () => [] }, 1);
    await expect(Promise.all([d.describe(['i-00000001']), d.describe(['i-00000002'])])).rejects.toThrow('throttled');
  });
});

describe('BatchingInstanceDescriber: refresh-ahead, for what is looked up again', () => {
  test('refresh-ahead: a call also refreshes the instances in use past half their TTL, so a fleet expires together', async () => {
    const inner = new CountingDescriber();
    let now = 1_000;
    const d = new BatchingInstanceDescriber(inner, 1, 5_000, { now: () => now });
    await d.describe(['i-00000001']);
    now += 3_000; // i-1 is past half its TTL
    await d.describe(['i-00000001']); // in use, served from cache
    await d.describe(['i-00000002']); // a new instance: the call refreshes i-1 too
    expect(inner.calls.map((c) => new Set(c))).toEqual([new Set(['i-00000001']), new Set(['i-00000002', 'i-00000001'])]);
    now += 3_000; // 6 s after the first call, 3 s after the second: both cached
    await d.describe(['i-00000001', 'i-00000002']);
    expect(inner.calls).toHaveLength(2);
    now += 6_000; // not asked for within a TTL: dropped, not refreshed forever
    await d.describe(['i-00000003']);
    expect(inner.calls[2]).toEqual(['i-00000003']);
  });

  test('refresh-ahead: a storm naming each instance once describes each once, however many calls go out', async () => {
    const inner = new CountingDescriber();
    let now = 1_000;
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, { now: () => now });
    const ids = Array.from({ length: 100 }, (_, i) => `i-${i.toString(16).padStart(8, '0')}`);
    for (const id of ids) {
      expect((await d.describe([id])).found[0]!.instanceId).toBe(id);
      now += 100; // 100 alerts over 10 s: every call goes out while the earlier facts are past half the TTL
    }
    // Two look-ups waiting for the same call are its first readers, not repeat interest.
    await Promise.all([d.describe(['i-twice000']), d.describe(['i-twice000'])]);
    now += 3_000;
    await d.describe(['i-00000abc']);
    expect(inner.calls).toHaveLength(102);
    expect(inner.calls.flat().sort()).toEqual([...ids, 'i-00000abc', 'i-twice000'].sort());
  });

  test('refresh-ahead: an instance looked up again (a hit after the call that fetched it) is refreshed ahead', async () => {
    const inner = new CountingDescriber();
    let now = 1_000;
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, { now: () => now });
    await d.describe(['i-00000001']);
    now += 1_000;
    await d.describe(['i-00000001']); // a hit: repeat interest
    now += 2_000;
    await d.describe(['i-00000002']); // i-1 rides along, past half its TTL; i-2 is read once so far
    now += 2_600;
    await d.describe(['i-00000003']); // i-1 was not looked up since, but within the TTL: still in use
    expect(inner.calls).toEqual([['i-00000001'], ['i-00000002', 'i-00000001'], ['i-00000003', 'i-00000001']]);
  });

  test('refresh-ahead: a fact nobody asked for is read first by its first look-up; a miss after it expired in use is repeat interest', async () => {
    const calls: string[][] = [];
    let now = 1_000;
    const inner: InstanceDescriber = {
      describe: async (ids) => (calls.push([...ids]), { found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] }),
      findByTags: async () => [{ instanceId: 'i-00000003', tags: {} }],
    };
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, { now: () => now });
    await d.findByTags({}); // cached by a tag selection, which is no look-up
    now += 2_000;
    await d.describe(['i-00000003']); // its first reader, from the cache
    now += 1_000;
    await d.describe(['i-00000004']); // i-3 is past half its TTL, read once: not refreshed
    expect(calls).toEqual([['i-00000004']]);
    now += 2_500;
    await d.describe(['i-00000003']); // expired while in use: asked again, and the instance keeps coming up
    now += 2_600;
    await d.describe(['i-00000005']); // so its new fact rides along
    expect(calls).toEqual([['i-00000004'], ['i-00000003'], ['i-00000005', 'i-00000003']]);
  });
});

describe('BatchingInstanceDescriber: a sweep warms the cache, it never gates a look-up', () => {
  const fleet = ['i-00000001', 'i-00000002', 'i-00000003'];
  const tick = () => new Promise((r) => setImmediate(r));
  /** Settles within `ms` of real time, or says it did not. */
  const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<'waited'>((r) => setTimeout(() => r('waited'), ms))]);

  test('a miss behind a slow sweep is asked for by id after waitMs; the sweep then warms the cache', async () => {
    const asked: string[] = [];
    let release!: () => void;
    const inner: InstanceDescriber = {
      describe: async (ids) => (
        asked.push(`id:${ids.join(',')}`), { found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] }
      ),
      findByTags: async () => {
        asked.push('sweep');
        await new Promise<void>((r) => (release = r));
        return fleet.map((instanceId) => ({ instanceId, tags: { m: 't' } }));
      },
    };
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, undefined, { tags: { m: 't' }, sweepWhenQuiet: true, waitMs: 20 });
    const first = await within(d.describe(['i-00000001']), 1_000);
    expect(first).not.toBe('waited');
    expect(asked).toEqual(['sweep', 'id:i-00000001']);
    release();
    await tick();
    // The sweep landed: the rest of the fleet is cached, no call at all.
    expect((await d.describe(['i-00000002', 'i-00000003'])).found.map((f) => f.tags)).toEqual([{ m: 't' }, { m: 't' }]);
    expect(asked).toEqual(['sweep', 'id:i-00000001']);
    expect(d.fleet()).toEqual(fleet);
  });

  test('once sweeps take longer than waitMs, a miss does not wait for the one in flight at all', async () => {
    let now = 1_000;
    const asked: string[] = [];
    let sweeps = 0;
    let release = () => {};
    const inner: InstanceDescriber = {
      describe: async (ids) => (
        asked.push(`id:${ids.join(',')}`), { found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] }
      ),
      findByTags: async () => {
        asked.push('sweep');
        if (++sweeps === 1)
          now += 1_500; // the first sweep took 1.5 s (under half the TTL: not paused)
        else await new Promise<void>((r) => (release = r)); // the second hangs
        return fleet.map((instanceId) => ({ instanceId, tags: { m: 't' } }));
      },
    };
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, { now: () => now }, { tags: { m: 't' }, sweepWhenQuiet: true, waitMs: 1_000 });
    await d.describe(['i-00000001']); // waited for the first sweep (no history yet); it answered
    expect(asked).toEqual(['sweep']);
    now += 6_000; // everything expired
    const started = Date.now();
    expect(await within(d.describe(['i-00000002']), 500)).not.toBe('waited');
    expect(Date.now() - started).toBeLessThan(500); // not the 1 s waitMs
    expect(asked).toEqual(['sweep', 'sweep', 'id:i-00000002']);
    release();
  });

  test('a sweep slower than half the TTL pauses sweeping: its facts would expire as they land', async () => {
    let now = 1_000;
    let sweeps = 0;
    const byId: string[][] = [];
    const inner: InstanceDescriber = {
      describe: async (ids) => (byId.push([...ids]), { found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] }),
      findByTags: async () => {
        sweeps++;
        now += 3_000;
        return fleet.map((instanceId) => ({ instanceId, tags: { m: 't' } }));
      },
    };
    const d = new BatchingInstanceDescriber(
      inner,
      0,
      5_000,
      { now: () => now },
      { tags: { m: 't' }, sweepWhenQuiet: true, pauseMs: 60_000 },
    );
    await d.describe(['i-00000001']);
    now += 6_000;
    await d.describe(['i-00000002']);
    expect(sweeps).toBe(1);
    expect(byId).toEqual([['i-00000002']]);
    now += 60_000;
    await d.describe(['i-00000003']);
    expect(sweeps).toBe(2);
  });

  test("freshness: a sweep's facts count from when it was sent, so a slow sweep never stretches the TTL", async () => {
    let now = 1_000;
    const asked: string[] = [];
    const inner: InstanceDescriber = {
      describe: async (ids) => (
        asked.push(`id:${ids.join(',')}`), { found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] }
      ),
      findByTags: async () => {
        asked.push('sweep');
        now += 1_000; // EC2 answered somewhere in this second
        return fleet.map((instanceId) => ({ instanceId, tags: { m: 't' } }));
      },
    };
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, { now: () => now }, { tags: { m: 't' }, sweepWhenQuiet: true, waitMs: 5_000 });
    await d.describe(['i-00000001']); // sent at 1,000, answered at 2,000
    now = 6_000; // the TTL after it was sent: served as read
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toEqual({ m: 't' });
    expect(asked).toEqual(['sweep']);
    now = 6_001; // never a moment longer
    await d.describe(['i-00000001']);
    expect(asked).toHaveLength(2);
  });

  test('a sweep sent before a look-up by id never replaces what that look-up read (a removed tag stays removed)', async () => {
    let now = 1_000;
    let release!: () => void;
    const inner: InstanceDescriber = {
      // EC2 now: the target tag is gone.
      describe: async (ids) => {
        now += 10;
        return { found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] };
      },
      findByTags: async () => {
        await new Promise<void>((r) => (release = r));
        return fleet.map((instanceId) => ({ instanceId, tags: { m: 't' } })); // read before the removal
      },
    };
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, { now: () => now }, { tags: { m: 't' }, sweepWhenQuiet: true, waitMs: 10 });
    const byId = d.describe(['i-00000001']);
    setTimeout(() => release(), 200); // lands after the look-up by id (or unblocks a describe that waits for it)
    expect((await byId).found[0]!.tags).toEqual({});
    await new Promise((r) => setTimeout(r, 250));
    expect((await d.describe(['i-00000001'])).found[0]!.tags).toEqual({});
    expect((await d.describe(['i-00000002'])).found[0]!.tags).toEqual({ m: 't' });
  });

  test('a failed sweep fails no look-up: it is asked for by id, and the next sweep waits half a TTL', async () => {
    let now = 1_000;
    let sweeps = 0;
    const inner: InstanceDescriber = {
      describe: async (ids) => ({ found: ids.map((instanceId) => ({ instanceId, tags: {} })), missing: [] }),
      findByTags: async () => {
        sweeps++;
        throw new Error('throttled');
      },
    };
    const d = new BatchingInstanceDescriber(inner, 0, 5_000, { now: () => now }, { tags: { m: 't' }, sweepWhenQuiet: true });
    expect((await d.describe(['i-00000001'])).found).toHaveLength(1);
    now += 1_000;
    await d.describe(['i-00000002']);
    expect(sweeps).toBe(1);
    now += 2_000;
    await d.describe(['i-00000003']);
    expect(sweeps).toBe(2);
  });
});

describe('Ec2InstanceDescriber', () => {
  test('describes a large fleet with at most 200 values in one instance-id filter', async () => {
    const filters: number[] = [];
    const client = {
      send: async (cmd: { input: { Filters?: Array<{ Values?: string[] }> } }) => {
        const values = cmd.input.Filters?.[0]?.Values ?? [];
        filters.push(values.length);
        return { Reservations: [{ Instances: values.map((InstanceId) => ({ InstanceId })) }] };
      },
    };
    const ids = Array.from({ length: 450 }, (_, i) => `i-${i.toString(16).padStart(8, '0')}`);
    const out = await new Ec2InstanceDescriber(client as never).describe(ids);
    expect(filters).toEqual([MAX_IDS_PER_CALL, MAX_IDS_PER_CALL, 50]);
    expect(out.found).toHaveLength(450);
    expect(out.missing).toEqual([]);
  });
});
