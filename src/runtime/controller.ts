/**
 * A controller: a work queue of `namespace/name` keys drained by a bounded number of
 * workers that call a reconciler, as controller-runtime does. The reconciler gets only
 * the key, never the event, so it always works from current state. An error re-queues
 * the key with per-key exponential backoff; success forgets the failure count; a throw
 * is caught and logged with a reconcile id, so one bad object never stops the others.
 * There is no terminal error: a reconciler that meets what retrying cannot fix records
 * it in status (a Failed phase, a False condition) and returns normally.
 *
 * src/runtime is the operator's small framework (queue, controller, informer, leader
 * election, clock), independent of remediator's API and of AWS.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';
import { WorkQueue, type BackoffOptions } from './workqueue.js';

export interface Request {
  namespace: string;
  name: string;
}

export interface Result {
  /** Reconcile this key again after the delay, even if nothing changes. */
  requeueAfterMs?: number;
}

export interface Reconciler {
  reconcile(request: Request, log: Logger): Promise<Result | void>;
}

export interface ControllerOptions {
  name: string;
  reconciler: Reconciler;
  logger: Logger;
  metrics: Metrics;
  concurrency?: number;
  backoff?: BackoffOptions;
}

export function keyOf(req: Request): string {
  return `${req.namespace}/${req.name}`;
}

export function requestOf(key: string): Request {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

export class Controller {
  readonly queue: WorkQueue;
  private workers: Promise<void>[] = [];
  private readonly log: Logger;

  constructor(private readonly opts: ControllerOptions) {
    this.queue = new WorkQueue(opts.backoff);
    this.log = opts.logger.child({ controller: opts.name });
  }

  get name(): string {
    return this.opts.name;
  }

  enqueue(req: Request): void {
    this.queue.add(keyOf(req));
    this.opts.metrics.workqueueDepth.set({ name: this.opts.name }, this.queue.length);
  }

  enqueueAfter(req: Request, delayMs: number): void {
    this.queue.addAfter(keyOf(req), delayMs);
  }

  start(): void {
    const n = this.opts.concurrency ?? 2;
    for (let i = 0; i < n; i++) this.workers.push(this.worker());
    this.log.info({ workers: n }, 'controller started');
  }

  /** Stop taking keys and wait for in-flight reconciles to finish. */
  async stop(): Promise<void> {
    await this.queue.shutdown(true);
    await Promise.all(this.workers);
    this.log.info('controller stopped');
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.opts.metrics.workqueueDepth.set({ name: this.opts.name }, this.queue.length);
      try {
        await this.reconcileKey(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async reconcileKey(key: string): Promise<void> {
    const req = requestOf(key);
    const log = this.log.child({ namespace: req.namespace, name: req.name, reconcileID: randomUUID() });
    const end = this.opts.metrics.reconcileDuration.startTimer({ controller: this.opts.name });
    const { reconcileTotal } = this.opts.metrics;
    try {
      const result = await this.opts.reconciler.reconcile(req, log);
      this.queue.forget(key);
      if (result?.requeueAfterMs !== undefined && result.requeueAfterMs > 0) {
        this.queue.addAfter(key, result.requeueAfterMs);
        reconcileTotal.inc({ controller: this.opts.name, result: 'requeue_after' });
      } else {
        reconcileTotal.inc({ controller: this.opts.name, result: 'success' });
      }
    } catch (error) {
      const delay = this.queue.addRateLimited(key);
      reconcileTotal.inc({ controller: this.opts.name, result: 'error' });
      this.opts.metrics.reconcileErrors.inc({ controller: this.opts.name });
      this.opts.metrics.workqueueRetries.inc({ name: this.opts.name });
      log.warn({ err: error, retryInMs: Math.round(delay) }, 'reconcile failed; retrying with backoff');
    } finally {
      end();
    }
  }
}
