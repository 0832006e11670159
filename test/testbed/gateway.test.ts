// The test bed's gateway to moto (gateway.ts), with the real SDK clients: the contract
// layer refuses what AWS refuses, in each service's own wire protocol, records it, and
// forwards what AWS accepts; and DescribeInstanceInformation, which moto lacks, answers
// from moto's instances with the agent states tests set.
//
// Most cases run on a private gateway in front of moto (not the run's), so their
// violations are counted here and do not fail the run; one case proves the run's own
// gateway, the endpoint every integration test gets, is on.

import { randomBytes } from 'node:crypto';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateTopicCommand, PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  DescribeInstanceInformationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  SSMClient,
  type InstanceInformation,
} from '@aws-sdk/client-ssm';
import { seedClientConfig, seedInstances } from './aws.js';
import { testbedFromEnv } from './env.js';
import {
  assertNoContractViolations,
  contractViolations,
  expectContractViolation,
  registerManagedNode,
  setAgentStatus,
  startGateway,
  type Gateway,
} from './gateway.js';

const tb = testbedFromEnv();
// A region of its own: moto adds every instance of a region to a SendCommand by InstanceIds.
const REGION = 'ap-south-2';
const suffix = randomBytes(3).toString('hex');
let gw: Gateway;

interface SdkError {
  name: string;
  message: string;
  $metadata?: { httpStatusCode?: number };
}

async function failure(p: Promise<unknown>): Promise<SdkError> {
  try {
    await p;
  } catch (err) {
    return err as SdkError;
  }
  throw new Error('expected the call to fail, it succeeded');
}

function clients(endpoint: string) {
  const cfg = { ...seedClientConfig(endpoint, REGION), maxAttempts: 1 };
  return { ssm: new SSMClient(cfg), ec2: new EC2Client(cfg), cw: new CloudWatchClient(cfg), sns: new SNSClient(cfg) };
}
let c: ReturnType<typeof clients>;

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `i-${i.toString(16).padStart(17, '0')}`);
const send = (comment: string, change: Partial<ConstructorParameters<typeof SendCommandCommand>[0]> = {}) =>
  new SendCommandCommand({
    DocumentName: 'AWS-RunShellScript',
    InstanceIds: ids(2),
    Parameters: { commands: ['uptime'] },
    Comment: comment,
    ...change,
  });

async function commandsInMoto(comment: string): Promise<number> {
  const ssm = new SSMClient(seedClientConfig(tb.motoDirectEndpoint, REGION));
  try {
    return ((await ssm.send(new ListCommandsCommand({}))).Commands ?? []).filter((x) => x.Comment === comment).length;
  } finally {
    ssm.destroy();
  }
}

beforeAll(async () => {
  gw = await startGateway({ upstream: tb.motoDirectEndpoint });
  c = clients(gw.endpoint);
});

afterAll(async () => {
  for (const client of Object.values(c ?? {})) client.destroy();
  await gw?.stop();
});

