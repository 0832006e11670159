/**
 * Rollouts executed by the controller (the real process, its reconciler and engine)
 * against the real API server and moto, through the contract gateway with SSM simulated
 * over time (test/testbed/ssm-simulation.ts). Every concurrency figure is the emulator's
 * view of the invocations — when each really ran — never the controller's.
 *
 *  - 120 instances at maxConcurrency 10 never run more than 10 at once;
 *  - maxErrors 2 stops after the third failure, the rest unsent; within it, Succeeded;
 *  - a first wave that stays ineffective stops the rollout, the other waves unsent;
 *  - an alarm set to ALARM (SetAlarmState) between waves stops the rollout; during a wave
 *    it also cancels what runs;
 *  - deleting the request mid-run cancels its command, and it ends Cancelled;
 *  - a resolved alert POSTed to the intake mid-wave cancels the running command (the
 *    gateway sees CancelCommand), the later waves are never sent, and the request ends
 *    Cancelled with reason AlertResolved;
 *  - a restart and a reboot policy never act on one instance at once;
 *  - a controller SIGKILLed mid-wave is replaced by one that resumes the same wave
 *    without sending anything twice.
 */
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { CloudWatchClient, PutMetricAlarmCommand, SetAlarmStateCommand } from '@aws-sdk/client-cloudwatch';
import type { AlertPolicy, RemediationRequest, Runbook } from '../../src/api/v1alpha1/index.js';
import { API_VERSION } from '../../src/api/v1alpha1/index.js';
import { alertIdentity } from '../../src/intake/alert.js';
import { ALERT_LABEL } from '../../src/intake/kube.js';
import { seedClientConfig, seedInstances } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy, type RequestView } from '../testbed/faultproxy.js';
import { assertNoContractViolations, setSsmSimulation, ssmTimeline, type SsmTimeline } from '../testbed/gateway.js';
import type { SimulationSettings } from '../testbed/ssm-simulation.js';
import { Resources, restartRunbook, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';
import { suffix } from './install-chart.js';
import { newToken, postJson } from './intake-harness.js';
import { freePort } from '../testbed/procs.js';

const REGION = 'ap-northeast-1'; // its own: the SSM simulation is per region, and other files use theirs
const NS = 'rollout-run';
const id = suffix();
const GROUP = 'remediator.dev';

type SsmSpec = NonNullable<Runbook['spec']['action']['ssm']>;
type TimelineCommand = SsmTimeline['commands'][number];

describe('rollouts executed by the controller', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  const started = new Date();
  let proxy: FaultProxy;
  let controller: RunningController | undefined;
  let cw: CloudWatchClient;
  let n = 0;
  /** The controller's intake (`http://127.0.0.1:<port>`) and its bearer token. */
  let intake = '';
  const token = newToken();

  const comment = (view: RequestView) => (view.input as { Comment?: string } | undefined)?.Comment ?? '';
  const sendsFor = (uid: string) => proxy.calls('SendCommand').filter((c) => comment(c).startsWith(`remediator:${uid}`));
  const commandsOf = async (uid: string): Promise<TimelineCommand[]> =>
    (await ssmTimeline(tb.motoEndpoint, REGION)).commands.filter((c) => c.comment?.startsWith(`remediator:${uid}`));

  /** The most invocations of these commands that really ran at once (ends before starts at one instant). */
  function peak(commands: readonly TimelineCommand[]): number {
    const events: Array<[number, number]> = [];
    for (const c of commands) for (const i of c.invocations) if (i.ranFrom !== undefined) events.push([i.ranFrom, 1], [i.ranUntil!, -1]);
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let now = 0;
    let max = 0;
    for (const [, d] of events) {
      now += d;
      max = Math.max(max, now);
    }
    return max;
  }

  async function simulate(settings: SimulationSettings): Promise<void> {
    await setSsmSimulation(tb.motoEndpoint, REGION, settings);
  }

  /** A tag-selected fleet, a runbook acting on it (with `ssm` merged in) and a Low-risk (auto-approved) policy. */
  async function setup(count: number, ssm: Partial<SsmSpec>, opts: { ids?: string[]; tag?: string } = {}) {
    const tag = opts.tag ?? `run-${++n}-${id}`;
    const ids = opts.ids ?? (await seedInstances(tb.motoEndpoint, { region: REGION, count, tags: { Fleet: tag } }));
    const base = restartRunbook();
    const rb = `run-${++n}-${id}`;
    await res.createRunbook(rb, {
      ...base,
      scope: { tagSelector: { Fleet: tag }, maxTargets: 150 },
      action: { ssm: { ...base.action.ssm!, ...ssm } },
    });
    const policy = `p${++n}`;
    await res.createPolicy(NS, policy, {
      runbookRef: { name: rb },
      inputs: { service: 'nginx' },
      targets: { tagSelector: { Fleet: tag }, maxTargets: 150 },
      risk: 'Low',
    } satisfies Partial<AlertPolicy['spec']> & Pick<AlertPolicy['spec'], 'runbookRef'>);
    // In plan order (targets are sorted), so an index names the same instance the controller's commands hold.
    return { ids: [...ids].sort(), policy, tag };
  }

  /**
   * A request; `hold` adds a finalizer of the test's own, so the status can be read after a
   * deletion; `alert` makes it a request of that generic alert occurrence, labelled as the
   * intake labels its own, so a resolution POSTed to the intake finds it.
   */
  async function request(policy: string, hold = false, alert?: { fingerprint: string; startsAt: string }): Promise<RemediationRequest> {
    const name = `r${++n}`;
    return (await res.api.createNamespacedCustomObject({
      group: GROUP,
      version: 'v1alpha1',
      namespace: NS,
      plural: 'remediationrequests',
      body: {
        apiVersion: API_VERSION,
        kind: 'RemediationRequest',
        metadata: {
          name,
          namespace: NS,
          ...(hold && { finalizers: ['e2e.remediator.dev/hold'] }),
          ...(alert && { labels: { [ALERT_LABEL]: alertIdentity('generic', alert.fingerprint) } }),
        },
        spec: { policyRef: { name: policy }, alert: { source: 'generic', name: 'Down', status: 'firing', ...alert } },
      },
    })) as RemediationRequest;
  }

  async function ended(name: string, timeoutMs = 90_000): Promise<RemediationRequest> {
    return waitFor(
      `${name} to end`,
      async () => {
        const r = await res.getRequest(NS, name);
        return r.status?.phase && ['Succeeded', 'Failed', 'Cancelled', 'Skipped', 'Expired'].includes(r.status.phase) ? r : undefined;
      },
      timeoutMs,
    );
  }

  async function alarm(name: string): Promise<void> {
    await cw.send(
      new PutMetricAlarmCommand({
        AlarmName: name,
        MetricName: 'HTTPCode_Target_5XX_Count',
        Namespace: 'AWS/ApplicationELB',
        Statistic: 'Sum',
        Period: 60,
        EvaluationPeriods: 1,
        Threshold: 10,
        ComparisonOperator: 'GreaterThanThreshold',
      }),
    );
  }

  const fire = (name: string) => cw.send(new SetAlarmStateCommand({ AlarmName: name, StateValue: 'ALARM', StateReason: 'e2e: 5xx up' }));

  beforeAll(async () => {
    await res.namespace(NS);
    cw = new CloudWatchClient(seedClientConfig(tb.motoEndpoint, REGION));
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
    // The intake too, for the resolved alert that stops a rollout mid-run.
    const secret = { metadata: { name: 'intake-token' }, stringData: { token } };
    await res.core.createNamespacedSecret({ namespace: NS, body: secret }).catch((e: { code?: number }) => {
      if (e.code !== 409) throw e;
      return res.core.replaceNamespacedSecret({ namespace: NS, name: 'intake-token', body: secret });
    });
    const port = await freePort();
    controller = await startController(tb, {
      region: REGION,
      namespace: NS,
      name: 'rollout-run',
      awsEndpoint: proxy.endpoint,
      args: ['--intake-bind-address', `127.0.0.1:${port}`, '--intake-token-secret', `${NS}/intake-token`],
    });
    intake = `http://127.0.0.1:${port}`;
    await waitFor(`intake on ${intake} ready`, async () => (await fetch(`${intake}/readyz`)).ok || undefined, 30_000);
  });

  afterEach(() => proxy.clearRules());

  afterAll(async () => {
    await controller?.stop();
    await proxy?.stop();
    cw?.destroy();
    await assertNoContractViolations(tb.motoEndpoint, { region: REGION, since: started });
  });

  test('120 instances at maxConcurrency 10 never run more than 10 at once (the emulator view), and succeed', async () => {
    await simulate({ runMs: 300, spreadMs: 150 });
    const { policy } = await setup(120, { maxConcurrency: '10', maxErrors: '0' });
    const rr = await request(policy);
    const done = await ended(rr.metadata!.name!, 150_000);
    expect(done.status?.phase).toBe('Succeeded');
    const cmds = await commandsOf(rr.metadata!.uid!);
    expect(cmds.map((c) => c.instanceIds.length)).toEqual([50, 50, 20]);
    // Each command went out with its share, and the fleet as a whole stayed at 10 (it ran 30 before: rollout-cloud.test.ts).
    expect(cmds.map((c) => c.maxConcurrency)).toEqual(['10', '10', '10']);
    expect(peak(cmds)).toBe(10);
    expect(done.status?.execution?.ssm?.invocations?.every((i) => i.status === 'Success')).toBe(true);
    expect(done.status?.execution?.ssm?.rollout).toMatchObject({ errors: { allowed: 0, seen: 0 } });
  }, 180_000);

  test('maxErrors 2: the third failure stops the rollout with the rest unsent, and the request fails naming them', async () => {
    const { ids, policy } = await setup(120, { maxConcurrency: '10', maxErrors: '2' });
    // One failure in the first command; in the second one per batch of 10 (60, 75, 90).
    await simulate({ runMs: 150, spreadMs: 0, failing: [ids[3]!, ids[60]!, ids[75]!, ids[90]!] });
    const rr = await request(policy);
    const done = await ended(rr.metadata!.name!, 150_000);
    expect(done.status).toMatchObject({ phase: 'Failed', reason: 'MaxErrorsExceeded' });
    const cmds = await commandsOf(rr.metadata!.uid!);
    // The second command carried what was left of the budget (1); SSM stopped it at its second failure; the third was never sent.
    expect(cmds.map((c) => c.maxErrors)).toEqual(['2', '1']);
    const ssm = done.status!.execution!.ssm!;
    expect(ssm.commands![2]!.commandId).toBeUndefined();
    const status = new Map(ssm.invocations!.map((i) => [i.instanceId, i.status]));
    expect(ids.slice(100).every((i) => status.get(i) === 'NotSent')).toBe(true);
    expect(status.get(ids[90]!)).toBe('Cancelled');
    expect(ssm.rollout?.failedInstances).toEqual([ids[3], ids[60], ids[75]]);
    expect(done.status?.message).toContain('past maxErrors 2');
  }, 180_000);

  test('within maxErrors the request succeeds and lists the failed instances', async () => {
    const { ids, policy } = await setup(60, { maxConcurrency: '50', maxErrors: '2' });
    await simulate({ runMs: 100, spreadMs: 0, failing: [ids[7]!, ids[55]!] });
    const rr = await request(policy);
    const done = await ended(rr.metadata!.name!);
    expect(done.status).toMatchObject({ phase: 'Succeeded' });
    expect(done.status?.execution?.ssm?.rollout?.failedInstances).toEqual([ids[7], ids[55]]);
    expect(done.status?.message).toContain(ids[7]);
    expect(done.status?.message).toMatch(/2 failed within maxErrors 2/);
  }, 120_000);

  test('a first wave that stays ineffective stops the rollout: the later waves are never sent', async () => {
    await simulate({ runMs: 100, spreadMs: 0 });
    const { ids, policy } = await setup(4, {
      rollout: {
        waves: [{ size: '1' }, { size: '50%' }],
        // No instance ever reports this metric: the canary cannot show it recovered.
        verify: { within: '1s', metric: { namespace: 'E2E/Rollout', metricName: 'Healthy', operator: '>=', threshold: 1 } },
      },
    });
    const rr = await request(policy);
    const done = await ended(rr.metadata!.name!);
    expect(done.status).toMatchObject({ phase: 'Failed', reason: 'Ineffective' });
    expect(done.status?.plan?.ssm?.rollout?.waves).toEqual([1, 2, 1]);
    const cmds = await commandsOf(rr.metadata!.uid!);
    expect(cmds.map((c) => c.instanceIds)).toEqual([[ids[0]]]);
    const rollout = done.status!.execution!.ssm!.rollout!;
    expect(rollout.waves.map((w) => w.state)).toEqual(['Ineffective', 'NotSent', 'NotSent']);
    expect(rollout.stopped?.message).toContain(`${ids[0]}: no datapoints`);
    expect(done.status?.message).toMatch(/wave 1 of 3/);
  }, 120_000);

  test('an alarm set to ALARM between waves stops the rollout; the next wave is never sent', async () => {
    await simulate({ runMs: 100, spreadMs: 0 });
    const name = `e2e-5xx-${++n}-${id}`;
    await alarm(name);
    const { policy } = await setup(5, { rollout: { waves: [{ size: '1' }, { size: '100%' }], pauseBetweenWaves: '4s', alarms: [name] } });
    const rr = await request(policy);
    // The canary ended and the rollout pauses: the alarm goes off.
    await waitFor(
      'the pause after the canary',
      async () => (await res.getRequest(NS, rr.metadata!.name!)).status?.execution?.ssm?.rollout?.nextWaveAt,
    );
    await fire(name);
    const done = await ended(rr.metadata!.name!);
    expect(done.status).toMatchObject({ phase: 'Failed', reason: 'AlarmTriggered' });
    const cmds = await commandsOf(rr.metadata!.uid!);
    expect(cmds).toHaveLength(1);
    // SSM got the alarm too (AlarmConfiguration), in the shape the contract layer checks.
    expect(cmds[0]!.alarm).toEqual({ name, ignorePollAlarmFailure: false });
    expect(done.status!.execution!.ssm!.rollout!.waves.map((w) => w.state)).toEqual(['Succeeded', 'NotSent']);
  }, 120_000);

  test('an alarm going off during a wave aborts it and cancels what runs', async () => {
    await simulate({ runMs: 1500, spreadMs: 0, cancellingMs: 100 });
    const name = `e2e-5xx-${++n}-${id}`;
    await alarm(name);
    const { policy } = await setup(7, { maxConcurrency: '1', rollout: { waves: [{ size: '1' }, { size: '100%' }], alarms: [name] } });
    const rr = await request(policy);
    const uid = rr.metadata!.uid!;
    await waitFor('the second wave to be sent', async () => (await commandsOf(uid)).length === 2, 60_000);
    await fire(name);
    const done = await ended(rr.metadata!.name!);
    expect(done.status).toMatchObject({ phase: 'Failed', reason: 'AlarmTriggered' });
    const [, second] = await commandsOf(uid);
    expect(second!.cancelledAt).toBeDefined();
    // At one at a time and 1.5 s each, most of the six had not run when it was cancelled.
    const cancelled = second!.invocations.filter((i) => i.status === 'Cancelled').length;
    expect(cancelled).toBeGreaterThanOrEqual(3);
    const ssm = done.status!.execution!.ssm!;
    expect(ssm.commands![1]!.cancelledAt).toBeDefined();
    expect(ssm.rollout?.stopped).toMatchObject({ reason: 'AlarmTriggered', cancel: true });
  }, 120_000);

  test('deleting the request mid-run cancels its command; it ends Cancelled saying what ran', async () => {
    await simulate({ runMs: 3000, spreadMs: 0, cancellingMs: 100 });
    const { policy } = await setup(12, { maxConcurrency: '2' });
    const rr = await request(policy, true);
    const uid = rr.metadata!.uid!;
    await waitFor('the command to be sent', async () => (await commandsOf(uid)).length === 1, 60_000);
    await res.api.deleteNamespacedCustomObject({
      group: GROUP,
      version: 'v1alpha1',
      namespace: NS,
      plural: 'remediationrequests',
      name: rr.metadata!.name!,
    });
    const done = await waitFor('the deleted request to end', async () => {
      const r = await res.getRequest(NS, rr.metadata!.name!);
      return r.status?.phase === 'Cancelled' && !r.metadata?.finalizers?.includes('remediator.dev/execution') ? r : undefined;
    });
    expect(done.status?.reason).toBe('RequestDeleted');
    const [cmd] = await commandsOf(uid);
    expect(cmd!.cancelledAt).toBeDefined();
    // At two at a time and 3 s each, the twelve take 18 s: the cancel stopped what had not ended.
    expect(cmd!.invocations.filter((i) => i.status === 'Cancelled').length).toBeGreaterThanOrEqual(2);
    expect(cmd!.invocations.filter((i) => i.status === 'Success').length).toBeLessThan(12);
    expect(done.status?.message).toMatch(/did not run/);
    await res.api.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: 'v1alpha1',
        namespace: NS,
        plural: 'remediationrequests',
        name: rr.metadata!.name!,
        body: { metadata: { finalizers: null } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }, 120_000);

  test('an alert resolving mid-wave (through the intake) cancels what runs; later waves never go; Cancelled', async () => {
    await simulate({ runMs: 2000, spreadMs: 0, cancellingMs: 100 });
    const { ids, policy } = await setup(7, { maxConcurrency: '1', rollout: { waves: [{ size: '1' }, { size: '50%' }] } });
    const occurrence = { fingerprint: `resolve-${id}`, startsAt: new Date(Date.now() - 60_000).toISOString() };
    const rr = await request(policy, false, occurrence);
    const uid = rr.metadata!.uid!;
    await waitFor('the second wave to be sent', async () => (await commandsOf(uid)).length === 2, 60_000);
    const sent = sendsFor(uid).length;
    const answer = await postJson(
      intake,
      '/v1/alerts',
      { name: 'Down', status: 'resolved', fingerprint: occurrence.fingerprint, startsAt: new Date().toISOString() },
      token,
    );
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ cancelled: [`${NS}/${rr.metadata!.name}`], unchanged: [] });
    // In status (the controller's own identity wrote it), never in the spec.
    const marked = await res.getRequest(NS, rr.metadata!.name!);
    expect(marked.spec.alert.status).toBe('firing');
    const done = await ended(rr.metadata!.name!);
    expect(done.status).toMatchObject({ phase: 'Cancelled', reason: 'AlertResolved' });
    expect(done.status?.alertResolvedAt).toBeDefined();
    const cmds = await commandsOf(uid);
    // The gateway's view: the second wave's command got CancelCommand, and nothing more was sent.
    expect(cmds).toHaveLength(2);
    expect(sendsFor(uid)).toHaveLength(sent);
    const cancels = proxy.calls('CancelCommand').map((c) => (c.input as { CommandId?: string } | undefined)?.CommandId);
    expect(cancels).toContain(cmds[1]!.commandId);
    expect(cmds[1]!.cancelledAt).toBeDefined();
    expect(cmds[1]!.invocations.filter((i) => i.status === 'Cancelled').length).toBeGreaterThanOrEqual(1);
    const rollout = done.status!.execution!.ssm!.rollout!;
    expect(rollout.waves.length).toBeGreaterThanOrEqual(3);
    expect(rollout.waves.slice(2).every((w) => w.state === 'NotSent')).toBe(true);
    expect(rollout.stopped).toMatchObject({ reason: 'AlertResolved', cancel: true });
    // The last wave's instances never ran; the message names what ran and what did not.
    const status = new Map(done.status!.execution!.ssm!.invocations!.map((i) => [i.instanceId, i.status]));
    expect(status.get(ids[6]!)).toBe('NotSent');
    expect(done.status?.message).toMatch(/did not run/);
  }, 120_000);

  test('a restart and a reboot policy never act on one instance at once', async () => {
    await simulate({ runMs: 400, spreadMs: 0 });
    const a = await setup(4, { rollout: { waves: [{ size: '1' }, { size: '100%' }], pauseBetweenWaves: '2s' } });
    const b = await setup(0, { parameters: [{ name: 'commands', values: ['reboot'] }] }, { ids: a.ids, tag: a.tag });
    const ra = await request(a.policy);
    await waitFor('the restart to start', async () => (await commandsOf(ra.metadata!.uid!)).length >= 1);
    const rb = await request(b.policy);
    const [da, db] = await Promise.all([ended(ra.metadata!.name!), ended(rb.metadata!.name!)]);
    expect([da.status?.phase, db.status?.phase]).toEqual(['Succeeded', 'Succeeded']);
    const ranA = (await commandsOf(ra.metadata!.uid!)).flatMap((c) => c.invocations);
    const sentB = await commandsOf(rb.metadata!.uid!);
    const lastA = Math.max(...ranA.map((i) => i.ranUntil ?? 0));
    expect(sentB.length).toBeGreaterThan(0);
    expect(Math.min(...sentB.map((c) => c.sentAt))).toBeGreaterThanOrEqual(lastA);
    expect((await res.events(NS, rb.metadata!.name!)).some((e) => e.reason === 'InstanceBusy')).toBe(true);
  }, 120_000);

  test('a controller SIGKILLed mid-wave is replaced by one that resumes the same wave without sending twice', async () => {
    await simulate({ runMs: 200, spreadMs: 0 });
    const { policy } = await setup(120, { maxConcurrency: '25', rollout: { waves: [{ size: '100' }, { size: '100%' }] } });
    // The second command of the first wave reaches SSM; its answer is held, and the controller dies.
    const hold = proxy.addRule({ kind: 'hold', operation: 'SendCommand', times: 1, match: (v) => comment(v).endsWith('/1') });
    const rr = await request(policy);
    const uid = rr.metadata!.uid!;
    await hold.reached;
    process.kill(-controller!.process.pid, 'SIGKILL');
    await controller!.process.exited;
    await hold.release();
    const mid = await res.getRequest(NS, rr.metadata!.name!);
    expect(mid.status?.execution?.ssm?.rollout?.currentWave).toBe(0);
    expect(mid.status?.execution?.ssm?.commands?.[1]?.commandId).toBeUndefined();

    controller = await startController(tb, { region: REGION, namespace: NS, name: 'rollout-run-2', awsEndpoint: proxy.endpoint });
    const done = await ended(rr.metadata!.name!, 150_000);
    expect(done.status?.phase).toBe('Succeeded');
    const expected = [0, 1, 2].map((i) => `remediator:${uid}/${i}`);
    expect(sendsFor(uid).map(comment).sort()).toEqual(expected);
    const cmds = await commandsOf(uid);
    expect(cmds.map((c) => c.comment).sort()).toEqual(expected);
    expect(done.status!.execution!.ssm!.commands!.map((c) => c.commandId).sort()).toEqual(cmds.map((c) => c.commandId).sort());
    expect(peak(cmds)).toBeLessThanOrEqual(25);
  }, 240_000);
});
