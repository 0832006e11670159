import type { AlertPolicy } from '../api/v1alpha1/index.js';
import { instanceBusyBlock, instanceHolders } from './instance-locks.js';
import { ExecutionLedger } from './ledger.js';
import { MemoryLedgerStorage } from '../fakes/ledger-memory.js';

const T0 = Date.parse('2026-12-06T22:00:00Z');
const retention = { windowMs: 3_600_000, lastOutcomes: 10 };
const always = () => true;
const policy = (whenInstanceBusy?: 'Wait' | 'Skip'): AlertPolicy => ({
  metadata: { name: 'reboot', namespace: 'ops' },
  spec: { targets: {}, runbookRef: { name: 'rb' }, ...(whenInstanceBusy && { safety: { whenInstanceBusy } }) },
});

describe('instance locks (the ledger entries of running executions)', () => {
  test('a restart policy in one namespace holds its instances against a reboot policy in another, across a restart', async () => {
    const storage = new MemoryLedgerStorage();
    const a = new ExecutionLedger(storage, { now: () => T0 });
    a.record('web', 'restart', retention, { uid: 'u1', request: 'restart-1', runbook: 'restart', targets: ['i-1', 'i-2'], at: T0 });
    await a.persist('web', 'restart');
    const held = a.holders(['i-2', 'i-3'], 'u2', always);
    expect([...held.keys()]).toEqual(['i-2']);
    expect(held.get('i-2')).toEqual({ namespace: 'web', policy: 'restart', request: 'restart-1', uid: 'u1', since: T0 });

    // A new process (a restart, a new leader) loads the same lock before any reconcile.
    const b = new ExecutionLedger(storage, { now: () => T0 });
    await b.load();
    expect([...b.holders(['i-2'], 'u2', always).keys()]).toEqual(['i-2']);

    // The execution ends: the instance is free.
    b.finish('web', 'restart', 'u1', 'Succeeded', T0 + 1000, {});
    expect(b.holders(['i-2'], 'u2', always).size).toBe(0);
  });

  test('a request never waits for itself, and an entry whose request is gone holds nothing', () => {
    const docs = [{ namespace: 'web', policy: 'restart', entries: [{ uid: 'u1', request: 'r1', runbook: 'x', targets: ['i-1'], at: T0 }] }];
    expect(instanceHolders(docs, ['i-1'], 'u1', always).size).toBe(0);
    expect(instanceHolders(docs, ['i-1'], 'u2', () => false).size).toBe(0);
    expect(instanceHolders(docs, ['i-1'], 'u2', (ns, name, uid) => ns === 'web' && name === 'r1' && uid === 'u1').size).toBe(1);
  });

  test('Wait by default, Skip when the policy says; the message names who holds what', () => {
    const holders = new Map([['i-2', { namespace: 'web', policy: 'restart', request: 'restart-1', uid: 'u1', since: T0 }]]);
    expect(instanceBusyBlock(policy(), new Map())).toBeUndefined();
    expect(instanceBusyBlock(policy(), holders)).toEqual({
      action: 'Wait',
      reason: 'InstanceBusy',
      message: 'instances are being remediated: i-2 by web/restart-1 (policy restart); waiting until they are free',
    });
    expect(instanceBusyBlock(policy('Skip'), holders)?.action).toBe('Skip');
  });
});
