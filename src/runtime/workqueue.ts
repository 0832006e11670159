/**
 * A rate-limited work queue with client-go's semantics, the heart of level-triggered
 * reconciliation: a key is queued at most once however many events name it, is never
 * handed to two workers at once (an add while it is processing is held until `done`),
 * may be re-added after a delay, and backs off exponentially with jitter per key while
 * its reconciles keep failing. Written here because no maintained npm package offers
 * these semantics (dedupe + processing set + per-key backoff + delayed add).
 */
import { systemClock, type TimerClock } from './clock.js';

export interface BackoffOptions {
  /** First retry delay. controller-runtime uses 5 ms. */
  baseDelayMs: number;
  /** Upper bound of a retry delay. controller-runtime uses 1000 s. */
  maxDelayMs: number;
  /** Fraction of random spread added to each delay, so failing keys do not retry in lockstep. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseDelayMs: 5, maxDelayMs: 1_000_000, jitter: 0.1 };

export class WorkQueue<K extends string = string> {
  private readonly queue: K[] = [];
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly failures = new Map<K, number>();
  private readonly delayed = new Map<K, { at: number; cancel: () => void }>();
  private readonly waiters: Array<(key: K | undefined) => void> = [];
  private readonly drainWaiters: Array<() => void> = [];
  private shuttingDown = false;

  constructor(
    private readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
    /** Both the due time of a delayed add and the timer that fires it come from this clock. */
    private readonly clock: TimerClock = systemClock,
    private readonly random: () => number = Math.random,
  ) {}

  /** Queue a key now. A no-op when it is already queued; deferred while it is being processed. */
  add(key: K): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else {
      this.queue.push(key);
    }
  }

  /** Queue a key after a delay; an earlier pending delay for the same key wins. */
  addAfter(key: K, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    pending?.cancel();
    const cancel = this.clock.setTimer(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { at, cancel });
  }

  /** Re-queue a key whose reconcile failed, after its per-key exponential backoff. */
  addRateLimited(key: K): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = this.backoffDelay(n);
    this.addAfter(key, delay);
    return delay;
  }

  backoffDelay(failures: number): number {
    const exp = Math.min(this.backoff.baseDelayMs * 2 ** failures, this.backoff.maxDelayMs);
    return Math.min(this.backoff.maxDelayMs, exp * (1 + this.backoff.jitter * this.random()));
  }

  /** Forget a key's failure count: its next failure starts from the base delay again. */
  forget(key: K): void {
    this.failures.delete(key);
  }

  /** Wait for the next key; `undefined` once the queue shuts down. The caller must call `done`. */
  get(): Promise<K | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Mark a key processed; if it was added meanwhile, it goes back on the queue. */
  done(key: K): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
    if (this.processing.size === 0) for (const w of this.drainWaiters.splice(0)) w();
  }

  get length(): number {
    return this.queue.length;
  }

  /** Stop handing out keys; resolves once in-flight keys are done (or at once when `drain` is false). */
  async shutdown(drain = true): Promise<void> {
    this.shuttingDown = true;
    for (const { cancel } of this.delayed.values()) cancel();
    this.delayed.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
    if (drain && this.processing.size > 0) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }
}
