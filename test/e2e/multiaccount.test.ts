/**
 * One controller, two workload accounts in two regions (moto keeps each account's
 * resources apart): each alert is remediated through its runbook's account and region,
 * the commands are signed with the assumed roles' credentials and land in those
 * accounts, an instance of account B is never reachable through account A's runbook, a
 * CloudWatch alarm from another region is refused by a runbook that does not act there,
 * and a denied AssumeRole ends the request naming the role, with nothing sent.
 */
import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { RemediationRequest, Runbook } from '../../src/api/v1alpha1/index.js';
import { ACCOUNT_ID, DEFAULT_IMAGE_ID, SEED_CREDENTIALS } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy, type RecordedCall } from '../testbed/faultproxy.js';
import { Resources, startController, testbedFromEnv, type RunningController } from './harness.js';

const HOME = 'sa-east-1';
const R1 = 'eu-west-3';
const R2 = 'ap-south-1';
const A = '555555555555';
const B = '666666666666';
const DENIED = '777777777777';
const NS = 'multiaccount';
const role = (account: string) => `arn:aws:iam::${account}:role/remediator-workload`;

type Credentials = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };

/** The seeding side's credentials for `account` (AssumeRole with static keys, straight at moto). */
async function credentialsOf(endpoint: string, account: string): Promise<Credentials> {
  const sts = new STSClient({ endpoint, region: HOME, credentials: SEED_CREDENTIALS });
  try {
    const c = (await sts.send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${account}:role/seed`, RoleSessionName: 'seed' })))
      .Credentials!;
    return { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! };
  } finally {
    sts.destroy();
  }
}

async function seed(endpoint: string, account: string, region: string): Promise<string> {
  const ec2 = new EC2Client({ endpoint, region, credentials: await credentialsOf(endpoint, account) });
  try {
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: DEFAULT_IMAGE_ID,
        InstanceType: 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'remediator.dev/managed', Value: 'true' }] }],
      }),
    );
    return out.Instances![0]!.InstanceId!;
  } finally {
    ec2.destroy();
  }
}

async function commandsIn(endpoint: string, account: string, region: string, comment: string) {
  const ssm = new SSMClient({
    endpoint,
    region,
    credentials: account === ACCOUNT_ID ? SEED_CREDENTIALS : await credentialsOf(endpoint, account),
  });
  try {
    return ((await ssm.send(new ListCommandsCommand({}))).Commands ?? []).filter((c) => c.Comment === comment);
  } finally {
    ssm.destroy();
  }
}

const signer = (call: RecordedCall) => /Credential=([^/]+)\/\d+\/([a-z0-9-]+)\//.exec(String(call.headers['authorization']));

describe('one controller, several AWS accounts and regions', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  let proxy: FaultProxy;
  let controller: RunningController;
  const issued = new Map<string, string>();
  let n = 0;

  const runbook = (account: string, region: string): Runbook['spec'] => ({
    namespaceSelector: {},
    scope: { regions: [region], account: { roleArn: role(account), externalId: `ext-${account}` } },
    action: { ssm: { documentName: 'AWS-RunShellScript', parameters: [{ name: 'commands', values: ['systemctl restart nginx'] }] } },
  });

  async function request(policy: string, labels: Record<string, string>, alert: Partial<RemediationRequest['spec']['alert']> = {}) {
    return res.createRequest(NS, `r${++n}`, {
      policyRef: { name: policy },
      alert: { source: 'alertmanager', name: 'NginxDown', status: 'firing', labels, ...alert },
    });
  }

  beforeAll(async () => {
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
    // Which access key STS issued for which role, read from the answers on their way back.
    proxy.addRule({
      kind: 'rewrite',
      operation: 'AssumeRole',
      transform: (body: string, call) => {
        const roleArn = decodeURIComponent(/RoleArn=([^&]+)/.exec(call.body)?.[1] ?? '');
        const key = /<AccessKeyId>([^<]+)<\/AccessKeyId>/.exec(body)?.[1];
        if (key) issued.set(key, roleArn);
        return body;
      },
    });
    proxy.addRule({
      kind: 'error',
      operation: 'AssumeRole',
      code: 'AccessDenied',
      message: `User: arn:aws:sts::${ACCOUNT_ID}:assumed-role/remediator-controller/x is not authorized to perform: sts:AssumeRole on resource: ${role(DENIED)}`,
      match: (r) => r.body.includes(DENIED),
    });
    await res.namespace(NS);
    await res.createRunbook(`ma-a-${HOME}`, runbook(A, R1));
    await res.createRunbook(`ma-b-${HOME}`, runbook(B, R2));
    await res.createRunbook(`ma-denied-${HOME}`, runbook(DENIED, R1));
    for (const [name, rb] of [
      ['in-a', `ma-a-${HOME}`],
      ['in-b', `ma-b-${HOME}`],
      ['denied', `ma-denied-${HOME}`],
    ] as const) {
      await res.createPolicy(NS, name, { targets: { fromLabels: ['instance_id'] }, runbookRef: { name: rb } });
    }
    controller = await startController(tb, { region: HOME, namespace: NS, awsEndpoint: proxy.endpoint });
  });

  afterAll(async () => {
    await controller?.stop();
    for (const rb of ['a', 'b', 'denied']) await res.deleteRunbook(`ma-${rb}-${HOME}`);
    await proxy?.stop();
  });

  test('each alert runs in its runbook’s account and region, signed with that account’s assumed role', async () => {
    const inA = await seed(tb.motoEndpoint, A, R1);
    const inB = await seed(tb.motoEndpoint, B, R2);
    const a = await request('in-a', { instance_id: inA });
    const b = await request('in-b', { instance_id: inB });
    for (const [rr, account, region] of [
      [a, A, R1],
      [b, B, R2],
    ] as const) {
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded');
      expect(done.status?.plan).toMatchObject({ region, roleArn: role(account) });
      const comment = `remediator:${rr.metadata!.uid}`;
      expect(await commandsIn(tb.motoEndpoint, account, region, comment)).toHaveLength(1);
      expect(await commandsIn(tb.motoEndpoint, ACCOUNT_ID, region, comment)).toHaveLength(0);
      const sends = proxy.calls('SendCommand').filter((c) => c.body.includes(comment));
      expect(sends).toHaveLength(1);
      const [, key, signedRegion] = signer(sends[0]!) ?? [];
      expect(issued.get(key!)).toBe(role(account));
      expect(signedRegion).toBe(region);
    }
  });

  test('an instance of account B is not reachable through account A’s runbook', async () => {
    const inB = await seed(tb.motoEndpoint, B, R1);
    const rr = await request('in-a', { instance_id: inB });
    const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Failed');
    expect(done.status?.reason).toBe('InstancesNotFound');
    expect(done.status?.message).toContain(R1);
    expect(done.status?.message).toContain(role(A));
    expect(proxy.calls('SendCommand').filter((c) => c.body.includes(rr.metadata!.uid!))).toHaveLength(0);
  });

  test('an alarm from another account or region is refused by a runbook that does not act there', async () => {
    const inA = await seed(tb.motoEndpoint, A, R1);
    const otherRegion = await request('in-a', { instance_id: inA }, { source: 'cloudwatch', region: R2, account: A });
    const otherAccount = await request('in-a', { instance_id: inA }, { source: 'cloudwatch', region: R1, account: B });
    for (const rr of [otherRegion, otherAccount]) {
      const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Failed');
      expect(done.status?.reason).toBe('LocationNotAllowed');
    }
  });

  test('a denied AssumeRole ends the request, naming the role; nothing is sent', async () => {
    const rr = await request('denied', { instance_id: 'i-0123456789abcdef0' });
    const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Failed');
    expect(done.status?.reason).toBe('AssumeRoleDenied');
    expect(done.status?.message).toContain(role(DENIED));
    expect(done.status?.conditions?.find((c) => c.type === 'CloudAccess')).toMatchObject({ status: 'False', reason: 'AssumeRoleDenied' });
    expect(proxy.calls('SendCommand').filter((c) => c.body.includes(rr.metadata!.uid!))).toHaveLength(0);
  });
});
