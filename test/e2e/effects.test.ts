/**
 * Issue 20 against the real API server and moto: effects under ordinary load, no crash,
 * counted at the emulator (the fault proxy records every call that reached AWS; an SQS
 * queue subscribed to the topic receives every message SNS delivered).
 *
 *  - a burst of 25 SNS-runbook alerts through the intake publishes each message once;
 *  - a Publish whose answer takes 1.5 s publishes once;
 *  - six 60-target requests (chunks of 50 and 10) with AccessDenied on chunk 1 — a
 *    transient refusal for four of them — send no chunk twice, and each request's status
 *    says exactly what went out: chunk 0 with its command id, chunk 1 refused, its ten
 *    instances NotSent.
 */
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import type { RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { seedClientConfig, seedInstances } from '../testbed/aws.js';
import { type FaultProxy, type RecordedCall, startFaultProxy } from '../testbed/faultproxy.js';
import { assertNoContractViolations } from '../testbed/gateway.js';
import { Resources, restartRunbook, ssmCommands, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';
import {
  alertmanagerPayload,
  postJson,
  setUpIntakeNamespaces,
  startIntakeController,
  type IntakeController,
  type IntakeNamespaces,
} from './intake-harness.js';
import { suffix } from './install-chart.js';

const REGION = 'eu-central-2';
const NS = 'effects';
const id = suffix();

describe('effects under ordinary load are sent exactly once (issue 20)', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  const started = new Date();
  const sqs = new SQSClient(seedClientConfig(tb.motoEndpoint, REGION));
  const sns = new SNSClient(seedClientConfig(tb.motoEndpoint, REGION));
  let proxy: FaultProxy;
  let ns: IntakeNamespaces;
  let intake: IntakeController | undefined;
  const controllers: RunningController[] = [];

  /** A standard topic with an SQS queue subscribed: what SNS delivered lands there. */
  async function topicWithQueue(name: string): Promise<{ topicArn: string; queueUrl: string }> {
    const t = await sns.send(new CreateTopicCommand({ Name: name }));
    const q = await sqs.send(new CreateQueueCommand({ QueueName: name }));
    const arn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: q.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes
      ?.QueueArn;
    await sns.send(
      new SubscribeCommand({ TopicArn: t.TopicArn, Protocol: 'sqs', Endpoint: arn, Attributes: { RawMessageDelivery: 'false' } }),
    );
    return { topicArn: t.TopicArn!, queueUrl: q.QueueUrl! };
  }

  /** Every message on the queue until it has stayed empty for `quietMs`. */
  async function drain(queueUrl: string, atLeast: number, quietMs = 3_000): Promise<string[]> {
    const got: string[] = [];
    let lastAt = Date.now();
    await waitFor(
      `${atLeast} message(s) on ${queueUrl}, then quiet`,
      async () => {
        const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
        for (const m of out.Messages ?? []) got.push((JSON.parse(m.Body ?? '{}') as { Message?: string }).Message ?? '');
        if ((out.Messages ?? []).length > 0) lastAt = Date.now();
        return got.length >= atLeast && Date.now() - lastAt >= quietMs;
      },
      90_000,
      250,
    );
    return got;
  }

  const publishes = (topicArn: string): RecordedCall[] =>
    proxy.calls('Publish').filter((c) => (c.input as Record<string, string> | undefined)?.TopicArn === topicArn);
  const messageOf = (c: RecordedCall) => (c.input as Record<string, string> | undefined)?.Message ?? '';

  beforeAll(async () => {
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
    ns = await setUpIntakeNamespaces(tb.admin(), [NS]);
  });

  afterEach(() => proxy.clearRules());

  afterAll(async () => {
    await intake?.stop();
    for (const c of controllers) await c.stop();
    await proxy?.stop();
    await ns?.cleanup();
    sqs.destroy();
    sns.destroy();
    await assertNoContractViolations(tb.motoEndpoint, { region: REGION, since: started });
  });

  test('a burst of 25 SNS-runbook alerts through the intake publishes each message once', async () => {
    const { topicArn, queueUrl } = await topicWithQueue(`burst-${id}`);
    const [instance] = await seedInstances(tb.motoEndpoint, { region: REGION });
    await res.createRunbook(`page-${id}`, {
      namespaceSelector: {},
      maxAutoApprovedRisk: 'Low',
      inputs: [{ name: 'slot', allowedPattern: 's[0-9]{2}' }],
      action: { sns: { topicArn, message: 'page {{ inputs.slot }}' } },
    });
    await res.createPolicy(NS, 'page', {
      match: { sources: ['alertmanager'], labels: [{ name: 'alertname', op: '=', value: 'Page' }] },
      targets: { fromLabels: ['instance_id'] },
      inputs: { slot: '{{ labels.slot }}' },
      risk: 'Low',
      runbookRef: { name: `page-${id}` },
    });
    intake = await startIntakeController(tb, ns, {
      region: REGION,
      extraEnv: { AWS_ENDPOINT_URL: proxy.endpoint },
      name: 'effects-intake',
    });
    const slots = Array.from({ length: 25 }, (_, i) => `s${String(i).padStart(2, '0')}`);
    const payload = alertmanagerPayload(
      slots.map((slot, i) => ({
        labels: { alertname: 'Page', instance_id: instance!, slot, severity: 'critical' },
        fingerprint: `e20${String(i).padStart(13, '0')}`,
      })),
    );
    const answer = await postJson(intake.url, `/v1/alerts/alertmanager?namespace=${NS}`, payload, ns.token);
    expect(answer.status).toBe(200);
    expect((answer.json?.created as string[]).length).toBe(25);

    const done = await waitFor(
      '25 requests Succeeded',
      async () => {
        const list = (await res.api.listNamespacedCustomObject({
          group: 'remediator.dev',
          version: 'v1alpha1',
          namespace: NS,
          plural: 'remediationrequests',
        })) as { items: RemediationRequest[] };
        const page = list.items.filter((r) => r.spec.policyRef.name === 'page');
        return page.length === 25 && page.every((r) => r.status?.phase === 'Succeeded') ? page : undefined;
      },
      120_000,
    );
    const delivered = await drain(queueUrl, 25);
    // Counted at the emulator: one Publish call and one delivered message per alert.
    expect(delivered.sort()).toEqual(slots.map((s) => `page ${s}`));
    expect(publishes(topicArn).map(messageOf).sort()).toEqual(slots.map((s) => `page ${s}`));
    for (const r of done) expect(r.status?.execution?.sns).toMatchObject({ messageId: expect.any(String), attempts: 1 });
    await intake.stop();
    intake = undefined;
  }, 240_000);

  test('a Publish whose answer takes 1.5 s publishes once', async () => {
    const { topicArn, queueUrl } = await topicWithQueue(`slow-${id}`);
    const [instance] = await seedInstances(tb.motoEndpoint, { region: REGION });
    await res.createRunbook(`slow-${id}`, {
      namespaceSelector: {},
      maxAutoApprovedRisk: 'Low',
      action: { sns: { topicArn, message: 'slow page' } },
    });
    await res.createPolicy(NS, 'slow', { targets: { fromLabels: ['instance_id'] }, risk: 'Low', runbookRef: { name: `slow-${id}` } });
    const slow = proxy.addRule({
      kind: 'delay',
      operation: 'Publish',
      ms: 1_500,
      times: 1,
      match: (v) => (v.input as Record<string, string>)?.TopicArn === topicArn,
    });
    controllers.push(await startController(tb, { region: REGION, namespace: NS, name: 'effects-slow', awsEndpoint: proxy.endpoint }));
    const rr = await res.createRequest(NS, `slow-${id}`, {
      policyRef: { name: 'slow' },
      alert: { source: 'generic', name: 'Down', status: 'firing', labels: { instance_id: instance! } },
    });
    const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded');
    expect(slow.hits).toBe(1);
    expect(await drain(queueUrl, 1)).toEqual(['slow page']);
    expect(publishes(topicArn)).toHaveLength(1);
    expect(done.status?.execution?.sns).toMatchObject({ messageId: expect.any(String), attempts: 1 });
    for (const c of controllers.splice(0)) await c.stop();
  }, 120_000);

  test('six 60-target requests, AccessDenied on chunk 1 (transient for four): no chunk sent twice, status says what went out', async () => {
    const rb = `fleet-${id}`;
    await res.createRunbook(rb, restartRunbook({ scope: { tagSelector: { EffectsFleet: id }, maxTargets: 150 } }));
    const fleets: Array<{ ids: string[]; policy: string }> = [];
    for (let i = 0; i < 6; i++) {
      const tag = `${id}-${i}`;
      const ids = await seedInstances(tb.motoEndpoint, { region: REGION, count: 60, tags: { EffectsFleet: id, Group: tag } });
      const policy = `fleet-${i}`;
      await res.createPolicy(NS, policy, {
        runbookRef: { name: rb },
        inputs: { service: 'nginx' },
        targets: { tagSelector: { Group: tag }, maxTargets: 150 },
        risk: 'Low',
      });
      fleets.push({ ids, policy });
    }
    // The requests exist before any controller runs, so the refusals can name their UIDs.
    const requests = await Promise.all(
      fleets.map((f, i) =>
        res.createRequest(NS, `fleet-${i}-${id}`, {
          policyRef: { name: f.policy },
          alert: { source: 'generic', name: 'Down', status: 'firing', labels: {} },
        }),
      ),
    );
    const comment = (c: RecordedCall) => (c.input as { Comment?: string } | undefined)?.Comment ?? '';
    for (const [i, rr] of requests.entries()) {
      proxy.addRule({
        kind: 'error',
        operation: 'SendCommand',
        code: 'AccessDeniedException',
        message: `User is not authorized to perform: ssm:SendCommand (${i < 4 ? 'transient' : 'lasting'})`,
        // Transient: the next SendCommand of this chunk would be accepted.
        ...(i < 4 && { times: 1 }),
        match: (v) => comment(v as RecordedCall) === `remediator:${rr.metadata!.uid}/1`,
      });
    }
    controllers.push(await startController(tb, { region: REGION, namespace: NS, name: 'effects-fleet', awsEndpoint: proxy.endpoint }));
    const ended = await Promise.all(requests.map((rr) => res.waitForPhase(NS, rr.metadata!.name!, 'Failed', 120_000)));
    // Give a stale decision time to show itself.
    await new Promise((r) => setTimeout(r, 3_000));
    const inMoto = await ssmCommands(tb, REGION);
    for (const [i, rr] of requests.entries()) {
      const uid = rr.metadata!.uid!;
      const sends = proxy.calls('SendCommand').filter((c) => comment(c).startsWith(`remediator:${uid}/`));
      // Chunk 0 once (accepted), chunk 1 once (refused): nothing twice.
      expect(sends.map(comment).sort()).toEqual([`remediator:${uid}/0`, `remediator:${uid}/1`]);
      const accepted = inMoto.filter((c) => c.Comment?.startsWith(`remediator:${uid}/`));
      expect(accepted.map((c) => c.Comment)).toEqual([`remediator:${uid}/0`]);
      const status = (await res.getRequest(NS, rr.metadata!.name!)).status!;
      const ssm = status.execution!.ssm!;
      expect(ssm.commands?.[0]?.commandId).toBe(accepted[0]?.CommandId);
      expect(ssm.commands?.[1]?.commandId).toBeUndefined();
      expect(ssm.commands?.[1]?.refused?.reason).toBe('AccessDenied');
      const notSent = ssm.invocations!.filter((x) => x.status === 'NotSent').map((x) => x.instanceId);
      expect(notSent.sort()).toEqual([...(ssm.commands?.[1]?.instanceIds ?? [])].sort());
      expect(notSent).toHaveLength(10);
      expect(ssm.invocations!.filter((x) => x.status === 'Success')).toHaveLength(50);
      expect(status.message).toContain('failed on 10 of 60');
      expect(ended[i]?.status?.reason).toBe('AccessDenied');
    }
  }, 300_000);
});
