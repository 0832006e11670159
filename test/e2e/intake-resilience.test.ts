/**
 * The intake under pressure, with the real controller process: beyond its in-flight
 * bound it answers 429 at once instead of queueing (SNS has a budget of its own); while the API server
 * is briefly unreachable it retries and succeeds; when it stays unreachable past the
 * retry budget it answers 503 with a JSON error and creates nothing; and on SIGTERM it
 * stops taking requests first, finishes the one in flight, and the process exits 0.
 * The API server is made unreachable by stopping a TCP proxy that the controller's
 * kubeconfig points at.
 */
import { connect, type Socket } from 'node:net';
import { Resources, testbedFromEnv, waitFor } from './harness.js';
import {
  listRequests,
  postJson,
  send,
  setUpIntakeNamespaces,
  startIntakeController,
  TcpProxy,
  type IntakeController,
  type IntakeNamespaces,
} from './intake-harness.js';

/** The cluster-scoped Runbook this file's policies use. */
const RB = 'e2e-intake-resilience';
const REGION = 'af-south-1';
const NS = 'intake-load';

/** A request whose body is only half sent: it holds an in-flight slot until `finish()`. */
interface SlowRequest {
  finish(): Promise<{ status: number; body: string }>;
}

function slowRequest(url: string, path: string, body: string, headers: Record<string, string>): Promise<SlowRequest> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(Number(port), '127.0.0.1');
    const chunks: Buffer[] = [];
    const closed = new Promise<string>((done) => {
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.on('close', () => done(Buffer.concat(chunks).toString('utf8')));
    });
    socket.on('error', reject);
    socket.on('connect', () => {
      const head = Object.entries({ host: 'intake', 'content-length': String(Buffer.byteLength(body)), connection: 'close', ...headers })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      const half = Math.floor(body.length / 2);
      socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n${body.slice(0, half)}`);
      resolve({
        finish: async () => {
          socket.write(body.slice(half));
          const text = await closed;
          return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), body: text.slice(text.indexOf('\r\n\r\n') + 4) };
        },
      });
    });
  });
}

describe('intake overload, API outages and shutdown', () => {
  const tb = testbedFromEnv();
  const admin = tb.admin();
  const res = new Resources(admin);
  let ns: IntakeNamespaces;
  let proxy: TcpProxy;
  let intake: IntakeController;
  let n = 0;

  const alert = () => ({
    name: 'LoadTest',
    labels: { severity: 'critical' },
    startsAt: '2025-06-01T00:00:00Z',
    fingerprint: `load-${++n}`,
  });
  const auth = () => ({ 'content-type': 'application/json', authorization: `Bearer ${ns.token}` });
  const count = async () => (await listRequests(admin, NS)).length;

  beforeAll(async () => {
    await res.createRunbook(RB, { namespaceSelector: {}, action: { ssm: { parameters: [{ name: 'commands', values: ['true'] }] } } });
    ns = await setUpIntakeNamespaces(admin, [NS]);
    await res.createPolicy(NS, 'load', { targets: { fromLabels: ['instance_id'] }, safety: { suspend: true }, runbookRef: { name: RB } });
    proxy = await TcpProxy.create(tb.cluster.server);
    intake = await startIntakeController(tb, ns, {
      region: REGION,
      server: proxy.url,
      args: ['--intake-max-inflight', '2', '--intake-retry-timeout', '3s'],
    });
    // Warm the token cache, so the outage tests exercise request creation.
    expect((await postJson(intake.url, '/v1/alerts', alert(), ns.token)).status).toBe(200);
  });

  afterAll(async () => {
    await intake?.stop();
    await ns?.cleanup();
    await proxy?.stop();
  });

  test('beyond the in-flight bound: 429 with Retry-After at once (SNS, with a budget of its own, is not refused); the held requests still succeed', async () => {
    const body = JSON.stringify(alert());
    const held = [
      await slowRequest(intake.url, '/v1/alerts', body, auth()),
      await slowRequest(intake.url, '/v1/alerts', JSON.stringify(alert()), auth()),
    ];
    await waitFor(
      'both slots taken',
      async () =>
        (await fetch(`${intake.controller.metricsUrl}/metrics`).then((r) => r.text())).includes('remediator_intake_inflight_requests 2'),
      5_000,
      50,
    );

    const started = Date.now();
    const refused = await postJson(intake.url, '/v1/alerts', alert(), ns.token);
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json?.error).toMatch(/too many alert requests in flight/);
    expect(Date.now() - started).toBeLessThan(1_000);

    // SNS has its own budget (unit-tested in src/intake/server.test.ts): the full
    // authenticated budget does not refuse it, so it gets to the schema check.
    const sns = await send(intake.url, { path: '/v1/alerts/sns', body: '{}', headers: { 'content-type': 'text/plain' } });
    expect(sns.status).toBe(422);

    const done = await Promise.all(held.map((h) => h.finish()));
    expect(done.map((d) => d.status)).toEqual([200, 200]);
    expect((await postJson(intake.url, '/v1/alerts', alert(), ns.token)).status).toBe(200);
  });

  test('a brief API server outage is ridden out by retrying', async () => {
    const before = await count();
    await proxy.stop();
    const answer = postJson(intake.url, '/v1/alerts', alert(), ns.token);
    await new Promise((r) => setTimeout(r, 1_000));
    await proxy.start();
    const a = await answer;
    expect(a.status).toBe(200);
    expect(a.json?.created).toHaveLength(1);
    expect(await count()).toBe(before + 1);
  });

  test('an outage longer than the retry budget: 503 with a JSON error, nothing created; a re-send afterwards succeeds', async () => {
    const before = await count();
    const payload = alert();
    await proxy.stop();
    const started = Date.now();
    const a = await postJson(intake.url, '/v1/alerts', payload, ns.token);
    const took = Date.now() - started;
    await proxy.start();
    expect(a.status).toBe(503);
    expect(a.headers['retry-after']).toBeDefined();
    expect(a.json?.error).toMatch(/Kubernetes API is unavailable.*send the alert again/);
    // Bounded: the 3 s budget, not forever.
    expect(took).toBeGreaterThanOrEqual(2_900);
    expect(took).toBeLessThan(10_000);
    expect(await count()).toBe(before);

    await waitFor(
      'the re-sent alert to be accepted',
      async () => (await postJson(intake.url, '/v1/alerts', payload, ns.token)).status === 200,
      20_000,
      500,
    );
    expect(await count()).toBe(before + 1);
    const metrics = await (await fetch(`${intake.controller.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/remediator_intake_requests_total\{source="generic",outcome="unavailable"\} [1-9]/);
    expect(metrics).toMatch(/remediator_intake_requests_total\{source="generic",outcome="overloaded"\} [1-9]/);
    expect(metrics).toMatch(/remediator_intake_api_retries_total\{operation="create"\} [1-9]/);
  });

  test('SIGTERM: the intake stops taking requests first, finishes the one in flight, and the process exits 0', async () => {
    const held = await slowRequest(intake.url, '/v1/alerts', JSON.stringify(alert()), auth());
    await waitFor(
      'the slot taken',
      async () =>
        (await fetch(`${intake.controller.metricsUrl}/metrics`).then((r) => r.text())).includes('remediator_intake_inflight_requests 1'),
      5_000,
      50,
    );
    const exited = intake.controller.process.stop(20_000);
    // New requests are no longer taken...
    await waitFor(
      'the intake to stop listening',
      async () => {
        try {
          const a = await postJson(intake.url, '/v1/alerts', alert(), ns.token);
          return a.status === 503;
        } catch (error) {
          return (error as { code?: string }).code === 'ECONNREFUSED';
        }
      },
      5_000,
      50,
    );
    // ...but the one in flight completes.
    const done = await held.finish();
    expect(done.status).toBe(200);
    expect(JSON.parse(done.body).created).toHaveLength(1);
    expect((await exited).code).toBe(0);
  });
});
