/**
 * Runs tasks one at a time, each after the one before it settled, in the order they
 * were handed in. The batching AWS readers use it to keep one call in flight: a batch
 * waiting its turn goes on collecting requests, so under load each call carries many;
 * `busy` tells them whether there is a call to wait behind at all (when there is not,
 * they send at once instead of holding a window open for requests that are not coming).
 */
export class OneAtATime {
  private tail: Promise<unknown> = Promise.resolve();
  /** Tasks handed in and not yet settled (the running one included). */
  private pending = 0;

  /** True while a task runs or waits its turn. */
  get busy(): boolean {
    return this.pending > 0;
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    this.pending++;
    const result = this.tail.then(task);
    const settled = () => {
      this.pending--;
    };
    this.tail = result.then(settled, settled);
    return result;
  }
}

/**
 * Starts a new batch's call: behind the call in flight when there is one (the batch
 * collects until its turn), else after `windowMs`, or on the next turn of the event
 * loop when that is 0 — which still lets requests made in this turn share the call.
 */
export function sendWhenDue(busy: boolean, windowMs: number, send: () => void): void {
  if (busy) send();
  else if (windowMs > 0) setTimeout(send, windowMs);
  else setImmediate(send);
}
