/**
 * SSM as AWS really behaves, at fleet size, through the contract layer (every call of
 * this file passes the test bed's gateway, which refuses what AWS would refuse):
 * 120 targets go out as three commands of at most 50, each exactly once, even across a
 * controller killed between them; a target without the tag the IAM policy requires
 * fails before sending; AccessDenied at SendCommand ends the request; the runbook's
 * output locations reach SSM; an offline agent is skipped or failed as the guard says.
 */
import type { Command } from '@aws-sdk/client-ssm';
import type { AlertPolicy, RemediationRequest, Runbook } from '../../src/api/v1alpha1/index.js';
import { seedInstances } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy, type RequestView } from '../testbed/faultproxy.js';
import { assertNoContractViolations, setAgentStatus } from '../testbed/gateway.js';
import { Resources, restartRunbook, ssmCommands, startController, testbedFromEnv, type RunningController } from './harness.js';
import { suffix } from './install-chart.js';

const REGION = 'ap-east-1';
const NS = 'fleet';
const id = suffix();

describe('fleets, the managed tag, output and agents', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  const started = new Date();
  let proxy: FaultProxy;
  const controllers: RunningController[] = [];
  let n = 0;

  async function controller(name: string): Promise<RunningController> {
    const c = await startController(tb, { region: REGION, namespace: NS, name, awsEndpoint: proxy.endpoint });
    controllers.push(c);
    return c;
  }

  async function runbook(overrides: Partial<Runbook['spec']> = {}): Promise<string> {
    const name = `fleet-${++n}-${id}`;
    await res.createRunbook(name, restartRunbook(overrides));
    return name;
  }

  async function policy(rb: string, spec: Partial<AlertPolicy['spec']> = {}): Promise<string> {
    const name = `p${++n}`;
    await res.createPolicy(NS, name, {
      runbookRef: { name: rb },
      inputs: { service: 'nginx' },
      targets: { fromLabels: ['instance_id'] },
      risk: 'Low',
      ...spec,
    });
    return name;
  }

  async function request(policyName: string, labels: Record<string, string> = {}): Promise<RemediationRequest> {
    return res.createRequest(NS, `r${++n}`, {
      policyRef: { name: policyName },
      alert: { source: 'generic', name: 'Down', status: 'firing', labels },
    });
  }

  const comment = (view: RequestView) => (view.input as { Comment?: string } | undefined)?.Comment ?? '';
  const sendsFor = (uid: string) => proxy.calls('SendCommand').filter((c) => comment(c).startsWith(`remediator:${uid}`));
  const commandsFor = async (uid: string): Promise<Command[]> =>
    (await ssmCommands(tb, REGION)).filter((c) => c.Comment === `remediator:${uid}` || c.Comment?.startsWith(`remediator:${uid}/`));

  /** A tag-selected fleet of `count` instances and a policy (and runbook) allowed to touch all of them. */
  async function fleet(count: number): Promise<{ ids: string[]; policy: string }> {
    const tag = `fleet-${++n}-${id}`;
    const ids = await seedInstances(tb.motoEndpoint, { region: REGION, count, tags: { Fleet: tag } });
    const rb = await runbook({ scope: { tagSelector: { Fleet: tag }, maxTargets: 150 } });
    const p = await policy(rb, { targets: { tagSelector: { Fleet: tag }, maxTargets: 150 } });
    return { ids, policy: p };
  }

  beforeAll(async () => {
    await res.namespace(NS);
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
  });

  afterEach(() => proxy.clearRules());

  afterAll(async () => {
    for (const c of controllers) await c.stop();
    await proxy?.stop();
    await assertNoContractViolations(tb.motoEndpoint, { region: REGION, since: started });
  });

  test('120 tag-selected targets run as 3 commands of at most 50, each sent once, with a result for every instance', async () => {
    await controller('main');
    const { ids, policy: p } = await fleet(120);
    const rr = await request(p);
    const uid = rr.metadata!.uid!;
    const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded', 120_000);

    const sends = sendsFor(uid);
    expect(sends.map(comment).sort()).toEqual([0, 1, 2].map((i) => `remediator:${uid}/${i}`));
    const sizes = sends.map((c) => ((c.input as { InstanceIds: string[] }).InstanceIds ?? []).length);
    expect(sizes).toEqual([50, 50, 20]);
    expect(new Set(sends.flatMap((c) => (c.input as { InstanceIds: string[] }).InstanceIds))).toEqual(new Set(ids));
    expect(await commandsFor(uid)).toHaveLength(3);

    const ssm = done.status!.execution!.ssm!;
    expect(ssm.commands).toHaveLength(3);
    expect(ssm.commands!.every((c) => c.commandId && c.instanceIds.length <= 50)).toBe(true);
    expect(ssm.commandId).toBe(ssm.commands![0]!.commandId);
    expect(ssm.invocations).toHaveLength(120);
    expect(ssm.invocations!.every((i) => i.status === 'Success')).toBe(true);
    expect(new Set(ssm.invocations!.map((i) => i.instanceId))).toEqual(new Set(ids));
    expect(done.status?.message).toContain('all 120 instances');
  }, 180_000);

  test('a controller killed after the second command reached SSM is replaced by one that adopts it and sends only the third', async () => {
    for (const c of controllers.splice(0)) await c.stop();
    const first = await controller('crashing');
    const hold = proxy.addRule({ kind: 'hold', operation: 'SendCommand', times: 1, match: (v) => comment(v).endsWith('/1') });
    const { policy: p } = await fleet(120);
    const rr = await request(p);
    const uid = rr.metadata!.uid!;
    await hold.reached;
    // moto holds commands 0 and 1; the controller knows only the first one's id.
    expect(await commandsFor(uid)).toHaveLength(2);
    process.kill(-first.process.pid, 'SIGKILL');
    await first.process.exited;
    controllers.splice(controllers.indexOf(first), 1);
    await hold.release();

    await controller('successor');
    const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded', 150_000);
    const cmds = await commandsFor(uid);
    expect(cmds.map((c) => c.Comment).sort()).toEqual([0, 1, 2].map((i) => `remediator:${uid}/${i}`));
    expect(sendsFor(uid).map(comment).sort()).toEqual([0, 1, 2].map((i) => `remediator:${uid}/${i}`));
    const recorded = done.status!.execution!.ssm!.commands!.map((c) => c.commandId);
    expect(recorded.sort()).toEqual(cmds.map((c) => c.CommandId).sort());
    expect(done.status!.execution!.ssm!.invocations).toHaveLength(120);
  }, 240_000);

  test('a target without the managed tag fails before any SendCommand, naming the instance and the tag', async () => {
    if (controllers.length === 0) await controller('main');
    const [untagged] = await seedInstances(tb.motoEndpoint, { region: REGION, managed: false });
    const p = await policy(await runbook());
    const rr = await request(p, { instance_id: untagged! });
    const failed = await res.waitForPhase(NS, rr.metadata!.name!, 'Failed');
    expect(failed.status?.reason).toBe('TargetOutOfScope');
    expect(failed.status?.message).toContain(untagged!);
    expect(failed.status?.message).toContain('remediator.dev/managed=true');
    expect(sendsFor(rr.metadata!.uid!)).toHaveLength(0);
  });

  test('AccessDenied from SendCommand ends the request Failed, naming the action, after one attempt', async () => {
    if (controllers.length === 0) await controller('main');
    const [instance] = await seedInstances(tb.motoEndpoint, { region: REGION });
    const p = await policy(await runbook());
    proxy.addRule({
      kind: 'error',
      operation: 'SendCommand',
      code: 'AccessDeniedException',
      message: `User: arn:aws:sts::123456789012:assumed-role/remediator/x is not authorized to perform: ssm:SendCommand on resource: arn:aws:ec2:${REGION}:123456789012:instance/${instance}`,
    });
    const rr = await request(p, { instance_id: instance! });
    const failed = await res.waitForPhase(NS, rr.metadata!.name!, 'Failed');
    expect(failed.status?.reason).toBe('AccessDenied');
    expect(failed.status?.message).toContain('ssm:SendCommand');
    expect(failed.status?.message).toContain('nothing was sent');
    expect(failed.status?.conditions?.find((c) => c.type === 'CloudAccess')).toMatchObject({ status: 'False', reason: 'AccessDenied' });
    await new Promise((r) => setTimeout(r, 2_000));
    expect(sendsFor(rr.metadata!.uid!)).toHaveLength(1);
    expect(await commandsFor(rr.metadata!.uid!)).toHaveLength(0);
  });

  test("the runbook's CloudWatch Logs / S3 output and a Parameter Store reference reach SSM as it would receive them", async () => {
    if (controllers.length === 0) await controller('main');
    const [instance] = await seedInstances(tb.motoEndpoint, { region: REGION });
    const rb = await runbook({
      action: {
        ssm: {
          documentName: 'AWS-RunShellScript',
          parameters: [
            { name: 'commands', values: ['systemctl restart {{ inputs.service }}'] },
            { name: 'workingDirectory', values: ['{{ssm:/remediator/fleet/workdir}}'] },
          ],
          output: { cloudWatchLogGroup: '/remediator/fleet', s3BucketName: 'remediator-output', s3KeyPrefix: 'runs/fleet' },
        },
      },
    });
    const p = await policy(rb);
    const rr = await request(p, { instance_id: instance! });
    const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded');
    expect(done.status?.plan?.ssm?.output).toEqual({
      cloudWatchLogGroup: '/remediator/fleet',
      s3BucketName: 'remediator-output',
      s3KeyPrefix: 'runs/fleet',
    });
    expect(done.status?.execution?.ssm?.output).toEqual({
      cloudWatchLogGroup: '/remediator/fleet',
      s3Prefix: 's3://remediator-output/runs/fleet',
    });
    const [send] = sendsFor(rr.metadata!.uid!);
    expect(send!.input).toMatchObject({
      CloudWatchOutputConfig: { CloudWatchOutputEnabled: true, CloudWatchLogGroupName: '/remediator/fleet' },
      OutputS3BucketName: 'remediator-output',
      OutputS3KeyPrefix: 'runs/fleet',
      Parameters: { workingDirectory: ['{{ssm:/remediator/fleet/workdir}}'] },
    });
  });

  test('an agentOnline guard skips (or fails) a request whose target agent is not Online; enrichment records the agents', async () => {
    if (controllers.length === 0) await controller('main');
    const [online, lost] = await seedInstances(tb.motoEndpoint, { region: REGION, count: 2 });
    await setAgentStatus(tb.motoEndpoint, lost!, { pingStatus: 'ConnectionLost' });
    const rb = await runbook();
    const skip = await policy(rb, { enrichment: { guards: [{ agentOnline: 'Skip' }] } });
    const fail = await policy(rb, { enrichment: { guards: [{ agentOnline: 'Fail' }] } });

    const ok = await request(skip, { instance_id: online! });
    const ran = await res.waitForPhase(NS, ok.metadata!.name!, 'Succeeded');
    expect(ran.status?.enrichment?.instances[0]).toMatchObject({ instanceId: online, pingStatus: 'Online', platform: 'Linux' });
    expect(ran.status?.enrichment?.instances[0]?.agentVersion).toBeTruthy();

    const skipped = await res.waitForPhase(NS, (await request(skip, { instance_id: lost! })).metadata!.name!, 'Skipped');
    expect(skipped.status?.reason).toBe('Guard');
    expect(skipped.status?.message).toContain(`${lost} (ConnectionLost)`);
    const failedRr = await request(fail, { instance_id: lost! });
    const failed = await res.waitForPhase(NS, failedRr.metadata!.name!, 'Failed');
    expect(failed.status?.reason).toBe('AgentOffline');
    expect(sendsFor(skipped.metadata!.uid!)).toHaveLength(0);
    expect(sendsFor(failedRr.metadata!.uid!)).toHaveLength(0);
  });
});
