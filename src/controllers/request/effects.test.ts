/**
 * The effects of each Executing handler (ssm.ts, sns.ts, notify.ts) through the real
 * reconciler on the shared fakes (src/fakes), with the request cache lagging as it does
 * under load: the two defects of issue 20 as fast tests, and what a lost answer, a
 * refusal, or a predecessor's unfinished publish leads to.
 */
import type { RemediationRequest } from '../../api/v1alpha1/index.js';
import { FakeSns, FakeSsm } from '../../fakes/aws.js';
import { FakeApiServer, LostResponseError } from '../../fakes/cluster.js';
import {
  catalog,
  createRequest,
  FakeController,
  FIFO_TOPIC,
  FLEET_TAGS,
  instanceIds,
  NOTIFY_TOPIC,
  type RequestKind,
  TOPIC,
  uidOf,
} from '../../fakes/controller.js';
import { MemoryLedgerStorage } from '../../fakes/ledger-memory.js';

function setup(kind: RequestKind, opts: { notify?: boolean; notifyTopic?: string } = {}) {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const clock = { now: () => now };
  const { policies, runbooks } = catalog(opts);
  const world = {
    server: new FakeApiServer(),
    ssm: new FakeSsm(clock),
    sns: new FakeSns(clock),
    storage: new MemoryLedgerStorage(),
    clock,
    policies,
    runbooks,
    fleet: { ids: instanceIds('f', 60), tags: FLEET_TAGS },
  };
  const key = createRequest(world.server, 0, kind);
  const advance = (ms: number) => {
    now += ms;
  };
  const stored = (): RemediationRequest => world.server.objects.get(key)!;
  return { world, key, advance, stored, uid: uidOf(0) };
}

/** Reconciles `key` up to `times`, moving the clock by each requeue; delivers watch events only when `lag` is off. */
async function drive(c: FakeController, key: string, advance: (ms: number) => void, times: number, lag: boolean): Promise<void> {
  for (let i = 0; i < times; i++) {
    if (!lag) c.cache.sync();
    const r = await c.reconcile(key).catch((e: unknown) => ({ error: e }));
    const wait = r && 'requeueAfterMs' in r ? r.requeueAfterMs : undefined;
    advance(Math.min(wait ?? 5, 2_000));
  }
}

describe('SNS runbook message', () => {
  test('published once while the cache still shows the Executing version (issue 20, defect 1)', async () => {
    const { world, key, advance, stored } = setup('sns');
    const c = new FakeController('c', world);
    await c.start();
    await c.reconcile(key); // plans, records the intent, publishes, writes Succeeded
    expect(stored().status?.phase).toBe('Succeeded');
    // The watch lags: the cache still holds the versions before our writes.
    c.cache.deliver();
    expect(c.cache.get(key)?.status?.phase).not.toBe('Succeeded');
    await drive(c, key, advance, 5, true);
    expect(world.sns.delivered).toHaveLength(1);
    await drive(c, key, advance, 5, false);
    expect(world.sns.delivered).toHaveLength(1);
    expect(stored().status?.execution?.sns).toMatchObject({ messageId: 'msg-1', attempts: 1 });
  });

  test('a slow Publish answer (the watch event of the intent arrives meanwhile) publishes once', async () => {
    const { world, key, advance, stored } = setup('sns');
    const c = new FakeController('c', world);
    await c.start();
    let release!: () => void;
    const gate = world.sns.gate;
    world.sns.gate = (call) => new Promise((r) => (release = () => r(gate(call))));
    const first = c.reconcile(key);
    await new Promise((r) => setImmediate(r));
    c.cache.sync(); // the intent's event arrives while Publish is outstanding
    release();
    await first;
    world.sns.gate = gate;
    await drive(c, key, advance, 6, true);
    await drive(c, key, advance, 6, false);
    expect(world.sns.delivered).toHaveLength(1);
    expect(stored().status?.phase).toBe('Succeeded');
  });

  test('standard topic, answer lost: the request fails PublishUnconfirmed and nothing is published again', async () => {
    const { world, key, advance, stored } = setup('sns');
    const c = new FakeController('c', world);
    await c.start();
    world.sns.lostAnswers = 1;
    await drive(c, key, advance, 8, false);
    expect(world.sns.delivered).toHaveLength(1);
    expect(world.sns.calls).toBe(1);
    expect(stored().status).toMatchObject({ phase: 'Failed', reason: 'PublishUnconfirmed', execution: { sns: { attempts: 1 } } });
    expect(stored().status?.message).toContain(TOPIC);
  });

  test('FIFO topic, answer lost: published again with the same deduplication id; SNS keeps one message', async () => {
    const { world, key, advance, stored } = setup('fifo');
    const c = new FakeController('c', world);
    await c.start();
    world.sns.lostAnswers = 1;
    await drive(c, key, advance, 8, false);
    expect(world.sns.calls).toBe(2);
    expect(world.sns.delivered).toHaveLength(1);
    expect(world.sns.delivered[0]?.input.topicArn).toBe(FIFO_TOPIC);
    expect(stored().status).toMatchObject({ phase: 'Succeeded', execution: { sns: { messageId: 'msg-1', attempts: 2 } } });
  });

  test("a successor finds a predecessor's intent without a message id: on a standard topic it does not publish", async () => {
    const { world, key, advance, stored } = setup('sns');
    const first = new FakeController('first', world);
    await first.start();
    world.sns.gate = () => new Promise(() => undefined); // the first controller dies with its Publish outstanding
    void first.reconcile(key);
    await new Promise((r) => setImmediate(r));
    expect(stored().status?.phase).toBe('Executing');
    world.sns.gate = (call) => Promise.resolve(call.apply());
    const second = new FakeController('second', world);
    await second.start();
    await drive(second, key, advance, 6, false);
    expect(world.sns.calls).toBe(0);
    expect(stored().status?.reason).toBe('PublishUnconfirmed');
  });
});

