/**
 * Runs tasks one at a time, each after the one before it settled, in the order they
 * were handed in. The batching AWS readers use it to keep one call in flight: a batch
 * waiting its turn goes on collecting requests, so under load each call carries many.
 */
export class OneAtATime {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
