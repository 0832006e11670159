/**
 * Settable fakes of the cluster and AWS seams, in the manner of karpenter's pkg/fake:
 * one package the unit tests and the simulation (src/sim) share, so a phase handler gets
 * fast tests of its own without a private copy of the API server.
 *
 *   cluster.ts        an API server for RemediationRequests: resourceVersions, optimistic
 *                     concurrency (409), finalizers and deletion, an ordered event log
 *                     per watcher (a cache that lags), compaction, and the order of writes
 *   aws.ts            SSM Run Command (ListCommands lag, invocations) and SNS (FIFO
 *                     deduplication), counting at the emulator what really went out
 *   ledger-memory.ts  the execution ledger's storage in memory
 *
 * Every call goes through a `Gate`: by default it answers at once; the simulation replaces
 * it to decide when an answer comes, whether it is lost, and whether the call took effect.
 * Settable fault queues (`faults`) serve plain unit tests.
 *
 */
import { ApiException } from '@kubernetes/client-node';
import type { RemediationRequest } from '../api/v1alpha1/index.js';
import type { ResourceClient } from '../kube/resources.js';

/** One call to a fake: what it does when it reaches the server, and how it fails when it does not. */
export interface Call<T> {
  /** Who calls (a process name in the simulation), and what: for traces. */
  caller: string;
  label: string;
  /** The call reaching its server: applies the effect and returns the answer (may throw the server's refusal). */
  apply(): T;
  /** The error a caller sees when the call never took effect (a 5xx, a reset before the request was read, throttling). */
  failure(): unknown;
  /** Whether the call changes state (a lost answer then leaves the caller not knowing). */
  mutates: boolean;
}

/** Decides when and how a call is answered. */
export type Gate = <T>(call: Call<T>) => Promise<T>;

/** Answers every call at once, as the server would. */
export const immediate: Gate = async (call) => call.apply();

/** The error a caller sees when the answer to a call that may have taken effect was lost. */
export class LostResponseError extends Error {
  readonly code = 'ECONNRESET';
  constructor(what: string) {
    super(`${what}: socket hang up (the answer was lost; the call may have taken effect)`);
    this.name = 'LostResponseError';
  }
}

export type WatchEvent = { type: 'add' | 'update' | 'delete'; object: RemediationRequest; rv: number };

/** A fault a unit test queues for the next matching call. */
export interface ClusterFault {
  /** `replaceStatus`, `setFinalizers`, `get`, `create`, `delete`. */
  op: string;
  kind: 'conflict' | 'lost' | 'fail';
}

export const conflict = (what: string) => new ApiException(409, `Conflict: ${what}`, '{}', {});

/**
 * The API server, for RemediationRequests. resourceVersions are a global counter (as
 * etcd's revision), but callers must treat them as opaque: the reconciler never compares
 * them except for equality.
 */
export class FakeApiServer {
  private rv = 0;
  readonly objects = new Map<string, RemediationRequest>();
  /** Every change, in order; watchers read it from their cursor. */
  private readonly log: WatchEvent[] = [];
  /** Events before this revision are compacted away: a watcher behind it must list again. */
  compactedBefore = 0;
  /** Every successful write: `caller op key rv`, in order. */
  readonly writes: string[] = [];
  /** Faults for the next matching calls (unit tests; the simulation uses the gate). */
  readonly faults: ClusterFault[] = [];
  /** Called after every change is stored (the simulation checks its invariants here). */
  onChange: (before: RemediationRequest | undefined, after: RemediationRequest | undefined, caller: string) => void = () => undefined;
  gate: Gate = immediate;

  get revision(): number {
    return this.rv;
  }