describe('SSM fleet', () => {
  test('a refused chunk is never sent again from a stale cache, and status says exactly what went out (issue 20, defect 2)', async () => {
    const { world, key, advance, stored, uid } = setup('fleet');
    world.ssm.refusals.set(`remediator:${uid}/1`, ['AccessDenied']); // transient: a second try would be accepted
    const c = new FakeController('c', world);
    await c.start();
    // Lagging cache throughout, then caught up.
    await drive(c, key, advance, 20, true);
    await drive(c, key, advance, 20, false);
    expect(world.ssm.commands.map((x) => x.comment)).toEqual([`remediator:${uid}/0`]);
    expect(world.ssm.calls).toEqual([`c remediator:${uid}/0 accepted cmd-1`, `c remediator:${uid}/1 AccessDenied`]);
    const ssm = stored().status?.execution?.ssm;
    expect(stored().status?.phase).toBe('Failed');
    expect(ssm?.commands?.[0]?.commandId).toBe('cmd-1');
    expect(ssm?.commands?.[1]?.refused?.reason).toBe('AccessDenied');
    expect(ssm?.invocations?.filter((i) => i.status === 'NotSent')).toHaveLength(10);
    expect(ssm?.invocations?.filter((i) => i.status === 'Success')).toHaveLength(50);
  });

  test('a status write whose answer was lost after a send: the next look reads the server and sends nothing again', async () => {
    const { world, key, advance, stored } = setup('fleet');
    const c = new FakeController('c', world);
    await c.start();
    let lose = 0;
    const gate = world.server.gate;
    world.server.gate = (call) => {
      // The write recording the first command id: stored, answer lost.
      if (call.label.startsWith('replaceStatus') && world.ssm.commands.length === 1 && lose++ === 0) {
        call.apply();
        return Promise.reject(new LostResponseError(call.label));
      }
      return gate(call);
    };
    await drive(c, key, advance, 30, false);
    expect(world.ssm.commands).toHaveLength(2);
    expect(stored().status?.phase).toBe('Succeeded');
    expect(stored().status?.execution?.ssm?.commands?.map((x) => x.commandId)).toEqual(['cmd-1', 'cmd-2']);
  });
});

describe('notifications', () => {
  test('each announced phase is recorded pending with the phase, then published once, on a lagging cache too', async () => {
    const { world, key, advance, stored, uid } = setup('ssm', { notify: true });
    const c = new FakeController('c', world);
    await c.start();
    const written: RemediationRequest[] = [];
    world.server.onChange = (_before, after) => after && written.push(after);
    await c.reconcile(key);
    // The intent write carries the pending announcement of Executing; the publication follows.
    expect(written.find((w) => w.status?.phase === 'Executing')?.status?.notifications).toEqual([{ phase: 'Executing' }]);
    await drive(c, key, advance, 10, true);
    await drive(c, key, advance, 10, false);
    expect(stored().status?.phase).toBe('Succeeded');
    expect(world.sns.delivered.map((m) => m.input.deduplicationId)).toEqual([`${uid}-Executing`, `${uid}-Succeeded`]);
    expect(stored().status?.notifications?.every((n) => n.messageId && n.sentAt)).toBe(true);
  });

  test('a notification whose answer was lost is recorded as unconfirmed, not published twice (standard topic)', async () => {
    const { world, key, advance, stored, uid } = setup('ssm', { notify: true });
    const c = new FakeController('c', world);
    await c.start();
    world.sns.lostAnswers = 1;
    await drive(c, key, advance, 12, false);
    expect(world.sns.deliveredFor(`${uid}-Executing`)).toHaveLength(1);
    expect(world.sns.calls).toBe(2); // Executing (lost), Succeeded
    const executing = stored().status?.notifications?.find((n) => n.phase === 'Executing');
    expect(executing?.error).toContain('may have been published, and is not published again');
    expect(stored().status?.phase).toBe('Succeeded');
  });

  test('on a FIFO notify topic the lost one is published again with its deduplication id', async () => {
    const { world, key, advance, stored, uid } = setup('ssm', { notify: true, notifyTopic: `${NOTIFY_TOPIC}.fifo` });
    const c = new FakeController('c', world);
    await c.start();
    world.sns.lostAnswers = 1;
    await drive(c, key, advance, 12, false);
    expect(world.sns.deliveredFor(`${uid}-Executing`)).toHaveLength(1);
    expect(stored().status?.notifications?.find((n) => n.phase === 'Executing')?.messageId).toBeDefined();
  });
});
