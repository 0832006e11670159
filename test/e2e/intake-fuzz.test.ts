/**
 * Property-based test of the running intake (the real controller process, the real API
 * server): thousands of generated requests — random JSON, random bytes, random content
 * types and headers, and valid Alertmanager, generic and SNS payloads with one mutation
 * that makes them invalid (a required field removed, a field of the wrong type, a bad
 * enum value, a bad timestamp, truncated or spliced JSON, an unknown field, too many
 * alerts) — sent in parallel batches. Properties:
 *
 * 1. the intake never crashes and never answers 5xx;
 * 2. every 4xx carries a JSON `{ "error": "..." }`;
 * 3. a payload known to be invalid is always refused with a 4xx;
 * 4. requests are created only by accepted payloads: the RemediationRequests in the
 *    namespace afterwards are exactly those the 2xx answers reported as created, each
 *    once (so no invalid input created one, and dedup held under concurrency).
 */
import fc from 'fast-check';
import type { AlertPolicy } from '../../src/api/v1alpha1/index.js';
import { canonicalTime } from '../../src/intake/alert.js';
import { Resources, testbedFromEnv } from './harness.js';
import {
  listRequests,
  send,
  setUpIntakeNamespaces,
  startIntakeController,
  type HttpAnswer,
  type IntakeController,
  type IntakeNamespaces,
} from './intake-harness.js';

/** The cluster-scoped Runbook this file's policies use. */
const RB = 'e2e-intake-fuzz';
const REGION = 'me-south-1';
const NS = 'intake-fuzz';
const BATCH = 25;
const RUNS = 120; // × BATCH = 3000 generated requests

interface Case {
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | Uint8Array;
  /** Known to be invalid: must be refused with a 4xx. */
  invalid: boolean;
}

const ENDPOINTS = ['/v1/alerts/alertmanager', '/v1/alerts', '/v1/alerts/sns'] as const;

// ---------- building blocks ----------

const safeName = fc.stringMatching(/^[a-z_][a-z0-9_]{0,11}$/);
const safeValue = fc.string({ maxLength: 24 });
const labelsArb = (alertname: fc.Arbitrary<string>) =>
  fc.tuple(alertname, fc.dictionary(safeName, safeValue, { maxKeys: 4 })).map(([name, extra]) => ({ ...extra, alertname: name }));
const fingerprintArb = fc.constantFrom('f000000000000001', 'f000000000000002', 'f000000000000003', 'f000000000000004', 'f000000000000005');
const startsAtArb = fc.constantFrom('2025-05-01T00:00:00Z', '2025-05-01T01:00:00.5Z', '2025-05-01T02:00:00.123456789+02:00');

const amAlertArb = fc.record({
  status: fc.constantFrom('firing', 'firing', 'firing', 'resolved'),
  labels: labelsArb(fc.constantFrom('FuzzA', 'FuzzB')),
  annotations: fc.dictionary(safeName, safeValue, { maxKeys: 3 }),
  startsAt: startsAtArb,
  endsAt: fc.constant('0001-01-01T00:00:00Z'),
  generatorURL: fc.constant('http://prometheus-0:9090/graph?g0.expr=up'),
  fingerprint: fingerprintArb,
});

const amPayloadArb = fc.array(amAlertArb, { minLength: 1, maxLength: 3 }).map((alerts) => ({
  receiver: 'remediator',
  status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
  alerts,
  groupLabels: { alertname: alerts[0]!.labels.alertname },
  commonLabels: { alertname: alerts[0]!.labels.alertname },
  commonAnnotations: {},
  externalURL: 'http://alertmanager-0:9093',
  version: '4',
  groupKey: '{}:{alertname="FuzzA"}',
  truncatedAlerts: 0,
}));

const genericArb = fc.record(
  {
    name: fc.constantFrom('FuzzA', 'FuzzB'),
    labels: fc.dictionary(safeName, safeValue, { maxKeys: 4 }),
    annotations: fc.dictionary(safeName, safeValue, { maxKeys: 2 }),
    status: fc.constantFrom('firing', 'resolved'),
    fingerprint: fingerprintArb,
    startsAt: startsAtArb,
  },
  { requiredKeys: ['name', 'fingerprint', 'startsAt'] },
);

