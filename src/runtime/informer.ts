/**
 * A supervised list-and-watch cache (a "reflector" in client-go's terms).
 *
 * client-node's own `ListWatch` stops for good on most watch errors, and its `Watch`
 * aborts after 30 s without data, so this informer owns the loop itself:
 * - it lists, then watches from the list's resourceVersion with bookmarks, asking the
 *   server to end each watch before the inactivity timer would (a clean re-watch from
 *   the last resourceVersion instead of an abort);
 * - it lists in pages (`limit`/`continue`, 500 objects by default, as client-go's
 *   pager): every page comes from the first page's snapshot, each is trimmed by
 *   `transform` as it arrives, and the cache changes only once the last page is in, so
 *   neither a full untrimmed list nor a half-merged cache ever exists. A continue token
 *   that expired (`410`, etcd compacted the snapshot) restarts the list from scratch,
 *   and if that expires too, one unpaginated list follows, as client-go's pager does;
 * - when the API server answers `429` or `5xx` with `Retry-After`, it waits what the
 *   server asked (capped), not its own backoff: a throttled page is asked for again
 *   with the same token, a throttled watch resumes from its resourceVersion (no
 *   re-list, which would only add load to an API server that is shedding it);
 * - on `410 Gone` from a watch it re-lists, and on any other failure it re-lists after
 *   an exponential backoff with jitter; it never exits the process;
 * - a re-list is merged into the cache as real differences (adds, updates, deletes),
 *   never replayed as "everything added";
 * - it re-lists periodically anyway, which heals a watch that went silent, and
 *   reports `synced` only after the first list, so workers can be gated on it;
 * - named indexes (client-go's `Indexers`) find the objects with an index value without
 *   a scan of the whole cache; they change with the cache, on every add, update, delete
 *   and re-list.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { startWatch, WatchRefusedError } from './watch.js';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string; generation?: number; deletionTimestamp?: string };
}

/** What a list function is asked for: one page of at most `limit` objects, after `continue`. No limit: everything. */
export interface ListOptions {
  limit?: number;
  continue?: string;
}

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
  /** `metadata.continue`: more pages follow; pass it back to get the next. */
  continue?: string;
}

export type InformerEvent<T> =
  | { type: 'add'; object: T }
  | { type: 'update'; object: T; old: T }
  | { type: 'delete'; object: T }
  | { type: 'resync'; object: T };

/** Lifecycle reports, for logs and metrics. */
export type InformerLifecycle =
  | { type: 'listed'; count: number; pages: number; resourceVersion: string }
  | { type: 'watching'; resourceVersion: string }
  /** A watch's resourceVersion, or a list's continue token, expired (410): listing again. */
  | { type: 'expired'; resourceVersion: string }
  /** The API server asked to wait (`Retry-After` on a 429 or 5xx): waiting that long. */
  | { type: 'throttled'; error: unknown; retryInMs: number }
  | { type: 'error'; error: unknown; retryInMs: number };

/** Index name → the index values of an object (client-go's `Indexers`). */
export type Indexers<T> = Record<string, (object: T) => readonly string[]>;

export interface InformerOptions<T> {
  name: string;
  /** One page of the list (or all of it without `limit`); the kube layer's list functions. */
  list: (options: ListOptions) => Promise<ListResult<T>>;
  /** API path to watch, e.g. `/apis/remediator.dev/v1alpha1/remediationrequests`. */
  watchPath: string;
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Objects per LIST page (default 500, client-go's); 0 lists everything in one request. */
  pageSize?: number;
  /** Full re-list period; heals a watch that went silent. */
  relistIntervalMs?: number;
  /** Period at which every cached object is handed to handlers again (controller-runtime's SyncPeriod). */
  resyncIntervalMs?: number;
  onLifecycle?: (event: InformerLifecycle) => void;
  /**
   * Applied to every object as it enters the cache (list and watch), e.g. to drop
   * fields nothing reads (managedFields): the cache is most of a controller's memory.
   */
  transform?: (object: T) => T;
  /** Named indexes, read with `byIndex`. An index function must not throw. */
  indexers?: Indexers<T>;
}

/** client-go's page size (`pager.defaultPageSize`). */
export const DEFAULT_PAGE_SIZE = 500;
/**
 * The longest `Retry-After` obeyed as given: beyond it (a broken clock, a date far
 * ahead) the cache would stay stale for longer than any backoff of ours, twice the
 * longest of which this is.
 */
export const MAX_RETRY_AFTER_MS = 60_000;
/** A throttled page is asked for again this many times before the whole list is given up (and retried later). */
const PAGE_RETRIES = 5;

export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

/** The HTTP status of a failed call: client-node's `ApiException.code`, or a refused watch's `statusCode`. */
function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
  return typeof code === 'number' ? code : typeof statusCode === 'number' ? statusCode : undefined;
}