describe('contract layer', () => {
  it('forwards a call within the limits, and records nothing', async () => {
    const comment = `ok-${suffix}`;
    const out = await c.ssm.send(send(comment, { InstanceIds: ids(50), TimeoutSeconds: 30, MaxConcurrency: '10%', MaxErrors: '0' }));
    expect(out.Command?.CommandId).toHaveLength(36);
    expect(await commandsInMoto(comment)).toBe(1);
    expect(gw.violations()).toEqual([]);
  });

  it('refuses SendCommand with 51 instance ids as AWS does (400 ValidationException), moto never sees it, and records it', async () => {
    const comment = `fleet-${suffix}`;
    const err = await failure(c.ssm.send(send(comment, { InstanceIds: ids(51) })));
    expect(err.name).toBe('ValidationException');
    expect(err.$metadata?.httpStatusCode).toBe(400);
    expect(err.message).toMatch(/instanceIds.*less than or equal to 50/);
    expect(await commandsInMoto(comment)).toBe(0);
    expect(gw.unexpected()).toEqual([
      expect.objectContaining({
        service: 'ssm',
        operation: 'SendCommand',
        region: REGION,
        code: 'ValidationException',
        reference: expect.stringContaining('API_SendCommand'),
      }),
    ]);
    expect(gw.proxy.calls('SendCommand').at(-1)?.outcome).toBe('refused');
    // What an afterAll would say, and what global teardown fails the run with.
    await expect(assertNoContractViolations(gw.endpoint, { region: REGION })).rejects.toThrow(
      /SendCommand in ap-south-2: ValidationException/,
    );
    await expect(assertNoContractViolations(gw.endpoint, { region: 'eu-north-1' })).resolves.toBeUndefined();
  });

  it('a violation a test expects is covered, and does not count against the run', async () => {
    const before = gw.unexpected().length;
    const expected = await expectContractViolation(gw.endpoint, {
      operation: 'SendCommand',
      code: 'ValidationException',
      messageIncludes: 'comment',
    });
    const err = await failure(c.ssm.send(send('c'.repeat(101))));
    expect(err.name).toBe('ValidationException');
    const covered = await expected.settle();
    expect(covered).toEqual([expect.objectContaining({ operation: 'SendCommand', message: expect.stringContaining('comment') })]);
    expect(gw.unexpected()).toHaveLength(before);
    // Once settled it covers nothing more.
    await failure(c.ssm.send(send('c'.repeat(101))));
    expect(gw.unexpected()).toHaveLength(before + 1);
  });

  it('answers in each protocol: CloudWatch (JSON, query-compatible), EC2 (ec2Query), SNS (awsQuery)', async () => {
    const query = (id: string) => ({
      Id: id,
      MetricStat: { Metric: { Namespace: 'AWS/EC2', MetricName: 'CPUUtilization' }, Period: 60, Stat: 'Average' },
    });
    const window = { StartTime: new Date(Date.now() - 3_600_000), EndTime: new Date() };
    const cwErr = await failure(
      c.cw.send(new GetMetricDataCommand({ MetricDataQueries: Array.from({ length: 501 }, (_, i) => query(`m${i}`)), ...window })),
    );
    // The query-era code travels in x-amzn-query-error; the SDK maps it to the JSON model's error name.
    expect(cwErr.name).toBe('ValidationException');
    expect((cwErr as SdkError & { Code?: string }).Code).toBe('ValidationError');
    expect(cwErr.$metadata?.httpStatusCode).toBe(400);
    expect((await failure(c.cw.send(new GetMetricDataCommand({ MetricDataQueries: [query('CPU-1')], ...window })))).message).toMatch(
      /Id 'CPU-1'/,
    );
    const ok = await c.cw.send(
      new GetMetricDataCommand({ MetricDataQueries: Array.from({ length: 500 }, (_, i) => query(`m${i}`)), ...window }),
    );
    expect(ok.MetricDataResults).toHaveLength(500);

    const ec2Err = await failure(c.ec2.send(new DescribeInstancesCommand({ InstanceIds: ids(2), MaxResults: 5 })));
    expect(ec2Err.name).toBe('InvalidParameterCombination');
    const many = await failure(c.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: ids(201) }] })));
    expect(many.name).toBe('FilterLimitExceeded');

    const topic = (await c.sns.send(new CreateTopicCommand({ Name: `gw-${suffix}` }))).TopicArn!;
    const snsErr = await failure(c.sns.send(new PublishCommand({ TopicArn: topic, Subject: 's'.repeat(101), Message: 'm' })));
    // SNS's wire code InvalidParameter is the SDK's InvalidParameterException.
    expect(snsErr.name).toBe('InvalidParameterException');
    expect(snsErr.$metadata?.httpStatusCode).toBe(400);
    expect((await failure(c.sns.send(new PublishCommand({ TopicArn: topic, Subject: 'two\nlines', Message: 'm' })))).name).toBe(
      'InvalidParameterException',
    );
    const attrErr = await failure(
      c.sns.send(
        new PublishCommand({ TopicArn: topic, Message: 'm', MessageAttributes: { 'AWS.trace': { DataType: 'String', StringValue: 'x' } } }),
      ),
    );
    expect(attrErr.name).toBe('InvalidParameterValueException');
    expect((await c.sns.send(new PublishCommand({ TopicArn: topic, Subject: 's'.repeat(100), Message: 'm' }))).MessageId).toBeTruthy();
  });

  it('holds FIFO topics to their rules, asking moto whether the topic deduplicates by content', async () => {
    const plain = (await c.sns.send(new CreateTopicCommand({ Name: `gw-${suffix}.fifo`, Attributes: { FifoTopic: 'true' } }))).TopicArn!;
    const byContent = (
      await c.sns.send(
        new CreateTopicCommand({ Name: `gw-cbd-${suffix}.fifo`, Attributes: { FifoTopic: 'true', ContentBasedDeduplication: 'true' } }),
      )
    ).TopicArn!;
    expect((await failure(c.sns.send(new PublishCommand({ TopicArn: plain, Message: 'm', MessageDeduplicationId: 'd' })))).message).toMatch(
      /MessageGroupId/,
    );
    expect((await failure(c.sns.send(new PublishCommand({ TopicArn: plain, Message: 'm', MessageGroupId: 'g' })))).message).toMatch(
      /ContentBasedDeduplication/,
    );
    expect(
      (await c.sns.send(new PublishCommand({ TopicArn: plain, Message: 'm', MessageGroupId: 'g', MessageDeduplicationId: 'd' }))).MessageId,
    ).toBeTruthy();
    expect((await c.sns.send(new PublishCommand({ TopicArn: byContent, Message: 'm', MessageGroupId: 'g' }))).MessageId).toBeTruthy();
  });

  it('is on for the whole run: the endpoint every test gets refuses and records too', async () => {
    const run = clients(tb.motoEndpoint);
    try {
      const expected = await expectContractViolation(tb.motoEndpoint, { operation: 'SendCommand', region: REGION });
      const err = await failure(run.ssm.send(send(`run-${suffix}`, { TimeoutSeconds: 10 })));
      expect(err.name).toBe('ValidationException');
      expect(await expected.settle()).toHaveLength(1);
      expect((await contractViolations(tb.motoEndpoint)).filter((v) => v.region === REGION && v.expectedBy === undefined)).toEqual([]);
    } finally {
      for (const client of Object.values(run)) client.destroy();
    }
  });
});

