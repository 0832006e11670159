import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import {
  Informer,
  retryAfterMs,
  type InformerEvent,
  type InformerLifecycle,
  type KubeObject,
  type ListOptions,
  type ListResult,
} from './informer.js';

interface Obj extends KubeObject {
  spec: { policy: string };
  trimmed?: boolean;
}

const obj = (name: string, rv: string, policy = 'p'): Obj => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv },
  spec: { policy },
});

/**
 * An API server for the watch side: each watch request is answered by the next
 * scripted reply (status, headers, event lines), and recorded with its query.
 */
class FakeWatchServer {
  readonly watches: Array<{ at: number; resourceVersion: string | null }> = [];
  private readonly replies: Array<{ status: number; headers?: Record<string, string>; lines?: object[]; hold?: boolean }> = [];
  private readonly open = new Set<ServerResponse>();
  private server: Server | undefined;
  port = 0;

  /** Replies to the next watches, in order; once they run out, every watch is held open until the test ends. */
  script(...replies: FakeWatchServer['replies']): void {
    this.replies.push(...replies);
  }

  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://x');
      this.watches.push({ at: Date.now(), resourceVersion: url.searchParams.get('resourceVersion') });
      const reply = this.replies.shift() ?? { status: 200, hold: true };
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      for (const line of reply.lines ?? []) res.write(`${JSON.stringify(line)}\n`);
      if (reply.status !== 200) res.write(JSON.stringify({ kind: 'Status', code: reply.status }));
      if (reply.hold) this.open.add(res);
      else res.end();
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server?.address() as AddressInfo).port;
  }

  /** Ends the watches held open: the server's clean end of a watch (its timeoutSeconds). */
  endWatches(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }

  async stop(): Promise<void> {
    this.endWatches();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
      currentContext: 'fake',
    });
    return kc;
  }
}

/** A paginated list over `objects`, answering like the API server (continue = index of the next object). */
function pagedList(objects: () => Obj[], resourceVersion: () => string) {
  const calls: ListOptions[] = [];
  const list = async (options: ListOptions): Promise<ListResult<Obj>> => {
    calls.push(options);
    const all = objects();
    const from = options.continue ? Number(options.continue) : 0;
    const to = options.limit ? from + options.limit : all.length;
    // Fresh copies, as from the wire: the informer owns (and may trim) what it receives.
    const items = structuredClone(all.slice(from, to));
    return { items, resourceVersion: resourceVersion(), ...(to < all.length && { continue: String(to) }) };
  };
  return { list, calls };
}

