/**
 * Rollouts against the real API server and the controller, through the contract gateway
 * (docs/rollouts.md). What runs end to end on this branch:
 *
 *  - the API server takes the new fields and refuses the values SSM would (a wave of 0,
 *    101%, a blank alarm name);
 *  - a policy can only make the rollout more cautious: its lower maxConcurrency and
 *    maxErrors are in the approved plan and on the wire, a higher one changes nothing;
 *  - a runbook that declares waves is Ready, and its request goes out wave by wave.
 *
 * The fleet-wide limits, verification, alarm aborts, cancels, instance locks and crash
 * resumption through the controller are in rollout-run.test.ts; the rules with the real
 * cloud layer and the emulator's view alone in rollout-cloud.test.ts.
 */
import type { AlertPolicy, RemediationRequest, Runbook } from '../../src/api/v1alpha1/index.js';
import { seedInstances } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy, type RequestView } from '../testbed/faultproxy.js';
import { assertNoContractViolations } from '../testbed/gateway.js';
import { Resources, restartRunbook, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';
import { suffix } from './install-chart.js';

const REGION = 'ap-southeast-3';
const NS = 'rollout';
const id = suffix();

describe('rollouts through the controller', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  const started = new Date();
  let proxy: FaultProxy;
  let controller: RunningController | undefined;
  let n = 0;

  const comment = (view: RequestView) => (view.input as { Comment?: string } | undefined)?.Comment ?? '';
  const sendsFor = (uid: string) => proxy.calls('SendCommand').filter((c) => comment(c).startsWith(`remediator:${uid}`));

  async function setup(count: number, ssm: Partial<NonNullable<Runbook['spec']['action']['ssm']>>, safety?: AlertPolicy['spec']['safety']) {
    const tag = `rollout-${++n}-${id}`;
    const ids = await seedInstances(tb.motoEndpoint, { region: REGION, count, tags: { Fleet: tag } });
    const base = restartRunbook();
    const rb = `rollout-${n}-${id}`;
    await res.createRunbook(rb, {
      ...base,
      scope: { tagSelector: { Fleet: tag }, maxTargets: 150 },
      action: { ssm: { ...base.action.ssm!, ...ssm } },
    });
    const p = `p${n}`;
    await res.createPolicy(NS, p, {
      runbookRef: { name: rb },
      inputs: { service: 'nginx' },
      targets: { tagSelector: { Fleet: tag }, maxTargets: 150 },
      risk: 'Low',
      ...(safety && { safety }),
    });
    return { ids, rb, policy: p };
  }

  async function request(policyName: string): Promise<RemediationRequest> {
    return res.createRequest(NS, `r${++n}`, {
      policyRef: { name: policyName },
      alert: { source: 'generic', name: 'Down', status: 'firing' },
    });
  }

  beforeAll(async () => {
    await res.namespace(NS);
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
    controller = await startController(tb, { region: REGION, namespace: NS, name: 'rollout', awsEndpoint: proxy.endpoint });
  });

  afterAll(async () => {
    await controller?.stop();
    await proxy?.stop();
    await assertNoContractViolations(tb.motoEndpoint, { region: REGION, since: started });
  });

  test('the API server takes a rollout and refuses what SSM or the rules would', async () => {
    const ok = await res.createRunbook(`schema-ok-${id}`, {
      ...restartRunbook(),
      action: {
        ssm: {
          ...restartRunbook().action.ssm!,
          rollout: {
            waves: [{ size: '1' }, { size: '25%' }],
            pauseBetweenWaves: '30s',
            verify: { within: '2m', metric: { namespace: 'CWAgent', metricName: 'errors', operator: '<', threshold: 1 } },
            alarms: ['fleet-5xx'],
          },
        },
      },
    });
    expect(ok.spec.action.ssm?.rollout?.ignorePollAlarmFailure).toBe(false);
    for (const [what, rollout] of [
      ['a wave of 0', { waves: [{ size: '0' }] }],
      ['a wave of 101%', { waves: [{ size: '101%' }] }],
      ['a blank alarm name', { alarms: ['   '] }],
      ['six alarms', { alarms: ['a', 'b', 'c', 'd', 'e', 'f'] }],
    ] as const) {
      const err = await res
        .createRunbook(`schema-bad-${++n}-${id}`, {
          ...restartRunbook(),
          action: { ssm: { ...restartRunbook().action.ssm!, rollout: rollout as never } },
        })
        .then(
          () => undefined,
          (e: { code?: number }) => e,
        );
      expect({ what, code: err?.code }).toEqual({ what, code: 422 });
    }
  });

  test('a policy only makes it more cautious: its lower limits are in the approved plan and on the wire', async () => {
    const { policy: lower } = await setup(
      3,
      { maxConcurrency: '10', maxErrors: '2' },
      { rollout: { maxConcurrency: '1', maxErrors: '0' } },
    );
    const rr = await request(lower);
    const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded', 60_000);
    expect(done.status?.plan?.ssm).toMatchObject({ maxConcurrency: '1', maxErrors: '0' });
    const [send] = sendsFor(rr.metadata!.uid!);
    expect(send?.input).toMatchObject({ MaxConcurrency: '1', MaxErrors: '0' });

    const { policy: higher } = await setup(
      3,
      { maxConcurrency: '10', maxErrors: '2' },
      { rollout: { maxConcurrency: '100', maxErrors: '100%' } },
    );
    const rr2 = await request(higher);
    const done2 = await res.waitForPhase(NS, rr2.metadata!.name!, 'Succeeded', 60_000);
    expect(done2.status?.plan?.ssm).toMatchObject({ maxConcurrency: '10', maxErrors: '2' });
  }, 120_000);

  test('a runbook with waves is Ready, and the approved plan of its request carries the rollout', async () => {
    const { rb, policy } = await setup(4, { rollout: { waves: [{ size: '1' }, { size: '50%' }] } });
    const ready = await waitFor(`runbook ${rb} Ready=True`, async () => {
      const r = await res.getRunbook(rb);
      const c = r.status?.conditions?.find((x) => x.type === 'Ready');
      return c?.status === 'True' ? c : undefined;
    });
    expect(ready.message ?? '').not.toMatch(/cannot execute rollouts/);
    const rr = await request(policy);
    const done = await res.waitForPhase(NS, rr.metadata!.name!, 'Succeeded', 90_000);
    expect(done.status?.plan?.ssm?.rollout?.waves).toEqual([1, 2, 1]);
    // One command per wave, in order, each sent once.
    expect(sendsFor(rr.metadata!.uid!).map((c) => comment(c))).toEqual([0, 1, 2].map((i) => `remediator:${rr.metadata!.uid}/${i}`));
    expect(done.status?.execution?.ssm?.rollout?.waves.map((w) => w.state)).toEqual(['Succeeded', 'Succeeded', 'Succeeded']);
  }, 120_000);
});