describe('DescribeInstanceInformation (emulated: moto lacks it)', () => {
  const describe_ = async (
    ssm: SSMClient,
    input: ConstructorParameters<typeof DescribeInstanceInformationCommand>[0],
  ): Promise<InstanceInformation[]> => {
    const out: InstanceInformation[] = [];
    let token: string | undefined;
    do {
      const page = await ssm.send(new DescribeInstanceInformationCommand({ ...input, NextToken: token }));
      out.push(...(page.InstanceInformationList ?? []));
      token = page.NextToken;
    } while (token);
    return out;
  };

  it('lists running instances with an Online Linux agent; tests can lose an agent, unregister one, or add a hybrid mi- node', async () => {
    const [online, lost, none] = await seedInstances(gw.endpoint, { count: 3, region: REGION, tags: { Name: `agents-${suffix}` } });
    await setAgentStatus(gw.endpoint, lost!, { pingStatus: 'ConnectionLost' });
    await setAgentStatus(gw.endpoint, none!, { registered: false });
    const hybrid = await registerManagedNode(gw.endpoint, REGION, { platformType: 'Linux' });
    expect(hybrid).toMatch(/^mi-[0-9a-f]{17}$/);

    const list = await describe_(c.ssm, { Filters: [{ Key: 'InstanceIds', Values: [online!, lost!, none!, hybrid] }] });
    const byId = new Map(list.map((i) => [i.InstanceId, i]));
    expect([...byId.keys()].sort()).toEqual([online!, lost!, hybrid].sort());
    expect(byId.get(online!)).toMatchObject({
      PingStatus: 'Online',
      PlatformType: 'Linux',
      ResourceType: 'EC2Instance',
      AgentVersion: expect.any(String),
    });
    expect(byId.get(lost!)?.PingStatus).toBe('ConnectionLost');
    expect(byId.get(lost!)!.LastPingDateTime!.getTime()).toBeLessThan(byId.get(online!)!.LastPingDateTime!.getTime());
    expect(byId.get(hybrid)).toMatchObject({ PingStatus: 'Online', ResourceType: 'ManagedInstance' });

    const lostOnly = await describe_(c.ssm, {
      Filters: [
        { Key: 'InstanceIds', Values: [online!, lost!] },
        { Key: 'PingStatus', Values: ['ConnectionLost'] },
      ],
    });
    expect(lostOnly.map((i) => i.InstanceId)).toEqual([lost!]);
    // Legacy filter form too.
    const legacy = await describe_(c.ssm, { InstanceInformationFilterList: [{ key: 'InstanceIds', valueSet: [online!] }] });
    expect(legacy.map((i) => i.InstanceId)).toEqual([online!]);
  });

  it('pages by MaxResults, and the contract layer holds it to 5-50', async () => {
    const seeded = await seedInstances(gw.endpoint, { count: 12, region: REGION, tags: { Name: `paging-${suffix}` } });
    const pages: number[] = [];
    let token: string | undefined;
    const seen: string[] = [];
    do {
      const page = await c.ssm.send(
        new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: seeded }], MaxResults: 5, NextToken: token }),
      );
      pages.push(page.InstanceInformationList?.length ?? 0);
      seen.push(...(page.InstanceInformationList ?? []).map((i) => i.InstanceId!));
      token = page.NextToken;
    } while (token);
    expect(pages).toEqual([5, 5, 2]);
    expect(seen.sort()).toEqual([...seeded].sort());
    const before = gw.unexpected().length;
    expect((await failure(c.ssm.send(new DescribeInstanceInformationCommand({ MaxResults: 51 })))).name).toBe('ValidationException');
    expect(gw.unexpected()).toHaveLength(before + 1);
  });

  it('answers a malformed node id with InvalidInstanceId', async () => {
    const err = await failure(c.ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: ['web-1'] }] })));
    expect(err.name).toBe('InvalidInstanceId');
  });
});
