/**
 * The alert intake end to end: the real controller process (running as its own
 * ServiceAccount) against the real kube-apiserver and moto. Alertmanager payloads shaped
 * exactly as Alertmanager v0.27 sends them and generic alerts become RemediationRequests,
 * deduplicated by name; a resolved alert cancels what has not started; the bearer token
 * comes from a Secret and rotates without a restart; every bad input is a 4xx with a JSON
 * error and creates nothing; the intake's metrics are on the controller's /metrics.
 *
 * The controller watches only this file's namespaces (`--watch-namespace`), so only
 * their policies can match, whatever other test files create meanwhile.
 */
import { connect, type Socket } from 'node:net';
import { CoreV1Api } from '@kubernetes/client-node';
import type { AlertPolicy, RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { requestName } from '../../src/intake/naming.js';
import { seedInstances } from '../testbed/aws.js';
import { Resources, testbedFromEnv, waitFor } from './harness.js';
import {
  alertmanagerPayload,
  listRequests,
  metricValue,
  newToken,
  postJson,
  send,
  setUpIntakeNamespaces,
  startIntakeController,
  TOKEN_SECRET,
  type IntakeController,
  type IntakeNamespaces,
} from './intake-harness.js';

/** The cluster-scoped Runbook this file's policies use. */
const RB = 'e2e-intake';
const REGION = 'ap-northeast-3';
const NS = 'intake-am';
const OTHER = 'intake-am-other';
const AM = `/v1/alerts/alertmanager?namespace=${NS}`;
const GENERIC = `/v1/alerts?namespace=${NS}`;

const ssm = { ssm: { documentName: 'AWS-RunShellScript', parameters: [{ name: 'commands', values: ['systemctl restart nginx'] }] } };

/**
 * Writes raw bytes and reads one HTTP answer (skipping a 100 Continue, whose status is
 * returned as `interim`), without waiting for the connection to close.
 */
function rawExchange(url: string, write: (socket: Socket) => void): Promise<{ status: number; body: string; interim?: number }> {
  return new Promise((resolve, reject) => {
    let text = '';
    let interim: number | undefined;
    const socket = connect(Number(new URL(url).port), '127.0.0.1', () => write(socket));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete HTTP answer: ${JSON.stringify(text.slice(0, 300))}`));
    }, 10_000);
    socket.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      const continued = /^HTTP\/1\.1 100[^\r]*\r\n\r\n/.exec(text);
      if (continued) {
        interim = 100;
        text = text.slice(continued[0].length);
      }
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? -1);
      const body = text.slice(end + 4);
      if (length >= 0 && Buffer.byteLength(body) < length) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), body, ...(interim !== undefined && { interim }) });
    });
    socket.on('error', () => undefined);
  });
}

describe('alert intake (Alertmanager, generic, auth, bad input)', () => {
  const tb = testbedFromEnv();
  const admin = tb.admin();
  const res = new Resources(admin);
  let ns: IntakeNamespaces;
  let intake: IntakeController;
  let token: string;
  let instance: string;

  const count = async (namespace = NS) => (await listRequests(admin, namespace)).length;

  async function waitReady(namespace: string, name: string, status: 'True' | 'False'): Promise<AlertPolicy> {
    return waitFor(
      `${namespace}/${name} Ready=${status}`,
      async () => {
        const p = await res.getPolicy(namespace, name);
        return p.status?.conditions?.find((c) => c.type === 'Ready')?.status === status ? p : undefined;
      },
      20_000,
    );
  }

  beforeAll(async () => {
    await res.createRunbook(RB, { namespaceSelector: {}, action: ssm });
    ns = await setUpIntakeNamespaces(admin, [NS, OTHER]);
    token = ns.token;
    instance = (await seedInstances(tb.motoEndpoint, { region: REGION, tags: { Name: 'web-1', Service: 'nginx' } }))[0]!;
    // Matches nginx alerts that carry a severity, from Alertmanager or generic senders; Medium risk waits for a person.
    await res.createPolicy(NS, 'restart-nginx', {
      match: {
        sources: ['alertmanager', 'generic'],
        labels: [
          { name: 'alertname', op: '=~', value: 'Nginx(Down|Slow)' },
          { name: 'severity', op: '!=', value: '' },
        ],
      },
      targets: { fromLabels: ['instance_id'] },
      risk: 'Medium',
      runbookRef: { name: RB },
    });
    await res.createPolicy(NS, 'cloudwatch-only', {
      match: { sources: ['cloudwatch'] },
      targets: { fromDimensions: ['InstanceId'] },
      runbookRef: { name: RB },
    });
    // Would match every alert, but its document is not allowed: Ready=False, so it never matches.
    await res.createPolicy(NS, 'not-ready', { targets: { fromLabels: ['instance_id'] }, runbookRef: { name: 'e2e-no-such-runbook' } });
    await res.createPolicy(OTHER, 'other-team', {
      match: { labels: [{ name: 'alertname', op: '=', value: 'NginxDown' }] },
      targets: { fromLabels: ['instance_id'] },
      risk: 'High',
      runbookRef: { name: RB },
    });
    intake = await startIntakeController(tb, ns, { region: REGION, args: ['--intake-token-ttl', '1s'] });
    await waitReady(NS, 'not-ready', 'False');
  });

  afterAll(async () => {
    await intake?.stop();
    await ns?.cleanup();
  });

  const nginxDown = (over: Partial<Parameters<typeof alertmanagerPayload>[0][number]> = {}) => ({
    labels: { alertname: 'NginxDown', instance: '10.0.1.12:9113', instance_id: instance, job: 'nginx', severity: 'critical' },
    annotations: { summary: 'nginx is down on web-1', runbook_url: 'https://runbooks.example/nginx-down' },
    fingerprint: 'c4a2d3e1f5b60718',
    startsAt: '2025-03-01T10:00:00.123456789Z',
    ...over,
  });

  describe('Alertmanager', () => {
    test('a webhook payload creates one request per matching policy, named from fingerprint, occurrence and policy', async () => {
      const payload = alertmanagerPayload(
        [nginxDown(), { labels: { alertname: 'DiskFull', severity: 'warning', instance_id: instance } }],
        { groupBy: ['job'] },
      );
      const answer = await postJson(intake.url, AM, payload, token);
      expect(answer.status).toBe(200);
      const name = requestName(NS, 'restart-nginx', {
        source: 'alertmanager',
        fingerprint: 'c4a2d3e1f5b60718',
        occurrence: '2025-03-01T10:00:00.123Z',
      });
      // DiskFull matches nothing here: restart-nginx wants Nginx*, cloudwatch-only wants CloudWatch, not-ready is not Ready.
      expect(answer.json).toEqual({ alerts: 2, created: [`${NS}/${name}`], existing: [], cancelled: [], unchanged: [], unmatched: 1 });

      const rr = await res.getRequest(NS, name);
      expect(rr.spec).toEqual({
        policyRef: { name: 'restart-nginx' },
        alert: {
          source: 'alertmanager',
          name: 'NginxDown',
          labels: nginxDown().labels,
          annotations: nginxDown().annotations,
          fingerprint: 'c4a2d3e1f5b60718',
          startsAt: '2025-03-01T10:00:00.123Z',
          status: 'firing',
        },
        // Learnt from a SelfSubjectReview: who the controller authenticates as.
        requestedBy: ns.controllerUser,
      });
      expect(rr.metadata?.labels).toMatchObject({ 'remediator.dev/source': 'alertmanager', 'remediator.dev/policy': 'restart-nginx' });
      expect(rr.metadata?.labels?.['remediator.dev/alert']).toMatch(/^[0-9a-f]{32}$/);
      expect(rr.metadata?.annotations?.['remediator.dev/generator-url']).toMatch(/^http:\/\/prometheus-0:9090\/graph/);
      // The controller takes it from there: enriched from EC2, then it waits for a person (Medium risk).
      await res.waitForPhase(NS, name, 'AwaitingApproval', 30_000);
      expect(await count(OTHER)).toBe(0);
    });

    test('a re-sent alert creates nothing new, however often and however concurrently', async () => {
      const before = await count();
      const payload = alertmanagerPayload([nginxDown()]);
      const answers = await Promise.all(Array.from({ length: 8 }, () => postJson(intake.url, AM, payload, token)));
      for (const a of answers) {
        expect(a.status).toBe(200);
        expect(a.json?.created).toEqual([]);
        expect(a.json?.existing).toHaveLength(1);
      }
      expect(await count()).toBe(before);
    });

    test("?namespace= decides which namespace's policies are considered", async () => {
      const payload = alertmanagerPayload([nginxDown({ fingerprint: 'aaaa000000000001' })]);
      const answer = await postJson(intake.url, `/v1/alerts/alertmanager?namespace=${OTHER}`, payload, token);
      expect(answer.status).toBe(200);
      expect(answer.json?.created).toEqual([
        `${OTHER}/${requestName(OTHER, 'other-team', { source: 'alertmanager', fingerprint: 'aaaa000000000001', occurrence: '2025-03-01T10:00:00.123Z' })}`,
      ]);
      expect(await count(OTHER)).toBe(1);
    });

    test('a resolved alert cancels its requests that have not started executing; the next firing is a new occurrence', async () => {
      const name = requestName(NS, 'restart-nginx', {
        source: 'alertmanager',
        fingerprint: 'c4a2d3e1f5b60718',
        occurrence: '2025-03-01T10:00:00.123Z',
      });
      await res.waitForPhase(NS, name, 'AwaitingApproval', 30_000);
      const resolved = alertmanagerPayload([nginxDown({ status: 'resolved', endsAt: '2025-03-01T10:20:00.5Z' })]);
      const answer = await postJson(intake.url, AM, resolved, token);
      expect(answer.status).toBe(200);
      expect(answer.json).toMatchObject({ alerts: 1, created: [], cancelled: [`${NS}/${name}`] });
      const rr = await res.waitForPhase(NS, name, 'Cancelled', 30_000);
      expect(rr.spec.alert.status).toBe('resolved');
      expect(rr.status?.reason).toBe('AlertResolved');
      // Resolving again changes nothing.
      expect((await postJson(intake.url, AM, resolved, token)).json).toMatchObject({ cancelled: [], unchanged: [] });

      // The alert fires again later: a new startsAt, a new occurrence, a new request.
      const again = await postJson(intake.url, AM, alertmanagerPayload([nginxDown({ startsAt: '2025-03-01T11:00:00Z' })]), token);
      const next = requestName(NS, 'restart-nginx', {
        source: 'alertmanager',
        fingerprint: 'c4a2d3e1f5b60718',
        occurrence: '2025-03-01T11:00:00.000Z',
      });
      expect(again.json?.created).toEqual([`${NS}/${next}`]);
      expect(next).not.toBe(name);

      // A late retry of the old occurrence's resolved notification (startsAt 10:00) must
      // not cancel the new occurrence (startsAt 11:00).
      const late = await postJson(intake.url, AM, resolved, token);
      expect(late.status).toBe(200);
      expect(late.json).toMatchObject({ cancelled: [], unchanged: [] });
      expect((await res.getRequest(NS, next)).spec.alert.status).toBe('firing');
    });
  });

  describe('generic alerts', () => {
    test('a generic alert creates a request; with startsAt it dedupes by occurrence', async () => {
      const alert = {
        name: 'NginxSlow',
        labels: { severity: 'warning', instance_id: instance },
        annotations: { summary: 'p99 > 2s' },
        startsAt: '2025-03-02T08:00:00Z',
        fingerprint: 'generic-nginx-slow',
      };
      const first = await postJson(intake.url, GENERIC, alert, token);
      expect(first.status).toBe(200);
      expect(first.json?.created).toHaveLength(1);
      const ref = (first.json?.created as string[])[0]!;
      const rr = await res.getRequest(NS, ref.split('/')[1]!);
      expect(rr.spec.alert).toEqual({
        source: 'generic',
        name: 'NginxSlow',
        labels: { severity: 'warning', instance_id: instance, alertname: 'NginxSlow' },
        annotations: { summary: 'p99 > 2s' },
        fingerprint: 'generic-nginx-slow',
        startsAt: '2025-03-02T08:00:00.000Z',
        status: 'firing',
      });
      expect((await postJson(intake.url, GENERIC, alert, token)).json?.existing).toEqual([ref]);
    });

    test('without startsAt, re-sends inside the dedup window create one request', async () => {
      const before = await count();
      const alert = { name: 'NginxDown', labels: { severity: 'critical', instance_id: instance, pod: 'web-7' } };
      const answers = await Promise.all([1, 2, 3].map(() => postJson(intake.url, GENERIC, alert, token)));
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
      expect(answers.flatMap((a) => a.json?.created as string[])).toHaveLength(1);
      expect(await count()).toBe(before + 1);
    });

    test('an alert no policy matches creates nothing and says so', async () => {
      const answer = await postJson(intake.url, GENERIC, { name: 'Unrelated', labels: { severity: 'info' } }, token);
      expect(answer.json).toMatchObject({ alerts: 1, created: [], unmatched: 1 });
    });
  });

  describe('authentication', () => {
    test('a missing, malformed or wrong token is 401 with a JSON error, and creates nothing', async () => {
      const before = await count();
      const payload = alertmanagerPayload([nginxDown({ fingerprint: 'bbbb000000000001' })]);
      const variants: Array<Record<string, string>> = [
        {},
        { authorization: `Basic ${Buffer.from(`u:${token}`).toString('base64')}` },
        { authorization: 'Bearer' },
        { authorization: `Bearer ${token}x` },
        { authorization: `Bearer ${token.slice(0, -1)}` },
      ];
      for (const headers of variants) {
        const answer = await postJson(intake.url, AM, payload, undefined, headers);
        expect(answer.status).toBe(401);
        expect(answer.headers['www-authenticate']).toMatch(/^Bearer/);
        expect(answer.json?.error).toMatch(/bearer token/);
        expect(answer.text).not.toContain(token);
      }
      expect(
        (await postJson(intake.url, GENERIC, { name: 'NginxDown', labels: { severity: 'x' } }, 'wrong-token-000000000000')).status,
      ).toBe(401);
      expect(await count()).toBe(before);
    });

    test('rotating the Secret takes effect without a restart', async () => {
      const pid = intake.controller.process.pid;
      const core = admin.makeApiClient(CoreV1Api);
      const rotated = newToken();
      await core.replaceNamespacedSecret({
        namespace: ns.home,
        name: TOKEN_SECRET,
        body: { metadata: { name: TOKEN_SECRET }, stringData: { token: `${rotated}\n` } },
      });
      const alert = { name: 'NginxDown', labels: { severity: 'critical', instance_id: instance }, startsAt: '2025-03-03T00:00:00Z' };
      // The new token works at once (a mismatch makes the intake look at the Secret again)...
      await waitFor(
        'the rotated token to be accepted',
        async () => (await postJson(intake.url, GENERIC, alert, rotated)).status === 200,
        5_000,
      );
      // ...and the old one stops working (here within the 1 s --intake-token-ttl).
      await waitFor('the old token to be refused', async () => (await postJson(intake.url, GENERIC, alert, token)).status === 401, 5_000);
      expect(intake.controller.process.pid).toBe(pid);
      expect(intake.controller.process.exitStatus()).toBeUndefined();
      token = rotated;
    });
  });

  describe('bad input: a 4xx with a JSON error that says what was wrong, and nothing created', () => {
    const valid = () => alertmanagerPayload([nginxDown({ fingerprint: 'cccc000000000001', startsAt: '2025-03-04T00:00:00Z' })]);
    const json = (body: unknown) => ({ body: JSON.stringify(body), type: 'application/json' });
    const alert0 = (over: Record<string, unknown>) => {
      const p = valid();
      return { ...p, alerts: [{ ...p.alerts[0], ...over }] };
    };
    const without = <T extends object>(o: T, key: keyof T) => {
      const { [key]: _, ...rest } = o;
      return rest;
    };
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);

    type Case = { path?: string; body: string | Buffer; type?: string; headers?: Record<string, string> };
    const table: Array<[string, Case, number, RegExp]> = [
      ['malformed JSON', { body: '{"receiver": "remediator", "alerts": [', type: 'application/json' }, 400, /not valid JSON/],
      ['empty body', { body: '', type: 'application/json' }, 400, /empty request body/],
      ['not UTF-8', { body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), type: 'application/json' }, 400, /UTF-8/],
      ['JSON nested 200 000 deep', { body: deep, type: 'application/json' }, 422, /expected object/],
      ['wrong content type: text/plain', { ...json(valid()), type: 'text/plain' }, 415, /Content-Type/],
      ['wrong content type: form', { ...json(valid()), type: 'application/x-www-form-urlencoded' }, 415, /Content-Type/],
      ['no content type', { body: JSON.stringify(valid()), type: '' }, 415, /missing Content-Type/],
      ['a charset other than UTF-8', { ...json(valid()), type: 'application/json; charset=iso-8859-1' }, 415, /charset/],
      ['a compressed body', { ...json(valid()), headers: { 'content-encoding': 'gzip' } }, 415, /Content-Encoding/],
      ['a JSON array', json([valid()]), 422, /expected object/],
      ['JSON null', json(null), 422, /expected object/],
      ['a JSON number', json(4), 422, /expected object/],
      ['missing alerts', json(without(valid(), 'alerts')), 422, /alerts: required field is missing/],
      ['missing version', json(without(valid(), 'version')), 422, /version: required field is missing/],
      ['missing receiver', json(without(valid(), 'receiver')), 422, /receiver: required/],
      ['alert without labels', json({ ...valid(), alerts: [without(valid().alerts[0]!, 'labels')] }), 422, /alerts\[0\]\.labels: required/],
      [
        'alert without startsAt',
        json({ ...valid(), alerts: [without(valid().alerts[0]!, 'startsAt')] }),
        422,
        /alerts\[0\]\.startsAt: required/,
      ],
      ['alert without alertname', json(alert0({ labels: { severity: 'critical' } })), 422, /alertname is missing/],
      ['version 3', json({ ...valid(), version: '3' }), 422, /version "3"/],
      ['version as a number', json({ ...valid(), version: 4 }), 422, /version: expected string/],
      ['alerts as a string', json({ ...valid(), alerts: 'NginxDown' }), 422, /alerts: expected array/],
      [
        'a label value of the wrong type',
        json(alert0({ labels: { alertname: 'NginxDown', severity: 'critical', port: 443 } })),
        422,
        /alerts\[0\]\.labels\.port: expected string/,
      ],
      ['annotations of the wrong type', json(alert0({ annotations: ['summary'] })), 422, /alerts\[0\]\.annotations: expected object/],
      ['status in capitals', json({ ...valid(), status: 'FIRING' }), 422, /status: must be one of "firing", "resolved"/],
      ['truncatedAlerts as a string', json({ ...valid(), truncatedAlerts: '0' }), 422, /truncatedAlerts: expected integer/],
      ['groupLabels of the wrong type', json({ ...valid(), groupLabels: 'alertname' }), 422, /groupLabels: expected object/],
      ['startsAt not a timestamp', json(alert0({ startsAt: 'yesterday' })), 422, /startsAt "yesterday" is not an RFC 3339/],
      ['fingerprint of the wrong type', json(alert0({ fingerprint: 12345 })), 422, /fingerprint: expected string/],
      ['an alertname longer than 256', json(alert0({ labels: { alertname: 'N'.repeat(300), severity: 'x' } })), 422, /longer than 256/],
      [
        'too many alerts',
        json({ ...valid(), alerts: Array.from({ length: 501 }, (_, i) => ({ ...valid().alerts[0], fingerprint: `f${i}` })) }),
        413,
        /max_alerts/,
      ],
      [
        'a body over 1 MiB',
        { body: JSON.stringify({ ...valid(), padding: 'x'.repeat(1024 * 1024) }), type: 'application/json' },
        413,
        /larger than 1048576 bytes/,
      ],
      [
        'a bad namespace parameter',
        { ...json(valid()), path: '/v1/alerts/alertmanager?namespace=Not_A_Namespace' },
        400,
        /not a valid namespace/,
      ],
      ['generic: missing name', { ...json({ labels: { a: 'b' } }), path: GENERIC }, 422, /name: required field is missing/],
      [
        'generic: unknown field',
        { ...json({ name: 'NginxDown', lables: { severity: 'critical' } }), path: GENERIC },
        422,
        /lables: unknown field/,
      ],
      ['generic: empty name', { ...json({ name: '' }), path: GENERIC }, 422, /name: expected string length greater or equal to 1/],
      [
        'generic: labels as an array',
        { ...json({ name: 'NginxDown', labels: ['severity=critical'] }), path: GENERIC },
        422,
        /labels: expected object/,
      ],
      ['generic: status unknown', { ...json({ name: 'NginxDown', status: 'ok' }), path: GENERIC }, 422, /status: must be one of/],
      [
        'generic: startsAt a number',
        { ...json({ name: 'NginxDown', startsAt: 1714557600 }), path: GENERIC },
        422,
        /startsAt: expected string/,
      ],
      ['an unknown path', { ...json(valid()), path: '/v1/alerts/zabbix' }, 404, /no such endpoint/],
    ];

    // Reordered so the title reads "<what> → <status>".
    const cases = table.map(([what, c, status, message]) => [what, status, c, message] as const);
    test.each(cases)('%s → %d', async (_, status, c, message) => {
      const before = await count();
      const answer = await send(intake.url, {
        path: c.path ?? AM,
        body: c.body,
        headers: { ...(c.type ? { 'content-type': c.type } : {}), authorization: `Bearer ${token}`, ...c.headers },
      });
      expect(answer.status).toBe(status);
      expect(answer.headers['content-type']).toMatch(/^application\/json/);
      expect(typeof answer.json?.error).toBe('string');
      expect(answer.json?.error).toMatch(message);
      expect(await count()).toBe(before);
    });

    test('a chunked body over 1 MiB is cut off with 413', async () => {
      const before = await count();
      const answer = await rawExchange(intake.url, (socket) => {
        socket.write(
          `POST ${AM} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer ${token}\r\ntransfer-encoding: chunked\r\n\r\n`,
        );
        const chunk = 'x'.repeat(64 * 1024);
        // 1.25 MiB, and the body never ends: the intake must not wait for it.
        for (let i = 0; i < 20; i++) socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      });
      expect(answer.status).toBe(413);
      expect(JSON.parse(answer.body).error).toMatch(/larger than/);
      expect(await count()).toBe(before);
    });

    test('Expect: 100-continue: a refused sender is answered before it uploads the body', async () => {
      const answer = await rawExchange(intake.url, (socket) => {
        socket.write(
          `POST ${AM} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer wrong-token-0000000000\r\ncontent-length: 50000000\r\nexpect: 100-continue\r\n\r\n`,
        );
      });
      expect(answer.status).toBe(401);
      const accepted = await rawExchange(intake.url, (socket) => {
        const body = JSON.stringify(valid());
        socket.write(
          `POST ${AM} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer ${token}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nexpect: 100-continue\r\n\r\n`,
        );
        socket.once('data', () => socket.write(body));
      });
      expect(accepted.interim).toBe(100);
      expect(accepted.status).toBe(200);
    });

    test('malformed HTTP gets a 400, and the intake keeps serving', async () => {
      const answer = await rawExchange(intake.url, (socket) => socket.write('POST /v1/alerts HTTP/1.1\r\nbroken header line\r\n\r\n'));
      expect(answer.status).toBe(400);
      expect((await fetch(`${intake.url}/readyz`)).status).toBe(200);
    });

    test('other methods are 405 with Allow: POST', async () => {
      const answer = await send(intake.url, { method: 'GET', path: AM });
      expect(answer.status).toBe(405);
      expect(answer.headers.allow).toBe('POST');
      expect(answer.json?.error).toMatch(/POST/);
    });
  });

  test("intake metrics are on the controller's /metrics", async () => {
    const text = await (await fetch(`${intake.controller.metricsUrl}/metrics`)).text();
    expect(metricValue(text, 'remediator_intake_requests_total', { source: 'alertmanager', outcome: 'ok' })).toBeGreaterThan(0);
    expect(
      metricValue(text, 'remediator_intake_requests_total', { source: 'alertmanager', outcome: 'unauthorized' }),
    ).toBeGreaterThanOrEqual(5);
    expect(metricValue(text, 'remediator_intake_requests_total', { source: 'alertmanager', outcome: 'bad_request' })).toBeGreaterThan(10);
    expect(metricValue(text, 'remediator_intake_requests_total', { source: 'alertmanager', outcome: 'too_large' })).toBeGreaterThanOrEqual(
      2,
    );
    expect(metricValue(text, 'remediator_intake_requests_total', { source: 'generic', outcome: 'ok' })).toBeGreaterThan(0);
    expect(metricValue(text, 'remediator_intake_request_duration_seconds_count', { source: 'alertmanager' })).toBeGreaterThan(0);
    expect(metricValue(text, 'remediator_intake_alerts_received_total', { source: 'alertmanager', status: 'firing' })).toBeGreaterThan(0);
    expect(metricValue(text, 'remediator_intake_remediationrequests_created_total', { source: 'alertmanager' })).toBeGreaterThanOrEqual(3);
    expect(
      metricValue(text, 'remediator_intake_remediationrequests_deduplicated_total', { source: 'alertmanager' }),
    ).toBeGreaterThanOrEqual(8);
    expect(metricValue(text, 'remediator_intake_resolutions_total', { source: 'alertmanager', result: 'cancelled' })).toBe(1);
    // The controller's own metrics are on the same registry.
    expect(text).toContain('controller_runtime_reconcile_total');
  });

  test('every request the intake created records the intake as its requester', async () => {
    const all: RemediationRequest[] = [...(await listRequests(admin, NS)), ...(await listRequests(admin, OTHER))];
    expect(all.length).toBeGreaterThan(0);
    for (const rr of all) expect(rr.spec.requestedBy).toBe(ns.controllerUser);
  });
});
