/**
 * State that lasts, against the real kube-apiserver and moto: the execution ledger keeps
 * cooldown, rate limit and the circuit breaker through deleted and recreated requests,
 * deleted and recreated policies and controller restarts; the execution finalizer holds
 * a request deleted while it executes until its command ended; retention deletes
 * finished requests on time while the ledger keeps them; and a request outside its
 * maintenance window waits and runs when the window opens (a real clock, seconds away).
 */
import { CoreV1Api } from '@kubernetes/client-node';
import type { AlertPolicy } from '../../src/api/v1alpha1/index.js';
import { seedInstances } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy } from '../testbed/faultproxy.js';
import { Resources, restartRunbook, ssmCommands, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';
import { suffix } from './install-chart.js';

const REGION = 'il-central-1';
const NS = 'ledger';
const id = suffix();
const LEDGER_NS = `ledger-system-${id}`;
const RUNBOOK = `ledger-restart-${id}`;

describe('execution ledger, finalizer, retention, held windows', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  const core = tb.admin().makeApiClient(CoreV1Api);
  let controller: RunningController | undefined;
  let proxy: FaultProxy;
  let n = 0;

  const start = async () => {
    controller = await startController(tb, {
      region: REGION,
      namespace: NS,
      name: `controller-ledger-${++n}`,
      awsEndpoint: proxy.endpoint,
      extraEnv: { LEDGER_NAMESPACE: LEDGER_NS },
    });
  };
  const restart = async () => {
    await controller?.stop();
    await start();
  };

  async function instance(): Promise<string> {
    const [i] = await seedInstances(tb.motoEndpoint, { region: REGION, tags: { Service: 'nginx' } });
    return i!;
  }

  const spec = (extra: Partial<AlertPolicy['spec']>) => ({
    targets: { fromLabels: ['instance_id'] },
    runbookRef: { name: RUNBOOK },
    inputs: { service: 'nginx' },
    risk: 'Low' as const,
    ...extra,
  });

  async function policy(extra: Partial<AlertPolicy['spec']>, name = `p${++n}`): Promise<string> {
    await res.createPolicy(NS, name, spec(extra));
    return name;
  }

  async function request(p: string, target: string, name = `r${++n}`) {
    const rr = await res.createRequest(NS, name, {
      policyRef: { name: p },
      alert: { source: 'generic', name: 'Down', status: 'firing', labels: { instance_id: target } },
    });
    return { name, uid: rr.metadata!.uid! };
  }

  async function gone(name: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `${name} deleted`,
      async () =>
        res.getRequest(NS, name).then(
          () => false,
          (e: { code?: number }) => e.code === 404,
        ),
      timeoutMs,
    );
  }

  async function deleteRequest(name: string): Promise<void> {
    await res.api.deleteNamespacedCustomObject({
      group: 'remediator.dev',
      version: 'v1alpha1',
      namespace: NS,
      plural: 'remediationrequests',
      name,
    });
  }

  async function deletePolicy(name: string): Promise<void> {
    await res.api.deleteNamespacedCustomObject({
      group: 'remediator.dev',
      version: 'v1alpha1',
      namespace: NS,
      plural: 'alertpolicies',
      name,
    });
    await waitFor(`policy ${name} deleted`, async () =>
      res.getPolicy(NS, name).then(
        () => false,
        () => true,
      ),
    );
  }

  /** The executions the ledger holds for a policy, as stored in the controller's namespace. */
  async function ledger(p: string): Promise<Array<{ uid: string; request: string; outcome?: string }>> {
    const list = await core.listNamespacedConfigMap({ namespace: LEDGER_NS, labelSelector: 'remediator.dev/ledger=true' });
    const cm = list.items.find((c) => c.data?.namespace === NS && c.data.policy === p);
    return (cm?.data?.executions ?? '')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { uid: string; request: string; outcome?: string });
  }

  const commandsFor = async (uid: string) => (await ssmCommands(tb, REGION)).filter((c) => c.Comment === `remediator:${uid}`);

  beforeAll(async () => {
    await res.namespace(NS);
    await res.namespace(LEDGER_NS);
    await res.createRunbook(RUNBOOK, restartRunbook());
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
    await start();
  });

  afterEach(() => proxy.clearRules());

  afterAll(async () => {
    await controller?.stop();
    await proxy?.stop();
  });

  test('delete-and-recreate a request inside its cooldown: the same one AlreadyRan, a changed one Cooldown; nothing sent', async () => {
    const p = await policy({ safety: { cooldown: '1h' } });
    const i = await instance();
    const first = await request(p, i, 'again');
    await res.waitForPhase(NS, first.name, 'Succeeded');
    await waitFor('the ledger has the outcome', async () =>
      (await ledger(p)).find((e) => e.uid === first.uid && e.outcome === 'Succeeded'),
    );
    await deleteRequest('again');
    await gone('again');
    const second = await request(p, i, 'again');
    expect(second.uid).not.toBe(first.uid);
    // The same name and spec is the same request: recognised from the ledger (request/rerun.ts).
    const skipped = await res.waitForPhase(NS, 'again', 'Skipped');
    expect(skipped.status?.reason).toBe('AlreadyRan');
    expect(await commandsFor(second.uid)).toHaveLength(0);
    // Another alert for the same instance, under the same name: a new request, held by the cooldown.
    await deleteRequest('again');
    await gone('again');
    const third = await res.createRequest(NS, 'again', {
      policyRef: { name: p },
      alert: { source: 'generic', name: 'StillDown', status: 'firing', labels: { instance_id: i } },
    });
    expect((await res.waitForPhase(NS, 'again', 'Skipped')).status?.reason).toBe('Cooldown');
    expect(await commandsFor(third.metadata!.uid!)).toHaveLength(0);
  });

  test('delete and recreate the policy: cooldown and rate limit are kept; so after a controller restart', async () => {
    const p = await policy({ safety: { cooldown: '1h', rateLimit: { maxExecutions: 1, window: '1h' } } });
    const [a, b] = [await instance(), await instance()];
    const ran = await request(p, a);
    await res.waitForPhase(NS, ran.name, 'Succeeded');
    // Everything a team may delete goes: the request that ran, then the policy.
    await deleteRequest(ran.name);
    await gone(ran.name);
    await deletePolicy(p);
    await res.createPolicy(NS, p, spec({ safety: { cooldown: '1h', rateLimit: { maxExecutions: 1, window: '1h' } } }));
    const cooled = await request(p, a);
    expect((await res.waitForPhase(NS, cooled.name, 'Skipped')).status?.reason).toBe('Cooldown');
    const limited = await request(p, b);
    expect((await res.waitForPhase(NS, limited.name, 'Skipped')).status?.reason).toBe('RateLimited');

    await restart();
    const afterRestart = await request(p, a);
    expect((await res.waitForPhase(NS, afterRestart.name, 'Skipped')).status?.reason).toBe('Cooldown');
    const limitedAfterRestart = await request(p, b);
    expect((await res.waitForPhase(NS, limitedAfterRestart.name, 'Skipped')).status?.reason).toBe('RateLimited');
    for (const r of [cooled, limited, afterRestart, limitedAfterRestart]) expect(await commandsFor(r.uid)).toHaveLength(0);
  }, 90_000);

  test('the circuit breaker survives deleting its failed requests, the policy, and a restart', async () => {
    proxy.addRule({
      kind: 'rewrite',
      operation: 'GetCommandInvocation',
      transform: (body: Record<string, unknown>) => ({ ...body, Status: 'Failed', StatusDetails: 'Failed', ResponseCode: 1 }),
    });
    const p = await policy({ safety: { circuitBreaker: { maxConsecutiveFailures: 2 } } });
    const failed = [await request(p, await instance()), await request(p, await instance())];
    for (const f of failed) await res.waitForPhase(NS, f.name, 'Failed');
    await waitFor('circuit open', async () => (await res.getPolicy(NS, p)).status?.circuitBreaker?.open === true);
    proxy.clearRules();
    for (const f of failed) await deleteRequest(f.name);
    for (const f of failed) await gone(f.name);
    await deletePolicy(p);
    await res.createPolicy(NS, p, spec({ safety: { circuitBreaker: { maxConsecutiveFailures: 2 } } }));
    await restart();
    await waitFor(
      'the recreated policy shows the open breaker',
      async () => (await res.getPolicy(NS, p)).status?.circuitBreaker?.open === true,
    );
    const next = await request(p, await instance());
    expect((await res.waitForPhase(NS, next.name, 'Skipped')).status?.reason).toBe('CircuitOpen');
    expect(await commandsFor(next.uid)).toHaveLength(0);
  }, 90_000);

  test('a request deleted while it executes stays until its command ended and the ledger has it; sent exactly once', async () => {
    const running = proxy.addRule({
      kind: 'rewrite',
      operation: 'GetCommandInvocation',
      transform: (body: Record<string, unknown>) => ({ ...body, Status: 'InProgress', StatusDetails: 'InProgress' }),
    });
    const p = await policy({});
    const r = await request(p, await instance());
    await waitFor('a command id', async () => (await res.getRequest(NS, r.name)).status?.execution?.ssm?.commandId);
    const executing = await res.getRequest(NS, r.name);
    expect(executing.status?.phase).toBe('Executing');
    expect(executing.metadata?.finalizers).toContain('remediator.dev/execution');
    await deleteRequest(r.name);
    // Deletion waits: the object stays, marked for deletion, while the command runs.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const waiting = await res.getRequest(NS, r.name);
    expect(waiting.metadata?.deletionTimestamp).toBeDefined();
    expect(waiting.status?.phase).toBe('Executing');
    proxy.clearRules();
    void running;
    await gone(r.name);
    expect((await ledger(p)).find((e) => e.uid === r.uid)?.outcome).toBe('Succeeded');
    expect(await commandsFor(r.uid)).toHaveLength(1);
  }, 60_000);

  test('retention: the history limit and the TTL delete finished requests; the ledger keeps them', async () => {
    const p = await policy({
      retention: { ttlAfterFinished: '4s', historyLimit: 1 },
      safety: { rateLimit: { maxExecutions: 10, window: '1h' } },
    });
    const rs = [];
    for (let k = 0; k < 3; k++) {
      const r = await request(p, await instance());
      await res.waitForPhase(NS, r.name, 'Succeeded');
      rs.push(r);
    }
    // Beyond the history limit first (only the newest stays), then the TTL takes the last one.
    await gone(rs[0]!.name, 10_000);
    await gone(rs[1]!.name, 10_000);
    const last = await res.getRequest(NS, rs[2]!.name).catch(() => undefined);
    const doneAt = Date.parse(last?.status?.completionTime ?? '');
    await gone(rs[2]!.name, 15_000);
    if (Number.isFinite(doneAt)) expect(Date.now() - doneAt).toBeGreaterThanOrEqual(3_000);
    const kept = await ledger(p);
    expect(rs.map((r) => kept.find((e) => e.uid === r.uid)?.outcome)).toEqual(['Succeeded', 'Succeeded', 'Succeeded']);
  }, 60_000);

  test('outside its maintenance window a request waits, then runs when the window opens', async () => {
    // A window opening 12 s from now for 30 s (cron with seconds), in UTC.
    const opens = new Date(Math.ceil((Date.now() + 12_000) / 1000) * 1000);
    const schedule = `${opens.getUTCSeconds()} ${opens.getUTCMinutes()} ${opens.getUTCHours()} * * *`;
    const p = await policy({
      safety: { maintenanceWindows: { mode: 'OnlyDuring', windows: [{ schedule, duration: '30s', timeZone: 'UTC' }] } },
    });
    const r = await request(p, await instance());
    const held = await waitFor('held', async () => {
      const got = await res.getRequest(NS, r.name);
      return got.status?.reason === 'MaintenanceWindow' ? got : undefined;
    });
    expect(held.status?.phase).toBe('Approved');
    expect(held.status?.message).toContain(opens.toISOString().replace(/\.\d{3}Z$/, 'Z'));
    expect(await commandsFor(r.uid)).toHaveLength(0);
    const done = await res.waitForPhase(NS, r.name, 'Succeeded', 40_000);
    expect(Date.parse(done.status?.execution?.ssm?.intentRecordedAt ?? '')).toBeGreaterThanOrEqual(opens.getTime());
    expect(await commandsFor(r.uid)).toHaveLength(1);
  }, 60_000);
});
