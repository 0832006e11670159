// The fault proxy against moto, with the real SDK clients: each rule kind, the wire
// protocol each service speaks, the SDK's retry behaviour on injected errors, and the
// IRSA path (STS AssumeRoleWithWebIdentity) through the proxy.
//
// moto is shared with other test files running at the same time: nothing here resets
// it, and everything here happens in a region of its own. That matters: moto adds every
// instance of the region to a SendCommand by InstanceIds, so commands sent here in the
// suite's region would show up in other tests' ListCommands. Within the region, every
// test finds its own objects by a unique Comment.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateTopicCommand, PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetCommandInvocationCommand, ListCommandsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { fromTokenFile } from '@aws-sdk/credential-providers';
// Not a direct dependency: the protocol the CloudWatch client would use if it switched
// to Smithy RPCv2 CBOR. Used only to check the proxy's CBOR error encoding.
import { AwsSmithyRpcV2CborProtocol } from '@aws-sdk/core/protocols';
import { awsEnv, irsaVars, seedClientConfig, seedInstances } from './aws.js';
import { repoRoot } from './binaries.js';
import { testbedFromEnv } from './env.js';
import { startFaultProxy, type FaultProxy, type RecordedCall } from './faultproxy.js';
import { run } from './tools.js';

const tb = testbedFromEnv();
/** Not the suite's region (tb.region): see above. */
const REGION = tb.region === 'eu-west-3' ? 'eu-west-2' : 'eu-west-3';
const suffix = randomBytes(3).toString('hex');
let proxy: FaultProxy;
let n = 0;
const unique = (what: string): string => `${what}-${suffix}-${++n}`;

