/**
 * The remediation lifecycle against the real kube-apiserver and moto: approval,
 * rejection, expiry, cancellation, dry run, the allowlist on templated values, targets
 * and their cap, opt-out, guards on CloudWatch metrics, SNS actions and notifications,
 * cooldown, rate limit and maintenance windows, and the CRD's immutability rules.
 */
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { GROUP, VERSION, type AlertPolicy, type RemediationRequest, type Runbook } from '../../src/api/v1alpha1/index.js';
import { pointsEvery, putInstanceMetric, seedClientConfig, seedInstances } from '../testbed/aws.js';
import { Resources, restartRunbook, ssmCommands, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';
import { grant, installChart, namespace, SCOPE_LABEL, suffix, waitForAdmissionPolicy, type InstalledChart } from './install-chart.js';

const REGION = 'ap-southeast-2';
const NS = 'lifecycle';
const id = suffix();
/** The runbook most policies here use: restart the service the alert names. */
const RUNBOOK = `lc-restart-${id}`;

describe('remediation lifecycle', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  // mallory (editor) creates requests; alice and bob approve; carol is both.
  const as = (user: string) => new Resources(tb.as(user));
  let controller: RunningController;
  let chart: InstalledChart;
  let n = 0;

  async function instance(tags: Record<string, string> = {}): Promise<string> {
    const [id] = await seedInstances(tb.motoEndpoint, { region: REGION, tags: { Service: 'nginx', ...tags } });
    return id!;
  }

  async function policy(spec: Partial<AlertPolicy['spec']>): Promise<string> {
    const name = `p${++n}`;
    await res.createPolicy(NS, name, {
      targets: { fromLabels: ['instance_id'] },
      runbookRef: { name: RUNBOOK },
      inputs: { service: '{{ labels.service }}' },
      ...spec,
    });
    return name;
  }

  async function runbook(spec: Runbook['spec']): Promise<string> {
    const name = `lc-${++n}-${id}`;
    await res.createRunbook(name, spec);
    return name;
  }

  async function request(
    policyName: string,
    labels: Record<string, string>,
    extra: Partial<RemediationRequest['spec']> = {},
    requester = 'mallory',
  ): Promise<RemediationRequest> {
    return as(requester).createRequest(NS, `r${++n}`, {
      policyRef: { name: policyName },
      alert: { source: 'alertmanager', name: 'NginxDown', status: 'firing', labels: { service: 'nginx', ...labels } },
      requestedBy: requester,
      ...extra,
    });
  }

  async function commandsFor(rr: RemediationRequest) {
    return (await ssmCommands(tb, REGION)).filter((c) => c.Comment === `remediator:${rr.metadata?.uid}`);
  }

  function patchSpec(rr: RemediationRequest, mutate: (spec: RemediationRequest['spec']) => RemediationRequest['spec']) {
    return res.updateRequestSpec(NS, rr.metadata!.name!, mutate);
  }

  /** An approval given by `approver` as themselves, naming the plan in status. */
  async function approve(name: string, approver: string, decision: 'Approved' | 'Rejected' = 'Approved', reason = 'looks right') {
    return as(approver).decide(NS, name, approver, decision, reason);
  }

  beforeAll(async () => {
    // The chart's approval admission policy guards this namespace: manual approvals count here.
    chart = await installChart(tb, { release: `lc${id}`, namespace: `rmd-lc-system-${id}`, scope: id });
    await namespace(tb, NS, { [SCOPE_LABEL]: id });
    for (const user of ['mallory', 'carol']) await grant(tb, NS, user, `${chart.fullname}-editor`);
    for (const user of ['alice', 'bob', 'carol']) await grant(tb, NS, user, `${chart.fullname}-approver`);
    await waitForAdmissionPolicy(tb, NS);
    await res.createRunbook(RUNBOOK, restartRunbook());
    controller = await startController(tb, {
      region: REGION,
      namespace: NS,
      args: ['--admission-policy-name', `${chart.fullname}-approvals`],
    });
  });

  afterAll(async () => {
    await controller?.stop();
    await chart?.uninstall();
  });

  describe('approval', () => {
    test('a Medium risk request waits for a person, then runs; the approval is kept in status', async () => {
      const id = await instance();
      const p = await policy({ risk: 'Medium' });
      const rr = await request(p, { instance_id: id });
      await res.waitForPhase(NS, rr.metadata!.name!, 'AwaitingApproval');
      expect(await commandsFor(rr)).toHaveLength(0);
      await approve(rr.metadata!.name!, 'alice');
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded');
      expect(done.status?.approval).toEqual({
        decision: 'Approved',
        approver: 'alice',
        reason: 'looks right',
        planDigest: done.status?.plan?.digest,
      });
      expect(done.status?.conditions?.find((c) => c.type === 'Approved')).toMatchObject({ status: 'True', reason: 'ManuallyApproved' });
      expect(await commandsFor(rr)).toHaveLength(1);
    });

    test('a rejection ends the request and runs nothing', async () => {
      const id = await instance();
      const p = await policy({ risk: 'High' });
      const rr = await request(p, { instance_id: id });
      await res.waitForPhase(NS, rr.metadata!.name!, 'AwaitingApproval');
      await approve(rr.metadata!.name!, 'bob', 'Rejected', 'not during the sale');
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Rejected');
      expect(done.status?.message).toContain('not during the sale');
      expect(await commandsFor(rr)).toHaveLength(0);
    });

    test('an approver outside the policy list is refused', async () => {
      const id = await instance();
      const p = await policy({ risk: 'Medium', approval: { mode: 'Manual', approvers: ['alice'] } });
      const rr = await request(p, { instance_id: id });
      await res.waitForPhase(NS, rr.metadata!.name!, 'AwaitingApproval');
      await approve(rr.metadata!.name!, 'bob');
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Rejected');
      expect(done.status?.reason).toBe('ApproverNotAllowed');
      expect(await commandsFor(rr)).toHaveLength(0);
    });

    test('for High risk the requester cannot approve their own request (four eyes)', async () => {
      const id = await instance();
      const p = await policy({ risk: 'High' });
      const rr = await request(p, { instance_id: id }, {}, 'carol');
      await res.waitForPhase(NS, rr.metadata!.name!, 'AwaitingApproval');
      await expect(approve(rr.metadata!.name!, 'carol')).rejects.toMatchObject({ body: expect.stringContaining('four eyes') });
      expect((await res.getRequest(NS, rr.metadata!.name!)).status?.phase).toBe('AwaitingApproval');
      expect(await commandsFor(rr)).toHaveLength(0);
    });

    test('a request nobody decides on expires after the policy timeout', async () => {
      const id = await instance();
      const p = await policy({ risk: 'Critical', approval: { mode: 'Manual', timeout: '2s' } });
      const rr = await request(p, { instance_id: id });
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Expired', 20_000);
      expect(done.status?.conditions?.find((c) => c.type === 'Approved')).toMatchObject({ status: 'False', reason: 'Expired' });
      expect(await commandsFor(rr)).toHaveLength(0);
    });

    test('a resolved alert cancels a request that has not started executing', async () => {
      const id = await instance();
      const p = await policy({ risk: 'High' });
      const rr = await request(p, { instance_id: id });
      await res.waitForPhase(NS, rr.metadata!.name!, 'AwaitingApproval');
      await patchSpec(rr, (spec) => ({ ...spec, alert: { ...spec.alert, status: 'resolved' } }));
      await res.waitForPhase(NS, rr.metadata!.name!, 'Cancelled');
      expect(await commandsFor(rr)).toHaveLength(0);
    });

    test('the API server keeps an approved spec immutable and an approval unchangeable', async () => {
      const id = await instance();
      const p = await policy({ risk: 'Medium', safety: { dryRun: true } });
      const rr = await request(p, { instance_id: id });
      await res.waitForPhase(NS, rr.metadata!.name!, 'AwaitingApproval');
      await approve(rr.metadata!.name!, 'alice');
      await expect(patchSpec(rr, (spec) => ({ ...spec, targets: ['i-00000000'] }))).rejects.toMatchObject({
        code: 422,
        body: expect.stringContaining('immutable once the request is approved'),
      });
      await expect(patchSpec(rr, (spec) => ({ ...spec, approval: { decision: 'Rejected', approver: 'alice' } }))).rejects.toMatchObject({
        code: 422,
        body: expect.stringContaining('cannot be changed or removed once given'),
      });
      await expect(patchSpec(rr, (spec) => ({ ...spec, requestedBy: 'someone-else' }))).rejects.toMatchObject({ code: 422 });
    });

    test('an end phase is final: changing the request later runs nothing again', async () => {
      const id = await instance();
      const p = await policy({});
      const rr = await request(p, { instance_id: id });
      await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded');
      // The API server keeps the record: a finished request's spec cannot be rewritten.
      await expect(patchSpec(rr, (spec) => ({ ...spec, alert: { ...spec.alert, annotations: { touched: 'yes' } } }))).rejects.toMatchObject(
        {
          code: 422,
          body: expect.stringContaining('spec cannot change once the request is executing or has ended'),
        },
      );
      // Metadata may still change (labels for bookkeeping), and that runs nothing again.
      await res.api.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace: NS,
          plural: 'remediationrequests',
          name: rr.metadata!.name!,
          body: [{ op: 'add', path: '/metadata/labels', value: { reviewed: 'yes' } }],
        },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
      await new Promise((r) => setTimeout(r, 1_500));
      expect((await res.getRequest(NS, rr.metadata!.name!)).status?.phase).toBe('Succeeded');
      expect(await commandsFor(rr)).toHaveLength(1);
    });
  });

  describe('execution safety', () => {
    const hostile = [
      'nginx; reboot',
      'nginx && curl x|sh',
      '$(reboot)',
      '`reboot`',
      "nginx'",
      'nginx"',
      'a\nreboot',
      'x'.repeat(300),
      '--help',
      '-rf',
      '../../etc/shadow',
      'a/../b',
      '',
    ];
    test.each(hostile)('a templated value %j fails the request before anything is sent', async (value) => {
      const id = await instance();
      const p = await policy({});
      const rr = await request(p, { instance_id: id, service: value });
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Failed');
      expect(done.status?.reason).toBe('InvalidParameter');
      expect(done.status?.message).toMatch(
        /allowlist|over the limit|starts with "-"|contains "\.\."|is empty|control or bidirectional character/,
      );
      expect(done.status?.execution).toBeUndefined();
      expect(await commandsFor(rr)).toHaveLength(0);
    });

    test('dry run records what would be sent and sends nothing', async () => {
      const id = await instance();
      const p = await policy({ safety: { dryRun: true } });
      const rr = await request(p, { instance_id: id });
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded');
      expect(done.status?.execution?.dryRun).toBe(true);
      expect(done.status?.execution?.ssm?.parameters).toEqual({ commands: ['systemctl restart nginx'] });
      expect(done.status?.execution?.ssm?.commandId).toBeUndefined();
      expect(await commandsFor(rr)).toHaveLength(0);
    });

    test('targets that do not exist fail the request, naming them', async () => {
      const p = await policy({});
      const rr = await request(p, { instance_id: 'i-0123456789abcdef0' });
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Failed');
      expect(done.status?.reason).toBe('InstancesNotFound');
      expect(done.status?.message).toContain('i-0123456789abcdef0');
    });

    test('more targets than maxTargets fail the request before any AWS call', async () => {
      const ids = await seedInstances(tb.motoEndpoint, { region: REGION, count: 3 });
      const p = await policy({ targets: { fromLabels: ['instances'], maxTargets: 2 } });
      const rr = await request(p, { instances: ids.join(',') });
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Failed');
      expect(done.status?.reason).toBe('TooManyTargets');
    });

    test('tag selectors choose the targets, and one SendCommand covers them all', async () => {
      const team = `team${n}`;
      const ids = await seedInstances(tb.motoEndpoint, { region: REGION, count: 2, tags: { Team: team, Environment: 'prod' } });
      await seedInstances(tb.motoEndpoint, { region: REGION, count: 1, tags: { Team: team, Environment: 'staging' } });
      const p = await policy({ targets: { tagSelector: { Team: '{{ labels.team }}', Environment: 'prod' } } });
      const rr = await request(p, { team });
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded');
      expect(done.status?.targets).toEqual([...ids].sort());
      const cmds = await commandsFor(rr);
      expect(cmds).toHaveLength(1);
      expect(done.status?.execution?.ssm?.invocations?.map((i) => i.instanceId)).toEqual([...ids].sort());
    });

    test('the opt-out tag always wins', async () => {
      const id = await instance({ 'remediator.dev/opt-out': 'true' });
      const p = await policy({});
      const rr = await request(p, { instance_id: id });
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Skipped');
      expect(done.status?.reason).toBe('OptOut');
      expect(await commandsFor(rr)).toHaveLength(0);
    });

    test('a CPU guard reads CloudWatch and skips when the average is below the threshold', async () => {
      const busy = await instance();
      const idle = await instance();
      await putInstanceMetric(tb.motoEndpoint, busy, pointsEvery([92, 95, 97]), { region: REGION });
      await putInstanceMetric(tb.motoEndpoint, idle, pointsEvery([10, 12, 9]), { region: REGION });
      const spec: Partial<AlertPolicy['spec']> = {
        enrichment: {
          metrics: [
            { name: 'cpu', namespace: 'AWS/EC2', metricName: 'CPUUtilization', statistic: 'Average', periodSeconds: 60, lookback: '15m' },
          ],
          guards: [{ metric: 'cpu', operator: '>', threshold: 90 }],
        },
      };
      const p = await policy(spec);
      const ok = await request(p, { instance_id: busy });
      const skipped = await request(p, { instance_id: idle });
      const ran = await res.waitForPhase(NS, ok.metadata!.name!, 'Succeeded');
      expect(ran.status?.enrichment?.metrics?.[0]).toMatchObject({ name: 'cpu', instanceId: busy });
      expect(ran.status?.enrichment?.metrics?.[0]?.mean).toBeGreaterThan(90);
      const sk = await res.waitForPhase(NS, skipped.metadata!.name!, 'Skipped');
      expect(sk.status?.reason).toBe('Guard');
      expect(sk.status?.message).toContain(idle);
      expect(await commandsFor(skipped)).toHaveLength(0);
    });

    test('cooldown skips a second remediation of the same instance', async () => {
      const id = await instance();
      const p = await policy({ safety: { cooldown: '10m' } });
      const first = await request(p, { instance_id: id });
      await res.waitForPhase(NS, first.metadata!.name!, 'Succeeded');
      const second = await request(p, { instance_id: id });
      const done = await res.waitForPhase(NS, second.metadata!.name!, 'Skipped');
      expect(done.status?.reason).toBe('Cooldown');
      expect(done.status?.message).toContain(id);
    });

    test('the rate limit caps executions per policy, even for requests created together', async () => {
      const ids = await seedInstances(tb.motoEndpoint, { region: REGION, count: 4 });
      const p = await policy({ safety: { rateLimit: { maxExecutions: 2, window: '1h' } } });
      const rrs = await Promise.all(ids.map((id) => request(p, { instance_id: id })));
      const ends = await Promise.all(
        rrs.map((r) =>
          waitFor(`end of ${r.metadata!.name}`, async () => {
            const x = await res.getRequest(NS, r.metadata!.name!);
            return ['Succeeded', 'Skipped'].includes(x.status?.phase ?? '') ? x : undefined;
          }),
        ),
      );
      expect(ends.filter((e) => e.status?.phase === 'Succeeded')).toHaveLength(2);
      expect(ends.filter((e) => e.status?.reason === 'RateLimited')).toHaveLength(2);
    });

    test('outside its maintenance window a policy executes nothing: the request is held, not skipped', async () => {
      const id = await instance();
      const hour = (new Date().getUTCHours() + 12) % 24;
      const p = await policy({
        safety: { maintenanceWindows: { mode: 'OnlyDuring', windows: [{ schedule: `0 ${hour} * * *`, duration: '1h', timeZone: 'UTC' }] } },
      });
      const rr = await request(p, { instance_id: id });
      const held = await waitFor('held by the window', async () => {
        const got = await res.getRequest(NS, rr.metadata!.name!);
        return got.status?.reason === 'MaintenanceWindow' ? got : undefined;
      });
      expect(held.status?.phase).toBe('Approved');
      expect(held.status?.message).toContain('held until the next one opens');
      expect(await commandsFor(rr)).toHaveLength(0);
    });

    test('a suspended policy skips its requests', async () => {
      const id = await instance();
      const p = await policy({ safety: { suspend: true } });
      const rr = await request(p, { instance_id: id });
      expect((await res.waitForPhase(NS, rr.metadata!.name!, 'Skipped')).status?.reason).toBe('Suspended');
    });

    test('a policy the controller cannot use says why in Ready', async () => {
      const p = await policy({
        match: { labels: [{ name: 'alertname', op: '=~', value: '(unclosed' }] },
        safety: {
          maintenanceWindows: { mode: 'NeverDuring', windows: [{ schedule: '0 2 * * *', duration: '1h', timeZone: 'Mars/Olympus' }] },
        },
      });
      const ready = await waitFor('Ready=False', async () => {
        const got = await res.getPolicy(NS, p);
        const c = got.status?.conditions?.find((x) => x.type === 'Ready');
        return c?.status === 'False' ? c : undefined;
      });
      expect(ready.reason).toBe('InvalidSpec');
      expect(ready.message).toContain('invalid regex');
      expect(ready.message).toContain('Mars/Olympus');
    });

    test('the API server rejects a runbook with both ssm and sns actions', async () => {
      const both = restartRunbook();
      both.action = { ...both.action, sns: { topicArn: 'arn:aws:sns:ap-southeast-2:123456789012:x', message: 'm' } };
      await expect(res.createRunbook(`lc-both-${id}`, both)).rejects.toMatchObject({ body: expect.stringContaining('exactly one of') });
    });
  });

  describe('SNS', () => {
    const sqs = () => new SQSClient(seedClientConfig(tb.motoEndpoint, REGION));
    const sns = () => new SNSClient(seedClientConfig(tb.motoEndpoint, REGION));

    async function topicWithQueue(name: string, fifo = false) {
      const t = await sns().send(
        new CreateTopicCommand({
          Name: fifo ? `${name}.fifo` : name,
          Attributes: fifo ? { FifoTopic: 'true', ContentBasedDeduplication: 'false' } : {},
        }),
      );
      const q = await sqs().send(
        new CreateQueueCommand({ QueueName: fifo ? `${name}.fifo` : name, Attributes: fifo ? { FifoQueue: 'true' } : {} }),
      );
      const arn = (await sqs().send(new GetQueueAttributesCommand({ QueueUrl: q.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes
        ?.QueueArn;
      await sns().send(
        new SubscribeCommand({ TopicArn: t.TopicArn, Protocol: 'sqs', Endpoint: arn, Attributes: { RawMessageDelivery: 'false' } }),
      );
      return { topicArn: t.TopicArn!, queueUrl: q.QueueUrl! };
    }

    async function drain(queueUrl: string, atLeast: number) {
      const got: Array<{ Subject?: string; Message: string; MessageAttributes?: Record<string, { Value: string }> }> = [];
      await waitFor(
        `${atLeast} message(s) on ${queueUrl}`,
        async () => {
          const out = await sqs().send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
          for (const m of out.Messages ?? []) got.push(JSON.parse(m.Body ?? '{}'));
          return got.length >= atLeast;
        },
        20_000,
      );
      return got;
    }

    test('an sns action publishes the templated message to a FIFO topic with attributes', async () => {
      const { topicArn, queueUrl } = await topicWithQueue(`oncall${n}`, true);
      const id = await instance();
      const rb = await runbook({
        namespaceSelector: {},
        action: {
          sns: {
            topicArn,
            subject: 'Disk full on {{ labels.instance_id }}',
            message: 'Please look at {{ labels.instance_id }} ({{ alert.name }})',
            messageAttributes: { severity: '{{ labels.severity }}' },
          },
        },
      });
      const p = await policy({ runbookRef: { name: rb }, inputs: {} });
      const rr = await request(p, { instance_id: id, severity: 'page' });
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded');
      expect(done.status?.execution?.sns?.messageId).toBeDefined();
      const [msg] = await drain(queueUrl, 1);
      expect(msg?.Subject).toBe(`Disk full on ${id}`);
      expect(msg?.Message).toBe(`Please look at ${id} (NginxDown)`);
      expect(msg?.MessageAttributes?.severity?.Value).toBe('page');
    });

    test('notify announces the chosen transitions', async () => {
      const { topicArn, queueUrl } = await topicWithQueue(`notify${n}`);
      const id = await instance();
      // The topic is the admin's grant: the runbook lists it (notifyTopics).
      const rb = await runbook(restartRunbook({ notifyTopics: [topicArn] }));
      const p = await policy({ runbookRef: { name: rb }, risk: 'Medium', notify: { topicArn, on: ['AwaitingApproval', 'Succeeded'] } });
      const rr = await request(p, { instance_id: id });
      await res.waitForPhase(NS, rr.metadata!.name!, 'AwaitingApproval');
      await waitFor('AwaitingApproval notification recorded', async () =>
        (await res.getRequest(NS, rr.metadata!.name!)).status?.notifications?.some((x) => x.phase === 'AwaitingApproval'),
      );
      await approve(rr.metadata!.name!, 'alice');
      await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded');
      const msgs = await drain(queueUrl, 2);
      expect(msgs.map((m) => `${JSON.parse(m.Message).phase}`).sort()).toEqual(['AwaitingApproval', 'Succeeded']);
      const done = await waitFor('Succeeded notification recorded', async () => {
        const x = await res.getRequest(NS, rr.metadata!.name!);
        return x.status?.notifications?.length === 2 ? x : undefined;
      });
      expect(done.status?.notifications?.every((x) => x.messageId)).toBe(true);
    });
  });
});
