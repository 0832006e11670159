/**
 * The intake server in-process, with a fake Kubernetes API: the SNS route's own in-flight
 * budget and body timeout (the route is unauthenticated, so strangers holding its slots
 * must not starve the token-authenticated routes).
 */
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { RemediationRequest } from '../api/v1alpha1/index.js';
import type { IntakeKubeApi, ResolveResult } from './kube.js';
import { snsInflightBudget } from './listener.js';
import { IntakeServer } from './server.js';

const TOKEN = 't'.repeat(32);

const kube: IntakeKubeApi = {
  whoAmI: async () => 'intake',
  readSecretValue: async () => TOKEN,
  createRequest: async () => 'created' as const,
  listRequestsOfAlert: async (): Promise<RemediationRequest[]> => [],
  markResolved: async (): Promise<ResolveResult> => 'patched',
  recordResolution: async () => true,
  recordStop: async () => 'patched' as const,
};

interface Slow {
  socket: Socket;
  /** Everything the server sent, once it closed the connection. */
  answer: Promise<string>;
}

/** Sends headers and half a body, then nothing: holds the slot it got (if any). */
function slowPost(port: number, path: string, headers: Record<string, string>): Promise<Slow> {
  const body = JSON.stringify({ Type: 'Notification', padding: 'x'.repeat(200) });
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const answer = new Promise<string>((done) => {
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.on('close', () => done(Buffer.concat(chunks).toString('utf8')));
    });
    socket.on('error', () => undefined);
    socket.once('error', reject);
    socket.on('connect', () => {
      const head = Object.entries({ host: 'intake', 'content-length': String(body.length), connection: 'close', ...headers })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n${body.slice(0, body.length / 2)}`);
      resolve({ socket, answer });
    });
  });
}

/** `p`'s value, or `fallback` after `ms` (the timer cleared either way, so nothing lingers after the test). */
async function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const statusOf = (raw: string) => Number(/^HTTP\/1\.1 (\d+)/.exec(raw)?.[1] ?? 0);

async function postAlertmanager(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/alerts/alertmanager`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({
      version: '4',
      status: 'firing',
      receiver: 'r',
      groupLabels: {},
      commonLabels: {},
      commonAnnotations: {},
      externalURL: 'http://am',
      alerts: [
        {
          status: 'firing',
          labels: { alertname: 'NginxDown' },
          annotations: {},
          startsAt: '2025-03-01T10:00:00Z',
          endsAt: '0001-01-01T00:00:00Z',
          fingerprint: 'c4a2d3e1f5b60718',
        },
      ],
    }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('intake server: the unauthenticated SNS route', () => {
  let server: IntakeServer;
  const open: Socket[] = [];

  async function start(opts: {
    maxInflight: number;
    snsBodyTimeoutMs?: number;
    maxConnections?: number;
    maxConnectionsPerSource?: number;
  }): Promise<number> {
    server = new IntakeServer({
      bindAddress: '127.0.0.1:0',
      kube,
      identity: 'intake',
      policies: () => [],
      cacheSynced: () => true,
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      tokenSecret: { namespace: 'ns', name: 'intake-token' },
      snsTopicAllowlist: new Set(['arn:aws:sns:us-east-1:123456789012:alarms']),
      certificates: { get: () => Promise.reject(new Error('not used')) },
      maxInflight: opts.maxInflight,
      snsBodyTimeoutMs: opts.snsBodyTimeoutMs,
      maxConnections: opts.maxConnections,
      maxConnectionsPerSource: opts.maxConnectionsPerSource,
    });
    await server.start();
    return server.port!;
  }

  afterEach(async () => {
    for (const s of open.splice(0)) s.destroy();
    await server?.stop(100);
  });

  test('its budget is a quarter of --intake-max-inflight, at least 4', () => {
    expect(snsInflightBudget(64)).toBe(16);
    expect(snsInflightBudget(8)).toBe(4);
    expect(snsInflightBudget(2)).toBe(4);
  });

  test('senders trickling SNS bodies hold no processing slot: none is refused for load, and Alertmanager still gets 200', async () => {
    const port = await start({ maxInflight: 8, snsBodyTimeoutMs: 30_000 });
    // Twice the SNS budget (4) of stalled, unverified senders. Before, they held every SNS
    // slot and real deliveries got 503 (issue 14); a slot is now taken only after the
    // signature is verified.
    const slow = await Promise.all(Array.from({ length: 8 }, () => slowPost(port, '/v1/alerts/sns', { 'content-type': 'text/plain' })));
    open.push(...slow.map((s) => s.socket));
    const settled = await Promise.all(slow.map((s) => within(s.answer, 1_000, '')));
    expect(settled.filter((raw) => raw !== '')).toEqual([]);
    const am = await postAlertmanager(port);
    expect(am.status).toBe(200);
    expect(am.body).toMatchObject({ alerts: 1, unmatched: 1 });
  });

  test('an SNS body that does not arrive in time is answered 408 and its slot freed', async () => {
    const port = await start({ maxInflight: 8, snsBodyTimeoutMs: 200 });
    const started = Date.now();
    const held = await Promise.all(Array.from({ length: 4 }, () => slowPost(port, '/v1/alerts/sns', { 'content-type': 'text/plain' })));
    open.push(...held.map((s) => s.socket));
    const answers = await Promise.all(held.map((s) => within(s.answer, 3_000, 'no answer within 3 s')));
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const raw of answers) {
      expect(statusOf(raw)).toBe(408);
      expect(raw).toMatch(/did not arrive within 200 ms/);
      expect(raw.toLowerCase()).toContain('connection: close');
    }
    // ...and the server closed each socket, though its client never finished (the answer only resolves on close).
    expect(held.every((s) => s.socket.destroyed || s.socket.readableEnded)).toBe(true);
    // The slots are free again: a fresh SNS post is processed (and refused for its content, not for load).
    const res = await fetch(`http://127.0.0.1:${port}/v1/alerts/sns`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(res.status).toBe(422);
  });

  test('a keep-alive sender trickling a body gets 408 and its socket is closed by the server (issue 14: it stayed open)', async () => {
    const port = await start({ maxInflight: 8, snsBodyTimeoutMs: 200 });
    const t0 = Date.now();
    const slow = await slowPost(port, '/v1/alerts/sns', { 'content-type': 'text/plain', connection: 'keep-alive' });
    open.push(slow.socket);
    const raw = await within(slow.answer, 3_000, 'socket still open after 3 s');
    expect(statusOf(raw)).toBe(408);
    expect(raw.toLowerCase()).toContain('connection: close');
    expect(Date.now() - t0).toBeLessThan(2_500);
  });

  test('connections beyond the per-source cap get 503 and are closed; a freed place is usable again', async () => {
    const port = await start({ maxInflight: 8, maxConnectionsPerSource: 3, snsBodyTimeoutMs: 30_000 });
    const held = await Promise.all(Array.from({ length: 3 }, () => slowPost(port, '/v1/alerts/sns', { 'content-type': 'text/plain' })));
    open.push(...held.map((s) => s.socket));
    const extra = await slowPost(port, '/v1/alerts/sns', { 'content-type': 'text/plain' });
    open.push(extra.socket);
    const raw = await within(extra.answer, 3_000, 'no answer within 3 s');
    expect(statusOf(raw)).toBe(503);
    expect(raw).toMatch(/--intake-max-connections-per-source/);
    for (const s of held) s.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect((await postAlertmanager(port)).status).toBe(200);
  });

  test('connections beyond the overall cap get 503 too', async () => {
    const port = await start({ maxInflight: 8, maxConnections: 2, maxConnectionsPerSource: 0, snsBodyTimeoutMs: 30_000 });
    const held = await Promise.all(Array.from({ length: 2 }, () => slowPost(port, '/v1/alerts/sns', { 'content-type': 'text/plain' })));
    open.push(...held.map((s) => s.socket));
    const extra = await slowPost(port, '/v1/alerts/sns', { 'content-type': 'text/plain' });
    open.push(extra.socket);
    expect(await within(extra.answer, 3_000, 'no answer')).toMatch(/^HTTP\/1\.1 503[\s\S]*--intake-max-connections\)/);
  });
});
