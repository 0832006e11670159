import type { LedgerDocument } from '../api/ledger/v1.js';
import { ExecutionLedger, prune } from './ledger.js';
import { MemoryLedgerStorage as MemoryStorage } from '../fakes/ledger-memory.js';

const T0 = Date.parse('2026-11-21T10:00:00Z');
const retention = { windowMs: 3_600_000, lastOutcomes: 2 };
const entry = (uid: string, at: number) => ({ uid, request: 'same-name', runbook: 'rb', targets: ['i-00000001'], at });

describe('execution ledger', () => {
  test('survives a new process: what one stored, the next loads', async () => {
    const storage = new MemoryStorage();
    const a = new ExecutionLedger(storage, { now: () => T0 });
    a.record('ns', 'p', retention, entry('u1', T0));
    await a.persist('ns', 'p');
    const b = new ExecutionLedger(storage, { now: () => T0 });
    expect(await b.load()).toBe(1);
    expect(b.records('ns', 'p').map((e) => e.uid)).toEqual(['u1']);
  });

  test('an open breaker is stored, and keeps its document even when no execution is left in it', async () => {
    const storage = new MemoryStorage();
    const a = new ExecutionLedger(storage, { now: () => T0 + 30 * 24 * 3_600_000 });
    a.record('ns', 'p', retention, { ...entry('u1', T0), outcome: 'Failed', endedAt: T0 });
    expect(a.setBreaker('ns', 'p', retention, T0)).toBe(true);
    expect(a.setBreaker('ns', 'p', retention, T0)).toBe(false);
    a.forget('ns', 'p', 'u1');
    await a.persist('ns', 'p');
    const b = new ExecutionLedger(storage, { now: () => T0 });
    await b.load();
    expect(b.breakerOpenedAt('ns', 'p')).toBe(T0);
    // A verdict is a change to store, too.
    b.record('ns', 'p', retention, { ...entry('u2', T0), outcome: 'Succeeded', endedAt: T0 });
    await b.persist('ns', 'p');
    b.verdict('ns', 'p', 'u2', false);
    await b.persist('ns', 'p');
    const c = new ExecutionLedger(storage, { now: () => T0 });
    await c.load();
    expect(c.entry('ns', 'p', 'u2')?.verified).toBe(false);
  });

  test('one entry per request UID; a recreated request is another entry', () => {
    const l = new ExecutionLedger(new MemoryStorage(), { now: () => T0 });
    l.record('ns', 'p', retention, entry('u1', T0));
    l.record('ns', 'p', retention, entry('u1', T0 + 1));
    l.record('ns', 'p', retention, entry('u2', T0 + 2));
    expect(l.records('ns', 'p').map((e) => e.uid)).toEqual(['u1', 'u2']);
  });

  test('keeps what the rules need: the window, the last outcomes, what still runs', () => {
    const doc: LedgerDocument = {
      namespace: 'ns',
      policy: 'p',
      retention,
      entries: [
        { ...entry('old1', T0 - 10 * 3_600_000), outcome: 'Failed', endedAt: T0 - 10 * 3_600_000 },
        { ...entry('old2', T0 - 9 * 3_600_000), outcome: 'Failed', endedAt: T0 - 9 * 3_600_000 },
        { ...entry('old3', T0 - 8 * 3_600_000), outcome: 'Failed', endedAt: T0 - 8 * 3_600_000 },
        entry('running', T0 - 5 * 3_600_000),
        entry('recent', T0 - 60_000),
      ],
    };
    expect(prune(doc, T0).map((e) => e.uid)).toEqual(['old2', 'old3', 'running', 'recent']);
  });

  test('a write that lost to another writer keeps both sides', async () => {
    const storage = new MemoryStorage();
    const a = new ExecutionLedger(storage, { now: () => T0 });
    a.record('ns', 'p', retention, entry('mine', T0));
    await a.persist('ns', 'p');
    const other = new ExecutionLedger(storage, { now: () => T0 });
    await other.load();
    other.record('ns', 'p', retention, entry('theirs', T0));
    await other.persist('ns', 'p');
    a.finish('ns', 'p', 'mine', 'Succeeded', T0 + 5, {});
    await a.persist('ns', 'p');
    expect((await storage.get('ns', 'p'))?.entries.map((e) => [e.uid, e.outcome])).toEqual([
      ['mine', 'Succeeded'],
      ['theirs', undefined],
    ]);
  });

  test('an emptied ledger is removed; an unchanged one is not written again', async () => {
    const storage = new MemoryStorage();
    let now = T0;
    const l = new ExecutionLedger(storage, { now: () => now });
    l.record('ns', 'p', { windowMs: 60_000, lastOutcomes: 0 }, entry('u1', T0));
    l.finish('ns', 'p', 'u1', 'Succeeded', T0, {});
    await l.persist('ns', 'p');
    await l.sweep();
    expect(storage.saves).toBe(1);
    now = T0 + 120_000;
    await l.sweep();
    expect(storage.docs.size).toBe(0);
    expect(l.records('ns', 'p')).toEqual([]);
  });
  test('group commit: callers asking while a write is in flight share one write, which stores all their changes', async () => {
    const storage = new MemoryStorage();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const save = storage.save.bind(storage);
    let saves = 0;
    storage.save = async (doc) => {
      // Captured before the first await, as LedgerStorage.save requires.
      const copy = structuredClone(doc);
      if (saves++ === 0) await held;
      return save(copy);
    };
    const l = new ExecutionLedger(storage, { now: () => T0 });
    l.record('ns', 'p', retention, entry('u0', T0));
    const first = l.persist('ns', 'p');
    await new Promise((r) => setImmediate(r)); // the first write is out, and slow
    const later = Array.from({ length: 20 }, (_, i) => {
      l.record('ns', 'p', retention, entry(`u${i + 1}`, T0));
      return l.persist('ns', 'p');
    });
    release();
    await Promise.all([first, ...later]);
    expect(saves).toBe(2);
    const reloaded = new ExecutionLedger(storage, { now: () => T0 });
    await reloaded.load();
    expect(reloaded.records('ns', 'p')).toHaveLength(21);
    // Idle: a change is stored by its own write at once.
    l.record('ns', 'p', retention, entry('u99', T0));
    await l.persist('ns', 'p');
    expect(saves).toBe(3);
  });

  test('a failed batch fails every caller in it, and the next write stores their entries', async () => {
    const storage = new MemoryStorage();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const save = storage.save.bind(storage);
    let saves = 0;
    storage.save = async (doc) => {
      const copy = structuredClone(doc);
      const n = saves++;
      if (n === 0) await held;
      // The batched write fails (the API server refused it): nobody in it may act.
      if (n === 1) throw new Error('500 Internal Server Error');
      return save(copy);
    };
    const l = new ExecutionLedger(storage, { now: () => T0 });
    l.record('ns', 'p', retention, entry('u0', T0));
    const first = l.persist('ns', 'p');
    await new Promise((r) => setImmediate(r));
    const batch = ['u1', 'u2', 'u3'].map((uid) => {
      l.record('ns', 'p', retention, entry(uid, T0));
      return l.persist('ns', 'p').then(
        () => 'stored',
        () => 'failed',
      );
    });
    release();
    await first;
    expect(await Promise.all(batch)).toEqual(['failed', 'failed', 'failed']);
    await l.persist('ns', 'p');
    const reloaded = new ExecutionLedger(storage, { now: () => T0 });
    await reloaded.load();
    expect(reloaded.records('ns', 'p').map((e) => e.uid)).toEqual(['u0', 'u1', 'u2', 'u3']);
  });

  test("tells the policy's status what changed: a success may wait for a recount, what may move the breaker may not", () => {
    const told: string[] = [];
    const l = new ExecutionLedger(new MemoryStorage(), { now: () => T0 }, (_ns, p, urgent) => told.push(`${p} ${urgent}`));
    for (const uid of ['ok', 'bad', 'dropped']) l.record('ns', 'p', retention, entry(uid, T0));
    l.finish('ns', 'p', 'ok', 'Succeeded', T0, {});
    l.finish('ns', 'p', 'bad', 'Failed', T0, {});
    l.verdict('ns', 'p', 'ok', true);
    l.verdict('ns', 'p', 'ok', false);
    l.forget('ns', 'p', 'dropped');
    l.setBreaker('ns', 'p', retention, T0);
    expect(told).toEqual(['p false', 'p true', 'p false', 'p true', 'p true', 'p true']);
  });
});
