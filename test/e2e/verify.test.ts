/**
 * Verification after success (AlertPolicy spec.verify) end to end: the real controller
 * process with its intake, running as its own ServiceAccount, against the real
 * kube-apiserver and moto, with alerts sent as Alertmanager sends them. A remediation
 * whose alert resolves within `verify.within` is `Verified=True`; one whose alert keeps
 * firing is `Verified=False` (Ineffective), announced on the policy's SNS topic (read
 * back through an SQS subscription), and counted by the circuit breaker, which then
 * stops the policy. A real clock, seconds long. The same topic shows that `notify.on:
 * [Approved]` announces auto-approved requests, which never rest in phase Approved.
 */
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import type { AlertPolicy, RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { putInstanceMetric, seedClientConfig, seedInstances } from '../testbed/aws.js';
import { Resources, testbedFromEnv, waitFor } from './harness.js';
import {
  alertmanagerPayload,
  metricValue,
  postJson,
  setUpIntakeNamespaces,
  startIntakeController,
  type IntakeController,
  type IntakeNamespaces,
} from './intake-harness.js';
import { suffix } from './install-chart.js';

const REGION = 'us-east-2';
const NS = 'verify';
const AM = `/v1/alerts/alertmanager?namespace=${NS}`;
const RB = `verify-restart-${suffix()}`;
const POLICY = 'restart-nginx';
/** Long enough for a loaded machine to run the command and deliver the resolution; the Ineffective case waits it out. */
const WITHIN = '20s';

describe('verification after success', () => {
  const tb = testbedFromEnv();
  const admin = tb.admin();
  const res = new Resources(admin);
  const sqs = new SQSClient(seedClientConfig(tb.motoEndpoint, REGION));
  const sns = new SNSClient(seedClientConfig(tb.motoEndpoint, REGION));
  let ns: IntakeNamespaces;
  let intake: IntakeController;
  let queueUrl: string;

  async function instance(): Promise<string> {
    return (await seedInstances(tb.motoEndpoint, { region: REGION, tags: { Service: 'nginx' } }))[0]!;
  }

  const nginxDown = (instanceId: string, fingerprint: string, status: 'firing' | 'resolved' = 'firing') => ({
    labels: { alertname: 'NginxDown', instance_id: instanceId, severity: 'critical' },
    fingerprint,
    startsAt: '2026-11-30T08:00:00.000Z',
    status,
    ...(status === 'resolved' && { endsAt: '2026-11-30T08:05:00.000Z' }),
  });

  /** Sends the alert through the intake; returns the request it made. */
  async function fire(instanceId: string, fingerprint: string): Promise<string> {
    const answer = await postJson(intake.url, AM, alertmanagerPayload([nginxDown(instanceId, fingerprint)]), ns.token);
    expect(answer.status).toBe(200);
    const created = answer.json?.created as string[];
    expect(created).toHaveLength(1);
    return created[0]!.split('/')[1]!;
  }

  const verified = (rr: RemediationRequest) => rr.status?.conditions?.find((c) => c.type === 'Verified');

  async function verdict(name: string, status: 'True' | 'False', timeoutMs = 60_000): Promise<RemediationRequest> {
    return waitFor(
      `${NS}/${name} Verified=${status}`,
      async () => {
        const rr = await res.getRequest(NS, name);
        return verified(rr)?.status === status ? rr : undefined;
      },
      timeoutMs,
    );
  }

  /** SNS messages received on the policy's topic, as `phase` attributes. */
  const received: Array<{ phase: string; body: Record<string, unknown> }> = [];
  async function announced(phase: string) {
    return waitFor(
      `a ${phase} notification on the topic`,
      async () => {
        const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
        for (const m of out.Messages ?? []) {
          const envelope = JSON.parse(m.Body ?? '{}') as { Message: string; MessageAttributes?: Record<string, { Value: string }> };
          received.push({ phase: envelope.MessageAttributes?.phase?.Value ?? '', body: JSON.parse(envelope.Message) });
        }
        return received.find((r) => r.phase === phase);
      },
      30_000,
    );
  }

  beforeAll(async () => {
    ns = await setUpIntakeNamespaces(admin, [NS]);
    const topic = await sns.send(new CreateTopicCommand({ Name: `verify-${suffix()}` }));
    await res.createRunbook(RB, {
      namespaceSelector: {},
      // The admin grants the topic the policies notify on.
      notifyTopics: [topic.TopicArn!],
      action: { ssm: { documentName: 'AWS-RunShellScript', parameters: [{ name: 'commands', values: ['systemctl restart nginx'] }] } },
    });
    const queue = await sqs.send(new CreateQueueCommand({ QueueName: `verify-${suffix()}` }));
    queueUrl = queue.QueueUrl!;
    const queueArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))).Attributes
      ?.QueueArn;
    await sns.send(new SubscribeCommand({ TopicArn: topic.TopicArn, Protocol: 'sqs', Endpoint: queueArn }));
    const spec: AlertPolicy['spec'] = {
      match: { sources: ['alertmanager'], labels: [{ name: 'alertname', op: '=', value: 'NginxDown' }] },
      targets: { fromLabels: ['instance_id'] },
      runbookRef: { name: RB },
      risk: 'Low',
      verify: { within: WITHIN },
      // Approved too: these requests are auto-approved, which used to go unannounced.
      notify: { topicArn: topic.TopicArn!, on: ['Approved', 'Verified', 'Ineffective'] },
      safety: { circuitBreaker: { maxConsecutiveFailures: 1 } },
    };
    await res.createPolicy(NS, POLICY, spec);
    intake = await startIntakeController(tb, ns, { region: REGION, name: 'controller-verify' });
    // The intake matches only policies the controller found Ready.
    await waitFor(
      'policy Ready',
      async () => (await res.getPolicy(NS, POLICY)).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      20_000,
    );
  });

  afterAll(async () => {
    await intake?.stop();
    await ns?.cleanup();
    sqs.destroy();
    sns.destroy();
  });

  test('the API server bounds verify.within, and verify.metric must name an enrichment metric', async () => {
    await expect(
      res.createPolicy(NS, 'too-long', { targets: { fromLabels: ['instance_id'] }, runbookRef: { name: RB }, verify: { within: '48h' } }),
    ).rejects.toMatchObject({ body: expect.stringContaining('verify.within must be between 5s and 24h') });
    await expect(
      res.createPolicy(NS, 'no-such-metric', {
        targets: { fromLabels: ['instance_id'] },
        runbookRef: { name: RB },
        verify: { within: '1m', metric: { name: 'cpu', operator: '<', threshold: 50 } },
      }),
    ).rejects.toMatchObject({ body: expect.stringContaining('verify.metric.name must name a metric of enrichment.metrics') });
  });

  test('an alert that resolves after its remediation succeeded: Verified=True (AlertResolved)', async () => {
    const id = await instance();
    const fp = 'a1b2c3d4e5f60001';
    const name = await fire(id, fp);
    await res.waitForPhase(NS, name, 'Succeeded');
    const waiting = await waitFor('Verified=Unknown (Verifying)', async () => {
      const rr = await res.getRequest(NS, name);
      return verified(rr)?.reason === 'Verifying' ? rr : undefined;
    });
    expect(waiting.status?.verification?.until).toBeDefined();
    expect(waiting.metadata?.finalizers).toContain('remediator.dev/execution');

    await postJson(intake.url, AM, alertmanagerPayload([nginxDown(id, fp, 'resolved')]), ns.token);
    const done = await verdict(name, 'True');
    expect(verified(done)?.reason).toBe('AlertResolved');
    expect(done.status?.verification?.alertResolvedAt).toBeDefined();
    expect(done.status?.phase).toBe('Succeeded');
    expect((await announced('Verified')).body).toMatchObject({ request: name, phase: 'Verified', reason: 'AlertResolved' });
    expect((await announced('Approved')).body).toMatchObject({ request: name, phase: 'Approved' });
    await waitFor('the finalizer released after the verdict', async () => {
      const rr = await res.getRequest(NS, name);
      return !rr.metadata?.finalizers?.includes('remediator.dev/execution');
    });
    expect((await res.events(NS, name)).map((e) => e.reason)).toContain('Verified');
    const wide = await tb.kubectl(['get', 'rr', '-n', NS, name, '-o', 'wide']);
    expect(wide.stdout).toMatch(/VERIFIED[\s\S]*AlertResolved/);
    const policy = await res.getPolicy(NS, POLICY);
    expect(policy.status?.circuitBreaker?.open ?? false).toBe(false);
  }, 90_000);

  test('an alert that keeps firing: Verified=False (Ineffective), notified, and the breaker (threshold 1) opens', async () => {
    const id = await instance();
    const fp = 'a1b2c3d4e5f60002';
    const name = await fire(id, fp);
    const succeeded = await res.waitForPhase(NS, name, 'Succeeded');
    // Alertmanager repeats the firing alert: deduplicated, it proves nothing.
    expect((await postJson(intake.url, AM, alertmanagerPayload([nginxDown(id, fp)]), ns.token)).json?.existing).toEqual([`${NS}/${name}`]);
    // Nobody can claim the alert resolved through the spec: it is frozen once the request executes, and
    // verification reads only what the intake recorded in status.
    await expect(
      res.updateRequestSpec(NS, name, (spec) => ({ ...spec, alert: { ...spec.alert, status: 'resolved' } })),
    ).rejects.toMatchObject({ code: 422 });

    const done = await verdict(name, 'False', 90_000);
    expect(verified(done)?.reason).toBe('Ineffective');
    expect(verified(done)?.message).toContain(`still firing ${WITHIN} after the remediation succeeded`);
    expect(done.status?.verification?.alertResolvedAt).toBeUndefined();
    expect(Date.parse(verified(done)!.lastTransitionTime) - Date.parse(succeeded.status!.completionTime!)).toBeGreaterThanOrEqual(
      20_000 - 1_000,
    );
    expect((await announced('Ineffective')).body).toMatchObject({ request: name, phase: 'Ineffective', reason: 'Ineffective' });
    const events = await res.events(NS, name);
    expect(events.find((e) => e.reason === 'Ineffective')?.type).toBe('Warning');

    const open = await waitFor('the circuit breaker open', async () => {
      const p = await res.getPolicy(NS, POLICY);
      return p.status?.circuitBreaker?.open ? p : undefined;
    });
    expect(open.status?.circuitBreaker?.message).toContain('1 consecutive failed or ineffective executions');
    // The next alert of the policy runs nothing.
    const next = await fire(await instance(), 'a1b2c3d4e5f60003');
    expect((await res.waitForPhase(NS, next, 'Skipped')).status?.reason).toBe('CircuitOpen');

    const metrics = await (await fetch(`${intake.controller.metricsUrl}/metrics`)).text();
    expect(metricValue(metrics, 'remediator_verifications_total', { namespace: NS, result: 'Ineffective' })).toBe(1);
    expect(metricValue(metrics, 'remediator_verifications_total', { namespace: NS, result: 'Verified' })).toBe(1);
  }, 120_000);

  test('no resolution, but the metric recovered after the remediation: Verified=True (MetricRecovered)', async () => {
    const policy = 'restart-nginx-cpu';
    await res.createPolicy(NS, policy, {
      match: { sources: ['alertmanager'], labels: [{ name: 'alertname', op: '=', value: 'NginxSlow' }] },
      targets: { fromLabels: ['instance_id'] },
      runbookRef: { name: RB },
      risk: 'Low',
      enrichment: { metrics: [{ name: 'cpu', namespace: 'AWS/EC2', metricName: 'CPUUtilization', periodSeconds: 5 }] },
      verify: { within: '15s', metric: { name: 'cpu', operator: '<', threshold: 50 } },
    });
    await waitFor(
      'policy Ready',
      async () => (await res.getPolicy(NS, policy)).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      20_000,
    );
    const id = await instance();
    const slow = { ...nginxDown(id, 'a1b2c3d4e5f60004'), labels: { alertname: 'NginxSlow', instance_id: id, severity: 'warning' } };
    const answer = await postJson(intake.url, AM, alertmanagerPayload([slow]), ns.token);
    const name = (answer.json?.created as string[])[0]!.split('/')[1]!;
    const done = await res.waitForPhase(NS, name, 'Succeeded');
    // CPU is back to normal after the restart: points inside [success, success + within].
    const at = Date.parse(done.status!.completionTime!);
    await putInstanceMetric(
      tb.motoEndpoint,
      id,
      [2_000, 4_000, 6_000].map((ms, i) => ({ value: 10 + i, timestamp: new Date(at + ms) })),
      { region: REGION },
    );
    const rr = await verdict(name, 'True', 60_000);
    expect(verified(rr)?.reason).toBe('MetricRecovered');
    expect(verified(rr)?.message).toContain(`cpu on ${id} averaged 11`);
  }, 90_000);
});