/**
 * How long the API server asked the client to wait before it tries again: `Retry-After`
 * (delay seconds or an HTTP date) on a 429 or a 5xx, as client-go's request layer reads
 * it; undefined when the server did not say. client-node keeps a failed call's response
 * headers on `ApiException.headers`; watch.ts keeps a refused watch's.
 */
export function retryAfterMs(error: unknown, now = Date.now()): number | undefined {
  const status = statusOf(error);
  if (status === undefined || (status !== 429 && status < 500)) return undefined;
  const headers = (error as { headers?: unknown }).headers;
  if (typeof headers !== 'object' || headers === null) return undefined;
  const raw = Object.entries(headers).find(([name]) => name.toLowerCase() === 'retry-after')?.[1];
  if (typeof raw !== 'string') return undefined;
  const value = raw.trim();
  if (/^[0-9]+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

class GoneError extends Error {}

/** A continue token the API server no longer knows (410 Expired): the snapshot it pointed into was compacted. */
class ContinueExpiredError extends Error {
  constructor(
    readonly resourceVersion: string,
    cause: unknown,
  ) {
    super('continue token expired', { cause });
  }
}

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  /** Index name → index value → keys of the cached objects with that value. */
  private readonly indices = new Map<string, Map<string, Set<string>>>();
  private readonly handlers: Array<(event: InformerEvent<T>) => void> = [];
  private readonly syncWaiters: Array<() => void> = [];
  private synced = false;
  private stopped = false;
  private abortWatch: (() => void) | undefined;
  private wake: (() => void) | undefined;
  private failures = 0;
  private lastRelist = 0;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: InformerOptions<T>) {
    for (const name of Object.keys(opts.indexers ?? {})) this.indices.set(name, new Map());
  }

  on(handler: (event: InformerEvent<T>) => void): void {
    this.handlers.push(handler);
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  /** The cached objects whose index `name` holds `value`. */
  byIndex(name: string, value: string): T[] {
    const index = this.indices.get(name);
    if (!index) throw new Error(`informer ${this.opts.name} has no index "${name}"`);
    const out: T[] = [];
    for (const key of index.get(value) ?? []) {
      const object = this.cache.get(key);
      if (object) out.push(object);
    }
    return out;
  }

  start(): void {
    void this.run();
    const resync = this.opts.resyncIntervalMs;
    if (resync && resync > 0) {
      this.resyncTimer = setInterval(() => {
        for (const object of this.cache.values()) this.emit({ type: 'resync', object });
      }, resync);
      this.resyncTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.abortWatch?.();
    this.wake?.();
  }

  private emit(event: InformerEvent<T>): void {
    for (const h of this.handlers) {
      try {
        h(event);
      } catch (error) {
        this.opts.logger.error({ err: error, informer: this.opts.name }, 'informer handler threw');
      }
    }
  }

  private async run(): Promise<void> {
    let resourceVersion: string | undefined;
    while (!this.stopped) {
      try {
        if (resourceVersion === undefined || Date.now() - this.lastRelist >= (this.opts.relistIntervalMs ?? 300_000)) {
          resourceVersion = await this.relist();
        }
        resourceVersion = await this.watchOnce(resourceVersion);
        this.failures = 0;
      } catch (error) {
        if (this.stopped) break;
        if (error instanceof GoneError) {
          this.opts.onLifecycle?.({ type: 'expired', resourceVersion: resourceVersion ?? '' });
          resourceVersion = undefined;
          continue;
        }
        const asked = retryAfterMs(error);
        this.failures++;
        if (asked !== undefined) {
          // Keep resourceVersion: a throttled watch resumes where it was (a 410 would say
          // if that is too old), and a throttled list is still due, so it runs again.
          const retryInMs = this.serverDelay(asked);
          this.opts.onLifecycle?.({ type: 'throttled', error, retryInMs });
          await this.sleep(retryInMs);
          continue;
        }
        resourceVersion = undefined;
        const retryInMs = Math.min(30_000, 500 * 2 ** (this.failures - 1)) * (1 + Math.random() * 0.2);
        this.opts.onLifecycle?.({ type: 'error', error, retryInMs });
        await this.sleep(retryInMs);
      }
    }
  }

  /** What the server asked for, capped, with a little jitter on top so replicas do not return in step. */
  private serverDelay(askedMs: number): number {
    return Math.max(100, Math.min(MAX_RETRY_AFTER_MS, askedMs)) * (1 + Math.random() * 0.1);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** List and merge into the cache as real differences. */
  private async relist(): Promise<string> {
    const { objects, resourceVersion, pages } = await this.listSnapshot();
    this.lastRelist = Date.now();
    for (const [key, object] of objects) {
      const old = this.cache.get(key);
      if (old !== object) this.put(key, object, old);
    }
    for (const [key, old] of this.cache) {
      if (!objects.has(key)) this.remove(key, old, old);
    }
    this.opts.onLifecycle?.({ type: 'listed', count: objects.size, pages, resourceVersion });
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    return resourceVersion;
  }

  /**
   * The whole list, page by page, as client-go's pager reads it: a continue token that
   * expired restarts the list (a fresh snapshot; the pages read so far are dropped, the
   * cache was not touched), and a second expiry falls back to one unpaginated list, which
   * cannot expire half-way.
   */
  private async listSnapshot(): Promise<{ objects: Map<string, T>; resourceVersion: string; pages: number }> {
    const pageSize = this.opts.pageSize ?? DEFAULT_PAGE_SIZE;
    for (const limit of [pageSize, pageSize]) {
      try {
        return await this.listPages(limit);
      } catch (error) {
        if (!(error instanceof ContinueExpiredError)) throw error;
        this.opts.logger.warn({ informer: this.opts.name, err: error.cause }, 'list continue token expired; listing again from the start');
        this.opts.onLifecycle?.({ type: 'expired', resourceVersion: error.resourceVersion });
      }
    }
    return this.listPages(0);
  }

  private async listPages(limit: number): Promise<{ objects: Map<string, T>; resourceVersion: string; pages: number }> {
    const objects = new Map<string, T>();
    let resourceVersion: string | undefined;
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await this.listPage(limit > 0 ? { limit, ...(token !== undefined && { continue: token }) } : {}, resourceVersion);
      pages++;
      // Every page carries the snapshot's resourceVersion; the first one's is the list's.
      resourceVersion ??= page.resourceVersion;
      for (const received of page.items) {
        const key = objectKey(received);
        const cached = this.cache.get(key);
        // An object the cache holds at this version is kept as it is: the received copy
        // is garbage at once, and an unchanged object is no event.
        objects.set(
          key,
          cached && cached.metadata?.resourceVersion === received.metadata?.resourceVersion ? cached : this.transformed(received),
        );
      }
      token = limit > 0 && page.continue ? page.continue : undefined;
      // A stopped informer must not merge a partial list: every object not read yet would look deleted.
      if (this.stopped) throw new Error(`informer ${this.opts.name} stopped while listing`);
    } while (token !== undefined);
    return { objects, resourceVersion: resourceVersion ?? '', pages };
  }

  /** One page; asked for again (same token) after what the server asked to wait, when it throttled. */
  private async listPage(options: ListOptions, resourceVersion: string | undefined): Promise<ListResult<T>> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.opts.list(options);
      } catch (error) {
        if (options.continue !== undefined && statusOf(error) === 410) throw new ContinueExpiredError(resourceVersion ?? '', error);
        const asked = retryAfterMs(error);
        if (asked === undefined || attempt >= PAGE_RETRIES || this.stopped) throw error;
        const retryInMs = this.serverDelay(asked);
        this.opts.onLifecycle?.({ type: 'throttled', error, retryInMs });
        await this.sleep(retryInMs);
        if (this.stopped) throw error;
      }
    }
  }

  private transformed(received: T): T {
    return this.opts.transform ? this.opts.transform(received) : received;
  }

  /** Sets (or replaces) a cached object, keeps the indexes in step, and tells the handlers. */
  private put(key: string, object: T, old: T | undefined): void {
    this.cache.set(key, object);
    this.reindex(key, object, old);
    this.emit(old ? { type: 'update', object, old } : { type: 'add', object });
  }

  /** Removes a cached object (`cached`: what the cache held, for the indexes); handlers get `object`. */
  private remove(key: string, cached: T | undefined, object: T): void {
    this.cache.delete(key);
    if (cached) this.reindex(key, undefined, cached);
    this.emit({ type: 'delete', object });
  }

  private reindex(key: string, object: T | undefined, old: T | undefined): void {
    for (const [name, indexer] of Object.entries(this.opts.indexers ?? {})) {
      const index = this.indices.get(name);
      if (!index) continue;
      const after = object ? indexer(object) : [];
      for (const value of old ? indexer(old) : []) {
        if (after.includes(value)) continue;
        const keys = index.get(value);
        keys?.delete(key);
        if (keys?.size === 0) index.delete(value);
      }
      for (const value of after) {
        const keys = index.get(value);
        if (keys) keys.add(key);
        else index.set(value, new Set([key]));
      }
    }
  }

  private upsert(key: string, received: T): void {
    const old = this.cache.get(key);
    if (old && old.metadata?.resourceVersion === received.metadata?.resourceVersion) return;
    this.put(key, this.transformed(received), old);
  }

  /** One watch, from `resourceVersion` until the server ends it; returns the last resourceVersion seen. */
  private async watchOnce(resourceVersion: string): Promise<string> {
    let rv = resourceVersion;
    this.opts.onLifecycle?.({ type: 'watching', resourceVersion: rv });
    const watch = await startWatch({
      kubeConfig: this.opts.kubeConfig,
      path: this.opts.watchPath,
      query: {
        resourceVersion: rv,
        allowWatchBookmarks: true,
        // Ends the watch cleanly before the 30 s inactivity abort.
        timeoutSeconds: 15 + Math.floor(Math.random() * 10),
      },
      onEvent: (type, object) => {
        const obj = object as T & { code?: number };
        switch (type) {
          case 'ADDED':
          case 'MODIFIED':
            this.upsert(objectKey(obj), obj);
            break;
          case 'DELETED': {
            const key = objectKey(obj);
            this.remove(key, this.cache.get(key), this.transformed(obj));
            break;
          }
          case 'BOOKMARK':
            break;
          case 'ERROR':
            // Thrown out of the event callback, it ends the watch with this error.
            throw obj.code === 410 ? new GoneError('resource version too old') : new Error(`watch error: ${JSON.stringify(obj)}`);
        }
        const next = obj.metadata?.resourceVersion;
        if (next) rv = next;
      },
    });
    this.abortWatch = watch.abort;
    if (this.stopped) watch.abort();
    const error = await watch.done;
    this.abortWatch = undefined;
    // A server-side end (timeoutSeconds) or an idle abort: resume from rv.
    if (error === null || error.name === 'TimeoutError') return rv;
    if (error instanceof WatchRefusedError && error.statusCode === 410) throw new GoneError('gone');
    throw error;
  }
}

