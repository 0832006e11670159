/**
 * KubeEventRecorder against the real kube-apiserver: the events.k8s.io/v1 bodies it
 * writes pass the API server's validation (required reportingController,
 * reportingInstance, action, a microsecond eventTime), repeats become one Event with a
 * series, and the same Events read back through core/v1 (whose `count` does not carry
 * the series), where `kubectl get events`
 * and the other tests' harness look.
 */
import { CoreV1Api, EventsV1Api } from '@kubernetes/client-node';
import { KubeEventRecorder } from '../../src/kube/resources.js';
import { systemClock } from '../../src/runtime/clock.js';
import { Resources, testbedFromEnv } from './harness.js';

const NS = 'events-v1';

describe('KubeEventRecorder on the real API server', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());

  beforeAll(async () => {
    await res.namespace(NS);
  });

  test('records, aggregates into a series, and is visible through both Event APIs', async () => {
    const core = tb.admin().makeApiClient(CoreV1Api);
    const cm = await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'target' }, data: { a: 'b' } } });
    const { name, namespace, uid, resourceVersion } = cm.metadata ?? {};
    const object = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, uid, resourceVersion } };
    const errors: unknown[] = [];
    const rec = new KubeEventRecorder(tb.admin(), 'remediator', systemClock, (e) => errors.push(e), {
      reportingInstance: 'remediator-7d9f-abc',
    });

    await rec.record(object, 'Warning', 'AccessDenied', 'grant ssm:SendCommand on the document');
    await rec.record(object, 'Warning', 'AccessDenied', 'grant ssm:SendCommand on the document');
    await rec.record(object, 'Warning', 'AccessDenied', 'grant ssm:SendCommand on the document');
    await rec.record(object, 'Normal', 'CommandSent', 'sent to 1 instance');
    await rec.flush();
    expect(errors).toEqual([]);

    const events = (await tb.admin().makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: NS })).items.filter(
      (e) => e.regarding?.uid === cm.metadata?.uid,
    );
    expect(events.map((e) => e.reason).sort()).toEqual(['AccessDenied', 'CommandSent']);
    const denied = events.find((e) => e.reason === 'AccessDenied')!;
    expect(denied).toMatchObject({
      type: 'Warning',
      note: 'grant ssm:SendCommand on the document',
      reportingController: 'remediator.dev/remediator',
      reportingInstance: 'remediator-7d9f-abc',
      regarding: { kind: 'ConfigMap', name: 'target', namespace: NS },
      series: { count: 3 },
    });
    expect(events.find((e) => e.reason === 'CommandSent')?.series).toBeUndefined();

    const legacy = await core.listNamespacedEvent({ namespace: NS, fieldSelector: 'involvedObject.name=target' });
    expect(legacy.items.find((e) => e.reason === 'AccessDenied')).toMatchObject({
      message: 'grant ssm:SendCommand on the document',
      type: 'Warning',
    });
  });

  test('a burst of Normal Events beyond the budget is held and written as one that says how many; Warnings are not held', async () => {
    const core = tb.admin().makeApiClient(CoreV1Api);
    const objects = [];
    for (let i = 0; i < 30; i++) {
      const cm = await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: `burst-${i}` } } });
      const { name, namespace, uid, resourceVersion } = cm.metadata ?? {};
      objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, uid, resourceVersion } });
    }
    const results: string[] = [];
    const rec = new KubeEventRecorder(tb.admin(), 'remediator', systemClock, () => undefined, {
      budget: { capacity: 5, perSecond: 0 },
      holdMs: 1_000,
      onResult: (r) => results.push(r),
    });
    for (const o of objects) await rec.record(o, 'Normal', 'CommandSucceeded', `succeeded on ${o.metadata.name}`);
    for (const o of objects.slice(0, 3)) await rec.record(o, 'Warning', 'CommandFailed', `failed on ${o.metadata.name}`);
    const started = Date.now();
    // Held, not lost: written once the hold is over, without a flush.
    const list = async () =>
      (await tb.admin().makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: NS })).items.filter((e) =>
        e.regarding?.name?.startsWith('burst-'),
      );
    let events = await list();
    while (events.filter((e) => e.reason === 'CommandSucceeded').length < 6 && Date.now() - started < 20_000) {
      await new Promise((r) => setTimeout(r, 200));
      events = await list();
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    const ok = events.filter((e) => e.reason === 'CommandSucceeded');
    expect(ok).toHaveLength(6); // 5 within the budget, then one for the other 25
    expect(ok.map((e) => e.note)).toContain(
      'succeeded on burst-29 (and 24 more CommandSucceeded Event(s) on ConfigMap objects in events-v1, combined into this one during a burst)',
    );
    expect(events.filter((e) => e.reason === 'CommandFailed')).toHaveLength(3);
    await rec.flush();
    expect(results.filter((r) => r === 'written')).toHaveLength(9);
    expect(results.filter((r) => r === 'coalesced')).toHaveLength(24);
    expect(results.filter((r) => r === 'dropped')).toHaveLength(0);
  });
});
