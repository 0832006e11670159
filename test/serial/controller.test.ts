/**
 * The controller as a process: leader election on a Lease (only the leader reconciles;
 * a successor takes over within the lease time after a crash, at once after a graceful
 * stop), health and metrics endpoints, and no writes when nothing changed — measured by
 * the API server's own request counters.
 */
import { CoordinationV1Api } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { seedInstances } from '../testbed/aws.js';
import { Resources, restartRunbook, startController, testbedFromEnv, waitFor, type RunningController } from '../e2e/harness.js';

const REGION = 'sa-east-1';
const NS = 'controller';
const RUNBOOK = 'restart-service-controller';

async function scrape(url: string): Promise<string> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.text();
}

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => (l.startsWith(`${name} `) || l.startsWith(`${name}{`)) && want.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').at(-1)) : NaN;
}

describe('controller process', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  const coordination = tb.admin().makeApiClient(CoordinationV1Api);
  const running: RunningController[] = [];
  let n = 0;

  async function start(name: string, extraEnv: Record<string, string> = {}) {
    const c = await startController(tb, {
      region: REGION,
      namespace: NS,
      name,
      extraEnv: { POD_NAMESPACE: NS, POD_NAME: name, LEADER_ELECT: 'true', ...extraEnv },
    });
    running.push(c);
    return c;
  }

  async function remediate(): Promise<string> {
    const [id] = await seedInstances(tb.motoEndpoint, { region: REGION });
    const name = `r${++n}`;
    await res.createRequest(NS, name, {
      policyRef: { name: 'restart' },
      alert: { source: 'generic', name: 'Down', status: 'firing', labels: { instance_id: id!, service: 'nginx' } },
    });
    return name;
  }

  async function holder(): Promise<string | undefined> {
    try {
      return (await coordination.readNamespacedLease({ name: 'remediator-leader', namespace: NS })).spec?.holderIdentity ?? undefined;
    } catch {
      return undefined;
    }
  }

  /** Write requests the API server has served for remediator's resources and Events. */
  async function apiWrites(): Promise<number> {
    const text = (await tb.kubectl(['get', '--raw', '/metrics'])).stdout;
    let total = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith('apiserver_request_total{')) continue;
      const verb = /verb="([A-Z]+)"/.exec(line)?.[1] ?? '';
      if (!['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY'].includes(verb)) continue;
      if (!/group="remediator.dev"/.test(line) && !/resource="events"/.test(line)) continue;
      total += Number(line.split(' ').at(-1));
    }
    return total;
  }

  beforeAll(async () => {
    await res.namespace(NS);
    await res.createRunbook(RUNBOOK, restartRunbook());
    await res.createPolicy(NS, 'restart', {
      runbookRef: { name: RUNBOOK },
      inputs: { service: '{{ labels.service }}' },
      targets: { fromLabels: ['instance_id'] },
    });
  });

  afterAll(async () => {
    for (const c of running) await c.stop();
    await res.deleteRunbook(RUNBOOK);
  });

  test('serves /healthz, /readyz and Prometheus metrics', async () => {
    const c = await start('solo');
    expect(await scrape(`${c.metricsUrl}/healthz`)).toBe('ok');
    expect(await scrape(`${c.metricsUrl}/readyz`)).toBe('ok');
    await waitFor('leadership', async () => (await holder()) === 'solo');
    const name = await remediate();
    await res.waitForPhase(NS, name, 'Succeeded');
    const metrics = await scrape(`${c.metricsUrl}/metrics`);
    expect(metrics).toMatch(/controller_runtime_reconcile_total\{controller="remediationrequest",result="(success|requeue_after)"\} [1-9]/);
    expect(metrics).toMatch(/remediator_request_phase_transitions_total\{namespace="controller",phase="Succeeded"\} 1/);
    expect(metrics).toMatch(/remediator_aws_api_calls_total\{service="ssm",operation="SendCommand",outcome="success"\} 1/);
    expect(metricValue(metrics, 'remediator_leader')).toBe(1);
    expect(metrics).toContain('process_resident_memory_bytes');

    // Graceful stop releases the Lease at once instead of letting it expire.
    await c.stop();
    running.splice(running.indexOf(c), 1);
    await waitFor('lease released', async () => (await holder()) === undefined, 5_000);
  });

  test('only the leader reconciles; a successor takes over when it dies', async () => {
    const a = await start('replica-a');
    await waitFor('a leads', async () => (await holder()) === 'replica-a');
    const b = await start('replica-b');
    const first = await remediate();
    await res.waitForPhase(NS, first, 'Succeeded');
    const bMetrics = await scrape(`${b.metricsUrl}/metrics`);
    expect(metricValue(bMetrics, 'remediator_leader')).toBe(0);
    expect(bMetrics).not.toMatch(/controller_runtime_reconcile_total\{controller="remediationrequest"/);
    // The follower is still ready: intake and caches work on every replica.
    expect(await scrape(`${b.metricsUrl}/readyz`)).toBe('ok');

    // A crash (SIGKILL: no release) — b must wait out the lease, then lead.
    const killedAt = Date.now();
    process.kill(-a.process.pid, 'SIGKILL');
    await a.process.exited;
    running.splice(running.indexOf(a), 1);
    await waitFor('b leads', async () => (await holder()) === 'replica-b', 30_000, 250);
    const takeover = Date.now() - killedAt;
    expect(takeover).toBeLessThan(15_000 + 2_000 + 2_000); // lease + retry period + slack
    const second = await remediate();
    await res.waitForPhase(NS, second, 'Succeeded');
    expect(metricValue(await scrape(`${b.metricsUrl}/metrics`), 'remediator_leader')).toBe(1);
  }, 90_000);

  test('makes no writes when nothing changed, also across watch restarts and a controller restart', async () => {
    const leader = running.find(() => true) ?? (await start('quiet'));
    await waitFor('a leader', async () => (await holder()) !== undefined);
    const names = [await remediate(), await remediate()];
    for (const name of names) await res.waitForPhase(NS, name, 'Succeeded');
    await sleep(2_000); // let the last status and policy counter writes land
    const before = await apiWrites();
    // Watches end every 15-25 s and are re-established from the last resourceVersion.
    await sleep(26_000);
    expect(await apiWrites()).toBe(before);
    // A restart re-lists and reconciles every finished request again: still no writes.
    await leader.stop();
    running.splice(running.indexOf(leader), 1);
    const fresh = await start('after-restart');
    await waitFor('new leader', async () => (await holder()) === 'after-restart', 30_000);
    // A finished request is requeued for its retention deadline, so its reconciles count as requeue_after.
    await waitFor(
      'reconciled everything',
      async () => {
        const text = await scrape(`${fresh.metricsUrl}/metrics`);
        const done = ['success', 'requeue_after'].map(
          (r) => metricValue(text, 'controller_runtime_reconcile_total', { controller: 'remediationrequest', result: r }) || 0,
        );
        return done[0]! + done[1]! >= 4;
      },
      20_000,
    );
    await sleep(1_000);
    expect(await apiWrites()).toBe(before);
  }, 120_000);
});
