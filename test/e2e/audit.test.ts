/**
 * The audit record that outlives a request, against the real kube-apiserver and moto:
 * when retention deletes an ended request its record is in the sink the administrator
 * chose — CloudWatch Logs or S3 — read back by `kubectl remediator history` with the
 * reader's own credentials; the chain continues across a controller restart and the
 * deletion of the policy; a sink refusing the write (the fault proxy answering
 * AccessDenied) holds the deletion and says why, and recovery writes it and lets the
 * deletion proceed; a record tampered with in the sink is found by `history --verify`.
 * And the AwaitingApproval notification leads somewhere: the approve command it carries
 * is run as it is, by alice, through kubectl's plugin mechanism.
 */
import { CreateLogStreamCommand, CloudWatchLogsClient, PutLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { AUDIT_API_VERSION, AUDIT_KIND, parseRecord, sealRecord, serializeRecord, type AuditRecord } from '../../src/api/audit/v1.js';
import type { AlertPolicy } from '../../src/api/v1alpha1/index.js';
import { seedClientConfig, seedInstances } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy } from '../testbed/faultproxy.js';
import { Resources, restartRunbook, ssmCommands, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';
import {
  grant,
  installChart,
  namespace,
  plugin,
  SCOPE_LABEL,
  suffix,
  waitForAdmissionPolicy,
  type InstalledChart,
} from './install-chart.js';

const REGION = 'me-central-1';
const id = suffix();
const NS_LOGS = 'audit-logs';
const NS_S3 = 'audit-s3';
const RUNBOOK = `audit-restart-${id}`;
const LOG_GROUP = `/remediator/audit-${id}`;
const BUCKET = `remediator-audit-${id}`.toLowerCase();
const PREFIX = 'clusters/test/';

describe('the audit record outlives the request', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  const as = (user: string) => new Resources(tb.as(user));
  let chart: InstalledChart;
  let proxy: FaultProxy;
  const controllers = new Map<string, RunningController>();
  let n = 0;

  /** The reader's own AWS credentials (not the controller's): static keys at moto. */
  const readerEnv = { AWS_ENDPOINT_URL: tb.motoEndpoint, AWS_ACCESS_KEY_ID: 'reader', AWS_SECRET_ACCESS_KEY: 'reader', AWS_REGION: REGION };

  async function start(ns: string, sink: Record<string, string>): Promise<RunningController> {
    await controllers.get(ns)?.stop();
    const c = await startController(tb, {
      region: REGION,
      namespace: ns,
      name: `controller-audit-${ns}-${++n}`,
      awsEndpoint: proxy.endpoint,
      args: ['--admission-policy-name', `${chart.fullname}-approvals`],
      // Retention that a test can wait for: policies without spec.retention (and requests whose policy is gone) use it.
      extraEnv: { RETENTION_TTL_AFTER_FINISHED: '2s', ...sink },
    });
    controllers.set(ns, c);
    return c;
  }

  async function policy(ns: string, spec: Partial<AlertPolicy['spec']> = {}): Promise<string> {
    const name = `p${++n}`;
    await res.createPolicy(ns, name, {
      targets: { fromLabels: ['instance_id'] },
      runbookRef: { name: RUNBOOK },
      inputs: { service: 'nginx' },
      risk: 'Low',
      ...spec,
    });
    return name;
  }

  async function request(ns: string, policyName: string): Promise<{ name: string; uid: string }> {
    const [instance] = await seedInstances(tb.motoEndpoint, { region: REGION, tags: { Service: 'nginx' } });
    const name = `r${++n}`;
    const rr = await as('mallory').createRequest(ns, name, {
      policyRef: { name: policyName },
      alert: { source: 'alertmanager', name: 'NginxDown', status: 'firing', labels: { instance_id: instance! } },
      requestedBy: 'mallory',
    });
    return { name, uid: rr.metadata!.uid! };
  }

  const exists = (ns: string, name: string) =>
    res.getRequest(ns, name).then(
      () => true,
      (e: { code?: number }) => {
        if (e.code === 404) return false;
        throw e;
      },
    );

  async function gone(ns: string, name: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${ns}/${name} deleted by retention`, async () => !(await exists(ns, name)), timeoutMs);
  }

  /** `kubectl remediator history ...` through kubectl's plugin mechanism, with the reader's credentials. */
  async function history(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return plugin(tb, 'alice', ['history', ...args], { env: readerEnv });
  }

  async function records(ns: string, sinkArgs: string[]): Promise<AuditRecord[]> {
    const out = await history(['-n', ns, '-o', 'json', ...sinkArgs]);
    expect(out).toMatchObject({ code: 0 });
    return (JSON.parse(out.stdout) as Array<{ records: AuditRecord[] }>)[0]!.records;
  }

  async function metric(c: RunningController, line: RegExp): Promise<number> {
    const text = await (await fetch(`${c.metricsUrl}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => line.test(l))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  }

  beforeAll(async () => {
    // The chart's approval admission policy guards both namespaces: alice's approval counts.
    chart = await installChart(tb, { release: `aud${id}`, namespace: `rmd-aud-system-${id}`, scope: id });
    for (const ns of [NS_LOGS, NS_S3]) {
      await namespace(tb, ns, { [SCOPE_LABEL]: id });
      await grant(tb, ns, 'mallory', `${chart.fullname}-editor`);
      await grant(tb, ns, 'alice', `${chart.fullname}-approver`);
      await waitForAdmissionPolicy(tb, ns);
    }
    // The approval test's topic is granted by the runbook, as an admin would (notifyTopics).
    await res.createRunbook(RUNBOOK, restartRunbook({ notifyTopics: [`arn:aws:sns:${REGION}:123456789012:oncall-${id}`] }));
    // The bucket is the administrator's (with Object Lock in production); the log group the controller creates.
    const s3 = new S3Client({ ...seedClientConfig(tb.motoEndpoint, REGION), forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET, CreateBucketConfiguration: { LocationConstraint: REGION } }));
    s3.destroy();
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
  });

  afterEach(() => proxy.clearRules());

  afterAll(async () => {
    for (const c of controllers.values()) await c.stop();
    await proxy?.stop();
    await chart?.uninstall();
  });

  describe('CloudWatch Logs (one stream per namespace)', () => {
    const sink = { AUDIT_SINK: 'cloudwatch-logs', AUDIT_LOG_GROUP: LOG_GROUP };
    const sinkArgs = ['--log-group', LOG_GROUP];
    beforeAll(async () => {
      await start(NS_LOGS, sink);
    });

    test('the approval notification carries the plan and the command that approves; the record outlives the request', async () => {
      const sns = new SNSClient(seedClientConfig(tb.motoEndpoint, REGION));
      const sqs = new SQSClient(seedClientConfig(tb.motoEndpoint, REGION));
      const topic = await sns.send(new CreateTopicCommand({ Name: `oncall-${id}` }));
      const queue = await sqs.send(new CreateQueueCommand({ QueueName: `oncall-${id}` }));
      const queueArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.QueueUrl, AttributeNames: ['QueueArn'] })))
        .Attributes?.QueueArn;
      await sns.send(new SubscribeCommand({ TopicArn: topic.TopicArn, Protocol: 'sqs', Endpoint: queueArn }));

      const p = await policy(NS_LOGS, { risk: 'Medium', notify: { topicArn: topic.TopicArn!, on: ['AwaitingApproval'] } });
      const r = await request(NS_LOGS, p);
      const waiting = await res.waitForPhase(NS_LOGS, r.name, 'AwaitingApproval');
      const digest = waiting.status!.plan!.digest;
      const message = await waitFor('the AwaitingApproval message', async () => {
        const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.QueueUrl, WaitTimeSeconds: 0 }));
        const body = out.Messages?.[0]?.Body;
        return body ? (JSON.parse(JSON.parse(body).Message) as Record<string, any>) : undefined;
      });
      sns.destroy();
      sqs.destroy();
      expect(message).toMatchObject({ version: '1.0', source: 'custom', request: r.name, planDigest: digest });
      expect(message.content.description).toContain(digest);
      const approve = message.metadata.additionalContext.approveCommand as string;
      expect(approve).toBe(`kubectl remediator approve ${r.name} -n ${NS_LOGS}`);

      // The command, run as it stands by the approver, approves exactly this plan.
      const args = approve.split(' ').slice(2);
      const ran = await plugin(tb, 'alice', args);
      expect(ran).toMatchObject({ code: 0 });
      expect(ran.stdout).toContain(digest);
      const done = await res.waitForPhase(NS_LOGS, r.name, 'Succeeded');
      await gone(NS_LOGS, r.name);

      const [record] = (await records(NS_LOGS, sinkArgs)).filter((x) => x.request.uid === r.uid);
      const [command] = (await ssmCommands(tb, REGION)).filter((c) => c.Comment === `remediator:${r.uid}`);
      expect(record).toMatchObject({
        apiVersion: AUDIT_API_VERSION,
        request: { namespace: NS_LOGS, name: r.name, uid: r.uid, policy: p, requestedBy: 'mallory' },
        alert: { source: 'alertmanager', name: 'NginxDown' },
        plan: { digest, runbook: RUNBOOK, region: REGION, targets: done.status!.targets },
        approval: { decision: 'Approved', approver: 'alice', planDigest: digest },
        execution: { ssm: { documentName: 'AWS-RunShellScript', commands: [{ commandId: command!.CommandId }] } },
        instances: [{ instanceId: done.status!.targets![0], status: 'Success' }],
        notifications: [{ phase: 'AwaitingApproval' }],
        outcome: { phase: 'Succeeded', completionTime: done.status!.completionTime },
      });
      expect(record!.approval!.at).toBeDefined();
    }, 120_000);

    test('the chain continues across a controller restart and outlives the policy', async () => {
      const p = await policy(NS_LOGS);
      const before = await request(NS_LOGS, p);
      await res.waitForPhase(NS_LOGS, before.name, 'Succeeded');
      await gone(NS_LOGS, before.name);

      await start(NS_LOGS, sink); // a new process: the head is read back from the sink
      const after = await request(NS_LOGS, p);
      await res.waitForPhase(NS_LOGS, after.name, 'Succeeded');
      // The policy goes while its request is kept; retention (the controller's default) still records it first.
      await res.api.deleteNamespacedCustomObject({
        group: 'remediator.dev',
        version: 'v1alpha1',
        namespace: NS_LOGS,
        plural: 'alertpolicies',
        name: p,
      });
      await gone(NS_LOGS, after.name);

      const all = await records(NS_LOGS, sinkArgs);
      const uids = all.map((x) => x.request.uid);
      expect(uids.indexOf(after.uid)).toBe(uids.indexOf(before.uid) + 1);
      expect(all.map((x) => x.sequence)).toEqual(all.map((_, i) => i + 1));
      const verified = await history(['-n', NS_LOGS, '--verify', ...sinkArgs]);
      expect(verified).toMatchObject({ code: 0 });
      expect(verified.stdout).toContain(`chain ${NS_LOGS}: intact, ${all.length} record(s)`);
    }, 120_000);

    test('PutLogEvents refused: the request is kept and says why; once the sink takes the record it goes', async () => {
      const c = controllers.get(NS_LOGS)!;
      const failedBefore = await metric(c, new RegExp(`^remediator_audit_records_total\\{.*namespace="${NS_LOGS}".*outcome="failed"`));
      const refusal = proxy.addRule({
        kind: 'error',
        operation: 'PutLogEvents',
        code: 'AccessDeniedException',
        message: 'not authorized to perform logs:PutLogEvents',
      });
      const p = await policy(NS_LOGS);
      const r = await request(NS_LOGS, p);
      await res.waitForPhase(NS_LOGS, r.name, 'Succeeded');
      const event = await waitFor('the AuditWriteFailed Event', async () =>
        (await res.events(NS_LOGS, r.name)).find((e) => e.reason === 'AuditWriteFailed'),
      );
      expect(event.type).toBe('Warning');
      expect(event.message).toContain(`CloudWatch Logs group "${LOG_GROUP}"`);
      expect(event.message).toContain('logs:PutLogEvents');
      expect(event.message).toContain('kept until it is written');
      // Its TTL (2s) is long past and it has been retried: still there.
      await waitFor('a retried write', async () => refusal.hits >= 2, 30_000);
      expect(await exists(NS_LOGS, r.name)).toBe(true);
      expect(await metric(c, new RegExp(`^remediator_audit_records_total\\{.*namespace="${NS_LOGS}".*outcome="failed"`))).toBeGreaterThan(
        failedBefore,
      );

      refusal.remove();
      await gone(NS_LOGS, r.name, 90_000);
      expect((await records(NS_LOGS, sinkArgs)).filter((x) => x.request.uid === r.uid)).toHaveLength(1);
      expect(await history(['-n', NS_LOGS, '--verify', ...sinkArgs])).toMatchObject({ code: 0 });
    }, 150_000);

    test('an event forged into the stream breaks the chain, and history --verify says where', async () => {
      const logs = new CloudWatchLogsClient(seedClientConfig(tb.motoEndpoint, REGION));
      const all = await records(NS_LOGS, sinkArgs);
      const last = all.at(-1)!;
      // Someone with logs:PutLogEvents adds a record claiming alice approved something she did not.
      const forged = sealRecord(
        {
          apiVersion: AUDIT_API_VERSION,
          kind: AUDIT_KIND,
          recordedAt: new Date().toISOString(),
          request: { namespace: NS_LOGS, name: 'never-happened', uid: 'forged', policy: 'p' },
          alert: { source: 'generic', name: 'Nothing' },
          approval: { decision: 'Approved', approver: 'alice' },
          outcome: { phase: 'Succeeded' },
        },
        { sequence: last.sequence, digest: `sha256:${'f'.repeat(64)}` },
      );
      await logs.send(
        new PutLogEventsCommand({
          logGroupName: LOG_GROUP,
          logStreamName: NS_LOGS,
          logEvents: [{ timestamp: Date.now() + 1000, message: serializeRecord(forged) }],
        }),
      );
      // And a stream for another namespace with garbage in it.
      await logs.send(new CreateLogStreamCommand({ logGroupName: LOG_GROUP, logStreamName: 'audit-other' }));
      await logs.send(
        new PutLogEventsCommand({
          logGroupName: LOG_GROUP,
          logStreamName: 'audit-other',
          logEvents: [{ timestamp: Date.now(), message: 'hello' }],
        }),
      );
      logs.destroy();
      const verified = await history(['-n', NS_LOGS, '--verify', ...sinkArgs]);
      expect(verified.code).toBe(1);
      expect(verified.stderr).toContain(`chain ${NS_LOGS}: BROKEN`);
      expect(verified.stderr).toMatch(new RegExp(`broken-link: record ${forged.sequence} \\(${NS_LOGS}/never-happened\\)`));
      const everything = await history(['-A', '--verify', ...sinkArgs]);
      expect(everything.code).toBe(1);
      expect(everything.stderr).toContain('chain audit-other: BROKEN');
    }, 60_000);
  });

  describe('S3 (one object per record)', () => {
    const sink = { AUDIT_SINK: 's3', AUDIT_BUCKET: BUCKET, AUDIT_PREFIX: PREFIX };
    const sinkArgs = ['--bucket', BUCKET, '--prefix', PREFIX];
    beforeAll(async () => {
      await start(NS_S3, sink);
    });

    test('records land as objects; PutObject refused holds the deletion; a rewritten object is found', async () => {
      const p = await policy(NS_S3);
      const first = await request(NS_S3, p);
      await res.waitForPhase(NS_S3, first.name, 'Succeeded');
      await gone(NS_S3, first.name);

      const refusal = proxy.addRule({
        kind: 'error',
        operation: '*',
        service: 's3',
        code: 'AccessDenied',
        status: 403,
        match: (r) => r.method === 'PUT',
      });
      const held = await request(NS_S3, p);
      await res.waitForPhase(NS_S3, held.name, 'Succeeded');
      const event = await waitFor('the AuditWriteFailed Event', async () =>
        (await res.events(NS_S3, held.name)).find((e) => e.reason === 'AuditWriteFailed'),
      );
      expect(event.message).toContain(`s3://${BUCKET}/${PREFIX}`);
      expect(event.message).toContain('s3:PutObject');
      await waitFor('a retried write', async () => refusal.hits >= 2, 30_000);
      expect(await exists(NS_S3, held.name)).toBe(true);
      refusal.remove();
      await gone(NS_S3, held.name, 90_000);

      const s3 = new S3Client({ ...seedClientConfig(tb.motoEndpoint, REGION), forcePathStyle: true });
      const keys = (await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}${NS_S3}/` }))).Contents!.map((o) => o.Key!);
      expect(keys).toEqual([`${PREFIX}${NS_S3}/000000000001-${first.uid}.json`, `${PREFIX}${NS_S3}/000000000002-${held.uid}.json`]);
      expect(await history(['-n', NS_S3, '--verify', ...sinkArgs])).toMatchObject({ code: 0 });

      // Someone with s3:PutObject changes who approved the first record.
      const text = await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: keys[0] }))).Body!.transformToString();
      const edited = { ...parseRecord(text), approval: { decision: 'Approved', approver: 'mallory' } };
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: keys[0], Body: JSON.stringify(edited) }));
      s3.destroy();
      const verified = await history(['-n', NS_S3, '--verify', ...sinkArgs]);
      expect(verified.code).toBe(1);
      expect(verified.stderr).toContain(`digest-mismatch: record 1 (${NS_S3}/${first.name}) was changed after it was written`);
    }, 180_000);
  });
});