/** The read side of an informer, as controllers and the intake see it. */
export interface Cache<T> {
  get(key: string): T | undefined;
  list(): T[];
  /** The cached objects whose index `name` holds `value` (see `InformerOptions.indexers`). */
  byIndex(name: string, value: string): T[];
  readonly hasSynced: boolean;
  waitForSync(): Promise<void>;
  on(handler: (event: InformerEvent<T>) => void): void;
  start(): void;
  stop(): void;
}

/**
 * One informer per watched namespace behind a single cache, for `--watch-namespace`
 * with several namespaces (an all-namespaces watch is one informer). Keys are
 * `namespace/name`, so each lookup goes to the informer that owns the namespace.
 */
export class InformerSet<T extends KubeObject> implements Cache<T> {
  constructor(private readonly byNamespace: ReadonlyMap<string, Informer<T>>) {}

  private get all(): Informer<T>[] {
    return [...this.byNamespace.values()];
  }

  get(key: string): T | undefined {
    const ns = key.slice(0, Math.max(0, key.indexOf('/')));
    const inf = this.byNamespace.get(ns) ?? (this.byNamespace.size === 1 ? this.all[0] : undefined);
    return inf?.get(key);
  }

  list(): T[] {
    return this.all.flatMap((i) => i.list());
  }

  byIndex(name: string, value: string): T[] {
    return this.all.flatMap((i) => i.byIndex(name, value));
  }

  get hasSynced(): boolean {
    return this.all.every((i) => i.hasSynced);
  }

  async waitForSync(): Promise<void> {
    await Promise.all(this.all.map((i) => i.waitForSync()));
  }

  on(handler: (event: InformerEvent<T>) => void): void {
    for (const i of this.all) i.on(handler);
  }

  start(): void {
    for (const i of this.all) i.start();
  }

  stop(): void {
    for (const i of this.all) i.stop();
  }
}
