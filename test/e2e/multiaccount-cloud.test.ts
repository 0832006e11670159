/**
 * The cloud layer across accounts and regions, against moto (which keeps each account's
 * resources apart) through the fault proxy (which records who signed each call). The
 * pool runs on the IRSA path, like the controller: web identity for the base role,
 * `AssumeRole` chained from it for workload accounts, and per-service endpoint
 * overrides only (`AWS_ENDPOINT_URL_STS` and friends, no catch-all `AWS_ENDPOINT_URL`),
 * so an STS call that ignored its override would head for the real STS and fail.
 */
import { jest } from '@jest/globals';
import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { Metrics } from '../../src/observability/metrics.js';
import { AwsAssumeRoleDeniedError, AwsLocationAccessDeniedError, sessionTagsFor, type AwsLocation } from '../../src/cloud/location.js';
import { CloudPool } from '../../src/cloud/pool.js';
import { ACCOUNT_ID, DEFAULT_IMAGE_ID, SEED_CREDENTIALS, irsaVars } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy, type RecordedCall } from '../testbed/faultproxy.js';
import { testbedFromEnv } from './harness.js';

const HOME = 'eu-south-1';
const R1 = 'eu-south-1';
const R2 = 'ap-northeast-2';
const A = '222222222222';
const B = '333333333333';
const roleOf = (account: string) => `arn:aws:iam::${account}:role/remediator-workload`;
const RUN = `mc-${Date.now().toString(36)}`;
const MIN = 60_000;

