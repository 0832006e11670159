/**
 * The manager, as controller-runtime's: it holds the shared caches (one informer per
 * kind, whatever number of controllers watch it), the controllers, and the Lease, and
 * runs them in order: caches start and sync on every replica (the intake and readiness
 * need them, leader or not); controllers start only while this replica leads, after the
 * `beforeControllers` step (the ledger load); on stop, controllers finish their in-flight
 * reconciles before the caches stop and the Lease is released.
 *
 * It only wires. What enqueues a controller is declared by the controller itself, next to
 * its reconciler, through `controller(...).watches(cache, handler)` (kubebuilder's
 * `SetupWithManager`): a handler maps a cache event to keys and never sees the reconcile.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';
import { Controller, type ControllerOptions, type Request } from './controller.js';
import type { Cache, InformerEvent } from './informer.js';
import type { LeaderElector } from './leaderelection.js';

/** What a watch handler may do: put keys on its controller's queue, now or after a delay. */
export interface Enqueue {
  add(request: Request): void;
  addAfter(request: Request, delayMs: number): void;
}

/** Maps one event of a watched cache to the keys its controller should look at again. */
export type EventHandler<T> = (event: InformerEvent<T>, queue: Enqueue) => void;

/** What the manager starts, waits for and stops in a cache; `Informer` and `InformerSet` are ones. */
export type ManagedCache = Pick<Cache<unknown>, 'hasSynced' | 'start' | 'stop' | 'waitForSync'>;

/** A record of named caches (an interface of `Cache` fields is one). */
export type CacheSet<C> = { [K in keyof C]: ManagedCache };

export interface ManagerOptions<C extends CacheSet<C>> {
  /** The shared caches, by name; controllers read and watch them through `manager.caches`. */
  caches: C;
  logger: Logger;
  metrics: Metrics;
  /** Leader election; without it this replica leads from the start. */
  elector?: LeaderElector;
  /** Runs each time this replica starts leading, before any controller starts; it retries on its own. */
  beforeControllers?: () => Promise<void>;
  /** Runs on stop, once the controllers and caches are stopped and before the Lease is released. */
  afterControllers?: () => Promise<void>;
}

/** A registered controller, for declaring what enqueues it. */
export interface ControllerRegistration {
  readonly controller: Controller;
  /** Calls `handler` for every event of `cache`, with this controller's queue. */
  watches<T>(cache: Pick<Cache<T>, 'on'>, handler: EventHandler<T>): ControllerRegistration;
}

export class Manager<C extends CacheSet<C>> {
  readonly caches: C;
  private readonly controllers: Controller[] = [];
  private controllersStarted = false;

  constructor(private readonly opts: ManagerOptions<C>) {
    this.caches = opts.caches;
  }

  /**
   * Registers a controller; the manager starts it when leading, in registration order,
   * and stops it first on shutdown.
   */
  controller(options: Omit<ControllerOptions, 'logger' | 'metrics'>): ControllerRegistration {
    const controller = new Controller({ ...options, logger: this.opts.logger, metrics: this.opts.metrics });
    this.controllers.push(controller);
    const queue: Enqueue = {
      add: (request) => controller.enqueue(request),
      addAfter: (request, delayMs) => controller.enqueueAfter(request, delayMs),
    };
    const registration: ControllerRegistration = {
      controller,
      watches: (cache, handler) => {
        cache.on((event) => handler(event, queue));
        return registration;
      },
    };
    return registration;
  }

  private get allCaches(): ManagedCache[] {
    return Object.values(this.opts.caches) as ManagedCache[];
  }

  /** Every cache has synced: a follower needs nothing more to serve the intake and /readyz. */
  get ready(): boolean {
    return this.allCaches.every((c) => c.hasSynced);
  }

  /** Starts and syncs the caches, then the controllers (at once, or when this replica starts leading). */
  async start(onLostLeadership: () => void): Promise<void> {
    const { logger, metrics, elector } = this.opts;
    for (const c of this.allCaches) c.start();
    await Promise.all(this.allCaches.map((c) => c.waitForSync()));
    logger.info('informer caches synced');
    if (!elector) return this.startControllers();
    elector.run({
      onStartedLeading: () => {
        metrics.isLeader.set(1);
        void this.startControllers();
      },
      onStoppedLeading: () => {
        metrics.isLeader.set(0);
        // Stop taking keys at once, before anything else: another replica may lead already.
        for (const c of this.controllers) void c.queue.shutdown(false);
        onLostLeadership();
      },
    });
  }

  private async startControllers(): Promise<void> {
    if (this.controllersStarted) return;
    this.controllersStarted = true;
    await this.opts.beforeControllers?.();
    for (const c of this.controllers) c.start();
  }

  /** Ordered shutdown: finish in-flight reconciles, stop the watches, then release the Lease. */
  async stop(): Promise<void> {
    await Promise.all(this.controllers.map((c) => c.stop()));
    for (const c of this.allCaches) c.stop();
    await this.opts.afterControllers?.();
    await this.opts.elector?.release();
    this.opts.metrics.isLeader.set(0);
  }
}
