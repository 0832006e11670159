/**
 * A supervised list-and-watch cache (a "reflector" in client-go's terms).
 *
 * client-node's own `ListWatch` stops for good on most watch errors, and its `Watch`
 * aborts after 30 s without data, so this informer owns the loop itself:
 * - it lists, then watches from the list's resourceVersion with bookmarks, asking the
 *   server to end each watch before client-node's inactivity timer would (a clean
 *   re-watch from the last resourceVersion instead of an abort);
 * - on `410 Gone` it re-lists, and on any other failure it re-lists after an
 *   exponential backoff with jitter; it never exits the process;
 * - a re-list is merged into the cache as real differences (adds, updates, deletes),
 *   never replayed as "everything added";
 * - it re-lists periodically anyway, which heals a watch that went silent, and
 *   reports `synced` only after the first list, so workers can be gated on it.
 */
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string; generation?: number; deletionTimestamp?: string };
}

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

export type InformerEvent<T> =
  | { type: 'add'; object: T }
  | { type: 'update'; object: T; old: T }
  | { type: 'delete'; object: T }
  | { type: 'resync'; object: T };

/** Lifecycle reports, for logs and metrics. */
export type InformerLifecycle =
  | { type: 'listed'; count: number; resourceVersion: string }
  | { type: 'watching'; resourceVersion: string }
  | { type: 'expired'; resourceVersion: string }
  | { type: 'error'; error: unknown; retryInMs: number };

export interface InformerOptions<T> {
  name: string;
  list: () => Promise<ListResult<T>>;
  /** API path to watch, e.g. `/apis/remediator.dev/v1alpha1/remediationrequests`. */
  watchPath: string;
  kubeConfig: KubeConfig;
  logger: Logger;
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
}

export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

class GoneError extends Error {}

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: Array<(event: InformerEvent<T>) => void> = [];
  private readonly syncWaiters: Array<() => void> = [];
  private synced = false;
  private stopped = false;
  private abort: AbortController | undefined;
  private wake: (() => void) | undefined;
  private failures = 0;
  private lastRelist = 0;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: InformerOptions<T>) {}

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
    this.abort?.abort();
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
        resourceVersion = undefined;
        const retryInMs = Math.min(30_000, 500 * 2 ** this.failures) * (1 + Math.random() * 0.2);
        this.failures++;
        this.opts.onLifecycle?.({ type: 'error', error, retryInMs });
        await this.sleep(retryInMs);
      }
    }
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
    const { items, resourceVersion } = await this.opts.list();
    this.lastRelist = Date.now();
    const seen = new Set<string>();
    for (const object of items) {
      const key = objectKey(object);
      seen.add(key);
      this.upsert(key, object);
    }
    for (const [key, object] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit({ type: 'delete', object });
      }
    }
    this.opts.onLifecycle?.({ type: 'listed', count: items.length, resourceVersion });
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    return resourceVersion;
  }

  private upsert(key: string, received: T): void {
    const object = this.opts.transform ? this.opts.transform(received) : received;
    const old = this.cache.get(key);
    if (old?.metadata?.resourceVersion === object.metadata?.resourceVersion && old) return;
    this.cache.set(key, object);
    this.emit(old ? { type: 'update', object, old } : { type: 'add', object });
  }

  /** One watch, from `resourceVersion` until the server ends it; returns the last resourceVersion seen. */
  private watchOnce(resourceVersion: string): Promise<string> {
    let rv = resourceVersion;
    return new Promise<string>((resolve, reject) => {
      const watch = new Watch(this.opts.kubeConfig);
      let settled = false;
      const finish = (err: unknown) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve(rv);
      };
      this.opts.onLifecycle?.({ type: 'watching', resourceVersion: rv });
      watch
        .watch(
          this.opts.watchPath,
          {
            resourceVersion: rv,
            allowWatchBookmarks: true,
            // Ends the watch cleanly before client-node's 30 s inactivity abort.
            timeoutSeconds: 15 + Math.floor(Math.random() * 10),
          },
          (type: string, object: unknown) => {
            const obj = object as T & { code?: number };
            switch (type) {
              case 'ADDED':
              case 'MODIFIED':
                this.upsert(objectKey(obj), obj);
                break;
              case 'DELETED': {
                const key = objectKey(obj);
                this.cache.delete(key);
                this.emit({ type: 'delete', object: this.opts.transform ? this.opts.transform(obj) : obj });
                break;
              }
              case 'BOOKMARK':
                break;
              case 'ERROR':
                finish(obj.code === 410 ? new GoneError('resource version too old') : new Error(`watch error: ${JSON.stringify(obj)}`));
                return;
            }
            const next = obj.metadata?.resourceVersion;
            if (next) rv = next;
          },
          (err: unknown) => {
            // A timeout abort is how client-node reports an idle watch: resume from rv.
            if (err && (err as { name?: string }).name === 'TimeoutError') finish(null);
            else if (err && (err as { statusCode?: number }).statusCode === 410) finish(new GoneError('gone'));
            else finish(err);
          },
        )
        .then((ctrl) => {
          this.abort = ctrl;
          if (this.stopped) ctrl.abort();
        })
        .catch(finish);
    });
  }
}

/** The read side of an informer, as controllers and the intake see it. */
export interface Cache<T> {
  get(key: string): T | undefined;
  list(): T[];
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