/** Credentials of `account`, as the seeding side gets them: AssumeRole with static keys, straight at moto. */
async function accountCredentials(endpoint: string, account: string) {
  const sts = new STSClient({ endpoint, region: HOME, credentials: SEED_CREDENTIALS });
  try {
    const out = await sts.send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${account}:role/seed`, RoleSessionName: 'seed' }));
    const c = out.Credentials!;
    return { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! };
  } finally {
    sts.destroy();
  }
}

async function seed(endpoint: string, account: string, region: string): Promise<string[]> {
  const credentials = account === ACCOUNT_ID ? SEED_CREDENTIALS : await accountCredentials(endpoint, account);
  const ec2 = new EC2Client({ endpoint, region, credentials });
  try {
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: DEFAULT_IMAGE_ID,
        InstanceType: 't3.micro',
        MinCount: 2,
        MaxCount: 2,
        TagSpecifications: [
          {
            ResourceType: 'instance',
            Tags: [
              { Key: 'run', Value: RUN },
              { Key: 'remediator.dev/managed', Value: 'true' },
            ],
          },
        ],
      }),
    );
    return (out.Instances ?? []).map((i) => i.InstanceId!).sort();
  } finally {
    ec2.destroy();
  }
}

/** The access key id a call was signed with, from its SigV4 Authorization header. */
const credentialOf = (call: RecordedCall): RegExpExecArray | null =>
  /Credential=([^/]+)\/\d+\/([a-z0-9-]+)\//.exec(String(call.headers['authorization']));
const signedWith = (call: RecordedCall): string | undefined => credentialOf(call)?.[1];
const regionOf = (call: RecordedCall): string | undefined => credentialOf(call)?.[2];

describe('CloudPool across accounts and regions (moto)', () => {
  const tb = testbedFromEnv();
  let proxy: FaultProxy;
  let pool: CloudPool;
  const saved = { ...process.env };
  /** Instance ids by "account/region". */
  const fleet = new Map<string, string[]>();
  /** Access key ids STS handed out for each role (read from AssumeRole answers on their way back). */
  const issued = new Map<string, string[]>();
  const where = (account: string, region: string): AwsLocation => ({
    region,
    ...(account === ACCOUNT_ID ? {} : { roleArn: roleOf(account), externalId: `ext-${account}` }),
    sessionTags: sessionTagsFor('web', 'restart-nginx'),
  });

  beforeAll(async () => {
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
    for (const key of Object.keys(process.env)) if (key.startsWith('AWS_')) delete process.env[key];
    const vars = irsaVars(proxy.endpoint, HOME);
    delete vars['AWS_ENDPOINT_URL'];
    Object.assign(process.env, vars);
    for (const service of ['EC2', 'SSM', 'CLOUDWATCH', 'SNS', 'STS']) process.env[`AWS_ENDPOINT_URL_${service}`] = proxy.endpoint;
    proxy.addRule({
      kind: 'rewrite',
      operation: 'AssumeRole',
      transform: (body: string, call) => {
        const role = /RoleArn=([^&]+)/.exec(call.body)?.[1];
        const key = /<AccessKeyId>([^<]+)<\/AccessKeyId>/.exec(body)?.[1];
        if (role && key) issued.set(decodeURIComponent(role), [...(issued.get(decodeURIComponent(role)) ?? []), key]);
        // One hour on this process's clock, which the refresh test moves: moto stamps real time.
        return body.replace(/<Expiration>[^<]*<\/Expiration>/, `<Expiration>${new Date(Date.now() + 60 * MIN).toISOString()}</Expiration>`);
      },
    });
    for (const account of [A, B, ACCOUNT_ID]) {
      for (const region of [R1, R2]) fleet.set(`${account}/${region}`, await seed(tb.motoEndpoint, account, region));
    }
    pool = new CloudPool({ homeRegion: HOME, metrics: new Metrics(false) });
  });

  afterAll(async () => {
    pool?.destroy();
    await proxy?.stop();
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  });

  test('each account and region sees only its own instances; one role session per account serves both regions', async () => {
    const all = [...fleet.values()].flat();
    for (const account of [A, B, ACCOUNT_ID]) {
      for (const region of [R1, R2]) {
        const own = fleet.get(`${account}/${region}`)!;
        const cloud = pool.forLocation(where(account, region));
        const byTag = await cloud.instances.findByTags({ run: RUN });
        expect({ account, region, ids: byTag.map((i) => i.instanceId).sort() }).toEqual({ account, region, ids: own });
        const described = await cloud.instances.describe(all);
        expect(described.found.map((i) => i.instanceId).sort()).toEqual(own);
        expect(described.missing).toHaveLength(all.length - own.length);
        expect(await cloud.label()).toEqual({ region, account, roleArn: account === ACCOUNT_ID ? undefined : roleOf(account) });
      }
    }
    // Role chaining: the base role came from the web identity, each workload role from one AssumeRole
    // signed with the base role's key, carrying the external id and the session tags.
    const web = proxy.calls('AssumeRoleWithWebIdentity');
    expect(web.length).toBeGreaterThanOrEqual(1);
    const assumes = proxy.calls('AssumeRole');
    expect(assumes.map((c) => decodeURIComponent(/RoleArn=([^&]+)/.exec(c.body)![1]!)).sort()).toEqual([roleOf(A), roleOf(B)]);
    for (const c of assumes) {
      const input = c.input as Record<string, string>;
      expect(input['ExternalId']).toMatch(/^ext-(222222222222|333333333333)$/);
      expect(input).toMatchObject({
        'Tags.member.1.Key': 'remediator-namespace',
        'Tags.member.1.Value': 'web',
        'Tags.member.2.Key': 'remediator-policy',
        'Tags.member.2.Value': 'restart-nginx',
        RoleSessionName: 'remediator-web',
      });
      expect(regionOf(c)).toBe(HOME);
    }
    const baseKeys = new Set(
      proxy
        .calls('DescribeInstances')
        .filter((c) => regionOf(c) === R1)
        .map(signedWith),
    );
    expect(baseKeys.size).toBe(3); // base, A, B: three identities signed DescribeInstances in R1
    expect(await pool.identity({})).toMatchObject({ account: ACCOUNT_ID });
  });

  test("SendCommand reaches the emulator signed with the workload role's credentials, and lands in that account", async () => {
    const target = fleet.get(`${A}/${R2}`)!.slice(0, 1);
    const comment = `remediator:${RUN}-send`;
    const sent = await pool.forLocation(where(A, R2)).commands.sendCommand({
      documentName: 'AWS-RunShellScript',
      instanceIds: target,
      parameters: { commands: ['uptime'] },
      comment,
      timeoutSeconds: 60,
      maxConcurrency: '1',
      maxErrors: '0',
    });
    const call = proxy.calls('SendCommand').find((c) => c.body.includes(comment))!;
    expect(regionOf(call)).toBe(R2);
    expect(issued.get(roleOf(A))).toContain(signedWith(call));
    // The adoption lookup runs in the right account: account A finds it, the base account does not.
    expect(await pool.forLocation(where(A, R2)).commands.findCommand(comment, target)).toMatchObject({ commandId: sent.commandId });
    const inAccount = async (credentials: Awaited<ReturnType<typeof accountCredentials>> | typeof SEED_CREDENTIALS) => {
      const ssm = new SSMClient({ endpoint: tb.motoEndpoint, region: R2, credentials });
      try {
        return ((await ssm.send(new ListCommandsCommand({ CommandId: sent.commandId }))).Commands ?? []).length;
      } catch {
        return 0; // moto answers an unknown command id with an error
      } finally {
        ssm.destroy();
      }
    };
    expect(await inAccount(await accountCredentials(tb.motoEndpoint, A))).toBe(1);
    expect(await inAccount(SEED_CREDENTIALS)).toBe(0);
  });

  test('a denied AssumeRole is an error naming the role, and nothing is sent with any other credentials', async () => {
    const denied = roleOf('444444444444');
    proxy.addRule({
      kind: 'error',
      operation: 'AssumeRole',
      code: 'AccessDenied',
      message:
        `User: arn:aws:sts::${ACCOUNT_ID}:assumed-role/remediator-controller/x is not authorized to perform: ` +
        `sts:AssumeRole on resource: ${denied}`,
      match: (r) => r.body.includes('444444444444'),
    });
    const before = proxy.calls('SendCommand').length;
    const cloud = pool.forLocation({ region: R1, roleArn: denied, externalId: 'ext', sessionTags: sessionTagsFor('web', 'p') });
    const error = await cloud.commands
      .sendCommand({
        documentName: 'AWS-RunShellScript',
        instanceIds: ['i-0123456789abcdef0'],
        parameters: {},
        comment: 'x',
        timeoutSeconds: 60,
        maxConcurrency: '1',
        maxErrors: '0',
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AwsAssumeRoleDeniedError);
    expect((error as AwsAssumeRoleDeniedError).roleArn).toBe(denied);
    expect((error as AwsAssumeRoleDeniedError).iamAction).toBe('sts:AssumeRole');
    expect((error as Error).message).toContain(`AWS denied sts:AssumeRole on ${denied} (account 444444444444)`);
    await expect(cloud.instances.findByTags({ run: RUN })).rejects.toBeInstanceOf(AwsAssumeRoleDeniedError);
    expect(proxy.calls('SendCommand')).toHaveLength(before);
  });

  test('access denied inside a location names its account, region and role', async () => {
    proxy.addRule({
      kind: 'error',
      operation: 'DescribeInstances',
      code: 'UnauthorizedOperation',
      message: 'You are not authorized to perform this operation.',
      match: (r) => String(r.headers['authorization']).includes(`/${R2}/ec2/`),
      times: 1,
    });
    const error = await pool
      .forLocation(where(B, R2))
      .instances.findByTags({ run: RUN })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AwsLocationAccessDeniedError);
    expect((error as AwsLocationAccessDeniedError).location).toEqual({ region: R2, account: B, roleArn: roleOf(B) });
    expect((error as Error).message).toContain(`AWS denied ec2:DescribeInstances in account ${B} in ${R2} (through role ${roleOf(B)})`);
  });

  test('assumed-role credentials are refreshed before they expire, and new calls are signed with the new ones', async () => {
    const loc = where(B, R1);
    await pool.forLocation(loc).instances.findByTags({ run: RUN });
    const first = issued.get(roleOf(B))!.length;
    // Only Date moves (timers stay real): STS issued one-hour credentials; 56 minutes on, 4 are left,
    // inside the 5-minute window in which the SDK and the pool both fetch new ones.
    jest.useFakeTimers({
      now: Date.now() + 56 * MIN,
      doNotFake: [
        'nextTick',
        'setImmediate',
        'clearImmediate',
        'setTimeout',
        'clearTimeout',
        'setInterval',
        'clearInterval',
        'queueMicrotask',
        'hrtime',
        'performance',
      ],
    });
    try {
      proxy.clearCalls();
      await pool.forLocation(loc).instances.findByTags({ run: RUN });
      const keys = issued.get(roleOf(B))!;
      expect(keys.length).toBe(first + 1);
      const describe = proxy.calls('DescribeInstances').at(-1)!;
      expect(signedWith(describe)).toBe(keys.at(-1));
      // And only once: the next call uses the fresh credentials without asking STS again.
      await pool.forLocation(where(B, R2)).instances.findByTags({ run: RUN });
      expect(issued.get(roleOf(B))!.length).toBe(first + 1);
    } finally {
      jest.useRealTimers();
    }
  });
});
