import type { TimerClock } from './clock.js';
import { WorkQueue } from './workqueue.js';

/** A clock that moves only when told to, firing the timers that fall due on the way. */
class ManualClock implements TimerClock {
  private t = 1_000_000;
  private timers: Array<{ at: number; fn: () => void }> = [];

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, delayMs: number): () => void {
    const timer = { at: this.t + delayMs, fn };
    this.timers.push(timer);
    return () => (this.timers = this.timers.filter((x) => x !== timer));
  }

  advance(ms: number): void {
    this.t += ms;
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const x of due) x.fn();
  }

  get pending(): number {
    return this.timers.length;
  }
}

const noJitter = { baseDelayMs: 5, maxDelayMs: 1_000, jitter: 0 };

describe('WorkQueue', () => {
  test('dedupes a key added many times while queued', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  test('never hands a key to two workers: an add while processing is held until done', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    q.add('a');
    expect(q.length).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await new Promise((r) => setImmediate(r));
    expect(second).toBeUndefined();
    q.done(key!);
    await new Promise((r) => setImmediate(r));
    expect(second).toBe('a');
  });

  test('backs off exponentially per key and forgets on success', () => {
    const q = new WorkQueue(noJitter);
    expect(q.addRateLimited('a')).toBe(5);
    expect(q.addRateLimited('a')).toBe(10);
    expect(q.addRateLimited('a')).toBe(20);
    expect(q.addRateLimited('b')).toBe(5);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(5);
    void q.shutdown(false);
  });

  test('caps the delay and spreads it with jitter', () => {
    const q = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 1_000, jitter: 0.5 }, undefined, () => 1);
    for (let i = 0; i < 20; i++) q.addRateLimited('a');
    expect(q.backoffDelay(30)).toBe(1_000);
    expect(q.backoffDelay(0)).toBe(7.5);
    void q.shutdown(false);
  });

  test('addAfter queues the key later, keeping the earliest pending delay', async () => {
    const q = new WorkQueue();
    q.addAfter('a', 50);
    q.addAfter('a', 5_000);
    expect(q.length).toBe(0);
    const started = Date.now();
    expect(await q.get()).toBe('a');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  test('addAfter waits on the injected clock, for the due time and the wake-up alike', () => {
    const clock = new ManualClock();
    const q = new WorkQueue(noJitter, clock);
    q.addAfter('a', 60_000);
    q.addAfter('a', 30_000);
    expect(clock.pending).toBe(1);
    clock.advance(29_999);
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
    q.addAfter('b', 10);
    void q.shutdown(false);
    expect(clock.pending).toBe(0);
  });

  test('shutdown releases waiting workers and waits for in-flight keys', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    const waiting = q.get();
    let drained = false;
    const shut = q.shutdown(true).then(() => (drained = true));
    expect(await waiting).toBeUndefined();
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);
    q.done(key!);
    await shut;
    expect(drained).toBe(true);
    q.add('b');
    expect(q.length).toBe(0);
  });
});