  /** A client that calls as `caller`. */
  client(caller = 'controller'): ResourceClient<RemediationRequest> {
    const key = (ns: string, name: string) => `${ns}/${name}`;
    const call = <T>(op: string, label: string, mutates: boolean, apply: () => T): Promise<T> => {
      const i = this.faults.findIndex((f) => f.op === op);
      if (i >= 0) {
        const [fault] = this.faults.splice(i, 1);
        if (fault!.kind === 'conflict') return Promise.reject(conflict(label));
        if (fault!.kind === 'fail') return Promise.reject(new ApiException(500, 'Internal error', '{}', {}));
        apply();
        return Promise.reject(new LostResponseError(label));
      }
      return this.gate({
        caller,
        label: `${op} ${label}`,
        apply,
        mutates,
        failure: () => new ApiException(503, 'Service Unavailable', '{}', {}),
      });
    };
    return {
      names: { kind: 'RemediationRequest', plural: 'remediationrequests', singular: 'remediationrequest', shortNames: [] },
      watchPath: '',
      listAll: () => call('list', 'all', false, () => ({ items: structuredClone(this.list()), resourceVersion: String(this.rv) })),
      get: (ns, name) => call('get', key(ns, name), false, () => structuredClone(this.objects.get(key(ns, name)))),
      create: (ns, body) => call('create', key(ns, body.metadata?.name ?? ''), true, () => this.create(body, caller)),
      replaceStatus: (ns, name, body) => call('replaceStatus', key(ns, name), true, () => this.replaceStatus(key(ns, name), body, caller)),
      setFinalizers: (ns, name, finalizers, resourceVersion) =>
        call('setFinalizers', key(ns, name), true, () => this.setFinalizers(key(ns, name), finalizers, resourceVersion, caller)),
      delete: (ns, name, uid) => call('delete', key(ns, name), true, () => this.delete(key(ns, name), uid, caller)),
    };
  }

  /** The stored objects (shared: never change them in place). */
  list(): RemediationRequest[] {
    return [...this.objects.values()];
  }

  create(body: RemediationRequest, caller = 'test'): RemediationRequest {
    const k = `${body.metadata?.namespace}/${body.metadata?.name}`;
    if (this.objects.has(k)) throw new ApiException(409, 'AlreadyExists', '{}', {});
    const obj = structuredClone(body);
    obj.metadata = { ...obj.metadata, generation: 1, uid: obj.metadata?.uid ?? `uid-${this.rv + 1}` };
    return this.store(k, obj, 'add', 'create', caller);
  }

  /** A write by someone else (a person, the intake): bumps the resourceVersion (and generation for spec). */
  patch(k: string, change: (o: RemediationRequest) => void, caller = 'user'): RemediationRequest {
    const cur = this.objects.get(k);
    if (!cur) throw new ApiException(404, 'NotFound', '{}', {});
    // Status is shared with the stored version (never changed in place); spec and metadata are copied for `change`.
    const next: RemediationRequest = { ...cur, metadata: structuredClone(cur.metadata), spec: structuredClone(cur.spec) };
    const spec = JSON.stringify(next.spec);
    change(next);
    if (JSON.stringify(next.spec) !== spec) next.metadata = { ...next.metadata, generation: (next.metadata?.generation ?? 1) + 1 };
    return this.store(k, next, 'update', 'patch', caller);
  }

  private replaceStatus(k: string, body: RemediationRequest, caller: string): RemediationRequest {
    const cur = this.objects.get(k);
    if (!cur) throw new ApiException(404, 'NotFound', '{}', {});
    if (body.metadata?.resourceVersion !== cur.metadata?.resourceVersion) throw conflict(k);
    // The status subresource changes status only.
    const { status: _old, ...rest } = cur;
    return this.store(k, { ...structuredClone(rest), status: structuredClone(body.status) }, 'update', 'replaceStatus', caller);
  }

  private setFinalizers(k: string, finalizers: string[], resourceVersion: string, caller: string): RemediationRequest {
    const cur = this.objects.get(k);
    if (!cur) throw new ApiException(404, 'NotFound', '{}', {});
    if (resourceVersion && resourceVersion !== cur.metadata?.resourceVersion) throw conflict(k);
    const next = structuredClone(cur);
    next.metadata = { ...next.metadata, finalizers: [...finalizers] };
    if (next.metadata.deletionTimestamp && finalizers.length === 0) return this.remove(k, next, caller);
    return this.store(k, next, 'update', 'setFinalizers', caller);
  }

  private delete(k: string, uid: string, caller: string): boolean {
    const cur = this.objects.get(k);
    if (!cur || (uid && cur.metadata?.uid !== uid)) return false;
    if (cur.metadata?.finalizers?.length) {
      if (!cur.metadata.deletionTimestamp) {
        const next = structuredClone(cur);
        next.metadata = { ...next.metadata, deletionTimestamp: new Date(0).toISOString() };
        this.store(k, next, 'update', 'delete', caller);
      }
      return true;
    }
    this.remove(k, cur, caller);
    return true;
  }