const snsArb = fc.record({
  Type: fc.constantFrom('Notification', 'SubscriptionConfirmation'),
  MessageId: fc.uuid(),
  TopicArn: fc.constantFrom('arn:aws:sns:us-east-1:123456789012:alarms', 'arn:aws:sns:eu-west-1:210987654321:other'),
  Message: fc.jsonValue().map((v) => JSON.stringify(v)),
  Timestamp: fc.constant('2025-05-01T00:00:00.000Z'),
  SignatureVersion: fc.constantFrom('1', '2'),
  Signature: fc.base64String({ minLength: 4, maxLength: 64 }),
  SigningCertURL: fc.constantFrom('https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem', 'https://evil.example/x.pem'),
  SubscribeURL: fc.constant('https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription'),
  Token: fc.stringMatching(/^[0-9a-f]{8,16}$/),
});

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
type Kind = 'string' | 'array' | 'object' | 'integer' | 'enum';
/** A JSON value that is certainly not of `kind`. */
const wrongType = (kind: Kind, allowed: readonly string[] = []) =>
  fc.jsonValue({ maxDepth: 2 }).filter((v) => {
    switch (kind) {
      case 'string':
        return typeof v !== 'string';
      case 'array':
        return !Array.isArray(v);
      case 'object':
        return !isPlainObject(v);
      case 'integer':
        return !(typeof v === 'number' && Number.isInteger(v) && v >= 0);
      case 'enum':
        return !(typeof v === 'string' && allowed.includes(v));
    }
  });
const notTimestamp = fc.string({ maxLength: 30 }).filter((s) => canonicalTime(s) === undefined);

type Json = Record<string, unknown>;
type Mutation = (p: Json) => Json;

/** Mutations that certainly make a valid Alertmanager payload invalid. */
const amBreakers: fc.Arbitrary<[string, Mutation]> = fc.oneof(
  fc
    .constantFrom('alerts', 'version', 'status', 'receiver')
    .map((k): [string, Mutation] => [`remove ${k}`, (p) => Object.fromEntries(Object.entries(p).filter(([key]) => key !== k))]),
  fc.constantFrom('labels', 'startsAt', 'status').map((k): [string, Mutation] => [
    `remove alerts[0].${k}`,
    (p) => ({
      ...p,
      alerts: [Object.fromEntries(Object.entries((p.alerts as Json[])[0]!).filter(([key]) => key !== k)), ...(p.alerts as Json[]).slice(1)],
    }),
  ]),
  wrongType('string').map((v): [string, Mutation] => ['version of the wrong type', (p) => ({ ...p, version: v })]),
  fc
    .string({ maxLength: 8 })
    .filter((s) => s !== '4')
    .map((v): [string, Mutation] => ['another version', (p) => ({ ...p, version: v })]),
  wrongType('array').map((v): [string, Mutation] => ['alerts not an array', (p) => ({ ...p, alerts: v })]),
  wrongType('enum', ['firing', 'resolved']).map((v): [string, Mutation] => ['bad status', (p) => ({ ...p, status: v })]),
  wrongType('string').map((v): [string, Mutation] => ['receiver of the wrong type', (p) => ({ ...p, receiver: v })]),
  wrongType('object').map((v): [string, Mutation] => ['groupLabels of the wrong type', (p) => ({ ...p, groupLabels: v })]),
  wrongType('integer').map((v): [string, Mutation] => ['truncatedAlerts of the wrong type', (p) => ({ ...p, truncatedAlerts: v })]),
  fc
    .tuple(fc.constantFrom('labels', 'annotations'), wrongType('object'))
    .map(([k, v]): [string, Mutation] => [
      `alerts[0].${k} of the wrong type`,
      (p) => ({ ...p, alerts: [{ ...(p.alerts as Json[])[0], [k]: v }] }),
    ]),
  fc
    .tuple(fc.constantFrom('startsAt', 'fingerprint', 'generatorURL', 'endsAt'), wrongType('string'))
    .map(([k, v]): [string, Mutation] => [
      `alerts[0].${k} of the wrong type`,
      (p) => ({ ...p, alerts: [{ ...(p.alerts as Json[])[0], [k]: v }] }),
    ]),
  wrongType('string').map((v): [string, Mutation] => [
    'a label value of the wrong type',
    (p) => ({ ...p, alerts: [{ ...(p.alerts as Json[])[0], labels: { alertname: 'FuzzA', bad: v } }] }),
  ]),
  wrongType('string').map((v): [string, Mutation] => [
    'alertname of the wrong type',
    (p) => ({ ...p, alerts: [{ ...(p.alerts as Json[])[0], labels: { alertname: v } }] }),
  ]),
  fc.constant<[string, Mutation]>(['no alertname', (p) => ({ ...p, alerts: [{ ...(p.alerts as Json[])[0], labels: { job: 'x' } }] })]),
  notTimestamp.map((v): [string, Mutation] => [
    'startsAt not a timestamp',
    (p) => ({ ...p, alerts: [{ ...(p.alerts as Json[])[0], startsAt: v }] }),
  ]),
  fc.constant<[string, Mutation]>([
    'too many alerts',
    (p) => ({ ...p, alerts: Array.from({ length: 501 }, () => (p.alerts as Json[])[0]) }),
  ]),
  fc.constant<[string, Mutation]>([
    'an empty label name',
    (p) => ({ ...p, alerts: [{ ...(p.alerts as Json[])[0], labels: { alertname: 'FuzzA', '': 'x' } }] }),
  ]),
);

