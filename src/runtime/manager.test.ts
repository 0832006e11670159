import { pino } from 'pino';
import { Metrics } from '../observability/metrics.js';
import type { Request } from './controller.js';
import type { InformerEvent } from './informer.js';
import { Manager } from './manager.js';

/** A cache that syncs when told to and emits what the test hands it. */
class FakeCache<T> {
  hasSynced = false;
  started = false;
  stopped = false;
  private readonly handlers: Array<(e: InformerEvent<T>) => void> = [];
  private readonly waiters: Array<() => void> = [];
  constructor(private readonly log: string[]) {}
  on(h: (e: InformerEvent<T>) => void): void {
    this.handlers.push(h);
  }
  start(): void {
    this.started = true;
  }
  stop(): void {
    this.stopped = true;
    this.log.push('cache stopped');
  }
  waitForSync(): Promise<void> {
    return this.hasSynced ? Promise.resolve() : new Promise((r) => this.waiters.push(r));
  }
  sync(): void {
    this.hasSynced = true;
    for (const w of this.waiters.splice(0)) w();
  }
  emit(e: InformerEvent<T>): void {
    for (const h of this.handlers) h(e);
  }
}

type Obj = { metadata: { namespace: string; name: string } };
const obj = (name: string): Obj => ({ metadata: { namespace: 'ns', name } });
const tick = () => new Promise((r) => setTimeout(r, 5));

function setup() {
  const log: string[] = [];
  const caches = { a: new FakeCache<Obj>(log), b: new FakeCache<Obj>(log) };
  const seen: string[] = [];
  const mgr = new Manager({
    caches,
    logger: pino({ level: 'silent' }),
    metrics: new Metrics(false),
    beforeControllers: async () => void log.push('before controllers'),
    afterControllers: async () => void log.push('after controllers'),
  });
  const reconciler = {
    reconcile: async (r: Request) => {
      seen.push(`${r.namespace}/${r.name}`);
    },
  };
  return { log, caches, seen, mgr, reconciler };
}

describe('Manager', () => {
  test('a controller is enqueued by the watches it declares, and only by them', async () => {
    const { caches, seen, mgr, reconciler } = setup();
    mgr
      .controller({ name: 'x', reconciler, concurrency: 1 })
      .watches(caches.a, (e, q) => q.add(e.object.metadata))
      .watches(caches.b, (e, q) => q.add({ namespace: 'ns', name: `from-b-${e.object.metadata.name}` }));
    caches.a.sync();
    caches.b.sync();
    await mgr.start(() => {});
    caches.a.emit({ type: 'add', object: obj('one') });
    caches.b.emit({ type: 'delete', object: obj('two') });
    await tick();
    expect(seen.sort()).toEqual(['ns/from-b-two', 'ns/one']);
    await mgr.stop();
  });

  test('controllers start only after every cache synced and the step before controllers ran', async () => {
    const { log, caches, seen, mgr, reconciler } = setup();
    mgr.controller({ name: 'x', reconciler }).watches(caches.a, (e, q) => q.add(e.object.metadata));
    const started = mgr.start(() => {});
    caches.a.sync();
    caches.a.emit({ type: 'add', object: obj('early') });
    await tick();
    expect({ ready: mgr.ready, seen, log }).toEqual({ ready: false, seen: [], log: [] });
    caches.b.sync();
    await started;
    await tick();
    expect({ ready: mgr.ready, seen, log }).toEqual({ ready: true, seen: ['ns/early'], log: ['before controllers'] });
    await mgr.stop();
  });

  test('stop finishes the controllers before stopping the caches, then runs the step after controllers', async () => {
    const { log, caches, mgr } = setup();
    let release: () => void = () => {};
    const slow = { reconcile: () => new Promise<void>((r) => (release = r)).then(() => void log.push('reconcile finished')) };
    mgr.controller({ name: 'x', reconciler: slow }).watches(caches.a, (e, q) => q.add(e.object.metadata));
    caches.a.sync();
    caches.b.sync();
    await mgr.start(() => {});
    caches.a.emit({ type: 'add', object: obj('one') });
    await tick();
    const stopped = mgr.stop();
    await tick();
    expect(log).toEqual(['before controllers']);
    release();
    await stopped;
    expect(log).toEqual(['before controllers', 'reconcile finished', 'cache stopped', 'cache stopped', 'after controllers']);
  });
});
