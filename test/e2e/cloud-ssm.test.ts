/**
 * The SSM side of the cloud layer (src/cloud/ssm.ts) against the test bed, through the
 * contract gateway (so every call is held to AWS's limits) and a fault proxy of this
 * file's own (to see the wire and inject AWS errors): agent reachability for a fleet
 * larger than one DescribeInstanceInformation page, the permission it needs named when
 * AWS refuses it, and a command with CloudWatch Logs and S3 output and a Parameter Store
 * reference reaching SSM exactly as SSM expects it.
 */
import { ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { SsmAgentInspector, SsmCommandRunner } from '../../src/cloud/ssm.js';
import { AwsAccessDeniedError, isManagedNodeId } from '../../src/cloud/types.js';
import { seedClientConfig, seedInstances } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy } from '../testbed/faultproxy.js';
import { assertNoContractViolations, registerManagedNode, setAgentStatus } from '../testbed/gateway.js';
import { testbedFromEnv } from './harness.js';

const tb = testbedFromEnv();
/** A region of this file's own (moto adds every instance of a region to a command by InstanceIds). */
const REGION = 'ap-southeast-1';
let proxy: FaultProxy;
let ssm: SSMClient;

beforeAll(async () => {
  proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
  ssm = new SSMClient({ ...seedClientConfig(proxy.endpoint, REGION), maxAttempts: 1 });
});

afterEach(() => proxy.clearRules());

afterAll(async () => {
  ssm?.destroy();
  await proxy?.stop();
  // Anything above that real SSM would have refused fails this file, not just the run.
  await assertNoContractViolations(tb.motoEndpoint, { region: REGION });
});

describe('SsmAgentInspector', () => {
  it('reports each node of a 60-instance fleet in two calls of at most 50, absent where no agent is registered', async () => {
    const fleet = await seedInstances(tb.motoEndpoint, { count: 60, region: REGION, tags: { Name: 'agents' } });
    const [lost, inactive, unregistered] = fleet;
    await setAgentStatus(tb.motoEndpoint, lost!, { pingStatus: 'ConnectionLost' });
    await setAgentStatus(tb.motoEndpoint, inactive!, { pingStatus: 'Inactive', agentVersion: '3.0.0.0' });
    await setAgentStatus(tb.motoEndpoint, unregistered!, { registered: false });
    const hybrid = await registerManagedNode(tb.motoEndpoint, REGION);
    proxy.clearCalls();

    const status = await new SsmAgentInspector(ssm).agentStatus([...fleet, hybrid, fleet[5]!]);

    const calls = proxy.calls('DescribeInstanceInformation');
    expect(calls).toHaveLength(2);
    const asked = calls.map((call) => (call.input as { Filters: Array<{ Values: string[] }> }).Filters[0]!.Values.length);
    expect(asked).toEqual([50, 11]);
    expect(status.size).toBe(60);
    expect(status.has(unregistered!)).toBe(false);
    expect(status.get(lost!)?.pingStatus).toBe('ConnectionLost');
    expect(status.get(inactive!)).toMatchObject({ pingStatus: 'Inactive', agentVersion: '3.0.0.0' });
    expect(status.get(fleet[10]!)).toMatchObject({
      pingStatus: 'Online',
      platformType: 'Linux',
      resourceType: 'EC2Instance',
      lastPingAt: expect.any(String),
    });
    expect(status.get(hybrid)).toMatchObject({ pingStatus: 'Online', resourceType: 'ManagedInstance' });
    expect(isManagedNodeId(hybrid)).toBe(true);
  });

  it('names ssm:DescribeInstanceInformation when AWS denies it', async () => {
    const [id] = await seedInstances(tb.motoEndpoint, { region: REGION });
    proxy.addRule({
      kind: 'error',
      operation: 'DescribeInstanceInformation',
      code: 'AccessDeniedException',
      message: 'not authorized to perform: ssm:DescribeInstanceInformation',
    });
    const err = await new SsmAgentInspector(ssm).agentStatus([id!]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AwsAccessDeniedError);
    expect((err as AwsAccessDeniedError).iamAction).toBe('ssm:DescribeInstanceInformation');
    expect((err as Error).message).toMatch(/Grant ssm:DescribeInstanceInformation/);
  });
});

describe('SsmCommandRunner.sendCommand', () => {
  it('sends CloudWatch Logs and S3 output settings and a Parameter Store reference as SSM receives them', async () => {
    const [id] = await seedInstances(tb.motoEndpoint, { region: REGION });
    const comment = `remediator:${crypto.randomUUID()}`;
    const runner = new SsmCommandRunner(ssm, ssm);
    const sent = await runner.sendCommand({
      documentName: 'AWS-RunShellScript',
      instanceIds: [id!],
      parameters: {
        commands: ['/opt/app/rotate --token "$TOKEN"'],
        workingDirectory: ['/opt/app'],
        executionTimeout: ['{{ssm:/remediator/web/timeout}}'],
      },
      comment,
      timeoutSeconds: 600,
      maxConcurrency: '50',
      maxErrors: '0',
      cloudWatchOutput: { logGroupName: '/remediator/web/restart-nginx' },
      s3Output: { bucketName: 'remediator-output', keyPrefix: 'web/restart-nginx', region: 'eu-west-1' },
    });
    expect(sent.commandId).toHaveLength(36);

    const wire = proxy.calls('SendCommand').at(-1)!.input as Record<string, unknown>;
    expect(wire).toMatchObject({
      CloudWatchOutputConfig: { CloudWatchOutputEnabled: true, CloudWatchLogGroupName: '/remediator/web/restart-nginx' },
      OutputS3BucketName: 'remediator-output',
      OutputS3KeyPrefix: 'web/restart-nginx',
      OutputS3Region: 'eu-west-1',
      Parameters: expect.objectContaining({ executionTimeout: ['{{ssm:/remediator/web/timeout}}'] }),
    });
    // moto keeps the S3 settings and the parameters (it drops CloudWatchOutputConfig, which is why the wire is read above).
    const seed = new SSMClient(seedClientConfig(tb.motoEndpoint, REGION));
    try {
      const listed = (await seed.send(new ListCommandsCommand({ CommandId: sent.commandId }))).Commands?.[0];
      expect(listed).toMatchObject({
        Comment: comment,
        OutputS3BucketName: 'remediator-output',
        OutputS3KeyPrefix: 'web/restart-nginx',
        OutputS3Region: 'eu-west-1',
      });
      expect(listed?.Parameters?.['executionTimeout']).toEqual(['{{ssm:/remediator/web/timeout}}']);
    } finally {
      seed.destroy();
    }
  });

  it('without output settings sends none (SSM then keeps only its own 24,000-character output)', async () => {
    const [id] = await seedInstances(tb.motoEndpoint, { region: REGION });
    await new SsmCommandRunner(ssm, ssm).sendCommand({
      documentName: 'AWS-RunShellScript',
      instanceIds: [id!],
      parameters: { commands: ['uptime'] },
      comment: `remediator:${crypto.randomUUID()}`,
      timeoutSeconds: 60,
      maxConcurrency: '1',
      maxErrors: '0',
    });
    const wire = proxy.calls('SendCommand').at(-1)!.input as Record<string, unknown>;
    expect(Object.keys(wire).filter((k) => /Output/.test(k))).toEqual([]);
  });
});