/** Mutations that certainly make a valid generic alert invalid. */
const genericBreakers: fc.Arbitrary<[string, Mutation]> = fc.oneof(
  fc.constant<[string, Mutation]>(['remove name', (p) => Object.fromEntries(Object.entries(p).filter(([k]) => k !== 'name'))]),
  wrongType('string').map((v): [string, Mutation] => ['name of the wrong type', (p) => ({ ...p, name: v })]),
  fc.constant<[string, Mutation]>(['empty name', (p) => ({ ...p, name: '' })]),
  fc.constant<[string, Mutation]>(['name too long', (p) => ({ ...p, name: 'N'.repeat(257) })]),
  fc
    .tuple(
      fc
        .string({ minLength: 1, maxLength: 10 })
        .filter((k) => !['name', 'labels', 'annotations', 'status', 'fingerprint', 'startsAt', '__proto__'].includes(k)),
      fc.jsonValue({ maxDepth: 1 }),
    )
    .map(([k, v]): [string, Mutation] => ['an unknown field', (p) => ({ ...p, [k]: v })]),
  fc
    .tuple(fc.constantFrom('labels', 'annotations'), wrongType('object'))
    .map(([k, v]): [string, Mutation] => [`${k} of the wrong type`, (p) => ({ ...p, [k]: v })]),
  wrongType('enum', ['firing', 'resolved']).map((v): [string, Mutation] => ['bad status', (p) => ({ ...p, status: v })]),
  fc.oneof(notTimestamp, wrongType('string')).map((v): [string, Mutation] => ['bad startsAt', (p) => ({ ...p, startsAt: v })]),
  wrongType('string').map((v): [string, Mutation] => ['fingerprint of the wrong type', (p) => ({ ...p, fingerprint: v })]),
  wrongType('string').map((v): [string, Mutation] => ['a label value of the wrong type', (p) => ({ ...p, labels: { a: v } })]),
);

/** Text-level mutations: truncation always breaks a JSON object; a splice may or may not. */
const truncate = (text: string, at: number) => text.slice(0, Math.max(1, Math.floor(at * (text.length - 1))));

