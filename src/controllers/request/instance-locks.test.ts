/**
 * One remediation per instance at a time, through the real reconciler on the shared
 * fakes (src/fakes): a second request for an instance another request is executing on
 * waits Approved (reason InstanceBusy) and sends nothing until the first ended; a new
 * controller process (a restart) keeps the lock, because it is the ledger entry.
 */
import { FakeSns, FakeSsm } from '../../fakes/aws.js';
import { FakeApiServer } from '../../fakes/cluster.js';
import { catalog, createRequest, FakeController, instanceIds, uidOf } from '../../fakes/controller.js';
import { MemoryLedgerStorage } from '../../fakes/ledger-memory.js';

/** A fresh simulated cluster and AWS on `clock`, with the shared catalogue. */
function worldOn(clock: { now: () => number }) {
  const { policies, runbooks } = catalog();
  return {
    server: new FakeApiServer(),
    ssm: new FakeSsm(clock),
    sns: new FakeSns(clock),
    storage: new MemoryLedgerStorage(),
    clock,
    policies,
    runbooks,
  };
}

test('a second request for a busy instance waits, survives a restart waiting, and runs once the first ended', async () => {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const clock = { now: () => now };
  const world = { ...worldOn(clock), fleet: { ids: instanceIds('f', 4), tags: { Fleet: 'sim' } } };
  world.ssm.runMs = 60_000; // the first request's command runs a minute
  const first = createRequest(world.server, 0, 'ssm');
  const second = createRequest(world.server, 10, 'ssm'); // the same instance (i % 10)
  const phase = (key: string) => world.server.objects.get(key)?.status;
  const drive = async (c: FakeController, key: string, times: number) => {
    for (let i = 0; i < times; i++) {
      c.cache.sync();
      await c.reconcile(key).catch(() => undefined);
      now += 500;
    }
  };

  const a = new FakeController('a', world);
  await a.start();
  await drive(a, first, 4);
  expect(phase(first)?.phase).toBe('Executing');
  await drive(a, second, 4);
  expect(phase(second)).toMatchObject({ phase: 'Approved', reason: 'InstanceBusy' });
  expect(phase(second)?.message).toMatch(/being remediated: .* by sim\/r0 \(policy one\)/);
  expect(world.ssm.sentFor(`remediator:${uidOf(10)}`)).toHaveLength(0);

  // A restart: a new process loads the ledger and still sees the lock.
  const b = new FakeController('b', world);
  await b.start();
  await drive(b, second, 2);
  expect(phase(second)?.reason).toBe('InstanceBusy');
  expect(world.ssm.sentFor(`remediator:${uidOf(10)}`)).toHaveLength(0);

  // The first ends; the second goes.
  now += 60_000;
  await drive(b, first, 3);
  expect(phase(first)?.phase).toBe('Succeeded');
  await drive(b, second, 4);
  expect(world.ssm.sentFor(`remediator:${uidOf(10)}`)).toHaveLength(1);
});

test('a holder that ended without settling (its intent in the ledger, no finalizer) releases its instances', async () => {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const clock = { now: () => now };
  const world = worldOn(clock);
  const first = createRequest(world.server, 0, 'ssm');
  const second = createRequest(world.server, 10, 'ssm'); // the same instance (i % 10)
  const a = new FakeController('a', world);
  await a.start();
  // r0's intent reached the ledger; its Executing write and its finalizer did not; then
  // its alert resolved and it ended Cancelled, holding no finalizer.
  a.ledger.record(
    'sim',
    'one',
    { windowMs: 0, lastOutcomes: 10 },
    {
      uid: uidOf(0),
      request: 'r0',
      runbook: 'restart',
      targets: [instanceIds('a', 10)[0]!],
      at: now,
    },
  );
  await a.ledger.persist('sim', 'one');
  world.server.patch(first, (o) => {
    o.status = { phase: 'Cancelled', reason: 'AlertResolved', message: 'the alert resolved before execution; nothing was run' };
  });
  const drive = async (key: string, times: number) => {
    for (let i = 0; i < times; i++) {
      a.cache.sync();
      await a.reconcile(key).catch(() => undefined);
      now += 500;
    }
  };
  await drive(second, 4);
  expect(world.server.objects.get(second)?.status?.reason).not.toBe('InstanceBusy');
  expect(world.ssm.sentFor(`remediator:${uidOf(10)}`)).toHaveLength(1);
  // And the ended request's reconcile drops its unfinished entry from the ledger.
  await drive(first, 1);
  expect(a.ledger.entry('sim', 'one', uidOf(0))).toBeUndefined();
  expect(world.storage.docs.get('sim/one')?.entries.some((e) => e.uid === uidOf(0))).toBe(false);
});

test('a waiter keeps its status across a hand-over between holders: no write per hand-over (issue 24)', async () => {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const clock = { now: () => now };
  const world = { ...worldOn(clock), fleet: { ids: instanceIds('f', 4), tags: { Fleet: 'sim' } } };
  world.ssm.runMs = 60_000;
  // Three requests about one instance (i % 10): r0 runs, r10 and r20 wait.
  const [r0, r10, r20] = [0, 10, 20].map((i) => createRequest(world.server, i, 'ssm')) as [string, string, string];
  const status = (key: string) => world.server.objects.get(key)?.status;
  const version = (key: string) => world.server.objects.get(key)?.metadata?.resourceVersion;
  const c = new FakeController('a', world);
  await c.start();
  const drive = async (keys: string[], times: number) => {
    for (let i = 0; i < times; i++)
      for (const key of keys) {
        c.cache.sync();
        await c.reconcile(key).catch(() => undefined);
        now += 250;
      }
  };
  await drive([r0], 4);
  expect(status(r0)?.phase).toBe('Executing');
  await drive([r10, r20], 4);
  expect(status(r10)).toMatchObject({ phase: 'Approved', reason: 'InstanceBusy' });
  expect(status(r20)).toMatchObject({ phase: 'Approved', reason: 'InstanceBusy' });
  const message = status(r20)?.message;
  expect(message).toMatch(/by sim\/r0 /);

  // r0 ends; r10 takes the instance (its command runs), r20 keeps waiting.
  now += 60_000;
  await drive([r0], 3);
  expect(status(r0)?.phase).toBe('Succeeded');
  await drive([r10], 4);
  expect(status(r10)?.phase).toBe('Executing');
  const before = version(r20);
  await drive([r20], 4);
  expect(status(r20)).toMatchObject({ phase: 'Approved', reason: 'InstanceBusy', message });
  expect(version(r20)).toBe(before);
  expect(world.ssm.sentFor(`remediator:${uidOf(20)}`)).toHaveLength(0);
});
