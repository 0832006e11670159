/**
 * CloudWatch alarms through an SNS HTTP(S) subscription, end to end against the real
 * kube-apiserver: an intake server in this process (so the test can inject its own
 * signing certificate and serve a local SubscribeURL) creates real RemediationRequests.
 * Messages are signed with a test RSA key exactly as SNS signs them (versions 1 and 2);
 * a tampered message, a wrong topic, a foreign certificate host and an unsigned message
 * are all refused and create nothing; a subscription is confirmed only for an
 * allowlisted topic and only through a SubscribeURL the policy allows (production: SNS
 * hosts over https only). No controller watches these namespaces, so requests keep the
 * phase the test gives them.
 */
import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { GROUP, VERSION, type AlertPolicy, type RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { KubeIntakeApi } from '../../src/intake/kube.js';
import { requestName } from '../../src/intake/naming.js';
import { IntakeServer } from '../../src/intake/server.js';
import { sha256Hex } from '../../src/intake/alert.js';
import { Resources, testbedFromEnv } from './harness.js';
import {
  cloudWatchAlarm,
  listRequests,
  metricValue,
  send,
  signSns,
  snsSigningIdentity,
  TestCertificateSource,
  type UnsignedSns,
} from './intake-harness.js';

/** The digest of a plan as the controller would have rendered it. */
const PLAN_DIGEST = `sha256:${'0f'.repeat(32)}`;
/** The cluster-scoped Runbook this file's policies use. */
const RB = 'e2e-intake-sns';
const NS = 'intake-sns';
const NS_B = 'intake-sns-b';
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:alarms';
const OTHER_TOPIC = 'arn:aws:sns:us-east-1:123456789012:not-allowlisted';
const PATH = '/v1/alerts/sns';

const ssm = { ssm: { parameters: [{ name: 'commands', values: ['reboot'] }] } };

describe('CloudWatch alarms via SNS', () => {
  const tb = testbedFromEnv();
  const admin = tb.admin();
  const res = new Resources(admin);
  const custom = admin.makeApiClient(CustomObjectsApi);
  const signer = snsSigningIdentity();
  const certificates = new TestCertificateSource(signer.x509);
  const registry = new Registry();
  const kube = new KubeIntakeApi(admin);
  let policies: AlertPolicy[] = [];
  let intake: IntakeServer;
  let url: string;
  let confirmServer: Server;
  let confirmUrl: string;
  const confirmations: string[] = [];

  const count = async () => (await listRequests(admin, NS)).length + (await listRequests(admin, NS_B)).length;

  async function refreshPolicies(): Promise<void> {
    const lists = await Promise.all(
      [NS, NS_B].map((namespace) =>
        custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'alertpolicies' }),
      ),
    );
    policies = lists.flatMap((l) => (l as { items: AlertPolicy[] }).items);
  }

  /** POSTs an SNS message the way SNS does: text/plain, with its x-amz-sns-* headers. */
  function deliver(env: object, target = url) {
    const e = env as { Type?: string; TopicArn?: string; MessageId?: string };
    return send(target, {
      path: PATH,
      body: JSON.stringify(env),
      headers: {
        'content-type': 'text/plain; charset=UTF-8',
        'user-agent': 'Amazon Simple Notification Service Agent',
        'x-amz-sns-message-type': e.Type ?? '',
        'x-amz-sns-message-id': e.MessageId ?? '',
        'x-amz-sns-topic-arn': e.TopicArn ?? '',
        'x-amz-sns-subscription-arn': `${TOPIC}:6c2f2fd4-2a8d-4b5a-9e3e-1d0f2f6b7c11`,
      },
    });
  }

  const notification = (alarm: object, topic = TOPIC): UnsignedSns => ({
    Type: 'Notification',
    MessageId: randomUUID(),
    TopicArn: topic,
    Subject: 'ALARM: "cpu-high" in US East (N. Virginia)',
    Message: JSON.stringify(alarm),
    Timestamp: new Date().toISOString(),
    UnsubscribeURL: `https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=${TOPIC}:6c2f2fd4`,
  });

  const confirmation = (topic = TOPIC, subscribeUrl?: string): UnsignedSns => {
    const token = `2336412f37fb687f5d51e6e2425c464${randomUUID().replace(/-/g, '')}`;
    return {
      Type: 'SubscriptionConfirmation',
      MessageId: randomUUID(),
      Token: token,
      TopicArn: topic,
      Message: `You have chosen to subscribe to the topic ${topic}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
      SubscribeURL: subscribeUrl ?? `${confirmUrl}/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(topic)}&Token=${token}`,
      Timestamp: new Date().toISOString(),
    };
  };

  const alarm = (name: string, state: 'ALARM' | 'OK' | 'INSUFFICIENT_DATA', changedAt: string) =>
    cloudWatchAlarm({ name, state, instanceId: 'i-0a1b2c3d4e5f60789', changedAt });
  const fingerprintOf = (name: string) => sha256Hex(`arn:aws:cloudwatch:us-east-1:123456789012:alarm:${name}`).slice(0, 16);

  beforeAll(async () => {
    await res.createRunbook(RB, { namespaceSelector: {}, action: ssm });
    for (const ns of [NS, NS_B]) await res.namespace(ns);
    await res.createPolicy(NS, 'reboot-on-cpu', {
      match: { sources: ['cloudwatch'], labels: [{ name: 'alertname', op: '=~', value: 'cpu-high-.*' }] },
      targets: { fromDimensions: ['InstanceId'] },
      runbookRef: { name: RB },
    });
    await res.createPolicy(NS_B, 'any-instance-alarm', {
      match: { labels: [{ name: 'InstanceId', op: '=~', value: 'i-[0-9a-f]+' }] },
      targets: { fromDimensions: ['InstanceId'] },
      runbookRef: { name: RB },
    });
    await res.createPolicy(NS_B, 'alertmanager-only', {
      match: { sources: ['alertmanager'] },
      targets: { fromLabels: ['instance_id'] },
      runbookRef: { name: RB },
    });
    await refreshPolicies();

    confirmServer = createServer((req, response) => {
      confirmations.push(req.url ?? '');
      response
        .writeHead(200, { 'content-type': 'text/xml' })
        .end(
          '<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>',
        );
    });
    await new Promise<void>((resolve) => confirmServer.listen(0, '127.0.0.1', () => resolve()));
    confirmUrl = `http://127.0.0.1:${(confirmServer.address() as { port: number }).port}`;

    intake = new IntakeServer({
      bindAddress: '127.0.0.1:0',
      kube,
      policies: () => policies,
      watchNamespaces: [NS, NS_B],
      cacheSynced: () => true,
      logger: pino({ level: 'silent' }),
      registry,
      snsTopicAllowlist: new Set([TOPIC]),
      certificates,
      // Test only: production visits https SNS hosts only (see the strict server below).
      confirmUrlPolicy: (u) => u.protocol === 'http:' && u.hostname === '127.0.0.1' && u.port === new URL(confirmUrl).port,
    });
    await intake.start();
    url = `http://127.0.0.1:${intake.port}`;
    // Identity comes from a SelfSubjectReview, in the background.
    for (let i = 0; i < 100 && !intake.ready; i++) await new Promise((r) => setTimeout(r, 50));
    expect(intake.ready).toBe(true);
  });

  afterAll(async () => {
    await intake?.stop();
    await new Promise<void>((resolve) => (confirmServer ? confirmServer.close(() => resolve()) : resolve()));
  });

  describe('subscription confirmation', () => {
    test('is answered for an allowlisted topic by visiting the SubscribeURL', async () => {
      const env = signSns(confirmation(), signer.key);
      const answer = await deliver(env);
      expect(answer.status).toBe(200);
      expect(answer.json).toEqual({ confirmed: TOPIC });
      expect(confirmations).toHaveLength(1);
      expect(confirmations[0]).toContain(`Token=${env.Token}`);
    });

    test('is refused for a topic that is not allowlisted, and nothing is visited', async () => {
      const answer = await deliver(signSns(confirmation(OTHER_TOPIC), signer.key));
      expect(answer.status).toBe(403);
      expect(answer.json?.error).toMatch(/not allowed.*--sns-topic-allowlist/);
      expect(confirmations).toHaveLength(1);
    });

    test('is refused when the signed SubscribeURL leads elsewhere', async () => {
      for (const elsewhere of [
        `http://169.254.169.254/latest/meta-data/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(TOPIC)}`,
        `${confirmUrl}/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(OTHER_TOPIC)}`,
        `${confirmUrl}/?Action=Unsubscribe&TopicArn=${encodeURIComponent(TOPIC)}`,
      ]) {
        const answer = await deliver(signSns(confirmation(TOPIC, elsewhere), signer.key));
        expect(answer.status).toBe(403);
      }
      expect(confirmations).toHaveLength(1);
    });

    test('production policy: only https SNS hosts are visited, never a local URL', async () => {
      const strict = new IntakeServer({
        bindAddress: '127.0.0.1:0',
        kube,
        identity: 'test',
        policies: () => policies,
        cacheSynced: () => true,
        logger: pino({ level: 'silent' }),
        registry: new Registry(),
        snsTopicAllowlist: new Set([TOPIC]),
        certificates,
      });
      await strict.start();
      try {
        const answer = await deliver(signSns(confirmation(), signer.key), `http://127.0.0.1:${strict.port}`);
        expect(answer.status).toBe(403);
        expect(answer.json?.error).toMatch(/not an SNS endpoint/);
        expect(confirmations).toHaveLength(1);
      } finally {
        await strict.stop();
      }
    });

    test('an unsigned or forged confirmation visits nothing', async () => {
      const { Signature: _, ...unsigned } = signSns(confirmation(), signer.key);
      expect((await deliver(unsigned)).status).toBe(403);
      const forged = {
        ...signSns(confirmation(), signer.key),
        SubscribeURL: `${confirmUrl}/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(TOPIC)}&Token=forged`,
      };
      expect((await deliver(forged)).status).toBe(403);
      expect(confirmations).toHaveLength(1);
    });
  });

  describe('notifications', () => {
    test('a v1 (SHA1withRSA) signed ALARM creates a request per matching policy, in every watched namespace', async () => {
      const env = signSns(notification(alarm('cpu-high-web-1', 'ALARM', '2025-03-01T10:00:00.000+0000')), signer.key, '1');
      const answer = await deliver(env);
      expect(answer.status).toBe(200);
      const alert = { source: 'cloudwatch' as const, fingerprint: fingerprintOf('cpu-high-web-1'), occurrence: '2025-03-01T10:00:00.000Z' };
      expect(answer.json?.created).toEqual([
        `${NS}/${requestName(NS, 'reboot-on-cpu', alert)}`,
        `${NS_B}/${requestName(NS_B, 'any-instance-alarm', alert)}`,
      ]);
      const rr = await res.getRequest(NS, requestName(NS, 'reboot-on-cpu', alert));
      expect(rr.spec.alert).toMatchObject({
        source: 'cloudwatch',
        name: 'cpu-high-web-1',
        status: 'firing',
        fingerprint: alert.fingerprint,
        startsAt: '2025-03-01T10:00:00.000Z',
        labels: {
          alertname: 'cpu-high-web-1',
          InstanceId: 'i-0a1b2c3d4e5f60789',
          aws_account_id: '123456789012',
          aws_region: 'us-east-1',
          metric_name: 'CPUUtilization',
          metric_namespace: 'AWS/EC2',
        },
        annotations: {
          alarm_arn: 'arn:aws:cloudwatch:us-east-1:123456789012:alarm:cpu-high-web-1',
          description: 'CPU high on i-0a1b2c3d4e5f60789',
        },
      });
      expect(rr.spec.requestedBy).toBe(intake.identity);
      // SNS delivers at least once: the same message again creates nothing.
      const again = await deliver(env);
      expect(again.json?.created).toEqual([]);
      expect(again.json?.existing).toHaveLength(2);
    });

    test('a v2 (SHA256withRSA) signed ALARM is accepted too', async () => {
      const answer = await deliver(
        signSns(notification(alarm('cpu-high-web-2', 'ALARM', '2025-03-01T10:01:00.000+0000')), signer.key, '2'),
      );
      expect(answer.status).toBe(200);
      expect(answer.json?.created).toHaveLength(2);
    });

    test.each<[string, (good: ReturnType<typeof signSns>) => object, RegExp]>([
      [
        'a tampered message',
        (g) => ({ ...g, Message: g.Message.replace('cpu-high-web-9', 'cpu-high-web-1') }),
        /signature does not verify/,
      ],
      ['a tampered subject', (g) => ({ ...g, Subject: 'OK' }), /signature does not verify/],
      [
        'a message of a topic that is not allowlisted',
        () => signSns(notification(alarm('cpu-high-web-9', 'ALARM', '2025-03-01T10:02:00Z'), OTHER_TOPIC), signer.key),
        /not allowed/,
      ],
      [
        'a certificate from a foreign host',
        (g) => ({ ...g, SigningCertURL: 'https://attacker.example/SimpleNotificationService.pem' }),
        /not an SNS certificate/,
      ],
      [
        'a certificate over plain http',
        (g) => ({ ...g, SigningCertURL: (g.SigningCertURL ?? '').replace('https:', 'http:') }),
        /not an SNS certificate/,
      ],
      [
        'a look-alike host',
        (g) => ({ ...g, SigningCertURL: 'https://sns.us-east-1.amazonaws.com.attacker.example/x.pem' }),
        /not an SNS certificate/,
      ],
      ['an unsigned message', ({ Signature: _s, SignatureVersion: _v, SigningCertURL: _c, ...unsigned }) => unsigned, /unsigned/],
      ['an empty signature', (g) => ({ ...g, Signature: '' }), /unsigned/],
      ['a v2 signature labelled v1', (g) => ({ ...g, SignatureVersion: '1' }), /signature does not verify/],
      ['an unknown signature version', (g) => ({ ...g, SignatureVersion: '3' }), /not supported/],
      [
        'a signature by another key',
        () => signSns(notification(alarm('cpu-high-web-9', 'ALARM', '2025-03-01T10:02:00Z')), snsSigningIdentity().key),
        /signature does not verify/,
      ],
    ])('refuses %s with 403, creating nothing', async (_, mutate, message) => {
      const before = await count();
      const fetchesBefore = certificates.fetches;
      const good = signSns(notification(alarm('cpu-high-web-9', 'ALARM', '2025-03-01T10:02:00Z')), signer.key);
      const answer = await deliver(mutate(good));
      expect(answer.status).toBe(403);
      expect(answer.json?.error).toMatch(message);
      expect(await count()).toBe(before);
      // A foreign host or topic never costs a certificate fetch.
      if (/foreign|look-alike|plain http|not allowlisted/.test(_)) expect(certificates.fetches).toBe(fetchesBefore);
    });

    test('OK resolves: requests that have not started are marked resolved; an approved one is left alone', async () => {
      // A fresh alarm, with one of its two requests approved by a person.
      const firing = await deliver(signSns(notification(alarm('cpu-high-web-3', 'ALARM', '2025-03-01T11:00:00.000+0000')), signer.key));
      const [inA, inB] = firing.json?.created as string[];
      const approvedName = inB!.split('/')[1]!;
      const approver = await kube.whoAmI();
      // As the controller would have left it: assessed and waiting for a person (the
      // shipped admission policy only lets a person approve once status.risk is set).
      const current = await res.getRequest(NS_B, approvedName);
      await res.api.replaceNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        namespace: NS_B,
        plural: 'remediationrequests',
        name: approvedName,
        body: {
          ...current,
          status: {
            phase: 'AwaitingApproval',
            risk: 'Low',
            message: 'waiting for a person',
            plan: {
              digest: PLAN_DIGEST,
              runbook: { name: RB, generation: 1 },
              policyGeneration: 1,
              risk: 'Low',
              targets: [],
              region: 'us-east-1',
            },
          },
        },
      });
      await res.api.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace: NS_B,
          plural: 'remediationrequests',
          name: approvedName,
          body: [
            {
              op: 'add',
              path: '/spec/approval',
              value: { decision: 'Approved', approver, reason: 'looked at it', planDigest: PLAN_DIGEST },
            },
          ],
        },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );

      const ok = await deliver(signSns(notification(alarm('cpu-high-web-3', 'OK', '2025-03-01T11:05:00.000+0000')), signer.key));
      expect(ok.status).toBe(200);
      expect(ok.json).toMatchObject({ alerts: 1, created: [], cancelled: [inA] });
      expect(ok.json?.unchanged).toEqual([{ request: inB, reason: expect.stringMatching(/approved; its spec is frozen/) }]);
      expect((await res.getRequest(NS, inA!.split('/')[1]!)).spec.alert.status).toBe('resolved');
      const approved = await res.getRequest(NS_B, approvedName);
      expect(approved.spec.alert.status).toBe('firing');
      // Had the intake tried, the API server would have refused: the CRD's CEL rule freezes an approved spec.
      expect(await kube.markResolved(NS_B, approvedName, approved.metadata!.resourceVersion!)).toBe('refused');
      expect(
        metricValue(await registry.metrics(), 'remediator_intake_resolutions_total', { source: 'cloudwatch', result: 'refused' }),
      ).toBe(1);
      // Other alarms' requests are untouched.
      const others = (await listRequests(admin, NS)).filter((r: RemediationRequest) => r.spec.alert.name !== 'cpu-high-web-3');
      for (const r of others) expect(r.spec.alert.status).toBe('firing');
    });

    test('INSUFFICIENT_DATA and UnsubscribeConfirmation are acknowledged without effect', async () => {
      const before = await count();
      const insufficient = await deliver(
        signSns(notification(alarm('cpu-high-web-4', 'INSUFFICIENT_DATA', '2025-03-01T12:00:00Z')), signer.key),
      );
      expect(insufficient.status).toBe(200);
      expect(insufficient.json?.ignored).toMatch(/INSUFFICIENT_DATA/);
      const unsub = await deliver(signSns({ ...confirmation(), Type: 'UnsubscribeConfirmation' }, signer.key));
      expect(unsub.status).toBe(200);
      expect(await count()).toBe(before);
      expect(confirmations).toHaveLength(1);
    });
  });

  describe('bad input', () => {
    const valid = () => signSns(notification(alarm('cpu-high-web-5', 'ALARM', '2025-03-01T13:00:00Z')), signer.key);
    test.each<[string, number, () => { body: string; type?: string; headers?: Record<string, string> }, RegExp]>([
      [
        'a message that is not a CloudWatch alarm',
        422,
        () => ({ body: JSON.stringify(signSns({ ...notification({}), Message: 'hello from a human' }, signer.key)) }),
        /not JSON/,
      ],
      [
        'an alarm missing AlarmName',
        422,
        () => ({
          body: JSON.stringify(
            signSns(
              { ...notification({}), Message: JSON.stringify({ ...alarm('x', 'ALARM', '2025-03-01T13:00:00Z'), AlarmName: undefined }) },
              signer.key,
            ),
          ),
        }),
        /Message\.AlarmName: required/,
      ],
      [
        'an alarm with a bad state',
        422,
        () => ({
          body: JSON.stringify(
            signSns(
              { ...notification({}), Message: JSON.stringify(alarm('x', 'ALARM', '2025-03-01T13:00:00Z')).replace('"ALARM"', '"WEIRD"') },
              signer.key,
            ),
          ),
        }),
        /NewStateValue/,
      ],
      ['malformed JSON', 400, () => ({ body: '{"Type": "Notification",' }), /not valid JSON/],
      ['missing TopicArn', 422, () => ({ body: JSON.stringify({ ...valid(), TopicArn: undefined }) }), /TopicArn: required/],
      [
        'Message of the wrong type',
        422,
        () => ({ body: JSON.stringify({ ...valid(), Message: { AlarmName: 'x' } }) }),
        /Message: expected string/,
      ],
      ['an unknown Type', 400, () => ({ body: JSON.stringify({ ...valid(), Type: 'Greeting' }) }), /unknown SNS message Type/],
      [
        'a header disagreeing with the body',
        400,
        () => ({ body: JSON.stringify(valid()), headers: { 'x-amz-sns-message-type': 'SubscriptionConfirmation' } }),
        /disagrees/,
      ],
      ['XML', 415, () => ({ body: '<Notification/>', type: 'application/xml' }), /Content-Type/],
    ])('%s → %d', async (_, status, make, message) => {
      const before = await count();
      const c = make();
      const answer = await send(url, {
        path: PATH,
        body: c.body,
        headers: { 'content-type': c.type ?? 'text/plain; charset=UTF-8', ...c.headers },
      });
      expect(answer.status).toBe(status);
      expect(answer.json?.error).toMatch(message);
      expect(await count()).toBe(before);
    });
  });

  describe('replays', () => {
    test('a correctly signed Notification older than the replay window is refused with 403 "too old", creating nothing', async () => {
      const before = await count();
      const stale = {
        ...notification(alarm('cpu-high-web-6', 'ALARM', '2025-03-01T14:00:00.000+0000')),
        Timestamp: new Date(Date.now() - 2 * 60 * 60_000).toISOString(),
      };
      const answer = await deliver(signSns(stale, signer.key));
      expect(answer.status).toBe(403);
      expect(answer.json?.error).toMatch(/SNS message is too old/);
      expect(await count()).toBe(before);
    });

    test('a replayed (late) OK does not cancel the requests of a newer ALARM of the same alarm', async () => {
      const first = await deliver(signSns(notification(alarm('cpu-high-web-7', 'ALARM', '2025-03-01T15:00:00.000+0000')), signer.key));
      const ok = signSns(notification(alarm('cpu-high-web-7', 'OK', '2025-03-01T15:05:00.000+0000')), signer.key);
      expect((await deliver(ok)).json?.cancelled).toEqual(first.json?.created);
      const second = await deliver(signSns(notification(alarm('cpu-high-web-7', 'ALARM', '2025-03-01T15:10:00.000+0000')), signer.key));
      const fresh = second.json?.created as string[];
      expect(fresh).toHaveLength(2);
      // SNS delivers the OK again (its signed Timestamp still within the window): nothing of the newer ALARM is touched.
      const replay = await deliver(ok);
      expect(replay.status).toBe(200);
      expect(replay.json).toMatchObject({ cancelled: [], unchanged: [] });
      for (const ref of fresh) expect((await res.getRequest(ref.split('/')[0]!, ref.split('/')[1]!)).spec.alert.status).toBe('firing');
    });
  });

  test('SNS outcomes are counted on the registry', async () => {
    const text = await registry.metrics();
    expect(metricValue(text, 'remediator_intake_requests_total', { source: 'sns', outcome: 'ok' })).toBeGreaterThan(5);
    expect(metricValue(text, 'remediator_intake_requests_total', { source: 'sns', outcome: 'forbidden' })).toBeGreaterThan(10);
    expect(metricValue(text, 'remediator_intake_remediationrequests_created_total', { source: 'cloudwatch' })).toBe(10);
    expect(metricValue(text, 'remediator_intake_remediationrequests_deduplicated_total', { source: 'cloudwatch' })).toBe(2);
  });
});