function caseArb(token: string): fc.Arbitrary<Case> {
  const auth = { authorization: `Bearer ${token}` };
  const json = { 'content-type': 'application/json', ...auth };
  const post = (kind: string, path: string, body: string | Uint8Array, invalid: boolean, headers: Record<string, string> = json): Case => ({
    kind,
    method: 'POST',
    path,
    headers,
    body,
    invalid,
  });
  return fc.oneof(
    // Random JSON at every endpoint (valid by chance is allowed; the accounting covers it).
    fc.tuple(fc.constantFrom(...ENDPOINTS), fc.jsonValue()).map(([path, v]) => post('random JSON', path, JSON.stringify(v), false)),
    // Random bytes, random content types.
    fc
      .tuple(
        fc.constantFrom(...ENDPOINTS),
        fc.uint8Array({ maxLength: 200 }),
        fc.constantFrom('application/json', 'text/plain', 'application/octet-stream', '', 'application/json; charset=utf-16'),
      )
      .map(([path, bytes, type]) => post('random bytes', path, bytes, false, { ...auth, ...(type ? { 'content-type': type } : {}) })),
    // Valid payloads: accepted, and deduplicated into a handful of requests.
    amPayloadArb.map((p) => post('valid Alertmanager', '/v1/alerts/alertmanager', JSON.stringify(p), false)),
    genericArb.map((p) => post('valid generic', '/v1/alerts', JSON.stringify(p), false)),
    // Valid payloads with one breaking mutation.
    fc
      .tuple(amPayloadArb, amBreakers)
      .map(([p, [what, m]]) => post(`Alertmanager: ${what}`, '/v1/alerts/alertmanager', JSON.stringify(m(p)), true)),
    fc.tuple(genericArb, genericBreakers).map(([p, [what, m]]) => post(`generic: ${what}`, '/v1/alerts', JSON.stringify(m(p)), true)),
    fc
      .tuple(fc.oneof(amPayloadArb, genericArb), fc.double({ min: 0, max: 1, noNaN: true }))
      .map(([p, at]) =>
        post('truncated JSON', 'alerts' in p ? '/v1/alerts/alertmanager' : '/v1/alerts', truncate(JSON.stringify(p), at), true),
      ),
    fc.tuple(amPayloadArb, fc.double({ min: 0, max: 1, noNaN: true }), fc.string({ minLength: 1, maxLength: 3 })).map(([p, at, junk]) => {
      const text = JSON.stringify(p);
      const i = Math.floor(at * text.length);
      return post('spliced JSON', '/v1/alerts/alertmanager', text.slice(0, i) + junk + text.slice(i), false);
    }),
    // SNS: never signed by SNS, so never accepted.
    snsArb.map((env) =>
      post('unsigned-by-SNS SNS message', '/v1/alerts/sns', JSON.stringify(env), true, { 'content-type': 'text/plain; charset=UTF-8' }),
    ),
    fc
      .tuple(snsArb, fc.constantFrom('Type', 'MessageId', 'TopicArn', 'Message', 'Timestamp'), fc.jsonValue({ maxDepth: 1 }))
      .map(([env, k, v]) =>
        post('SNS message with a field replaced', '/v1/alerts/sns', JSON.stringify({ ...env, [k]: v }), true, {
          'content-type': 'text/plain',
        }),
      ),
    // Authentication and protocol mistakes.
    fc
      .tuple(
        fc.constantFrom('/v1/alerts/alertmanager', '/v1/alerts'),
        fc.oneof(fc.constant(undefined), fc.stringMatching(/^[A-Za-z0-9._~+/-]{0,40}$/)),
      )
      .map(([path, t]) =>
        post('missing or wrong token', path, '{"name":"FuzzA"}', true, {
          'content-type': 'application/json',
          ...(t === undefined ? {} : { authorization: `Bearer ${t}x` }),
        }),
      ),
    fc
      .tuple(fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH'), fc.constantFrom(...ENDPOINTS))
      .map(([method, path]) => ({ ...post('wrong method', path, '', true), method })),
    fc.string({ maxLength: 20 }).map((s) => post('unknown path', `/v1/alerts/${encodeURIComponent(s)}x`, '{}', true)),
    fc
      .string({ maxLength: 20 })
      .map((s) => post('namespace parameter', `/v1/alerts?namespace=${encodeURIComponent(s)}`, '{"name":"FuzzA"}', true)),
  );
}

describe('intake under generated input (property-based)', () => {
  const tb = testbedFromEnv();
  const admin = tb.admin();
  const res = new Resources(admin);
  let ns: IntakeNamespaces;
  let intake: IntakeController;

  beforeAll(async () => {
    ns = await setUpIntakeNamespaces(admin, [NS]);
    // Matches every alert from every source; suspended, so the controller only records Skipped.
    await res.createRunbook(RB, { namespaceSelector: {}, action: { ssm: { parameters: [{ name: 'commands', values: ['true'] }] } } });
    const policy: Partial<AlertPolicy['spec']> & Pick<AlertPolicy['spec'], 'runbookRef'> = {
      targets: { fromLabels: ['instance_id'] },
      safety: { suspend: true },
      runbookRef: { name: RB },
    };
    await res.createPolicy(NS, 'catch-all', policy);
    intake = await startIntakeController(tb, ns, { region: REGION, args: ['--intake-max-inflight', '256'] });
  });

  afterAll(async () => {
    await intake?.stop();
    await ns?.cleanup();
  });

  test(`${RUNS * BATCH} generated requests: no crash, no 5xx, nothing created from invalid input`, async () => {
    const before = new Set((await listRequests(admin, NS)).map((r) => r.metadata?.name));
    const created: string[] = [];
    const seen = { total: 0, accepted: 0, refused: 0 };
    const kinds = new Map<string, number>();

    await fc.assert(
      fc.asyncProperty(fc.array(caseArb(ns.token), { minLength: BATCH, maxLength: BATCH }), async (cases) => {
        const answers: HttpAnswer[] = await Promise.all(
          cases.map((c) => send(intake.url, { method: c.method, path: c.path, headers: c.headers, body: Buffer.from(c.body) })),
        );
        answers.forEach((a, i) => {
          const c = cases[i]!;
          seen.total++;
          kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
          const where = `${c.kind}: ${c.method} ${c.path} ${Buffer.from(c.body).toString('utf8').slice(0, 300)} → ${a.status} ${a.text.slice(0, 300)}`;
          if (a.status >= 500 || a.status < 200) throw new Error(`5xx (or no status) for a client mistake: ${where}`);
          if (a.status >= 400) {
            seen.refused++;
            if (typeof a.json?.error !== 'string' || a.json.error.length === 0) throw new Error(`4xx without a JSON error: ${where}`);
          } else {
            seen.accepted++;
            if (c.invalid) throw new Error(`invalid input accepted: ${where}`);
            if (Array.isArray(a.json?.created)) created.push(...(a.json.created as string[]));
          }
        });
      }),
      { numRuns: RUNS, endOnFailure: true },
    );

    // The controller process is alive and still serving.
    expect(intake.controller.process.exitStatus()).toBeUndefined();
    expect((await fetch(`${intake.url}/readyz`)).status).toBe(200);
    // Exactly the reported creations exist, each once.
    const after = (await listRequests(admin, NS)).map((r) => `${NS}/${r.metadata?.name}`).filter((ref) => !before.has(ref.split('/')[1]));
    expect(new Set(created).size).toBe(created.length);
    expect(after.sort()).toEqual([...created].sort());
    // Sanity: the generators really exercised both sides.
    expect(seen.total).toBe(RUNS * BATCH);
    expect(seen.accepted).toBeGreaterThan(100);
    expect(seen.refused).toBeGreaterThan(1500);
    expect(created.length).toBeGreaterThan(0);
    process.stdout.write(
      `intake fuzz: ${seen.total} requests, ${seen.accepted} accepted, ${seen.refused} refused, ${created.length} requests created; by kind ${JSON.stringify(Object.fromEntries(kinds))}\n`,
    );
  }, 120_000);
});