  private remove(k: string, last: RemediationRequest, caller: string): RemediationRequest {
    const before = this.objects.get(k);
    this.objects.delete(k);
    const rv = ++this.rv;
    const object = { ...structuredClone(last), metadata: { ...last.metadata, resourceVersion: String(rv) } };
    this.log.push({ type: 'delete', object, rv });
    this.writes.push(`${caller} delete ${k} ${rv}`);
    this.onChange(before, undefined, caller);
    return object;
  }

  private store(k: string, obj: RemediationRequest, type: 'add' | 'update', op: string, caller: string): RemediationRequest {
    const before = this.objects.get(k);
    const rv = ++this.rv;
    obj.metadata = { ...obj.metadata, resourceVersion: String(rv) };
    // Stored objects are never changed in place (every change builds a new one), so the
    // log and the watchers' caches share them, as an informer's cache shares its objects.
    this.objects.set(k, obj);
    this.log.push({ type, object: obj, rv });
    this.writes.push(`${caller} ${op} ${k} ${rv}`);
    this.onChange(before, obj, caller);
    return structuredClone(obj);
  }

  /** Drops the event history before the current revision (etcd compaction): lagging watchers must list again. */
  compact(): void {
    this.compactedBefore = this.rv + 1;
  }

  /** Events after `rv`, or 'gone' when they were compacted away (410). */
  eventsAfter(rv: number): WatchEvent[] | 'gone' {
    const i = this.firstAfter(rv);
    if (i < this.log.length && rv + 1 < this.compactedBefore) return 'gone';
    return this.log.slice(i);
  }

  /** The next event after `rv` for a watcher, or 'gone', or undefined when it is caught up. */
  nextEvent(rv: number): WatchEvent | 'gone' | undefined {
    const i = this.firstAfter(rv);
    if (i >= this.log.length) return undefined;
    return rv + 1 < this.compactedBefore ? 'gone' : this.log[i];
  }

  /** The index of the first logged event after `rv` (the log is in revision order). */
  private firstAfter(rv: number): number {
    let lo = 0;
    let hi = this.log.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.log[mid]!.rv > rv) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/**
 * An informer's cache fed from a `FakeApiServer` by hand: `deliver()` hands it the next
 * event (so a test decides how far it lags), `sync()` catches it up, `relist()` lists
 * again as an informer does after a 410. `onEvent` runs after the cache changed, as the
 * informer's handlers do.
 */
export class FakeCache {
  readonly objects = new Map<string, RemediationRequest>();
  private cursor = 0;
  onEvent: (type: 'add' | 'update' | 'delete', object: RemediationRequest) => void = () => undefined;

  constructor(private readonly server: FakeApiServer) {}

  get(key: string): RemediationRequest | undefined {
    return this.objects.get(key);
  }

  /** Whether an event is waiting to be delivered. */
  get behind(): boolean {
    const next = this.server.nextEvent(this.cursor);
    return next !== undefined;
  }

  /** Delivers the next event; returns false when caught up. A compacted history means a relist. */
  deliver(): boolean {
    const next = this.server.nextEvent(this.cursor);
    if (next === undefined) return false;
    if (next === 'gone') {
      this.relist();
      return true;
    }
    this.cursor = next.rv;
    const k = `${next.object.metadata?.namespace}/${next.object.metadata?.name}`;
    if (next.type === 'delete') this.objects.delete(k);
    else this.objects.set(k, next.object);
    this.onEvent(next.type, next.object);
    return true;
  }

  sync(): void {
    while (this.deliver()) {
      /* catching up */
    }
  }

  /** Lists again: the cache becomes the server's current state; handlers hear of every change. */
  relist(): void {
    const current = new Map<string, RemediationRequest>(
      this.server.list().map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o] as const),
    );
    for (const [k, o] of this.objects) {
      if (!current.has(k)) {
        this.objects.delete(k);
        this.onEvent('delete', o);
      }
    }
    for (const [k, o] of current) {
      const old = this.objects.get(k);
      if (old?.metadata?.resourceVersion === o.metadata?.resourceVersion) continue;
      this.objects.set(k, o);
      this.onEvent(old ? 'update' : 'add', o);
    }
    this.cursor = this.server.revision;
  }
}
