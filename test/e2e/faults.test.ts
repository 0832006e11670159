/**
 * What moto cannot do, supplied by the fault-injecting proxy between the controller's
 * SDK and moto: a controller killed after SendCommand reached AWS, a lost response,
 * AccessDenied, throttling, and commands that fail on the instance — and the circuit
 * breaker those failures trip, which an approver (not an editor) resets.
 *
 * Requests are created by mallory (the chart's editor role) in her own name; the breaker
 * is reset by alice (the approver role) under the chart's admission policy, the only
 * place a reset is trusted.
 */
import { CustomObjectsApi } from '@kubernetes/client-node';
import { GROUP, VERSION, type AlertPolicy } from '../../src/api/v1alpha1/index.js';
import { seedInstances } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy } from '../testbed/faultproxy.js';
import { Resources, restartRunbook, ssmCommands, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';
import { grant, installChart, namespace, SCOPE_LABEL, suffix, waitForAdmissionPolicy, type InstalledChart } from './install-chart.js';

const REGION = 'ca-central-1';
const NS = 'faults';
const id = suffix();
const RUNBOOK = `restart-nginx-faults-${id}`;

describe('failures and exactly-once execution', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  const mallory = new Resources(tb.as('mallory'));
  let chart: InstalledChart;
  let proxy: FaultProxy;
  const controllers: RunningController[] = [];
  let n = 0;

  async function controller(name: string): Promise<RunningController> {
    const c = await startController(tb, {
      region: REGION,
      namespace: NS,
      name,
      awsEndpoint: proxy.endpoint,
      args: ['--admission-policy-name', `${chart.fullname}-approvals`],
    });
    controllers.push(c);
    return c;
  }

  /** The long-running controller most tests share (the crash test runs its own first). */
  async function ensureController(): Promise<void> {
    if (controllers.length === 0) await controller('main');
  }

  async function policy(spec: Partial<AlertPolicy['spec']> = {}): Promise<string> {
    const name = `p${++n}`;
    await mallory.createPolicy(NS, name, { runbookRef: { name: RUNBOOK }, targets: { fromLabels: ['instance_id'] }, ...spec });
    return name;
  }

  async function request(policyName: string): Promise<{ name: string; uid: string; instance: string }> {
    const [instance] = await seedInstances(tb.motoEndpoint, { region: REGION });
    const name = `r${++n}`;
    const rr = await mallory.createRequest(NS, name, {
      policyRef: { name: policyName },
      alert: { source: 'generic', name: 'Down', status: 'firing', labels: { instance_id: instance! } },
      requestedBy: 'mallory',
    });
    return { name, uid: rr.metadata!.uid!, instance: instance! };
  }

  const commandsWith = async (uid: string) => (await ssmCommands(tb, REGION)).filter((c) => c.Comment === `remediator:${uid}`);

  beforeAll(async () => {
    chart = await installChart(tb, { release: `flt${id}`, namespace: `rmd-flt-system-${id}`, scope: id });
    await namespace(tb, NS, { [SCOPE_LABEL]: id });
    await grant(tb, NS, 'mallory', `${chart.fullname}-editor`);
    // Resuming a breaker takes the approver role (the verb) and patch on the policy (the editor role).
    for (const role of ['approver', 'editor']) await grant(tb, NS, 'alice', `${chart.fullname}-${role}`);
    await waitForAdmissionPolicy(tb, NS);
    await res.createRunbook(
      RUNBOOK,
      restartRunbook({ inputs: [], action: { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart nginx'] }] } } }),
    );
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
  });

  afterEach(() => proxy.clearRules());

  afterAll(async () => {
    for (const c of controllers) await c.stop();
    await proxy?.stop();
    await res.deleteRunbook(RUNBOOK);
    await chart?.uninstall();
  });

  test('a controller killed after SendCommand reached AWS is replaced by one that adopts the command instead of sending another', async () => {
    const first = await controller('crashing');
    const hold = proxy.addRule({ kind: 'hold', operation: 'SendCommand', times: 1 });
    const p = await policy();
    const { name, uid } = await request(p);
    // moto has accepted the command; the controller has not learnt its id.
    await hold.reached;
    expect(await commandsWith(uid)).toHaveLength(1);
    expect((await res.getRequest(NS, name)).status?.execution?.ssm?.commandId).toBeUndefined();
    process.kill(-first.process.pid, 'SIGKILL');
    await first.process.exited;
    controllers.splice(controllers.indexOf(first), 1);
    // The answer has nowhere to go (the socket may or may not be seen closed yet).
    const released = await hold.release();
    expect(released.delivered + released.clientGone).toBe(1);

    await controller('successor');
    const done = await res.waitForPhase(NS, name, 'Succeeded');
    const cmds = await commandsWith(uid);
    expect(cmds).toHaveLength(1);
    expect(done.status?.execution?.ssm?.commandId).toBe(cmds[0]!.CommandId);
    expect(proxy.calls('SendCommand').filter((c) => JSON.stringify(c.input).includes(uid))).toHaveLength(1);
    expect(proxy.calls('ListCommands').length).toBeGreaterThan(0);
  });

  test('a lost SendCommand response is healed by finding the command, not by sending again', async () => {
    await ensureController();
    proxy.addRule({ kind: 'dropResponse', operation: 'SendCommand', times: 1 });
    const p = await policy();
    const { name, uid } = await request(p);
    const done = await res.waitForPhase(NS, name, 'Succeeded');
    const cmds = await commandsWith(uid);
    expect(cmds).toHaveLength(1);
    expect(done.status?.execution?.ssm?.commandId).toBe(cmds[0]!.CommandId);
    expect(proxy.calls('SendCommand').filter((c) => JSON.stringify(c.input).includes(uid))).toHaveLength(1);
  });

  test('AccessDenied on a read becomes a condition naming the missing IAM action; the request resumes once the role is fixed', async () => {
    await ensureController();
    const denied = proxy.addRule({
      kind: 'error',
      operation: 'DescribeInstances',
      code: 'UnauthorizedOperation',
      message:
        'You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/remediator/x is not authorized to perform: ec2:DescribeInstances',
    });
    const p = await policy();
    const { name, uid } = await request(p);
    const blocked = await waitFor('CloudAccess=False', async () => {
      const rr = await res.getRequest(NS, name);
      return rr.status?.conditions?.find((c) => c.type === 'CloudAccess' && c.status === 'False') ? rr : undefined;
    });
    const cond = blocked.status!.conditions!.find((c) => c.type === 'CloudAccess')!;
    expect(cond.reason).toBe('AccessDenied');
    expect(cond.message).toContain('ec2:DescribeInstances');
    expect(blocked.status?.phase ?? 'Pending').toBe('Pending');
    const metrics = await (await fetch(`${controllers[0]!.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/remediator_aws_api_calls_total\{service="ec2",operation="DescribeInstances",outcome="access_denied"\} [1-9]/);
    expect(await commandsWith(uid)).toHaveLength(0);
    // Events are recorded off the reconcile's path: wait for it rather than race it.
    await waitFor(
      'an AccessDenied Warning Event',
      async () => (await res.events(NS, name)).some((e) => e.reason === 'AccessDenied' && e.type === 'Warning') || undefined,
    );

    denied.remove();
    const done = await res.waitForPhase(NS, name, 'Succeeded', 90_000);
    expect(done.status?.conditions?.find((c) => c.type === 'CloudAccess')).toMatchObject({ status: 'True', reason: 'Restored' });
    expect(await commandsWith(uid)).toHaveLength(1);
  }, 120_000);

  test('AccessDenied from SendCommand itself ends the request Failed, naming the action: nothing was sent, and it does not loop', async () => {
    await ensureController();
    const denied = proxy.addRule({
      kind: 'error',
      operation: 'SendCommand',
      code: 'AccessDeniedException',
      message: 'User: arn:aws:sts::123456789012:assumed-role/remediator/x is not authorized to perform: ssm:SendCommand',
    });
    try {
      const p = await policy();
      const { name, uid } = await request(p);
      const done = await res.waitForPhase(NS, name, 'Failed');
      expect(done.status?.conditions?.find((c) => c.type === 'CloudAccess')).toMatchObject({ status: 'False' });
      expect(done.status?.conditions?.find((c) => c.type === 'CloudAccess')?.message).toContain('ssm:SendCommand');
      expect(await commandsWith(uid)).toHaveLength(0);
    } finally {
      denied.remove();
    }
  });

  test('throttling is retried with backoff and the request is not lost', async () => {
    await ensureController();
    proxy.clearCalls();
    proxy.addRule({ kind: 'error', operation: 'DescribeInstances', code: 'RequestLimitExceeded', times: 2 });
    proxy.addRule({ kind: 'error', operation: 'GetCommandInvocation', code: 'ThrottlingException', times: 3 });
    const p = await policy();
    const { name } = await request(p);
    await res.waitForPhase(NS, name, 'Succeeded');
    expect(proxy.calls('DescribeInstances').filter((c) => c.outcome === 'error')).toHaveLength(2);
    expect(proxy.calls('DescribeInstances').filter((c) => c.outcome === 'forwarded').length).toBeGreaterThan(0);
    expect(proxy.calls('GetCommandInvocation').filter((c) => c.outcome === 'error')).toHaveLength(3);
  });

  test('one DescribeInstances for all targets and one GetMetricData for all metric queries', async () => {
    await ensureController();
    const ids = await seedInstances(tb.motoEndpoint, { region: REGION, count: 3 });
    const p = await policy({
      targets: { fromLabels: ['instances'] },
      enrichment: {
        metrics: [
          { name: 'cpu', namespace: 'AWS/EC2', metricName: 'CPUUtilization' },
          { name: 'net', namespace: 'AWS/EC2', metricName: 'NetworkIn', statistic: 'Sum' },
        ],
      },
    });
    proxy.clearCalls();
    const name = `r${++n}`;
    await mallory.createRequest(NS, name, {
      policyRef: { name: p },
      alert: { source: 'generic', name: 'Down', status: 'firing', labels: { instances: ids.join(',') } },
      requestedBy: 'mallory',
    });
    const done = await res.waitForPhase(NS, name, 'Succeeded');
    expect(done.status?.enrichment?.metrics).toHaveLength(6);
    expect(proxy.calls('DescribeInstances')).toHaveLength(1);
    const metricCalls = proxy.calls('GetMetricData');
    expect(metricCalls).toHaveLength(1);
    // The one call carries the 6 questions about the targets; it may also ask ahead about the
    // rest of the tagged fleet (cloudwatch-batching.ts), within GetMetricData's 500 queries.
    type Query = { MetricStat: { Metric: { MetricName: string; Dimensions: Array<{ Value: string }> } } };
    const queries = (metricCalls[0]!.input as { MetricDataQueries: Query[] }).MetricDataQueries;
    const asked = new Set(queries.map((q) => `${q.MetricStat.Metric.Dimensions[0]!.Value}/${q.MetricStat.Metric.MetricName}`));
    for (const id of ids) for (const metric of ['CPUUtilization', 'NetworkIn']) expect(asked).toContain(`${id}/${metric}`);
    expect(queries.length).toBeLessThanOrEqual(500);
    expect(proxy.calls('SendCommand')).toHaveLength(1);
  });

  test('failed commands record per-instance results; consecutive failures open the circuit breaker until a person resumes', async () => {
    await ensureController();
    proxy.addRule({
      kind: 'rewrite',
      operation: 'GetCommandInvocation',
      transform: (body: Record<string, unknown>) => ({
        ...body,
        Status: 'Failed',
        StatusDetails: 'Failed',
        ResponseCode: 3,
        StandardOutputContent: 'restarting nginx',
        StandardErrorContent: 'Job for nginx.service failed',
      }),
    });
    const p = await policy({ safety: { circuitBreaker: { maxConsecutiveFailures: 2 } } });
    const a = await request(p);
    const failed = await res.waitForPhase(NS, a.name, 'Failed');
    expect(failed.status?.execution?.ssm?.invocations).toEqual([
      {
        instanceId: a.instance,
        status: 'Failed',
        responseCode: 3,
        stdoutTail: 'restarting nginx',
        stderrTail: 'Job for nginx.service failed',
      },
    ]);
    expect(failed.status?.message).toContain('exit 3');
    const b = await request(p);
    await res.waitForPhase(NS, b.name, 'Failed');

    const open = await waitFor('circuit open', async () => {
      const got = await res.getPolicy(NS, p);
      return got.status?.circuitBreaker?.open ? got : undefined;
    });
    expect(open.status?.consecutiveFailures).toBe(2);
    expect(open.status?.conditions?.find((c) => c.type === 'Suspended')).toMatchObject({ status: 'True', reason: 'CircuitOpen' });
    await waitFor('a CircuitOpen Event', async () => (await res.events(NS, p)).some((e) => e.reason === 'CircuitOpen') || undefined);

    const c = await request(p);
    const skipped = await res.waitForPhase(NS, c.name, 'Skipped');
    expect(skipped.status?.reason).toBe('CircuitOpen');
    expect(await commandsWith(c.uid)).toHaveLength(0);

    // The editor may not reset it: that needs the approver verb (the admission policy says so).
    proxy.clearRules();
    // A reset carries the token the controller issued in status (ADR 0011).
    const token = await waitFor('a reset token', async () => (await res.getPolicy(NS, p)).status?.circuitBreaker?.resetToken);
    const reset = (user: string, at: string) =>
      tb
        .as(user)
        .makeApiClient(CustomObjectsApi)
        .patchNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: NS,
          plural: 'alertpolicies',
          name: p,
          body: [
            {
              op: 'add',
              path: '/metadata/annotations',
              value: { 'remediator.dev/circuit-reset-at': at, 'remediator.dev/circuit-reset-token': token },
            },
          ],
        });
    await expect(reset('mallory', new Date().toISOString())).rejects.toMatchObject({ code: 403 });
    // A reset in the far future is ignored by the controller: it cannot switch the breaker off for good.
    await reset('alice', '9999-12-31T00:00:00Z');
    const future = await request(p);
    expect((await res.waitForPhase(NS, future.name, 'Skipped')).status?.reason).toBe('CircuitOpen');
    expect(await commandsWith(future.uid)).toHaveLength(0);
    // An approver resumes it (what `kubectl remediator resume` does); commands work again.
    await reset('alice', new Date().toISOString());
    await waitFor('circuit closed', async () => (await res.getPolicy(NS, p)).status?.circuitBreaker?.open === false);
    const d = await request(p);
    await res.waitForPhase(NS, d.name, 'Succeeded');
  }, 120_000);
});
