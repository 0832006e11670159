// KubeEventRecorder against a stand-in API server over real HTTP: what it sends (the
// events.k8s.io/v1 body, series patches), that record() never waits for the server,
// and that its queue stays bounded when the server stalls. test/e2e/events.test.ts
// checks the same bodies against the real kube-apiserver.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeEventRecorder } from './resources.js';

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: unknown;
}

async function apiServer(answer: (req: Seen, res: ServerResponse) => void): Promise<{ server: Server; seen: Seen[]; kc: KubeConfig }> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      const s = {
        method: req.method ?? '',
        url: req.url ?? '',
        contentType: req.headers['content-type'],
        body: text ? JSON.parse(text) : undefined,
      };
      seen.push(s);
      answer(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return { server, seen, kc };
}

const json = (res: ServerResponse, code: number, body: unknown) =>
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
const ok = (req: Seen, res: ServerResponse) => json(res, req.method === 'POST' ? 201 : 200, req.body ?? {});

const policy = {
  apiVersion: 'remediator.dev/v1alpha1',
  kind: 'AlertPolicy',
  metadata: { name: 'restart-nginx', namespace: 'web', uid: 'u-1', resourceVersion: '7' },
};

describe('KubeEventRecorder', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    server = undefined;
  });

  test('writes events.k8s.io/v1 Events with reporting controller and instance', async () => {
    const api = await apiServer(ok);
    server = api.server;
    const now = Date.parse('2026-01-02T03:04:05.678Z');
    const rec = new KubeEventRecorder(
      api.kc,
      'remediator',
      { now: () => now },
      (e) => {
        throw e;
      },
      { reportingInstance: 'remediator-0' },
    );
    await rec.record(policy, 'Warning', 'CircuitOpen', 'circuit breaker open after 3 failures');
    await rec.flush();
    expect(api.seen).toHaveLength(1);
    expect(api.seen[0]).toMatchObject({ method: 'POST', url: '/apis/events.k8s.io/v1/namespaces/web/events' });
    expect(api.seen[0]!.body).toMatchObject({
      metadata: { namespace: 'web', name: expect.stringMatching(/^restart-nginx\.[0-9a-f]+$/) },
      // MicroTime: the API server parses exactly six fractional digits.
      eventTime: '2026-01-02T03:04:05.678000Z',
      regarding: { apiVersion: 'remediator.dev/v1alpha1', kind: 'AlertPolicy', name: 'restart-nginx', namespace: 'web', uid: 'u-1' },
      type: 'Warning',
      reason: 'CircuitOpen',
      action: 'CircuitOpen',
      note: 'circuit breaker open after 3 failures',
      reportingController: 'remediator.dev/remediator',
      reportingInstance: 'remediator-0',
    });
  });

  test('aggregates repeats into a series, and starts a new Event after the window or for a new note', async () => {
    const api = await apiServer(ok);
    server = api.server;
    let now = 1_000_000;
    const rec = new KubeEventRecorder(
      api.kc,
      'remediator',
      { now: () => now },
      (e) => {
        throw e;
      },
      { seriesWindowMs: 60_000 },
    );
    await rec.record(policy, 'Warning', 'AccessDenied', 'grant ssm:SendCommand');
    now += 10_000;
    await rec.record(policy, 'Warning', 'AccessDenied', 'grant ssm:SendCommand');
    now += 10_000;
    await rec.record(policy, 'Warning', 'AccessDenied', 'grant ssm:SendCommand');
    await rec.record(policy, 'Warning', 'AccessDenied', 'grant ec2:DescribeInstances');
    now += 61_000;
    await rec.record(policy, 'Warning', 'AccessDenied', 'grant ssm:SendCommand');
    await rec.flush();

    expect(api.seen.map((s) => s.method)).toEqual(['POST', 'PATCH', 'PATCH', 'POST', 'POST']);
    const first = (api.seen[0]!.body as { metadata: { name: string } }).metadata.name;
    expect(api.seen[1]!.url).toBe(`/apis/events.k8s.io/v1/namespaces/web/events/${first}`);
    expect(api.seen[1]!.contentType).toBe('application/json-patch+json');
    expect(api.seen[2]!.body).toEqual([
      { op: 'add', path: '/series', value: { count: 3, lastObservedTime: new Date(1_020_000).toISOString().replace('Z', '000Z') } },
    ]);
  });

  test('a series whose Event expired starts again with a new Event', async () => {
    const api = await apiServer((req, res) => (req.method === 'PATCH' ? json(res, 404, { kind: 'Status', code: 404 }) : ok(req, res)));
    server = api.server;
    const rec = new KubeEventRecorder(api.kc, 'remediator', { now: () => 5 }, (e) => {
      throw e;
    });
    await rec.record(policy, 'Normal', 'Valid', 'policy is valid');
    await rec.record(policy, 'Normal', 'Valid', 'policy is valid');
    await rec.flush();
    expect(api.seen.map((s) => s.method)).toEqual(['POST', 'PATCH', 'POST']);
  });

  test('record() returns at once while the API server stalls; the queue stays bounded, and overflow is combined, not dropped', async () => {
    const held: ServerResponse[] = [];
    const api = await apiServer((_req, res) => held.push(res));
    server = api.server;
    const errors: unknown[] = [];
    const results: string[] = [];
    const rec = new KubeEventRecorder(api.kc, 'remediator', { now: () => 1 }, (e) => errors.push(e), {
      maxQueued: 3,
      onResult: (r) => results.push(r),
    });
    const started = performance.now();
    for (let i = 0; i < 10; i++) await rec.record(policy, 'Normal', 'Tick', `tick ${i}`);
    expect(performance.now() - started).toBeLessThan(100);
    // One in flight (stalled), three queued, six combined into one Event; nothing dropped.
    expect(rec.dropped).toBe(0);
    expect(rec.coalesced).toBe(5);
    expect(errors).toEqual([]);

    // Once the server answers, the queued ones are written in order, then the combined one.
    const release = setInterval(() => held.splice(0).forEach((res) => json(res, 201, {})), 5);
    try {
      await rec.flush();
    } finally {
      clearInterval(release);
    }
    expect(api.seen.map((s) => (s.body as { note: string }).note)).toEqual([
      'tick 0',
      'tick 1',
      'tick 2',
      'tick 3',
      'tick 9 (and 5 more Tick Event(s) on AlertPolicy objects in web, combined into this one during a burst)',
    ]);
    // Every recorded Event has exactly one outcome.
    expect(results.filter((r) => r === 'written')).toHaveLength(5);
    expect(results.filter((r) => r === 'coalesced')).toHaveLength(5);
    expect(results).toHaveLength(10);
  });

  test('beyond the combined Events too, an Event is dropped, counted, and reported once per burst', async () => {
    const held: ServerResponse[] = [];
    const api = await apiServer((_req, res) => held.push(res));
    server = api.server;
    const errors: unknown[] = [];
    const results: string[] = [];
    const rec = new KubeEventRecorder(api.kc, 'remediator', { now: () => 1 }, (e) => errors.push(e), {
      maxQueued: 1,
      maxCombined: 1,
      onResult: (r) => results.push(r),
    });
    await rec.record(policy, 'Normal', 'Tick', 'in flight');
    await rec.record(policy, 'Normal', 'Tick', 'queued');
    await rec.record(policy, 'Normal', 'Tick', 'combined');
    await rec.record(policy, 'Warning', 'Tock', 'dropped 1');
    await rec.record(policy, 'Warning', 'Tock', 'dropped 2');
    expect(rec.dropped).toBe(2);
    expect(results).toEqual(['dropped', 'dropped']);
    expect(errors.map(String)).toEqual([expect.stringContaining('queue full')]);
    const release = setInterval(() => held.splice(0).forEach((res) => json(res, 201, {})), 5);
    try {
      await rec.flush();
    } finally {
      clearInterval(release);
    }
    expect(api.seen.map((s) => (s.body as { note: string }).note)).toEqual(['in flight', 'queued', 'combined']);
  });

  test('with a backlog, more writers drain it; one series is still written in order', async () => {
    let inFlight = 0;
    let most = 0;
    const api = await apiServer((req, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      setTimeout(() => {
        inFlight--;
        ok(req, res);
      }, 5);
    });
    server = api.server;
    const rec = new KubeEventRecorder(
      api.kc,
      'remediator',
      { now: () => 1 },
      (e) => {
        throw e;
      },
      // A budget that 40 Events do not spend: this is about writers, not the per-reason budget.
      { backlog: 4, maxWriters: 4, budget: { capacity: 100, perSecond: 1 } },
    );
    for (let i = 0; i < 40; i++) await rec.record(policy, 'Normal', 'Tick', `tick ${i % 10}`);
    await rec.flush();
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(4);
    // Each of the ten notes is one series: created once, then patched three times.
    expect(api.seen.filter((s) => s.method === 'POST')).toHaveLength(10);
    expect(api.seen.filter((s) => s.method === 'PATCH')).toHaveLength(30);
  });

  test('falls back to core/v1 Events once events.k8s.io is forbidden, and says what to grant', async () => {
    const api = await apiServer((req, res) =>
      req.url.startsWith('/apis/events.k8s.io') ? json(res, 403, { kind: 'Status', code: 403 }) : ok(req, res),
    );
    server = api.server;
    const errors: unknown[] = [];
    const rec = new KubeEventRecorder(api.kc, 'remediator', { now: () => 1 }, (e) => errors.push(e), { reportingInstance: 'r-1' });
    await rec.record(policy, 'Normal', 'Valid', 'a');
    await rec.record(policy, 'Normal', 'Valid', 'b');
    await rec.flush();
    expect(api.seen.map((s) => s.url)).toEqual([
      '/apis/events.k8s.io/v1/namespaces/web/events',
      '/api/v1/namespaces/web/events',
      '/api/v1/namespaces/web/events',
    ]);
    expect(api.seen[2]!.body).toMatchObject({
      involvedObject: { name: 'restart-nginx', uid: 'u-1' },
      reason: 'Valid',
      message: 'b',
      reportingInstance: 'r-1',
    });
    expect(errors.map(String)).toEqual([expect.stringContaining('events.k8s.io')]);
  });

  test('a refusal in one namespace leaves the others on events.k8s.io (a namespaced install has no Role in default)', async () => {
    const api = await apiServer((req, res) =>
      req.url.startsWith('/apis/events.k8s.io/v1/namespaces/default/') ? json(res, 403, { kind: 'Status', code: 403 }) : ok(req, res),
    );
    server = api.server;
    const errors: unknown[] = [];
    const rec = new KubeEventRecorder(api.kc, 'remediator', { now: () => 1 }, (e) => errors.push(e), { reportingInstance: 'r-1' });
    const runbook = { apiVersion: 'remediator.dev/v1alpha1', kind: 'Runbook', metadata: { name: 'restart', uid: 'u-2' } };
    await rec.record(runbook, 'Normal', 'Ready', 'a');
    await rec.flush();
    await rec.record(policy, 'Normal', 'Valid', 'b');
    await rec.record(runbook, 'Normal', 'Ready', 'c');
    await rec.flush();
    expect(api.seen.map((s) => s.url)).toEqual([
      '/apis/events.k8s.io/v1/namespaces/default/events',
      '/api/v1/namespaces/default/events',
      '/apis/events.k8s.io/v1/namespaces/web/events',
      '/api/v1/namespaces/default/events',
    ]);
    expect(errors.map(String)).toEqual([expect.stringContaining('in namespace default')]);
  });
});