interface SdkError {
  name: string;
  message: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

async function failure(p: Promise<unknown>): Promise<SdkError> {
  try {
    await p;
  } catch (err) {
    return err as SdkError;
  }
  throw new Error('expected the call to fail, it succeeded');
}

type ClientOpts = { maxAttempts?: number; endpoint?: string };
const cfg = (o: ClientOpts = {}) => ({
  ...seedClientConfig(o.endpoint ?? proxy.endpoint, REGION),
  ...(o.maxAttempts ? { maxAttempts: o.maxAttempts } : {}),
});

/** The four clients the controller uses, against the proxy; destroyed after `fn`. */
async function withClients<T>(
  o: ClientOpts,
  fn: (c: { ssm: SSMClient; ec2: EC2Client; cw: CloudWatchClient; sns: SNSClient }) => Promise<T>,
): Promise<T> {
  const c = { ssm: new SSMClient(cfg(o)), ec2: new EC2Client(cfg(o)), cw: new CloudWatchClient(cfg(o)), sns: new SNSClient(cfg(o)) };
  try {
    return await fn(c);
  } finally {
    for (const client of Object.values(c)) client.destroy();
  }
}

const sendCommand = (comment: string) =>
  new SendCommandCommand({
    DocumentName: 'AWS-RunShellScript',
    InstanceIds: ['i-0123456789abcdef0'],
    Parameters: { commands: ['uptime'] },
    Comment: comment,
  });

const getMetricData = () =>
  new GetMetricDataCommand({
    MetricDataQueries: [
      { Id: 'cpu', MetricStat: { Metric: { Namespace: 'AWS/EC2', MetricName: 'CPUUtilization' }, Period: 60, Stat: 'Average' } },
    ],
    StartTime: new Date(Date.now() - 3_600_000),
    EndTime: new Date(),
  });

/** Commands in moto (straight to moto, not through the proxy) with this Comment. */
async function commandsInMoto(comment: string): Promise<string[]> {
  const ssm = new SSMClient(cfg({ endpoint: tb.motoEndpoint }));
  try {
    const out = await ssm.send(new ListCommandsCommand({}));
    return (out.Commands ?? []).filter((c) => c.Comment === comment).map((c) => c.CommandId!);
  } finally {
    ssm.destroy();
  }
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let topicArn: string;

beforeAll(async () => {
  proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
  const sns = new SNSClient(cfg({ endpoint: tb.motoEndpoint }));
  try {
    topicArn = (await sns.send(new CreateTopicCommand({ Name: `faultproxy-${suffix}` }))).TopicArn!;
  } finally {
    sns.destroy();
  }
});

afterAll(async () => {
  await proxy?.stop();
});

afterEach(() => {
  proxy.clearRules();
  proxy.clearCalls();
});

describe('fault proxy', () => {
  it('forwards every service to moto and identifies operation, service and wire protocol', async () => {
    await withClients({}, async ({ ssm, ec2, cw, sns }) => {
      await ec2.send(new DescribeInstancesCommand({}));
      await ssm.send(new ListCommandsCommand({}));
      const metrics = await cw.send(getMetricData());
      expect(metrics.MetricDataResults?.[0]?.Id).toBe('cpu');
      await sns.send(new PublishCommand({ TopicArn: topicArn, Message: 'hello' }));
    });
    const seen = proxy.calls().map((c) => [c.operation, c.service, c.protocol, c.status, c.outcome, c.rule]);
    expect(seen).toEqual([
      ['DescribeInstances', 'ec2', 'ec2-query', 200, 'forwarded', undefined],
      ['ListCommands', 'ssm', 'json', 200, 'forwarded', undefined],
      ['GetMetricData', 'cloudwatch', 'json', 200, 'forwarded', undefined],
      ['Publish', 'sns', 'query', 200, 'forwarded', undefined],
    ]);
    // CloudWatch speaks awsJson1_0 in query-compatible mode; SSM awsJson1_1.
    const [, list, gmd] = proxy.calls();
    expect(list!.headers['content-type']).toBe('application/x-amz-json-1.1');
    expect(gmd!.headers['content-type']).toBe('application/x-amz-json-1.0');
    expect(gmd!.headers['x-amz-target']).toBe('GraniteServiceVersion20100801.GetMetricData');
    expect(gmd!.headers['x-amzn-query-mode']).toBe('true');
    expect(proxy.calls('Publish')[0]!.input).toMatchObject({ Action: 'Publish', TopicArn: topicArn, Message: 'hello' });
  });

  it.each([
    // [service, wire code, the error name the SDK surfaces, HTTP status, $fault]
    ['ssm', 'ThrottlingException', 'ThrottlingException', 400, 'client'],
    ['ssm', 'AccessDeniedException', 'AccessDeniedException', 400, 'client'],
    ['ssm', 'InternalServerError', 'InternalServerError', 500, 'server'],
    ['ec2', 'RequestLimitExceeded', 'RequestLimitExceeded', 503, 'server'],
    ['ec2', 'UnauthorizedOperation', 'UnauthorizedOperation', 403, 'client'],
    ['ec2', 'InternalError', 'InternalError', 500, 'server'],
    ['cloudwatch', 'Throttling', 'Throttling', 400, 'client'],
    ['cloudwatch', 'AccessDenied', 'AccessDenied', 403, 'client'],
    ['cloudwatch', 'InternalFailure', 'InternalFailure', 500, 'server'],
    // SNS models these: the query code maps to the modeled exception's name.
    ['sns', 'Throttled', 'ThrottledException', 429, 'client'],
    ['sns', 'AuthorizationError', 'AuthorizationErrorException', 403, 'client'],
    ['sns', 'ServiceUnavailable', 'ServiceUnavailable', 503, 'server'],
  ] as const)('answers %s with %s, which the SDK surfaces as %s', async (service, code, name, status, fault) => {
    const handle = proxy.addRule({ kind: 'error', operation: '*', service, code, message: `injected ${code}` });
    const err = await withClients({ maxAttempts: 1 }, ({ ssm, ec2, cw, sns }) =>
      failure(
        {
          ssm: () => ssm.send(new ListCommandsCommand({})),
          ec2: () => ec2.send(new DescribeInstancesCommand({})),
          cloudwatch: () => cw.send(getMetricData()),
          sns: () => sns.send(new PublishCommand({ TopicArn: topicArn, Message: 'x' })),
        }[service](),
      ),
    );
    expect(err.name).toBe(name);
    expect(err.message).toBe(`injected ${code}`);
    expect(err.$metadata?.httpStatusCode).toBe(status);
    expect(err.$fault).toBe(fault);
    expect(handle.hits).toBe(1);
    expect(proxy.calls().map((c) => [c.service, c.outcome, c.status])).toEqual([[service, 'error', status]]);
  });

  it('injected throttling and 5xx are retried by the SDK with default retry settings; access denied is not', async () => {
    const ops = ['SendCommand', 'DescribeInstances', 'GetMetricData', 'Publish'];
    proxy.addRule({ kind: 'error', operation: 'SendCommand', code: 'ThrottlingException', times: 2 });
    proxy.addRule({ kind: 'error', operation: 'DescribeInstances', code: 'RequestLimitExceeded', times: 2 });
    proxy.addRule({ kind: 'error', operation: 'GetMetricData', code: 'Throttling', times: 2 });
    proxy.addRule({ kind: 'error', operation: 'Publish', code: 'Throttled', times: 2 });
    proxy.addRule({ kind: 'error', operation: 'ListCommands', code: 'AccessDeniedException' });
    const comment = unique('retried');
    await withClients({}, async ({ ssm, ec2, cw, sns }) => {
      const [sent, , , , denied] = await Promise.all([
        ssm.send(sendCommand(comment)),
        ec2.send(new DescribeInstancesCommand({})),
        cw.send(getMetricData()),
        sns.send(new PublishCommand({ TopicArn: topicArn, Message: 'retried' })),
        failure(ssm.send(new ListCommandsCommand({}))),
      ]);
      expect(sent.$metadata.attempts).toBe(3);
      expect(denied.name).toBe('AccessDeniedException');
      expect(denied.$metadata?.attempts).toBe(1);
    });
    for (const op of ops) {
      expect(proxy.calls(op).map((c) => c.outcome)).toEqual(['error', 'error', 'forwarded']);
    }
    expect(proxy.calls('ListCommands')).toHaveLength(1);
    // The retried SendCommand reached moto once.
    expect(await commandsInMoto(comment)).toHaveLength(1);
  }, 20_000);

  it('applies a rule only to requests its predicate accepts, and only `times` times', async () => {
    const target = unique('target');
    const other = unique('other');
    const handle = proxy.addRule({
      kind: 'error',
      operation: 'SendCommand',
      code: 'AccessDeniedException',
      times: 1,
      match: (req) => (req.input as { Comment?: string }).Comment === target,
    });
    await withClients({ maxAttempts: 1 }, async ({ ssm }) => {
      await ssm.send(sendCommand(other));
      expect((await failure(ssm.send(sendCommand(target)))).name).toBe('AccessDeniedException');
      await ssm.send(sendCommand(target)); // times: 1 is used up
    });
    expect(handle.hits).toBe(1);
    expect((await handle.reached).input).toMatchObject({ Comment: target });
    expect(proxy.calls('SendCommand').map((c) => c.outcome)).toEqual(['forwarded', 'error', 'forwarded']);
    expect(await commandsInMoto(target)).toHaveLength(1);
  });

  it('encodes errors for Smithy RPCv2 CBOR too', async () => {
    // The CloudWatch client, switched to the protocol it may use in a later SDK release.
    const cw = new CloudWatchClient({ ...cfg({ maxAttempts: 1 }), protocol: AwsSmithyRpcV2CborProtocol });
    proxy.addRule({ kind: 'error', operation: 'GetMetricData', code: 'Throttling', message: 'cbor says slow down' });
    try {
      const err = await failure(cw.send(getMetricData()));
      expect([err.name, err.message, err.$metadata?.httpStatusCode]).toEqual(['Throttling', 'cbor says slow down', 400]);
    } finally {
      cw.destroy();
    }
    const [call] = proxy.calls();
    expect([call!.protocol, call!.service, call!.operation, call!.path]).toEqual([
      'rpcv2-cbor',
      'cloudwatch',
      'GetMetricData',
      '/service/GraniteServiceVersion20100801/operation/GetMetricData',
    ]);
  });

  it('dropResponse: SendCommand reaches moto, the SDK gets no answer', async () => {
    const comment = unique('dropped');
    const handle = proxy.addRule({ kind: 'dropResponse', operation: 'SendCommand', times: 1 });
    // The controller's send client: maxAttempts 1, so a lost response is not re-sent.
    const err = await withClients({ maxAttempts: 1 }, ({ ssm }) => failure(ssm.send(sendCommand(comment))));
    // No HTTP answer at all. Plain Node gets name TimeoutError, code ECONNRESET, "socket
    // hang up"; under jest's vm modules Node's error is from another realm (not
    // `instanceof Error` here), and the SDK wraps it: "AWS SDK error wrapper for
    // TimeoutError: socket hang up".
    expect(err.message).toMatch(/socket hang up/);
    expect(err.$metadata?.httpStatusCode).toBeUndefined();
    const call = await handle.reached;
    expect([call.outcome, call.status, call.upstreamStatus]).toEqual(['dropped', undefined, 200]);
    expect(await commandsInMoto(comment)).toHaveLength(1);
  });

  it('dropResponse with SDK retries on: the lost response makes the SDK send the command twice', async () => {
    // Why the controller's SendCommand client must not retry (see src/cloud/ssm.ts).
    const comment = unique('twice');
    proxy.addRule({ kind: 'dropResponse', operation: 'SendCommand', times: 1 });
    const out = await withClients({}, ({ ssm }) => ssm.send(sendCommand(comment)));
    expect(out.$metadata.attempts).toBe(2);
    expect(proxy.calls('SendCommand').map((c) => c.outcome)).toEqual(['dropped', 'forwarded']);
    expect(await commandsInMoto(comment)).toHaveLength(2);
  });

  it('hold: the command exists in moto while its response is held; release delivers it', async () => {
    const comment = unique('held');
    const hold = proxy.addRule({ kind: 'hold', operation: 'SendCommand' });
    await withClients({ maxAttempts: 1 }, async ({ ssm }) => {
      let answered = false;
      const pending = ssm.send(sendCommand(comment)).finally(() => (answered = true));
      const call = await hold.reached;
      expect(call.outcome).toBe('held');
      const [commandId] = await commandsInMoto(comment);
      expect(commandId).toBeDefined();
      // Other operations pass while SendCommand is held.
      await ssm.send(new ListCommandsCommand({ CommandId: commandId }));
      await sleep(100);
      expect(answered).toBe(false);
      expect(await hold.release()).toEqual({ delivered: 1, clientGone: 0 });
      const out = await pending;
      expect(out.Command?.CommandId).toBe(commandId);
      expect([call.outcome, call.status]).toEqual(['released', 200]);
      // The gate stays open after release.
      await ssm.send(sendCommand(unique('after-release')));
    });
    expect(proxy.calls('SendCommand').map((c) => c.outcome)).toEqual(['released', 'forwarded']);
  });

  it('delay: the command exists in moto at once; its answer comes after the delay', async () => {
    const comment = unique('delayed');
    const delay = proxy.addRule({ kind: 'delay', operation: 'SendCommand', ms: 1_500, times: 1 });
    await withClients({ maxAttempts: 1 }, async ({ ssm }) => {
      const t0 = Date.now();
      const pending = ssm.send(sendCommand(comment));
      const call = await delay.reached;
      // Reached: moto has the command while the caller still waits for the answer.
      expect(await commandsInMoto(comment)).toHaveLength(1);
      const out = await pending;
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1_400);
      expect(out.Command?.Comment).toBe(comment);
      expect([call.outcome, call.status]).toEqual(['delayed', 200]);
    });
  });

  it('hold: a process killed while its SendCommand is held leaves the command in moto and no answer', async () => {
    const comment = unique('killed');
    const hold = proxy.addRule({ kind: 'hold', operation: 'SendCommand', times: 1 });
    const script = `
      import { SSMClient, SendCommandCommand } from '@aws-sdk/client-ssm';
      const [endpoint, region, comment] = process.argv.slice(1);
      const ssm = new SSMClient({ endpoint, region, maxAttempts: 1, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
      await ssm.send(new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: ['i-0123456789abcdef0'], Parameters: { commands: ['uptime'] }, Comment: comment }));
      console.log('answered');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, proxy.endpoint, REGION, comment], {
      cwd: repoRoot(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    try {
      const call = await hold.reached;
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      await until('the proxy to notice', () => (call.outcome === 'clientGone' ? true : undefined));
      expect(await hold.release()).toEqual({ delivered: 0, clientGone: 1 });
      expect(stdout).toBe('');
      expect(await commandsInMoto(comment)).toHaveLength(1);
      expect(proxy.calls('SendCommand')).toHaveLength(1);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  it('rewrite: GetCommandInvocation reports Failed / TimedOut instead of moto’s Success', async () => {
    const comment = unique('rewrite');
    const [instanceId] = await seedInstances(tb.motoEndpoint, { tags: { Name: comment }, region: REGION });
    const failed = proxy.addRule({
      kind: 'rewrite',
      operation: 'GetCommandInvocation',
      times: 1,
      transform: (body: Record<string, unknown>) => ({
        ...body,
        Status: 'Failed',
        StatusDetails: 'Failed',
        ResponseCode: 1,
        StandardErrorContent: 'uptime: command not found ünïcödé',
      }),
    });
    await withClients({ maxAttempts: 1 }, async ({ ssm }) => {
      // An error answer (moto: InvalidCommandId for an unknown command) passes through, the rule not used up.
      const missing = await failure(
        ssm.send(new GetCommandInvocationCommand({ CommandId: '00000000-0000-0000-0000-000000000000', InstanceId: instanceId })),
      );
      expect(missing.name).toBe('InvalidCommandId');
      expect(failed.hits).toBe(0);

      const sent = await ssm.send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunShellScript',
          InstanceIds: [instanceId!],
          Parameters: { commands: ['uptime'] },
          Comment: comment,
        }),
      );
      const commandId = sent.Command!.CommandId!;
      const get = () => ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }));
      const first = await get();
      expect([first.Status, first.ResponseCode, first.StandardErrorContent]).toEqual(['Failed', 1, 'uptime: command not found ünïcödé']);
      expect((await get()).Status).toBe('Success'); // times: 1

      proxy.addRule({
        kind: 'rewrite',
        operation: 'GetCommandInvocation',
        transform: (body: object) => ({ ...body, Status: 'TimedOut', StatusDetails: 'DeliveryTimedOut', ResponseCode: -1 }),
      });
      const timedOut = await get();
      expect([timedOut.Status, timedOut.StatusDetails, timedOut.ResponseCode]).toEqual(['TimedOut', 'DeliveryTimedOut', -1]);
    });
    expect(proxy.calls('GetCommandInvocation').map((c) => c.outcome)).toEqual(['forwarded', 'rewritten', 'forwarded', 'rewritten']);
  });

  it('passes the IRSA path through: STS AssumeRoleWithWebIdentity (unsigned) then calls signed with its keys', async () => {
    const [id] = await seedInstances(tb.motoEndpoint, { tags: { Name: unique('irsa') }, region: REGION });
    // What the controller does: default chain and endpoint from the environment.
    const script = `
      import { EC2Client, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
      const res = await new EC2Client({}).send(new DescribeInstancesCommand({ InstanceIds: [process.argv[1]] }));
      console.log(res.Reservations?.[0]?.Instances?.[0]?.InstanceId ?? 'none');`;
    const res = await run(process.execPath, ['--input-type=module', '-e', script, id!], {
      env: awsEnv(proxy.endpoint, REGION),
      cwd: repoRoot(),
    });
    expect(res.stderr).toBe('');
    expect(res.stdout.trim()).toBe(id);
    const [sts, ec2] = proxy.calls();
    expect([sts?.operation, sts?.service, sts?.protocol, sts?.status]).toEqual(['AssumeRoleWithWebIdentity', 'sts', 'query', 200]);
    expect(sts?.headers.authorization).toBeUndefined();
    expect(ec2?.operation).toBe('DescribeInstances');
    // Signed with moto's temporary STS key, not a static one.
    expect(ec2?.headers.authorization).toMatch(/Credential=ASIA[^/]*\/\d{8}\/[^/]+\/ec2\/aws4_request/);
    expect(ec2?.headers['x-amz-security-token']).toBeTruthy();
  });

  it('injects errors into STS: AccessDenied reaches the credential provider’s caller', async () => {
    const vars = irsaVars(proxy.endpoint, REGION);
    proxy.addRule({
      kind: 'error',
      operation: 'AssumeRoleWithWebIdentity',
      code: 'AccessDenied',
      message: 'Not authorized to perform sts:AssumeRoleWithWebIdentity',
    });
    const provider = fromTokenFile({
      webIdentityTokenFile: vars['AWS_WEB_IDENTITY_TOKEN_FILE'],
      roleArn: vars['AWS_ROLE_ARN'],
      roleSessionName: 'faultproxy',
      clientConfig: { endpoint: proxy.endpoint, region: REGION, maxAttempts: 1 },
    });
    const err = await failure(provider());
    expect(err.name).toBe('AccessDenied');
    expect(err.message).toBe('Not authorized to perform sts:AssumeRoleWithWebIdentity');
    expect(proxy.calls().map((c: RecordedCall) => [c.operation, c.service, c.outcome, c.status])).toEqual([
      ['AssumeRoleWithWebIdentity', 'sts', 'error', 403],
    ]);
  });

  it('waitForCall resolves for calls made before and after it is asked', async () => {
    await withClients({}, async ({ ssm }) => {
      await ssm.send(new ListCommandsCommand({}));
      expect((await proxy.waitForCall('ListCommands')).status).toBe(200);
      const second = proxy.waitForCall('ListCommands', { count: 2, timeoutMs: 5_000 });
      await ssm.send(new ListCommandsCommand({}));
      expect((await second).seq).toBeGreaterThan(proxy.calls('ListCommands')[0]!.seq);
      await expect(proxy.waitForCall('CancelCommand', { timeoutMs: 50 })).rejects.toThrow(/no 1\. finished CancelCommand/);
    });
  });
});