async function until(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const gone = (): ApiException<string> =>
  new ApiException(410, 'Expired', JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired' }), {});

describe('Informer', () => {
  const server = new FakeWatchServer();
  const informers: Informer<Obj>[] = [];
  const logger = pino({ level: 'silent' });

  beforeEach(async () => {
    await server.start();
  });

  afterEach(async () => {
    for (const i of informers.splice(0)) i.stop();
    await server.stop();
    server.watches.length = 0;
  });

  function informer(
    list: (o: ListOptions) => Promise<ListResult<Obj>>,
    extra: Partial<ConstructorParameters<typeof Informer<Obj>>[0]> = {},
  ): { inf: Informer<Obj>; lifecycle: InformerLifecycle[]; events: InformerEvent<Obj>[] } {
    const lifecycle: InformerLifecycle[] = [];
    const events: InformerEvent<Obj>[] = [];
    const inf = new Informer<Obj>({
      name: 'test',
      list,
      watchPath: '/apis/x/v1/namespaces/ns/things',
      kubeConfig: server.kubeConfig(),
      logger,
      onLifecycle: (e) => lifecycle.push(e),
      indexers: { policy: (o) => [`${o.metadata?.namespace}/${o.spec.policy}`] },
      ...extra,
    });
    inf.on((e) => events.push(e));
    informers.push(inf);
    return { inf, lifecycle, events };
  }

  test('lists in pages of pageSize, transforms each page as it arrives, and watches from the first page’s resourceVersion', async () => {
    const objects = Array.from({ length: 1234 }, (_, i) => obj(`o${i}`, String(i + 1)));
    let rv = 5000;
    // The server's resourceVersion moves between pages; the list's is the first page's.
    const { list, calls } = pagedList(
      () => objects,
      () => String(rv++),
    );
    let largestPageSeen = 0;
    const { inf, lifecycle } = informer(
      async (o) => {
        const page = await list(o);
        largestPageSeen = Math.max(largestPageSeen, page.items.length);
        return page;
      },
      { pageSize: 100, transform: (o) => ({ ...o, trimmed: true }) },
    );
    inf.start();
    await inf.waitForSync();
    expect(calls).toHaveLength(13);
    expect(calls[0]).toEqual({ limit: 100 });
    expect(calls.slice(1).every((c, i) => c.limit === 100 && c.continue === String((i + 1) * 100))).toBe(true);
    expect(largestPageSeen).toBe(100);
    expect(inf.list()).toHaveLength(1234);
    expect(inf.list().every((o) => o.trimmed)).toBe(true);
    expect(lifecycle.find((e) => e.type === 'listed')).toEqual({ type: 'listed', count: 1234, pages: 13, resourceVersion: '5000' });
    await until('a watch', () => server.watches.length > 0);
    expect(server.watches[0]?.resourceVersion).toBe('5000');
  });

  test('defaults to client-go’s page size of 500', async () => {
    const { list, calls } = pagedList(
      () => Array.from({ length: 1001 }, (_, i) => obj(`o${i}`, '1')),
      () => '1',
    );
    const { inf } = informer(list);
    inf.start();
    await inf.waitForSync();
    expect(calls.map((c) => c.limit)).toEqual([500, 500, 500]);
    expect(inf.list()).toHaveLength(1001);
  });

  test('an expired continue token restarts the list; the cache sees only the real differences', async () => {
    // First list: o0..o9. The next list's snapshot has lost o7, and its first attempt's token expires after one page.
    let objects = Array.from({ length: 10 }, (_, i) => obj(`o${i}`, '1'));
    const { list, calls } = pagedList(
      () => objects,
      () => '1',
    );
    let expireNext = false;
    const { inf, lifecycle, events } = informer(
      async (o) => {
        if (expireNext && o.continue) {
          expireNext = false;
          calls.push(o);
          throw gone();
        }
        return list(o);
      },
      { pageSize: 4, relistIntervalMs: 0 },
    );
    inf.start();
    await inf.waitForSync();
    expect(inf.list()).toHaveLength(10);
    await until('a watch', () => server.watches.length > 0);
    const before = calls.length;
    objects = objects.filter((o) => o.metadata?.name !== 'o7');
    expireNext = true;
    events.length = 0;
    // The watch ends; with relistIntervalMs 0 the informer lists again.
    server.endWatches();
    await until('the re-list after the expiry', () => lifecycle.filter((e) => e.type === 'listed').length >= 2);
    // page 1, the expired page 2, then a whole fresh list of 3 pages.
    expect(calls.slice(before, before + 5).map((c) => c.continue)).toEqual([undefined, '4', undefined, '4', '8']);
    expect(lifecycle.filter((e) => e.type === 'expired')).toHaveLength(1);
    // Nothing was taken for deleted while the list was half read: only o7 went.
    expect(events.filter((e) => e.type === 'delete').map((e) => e.object.metadata?.name)).toEqual(['o7']);
    expect(inf.list()).toHaveLength(9);
    expect(inf.byIndex('policy', 'ns/p')).toHaveLength(9);
  });

  test('a token that expires twice falls back to one unpaginated list, as client-go’s pager', async () => {
    const { list, calls } = pagedList(
      () => Array.from({ length: 10 }, (_, i) => obj(`o${i}`, '1')),
      () => '7',
    );
    const { inf, lifecycle } = informer(
      async (o) => {
        if (o.continue) {
          calls.push(o);
          throw gone();
        }
        return list(o);
      },
      { pageSize: 4 },
    );
    inf.start();
    await inf.waitForSync();
    expect(calls.map((c) => c.limit ?? 'all')).toEqual([4, 4, 4, 4, 'all']);
    expect(lifecycle.filter((e) => e.type === 'expired')).toHaveLength(2);
    expect(inf.list()).toHaveLength(10);
  });

  test('a throttled page (429, Retry-After in seconds) is asked for again with the same token, after the wait', async () => {
    const { list, calls } = pagedList(
      () => Array.from({ length: 10 }, (_, i) => obj(`o${i}`, '1')),
      () => '1',
    );
    const at: number[] = [];
    let throttle = true;
    const { inf, lifecycle } = informer(
      async (o) => {
        at.push(Date.now());
        if (o.continue === '4' && throttle) {
          throttle = false;
          throw new ApiException(429, 'Too Many Requests', '{}', { 'retry-after': '1' });
        }
        return list(o);
      },
      { pageSize: 4 },
    );
    inf.start();
    await inf.waitForSync();
    expect(calls.map((c) => c.continue)).toEqual([undefined, '4', '8']);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(1000);
    const throttled = lifecycle.find((e) => e.type === 'throttled');
    expect(throttled && throttled.type === 'throttled' && throttled.retryInMs).toBeGreaterThanOrEqual(1000);
    expect(inf.list()).toHaveLength(10);
  });

  test('a throttled watch (429 with Retry-After) waits what it says and resumes from its resourceVersion, without a re-list', async () => {
    const { list, calls } = pagedList(
      () => [obj('a', '1')],
      () => '42',
    );
    server.script({ status: 429, headers: { 'retry-after': '1' } });
    const { inf, lifecycle } = informer(list);
    inf.start();
    await inf.waitForSync();
    await until('the second watch', () => server.watches.length >= 2, 5_000);
    expect(server.watches[1]!.at - server.watches[0]!.at).toBeGreaterThanOrEqual(1000);
    expect(server.watches.map((w) => w.resourceVersion)).toEqual(['42', '42']);
    expect(calls).toHaveLength(1);
    expect(lifecycle.some((e) => e.type === 'throttled')).toBe(true);
    expect(lifecycle.some((e) => e.type === 'error')).toBe(false);
  });

  test('a 503 without Retry-After is an ordinary failure: backoff, then a re-list', async () => {
    const { list, calls } = pagedList(
      () => [obj('a', '1')],
      () => '42',
    );
    server.script({ status: 503 });
    const { inf, lifecycle } = informer(list);
    inf.start();
    await until('the re-list', () => calls.length >= 2, 5_000);
    expect(lifecycle.some((e) => e.type === 'error')).toBe(true);
  });

  test('named indexes follow adds, updates, deletes and re-lists', async () => {
    let objects = [obj('a', '1', 'p1'), obj('b', '1', 'p1'), obj('c', '1', 'p2')];
    const { list } = pagedList(
      () => objects,
      () => '10',
    );
    // The watch moves b to p2, deletes a and adds d; when it ends, the re-list drops c.
    server.script({
      status: 200,
      hold: true,
      lines: [
        { type: 'MODIFIED', object: obj('b', '11', 'p2') },
        { type: 'DELETED', object: obj('a', '12', 'p1') },
        { type: 'ADDED', object: obj('d', '13', 'p1') },
      ],
    });
    const { inf, lifecycle } = informer(list, { relistIntervalMs: 0 });
    const names = (policy: string) =>
      inf
        .byIndex('policy', `ns/${policy}`)
        .map((o) => o.metadata?.name)
        .sort();
    inf.start();
    await inf.waitForSync();
    await until('the watch events', () => inf.get('ns/d') !== undefined);
    expect(names('p1')).toEqual(['d']);
    expect(names('p2')).toEqual(['b', 'c']);
    objects = [obj('b', '11', 'p2'), obj('d', '13', 'p1')];
    server.endWatches();
    await until('the second list', () => lifecycle.filter((e) => e.type === 'listed').length >= 2);
    expect(names('p1')).toEqual(['d']);
    expect(names('p2')).toEqual(['b']);
    expect(inf.list()).toHaveLength(2);
    expect(inf.byIndex('policy', 'ns/none')).toEqual([]);
    expect(() => inf.byIndex('nope', 'x')).toThrow(/no index "nope"/);
  });
});

describe('retryAfterMs', () => {
  const now = Date.parse('2026-11-30T10:00:00Z');

  test('delay seconds and HTTP dates, on 429 and 5xx only', () => {
    expect(retryAfterMs(new ApiException(429, '', '', { 'retry-after': '3' }), now)).toBe(3000);
    expect(retryAfterMs({ statusCode: 503, headers: { 'Retry-After': 'Mon, 30 Nov 2026 10:00:05 GMT' } }, now)).toBe(5000);
    expect(retryAfterMs({ statusCode: 503, headers: { 'retry-after': 'Mon, 30 Nov 2026 09:00:00 GMT' } }, now)).toBe(0);
    expect(retryAfterMs(new ApiException(409, '', '', { 'retry-after': '3' }), now)).toBeUndefined();
    expect(retryAfterMs(new ApiException(429, '', '', {}), now)).toBeUndefined();
    expect(retryAfterMs(new ApiException(429, '', '', { 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(retryAfterMs(new Error('ECONNRESET'), now)).toBeUndefined();
  });
});
