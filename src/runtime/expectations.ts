/**
 * Read-your-writes for a reconciler that reads from an informer cache, in the manner of
 * client-go's ControllerExpectations: after this process writes an object, the cache may
 * still show an older version for a while (the watch event of the write is on its way),
 * and a decision taken on that version is a decision this process already superseded —
 * the cause of a message published twice and a refused command sent again (issue 20).
 *
 * Every write records the resourceVersion the server answered with. A reconcile asks
 * `check(key, cachedRv)` first:
 *  - `fresh`: no write of ours is outstanding, or the cache holds the version we wrote;
 *  - `stale`: the cache holds another version and our write's event has not arrived: the
 *    caller does not act, and looks again shortly (the event itself re-queues the key);
 *  - `read`: the caller must read the object from the server (a quorum read, never
 *    older than a completed write) and act on that: after a write whose outcome is
 *    unknown (a lost answer), or when the event of our write has not shown up in
 *    `maxWaitMs` (a relist after compaction delivers only the newest version).
 *
 * resourceVersions are opaque: they are compared only for equality, never ordered. That
 * is enough because the watch delivers a key's events in order: once the event carrying
 * our version was delivered (`observed`), everything the cache shows after it is newer.
 *
 * May be used by any reconciler; it knows nothing of remediator's API.
 */
import type { Clock } from './clock.js';

/** What a reconcile may do with its cached object. */
export type Freshness = 'fresh' | 'stale' | 'read';

interface Expectation {
  /** The version our last write stored; undefined when the write's outcome is unknown. */
  rv: string | undefined;
  /** The object's UID: a new object under the same key (deleted and created again) owes nothing to our write. */
  uid: string | undefined;
  /** When we wrote it (the process's clock). */
  at: number;
}

export class WriteExpectations {
  private readonly pending = new Map<string, Expectation>();

  constructor(
    private readonly clock: Clock,
    /** How long the cache is given to deliver our write before the object is read from the server instead. */
    readonly maxWaitMs = 2_000,
  ) {}

  /** This process stored version `rv` of `key` (undefined: a write that may or may not have been stored). */
  wrote(key: string, rv: string | undefined, uid?: string): void {
    this.pending.set(key, { rv, uid, at: this.clock.now() });
  }

  /** The informer delivered version `rv` of `key` (an event, or a relist): our write is in the cache once it is this one. */
  observed(key: string, rv: string | undefined): void {
    const e = this.pending.get(key);
    if (e && e.rv !== undefined && e.rv === rv) this.pending.delete(key);
  }

  /** The object is gone (deleted, or the key is no longer ours to reconcile). */
  forget(key: string): void {
    this.pending.delete(key);
  }

  /** Whether the cached version (`cachedRv`, undefined when the cache has none) may be acted on. */
  check(key: string, cachedRv: string | undefined, cachedUid?: string): Freshness {
    const e = this.pending.get(key);
    if (!e) return 'fresh';
    if ((e.rv !== undefined && e.rv === cachedRv) || (e.uid !== undefined && cachedUid !== undefined && e.uid !== cachedUid)) {
      this.pending.delete(key);
      return 'fresh';
    }
    if (e.rv === undefined || this.clock.now() - e.at >= this.maxWaitMs) return 'read';
    return 'stale';
  }

  /** How long until a `stale` key should be looked at again even if no event arrives. */
  waitLeftMs(key: string): number {
    const e = this.pending.get(key);
    return e ? Math.max(1, e.at + this.maxWaitMs - this.clock.now()) : 0;
  }

  /** Outstanding expectations (for metrics and tests). */
  get size(): number {
    return this.pending.size;
  }
}
