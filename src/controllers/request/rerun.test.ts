/**
 * The run guard's record: a run key is the request's identity (namespace, name, spec
 * without the approval), it is stored with the intent, survives the entry's pruning as a
 * run mark, a reload by a new leader, and a write conflict; marks are bounded.
 */
import type { RemediationRequest } from '../../api/v1alpha1/index.js';
import { MemoryLedgerStorage } from '../../fakes/ledger-memory.js';
import type { LedgerDocument } from '../../api/ledger/v1.js';
import { ExecutionLedger } from '../ledger.js';
import { alreadyRan, keepRunMarks, MAX_RUN_MARKS, ranBefore, RUN_MARK_RETENTION_MS, runKeyOf, runMark } from './rerun.js';

const DAY = 24 * 3_600_000;

const request = (uid: string, spec: Partial<RemediationRequest['spec']> = {}, name = 'maintenance'): RemediationRequest => ({
  metadata: { name, namespace: 'web', uid },
  spec: {
    policyRef: { name: 'restart' },
    alert: { source: 'generic', name: 'Maintenance', status: 'firing', labels: { instance_id: 'i-1', service: 'nginx' } },
    requestedBy: 'system:serviceaccount:flux-system:kustomize-controller',
    ...spec,
  },
});

describe('runKeyOf', () => {
  test('the same request re-created has the same key, whatever the field order or the approval', () => {
    const a = request('u1');
    const b = request('u2', { approval: { decision: 'Approved', approver: 'alice', planDigest: 'x' } });
    const reordered = { ...a, spec: { requestedBy: a.spec.requestedBy, alert: { ...a.spec.alert }, policyRef: a.spec.policyRef } };
    expect(runKeyOf(b)).toBe(runKeyOf(a));
    expect(runKeyOf(reordered as RemediationRequest)).toBe(runKeyOf(a));
  });

  test('a new name, namespace or spec is a new request', () => {
    const key = runKeyOf(request('u1'));
    expect(runKeyOf(request('u1', {}, 'maintenance-2'))).not.toBe(key);
    expect(runKeyOf({ ...request('u1'), metadata: { name: 'maintenance', namespace: 'api', uid: 'u1' } })).not.toBe(key);
    expect(
      runKeyOf(request('u1', { alert: { source: 'generic', name: 'Maintenance', status: 'firing', labels: { instance_id: 'i-2' } } })),
    ).not.toBe(key);
  });
});

describe('the run guard on the ledger', () => {
  let now = Date.parse('2026-12-01T00:00:00Z');
  const clock = { now: () => now };

  test('an earlier life is recognised from its entry, then from its run mark after pruning and a reload', async () => {
    const storage = new MemoryLedgerStorage();
    const ledger = new ExecutionLedger(storage, clock);
    const first = request('u1');
    ledger.record(
      'web',
      'restart',
      { windowMs: 60_000, lastOutcomes: 1 },
      { uid: 'u1', request: 'maintenance', runbook: 'r', targets: ['i-1'], at: now, ...runMark(first) },
    );
    await ledger.persist('web', 'restart');
    ledger.finish('web', 'restart', 'u1', 'Succeeded', now + 1_000, {});
    // The request itself is not its own earlier life.
    expect(ranBefore(ledger, first, now)).toBeUndefined();
    const copy = request('u2');
    expect(ranBefore(ledger, copy, now)).toMatch(/already ran as UID u1, intent recorded .*; it ended Succeeded; nothing was run again/);

    // Later executions push the entry out of the breaker's history, past every window.
    now += 2 * DAY;
    ledger.record(
      'web',
      'restart',
      { windowMs: 60_000, lastOutcomes: 1 },
      { uid: 'u9', request: 'other', runbook: 'r', targets: [], at: now },
    );
    ledger.finish('web', 'restart', 'u9', 'Succeeded', now, {});
    await ledger.persist('web', 'restart');
    expect(ledger.entry('web', 'restart', 'u1')).toBeUndefined();
    expect(ledger.runMarks('web', 'restart')).toEqual([
      { key: runKeyOf(first), request: 'maintenance', uid: 'u1', at: now - 2 * DAY, outcome: 'Succeeded' },
    ]);

    // A new leader loads it from storage before any reconcile.
    const next = new ExecutionLedger(storage, clock);
    await next.load();
    expect(ranBefore(next, copy, now)).toContain('already ran as UID u1');
    expect(ranBefore(next, request('u3', {}, 'maintenance-2'), now)).toBeUndefined();
  });

  test('an intent recorded but never sent (a crash before the status write) still refuses the copy: never twice', () => {
    const ledger = new ExecutionLedger(new MemoryLedgerStorage(), clock);
    ledger.record(
      'web',
      'restart',
      { windowMs: 0, lastOutcomes: 1 },
      { uid: 'u1', request: 'maintenance', runbook: 'r', targets: [], at: now, ...runMark(request('u1')) },
    );
    expect(ranBefore(ledger, request('u2'), now)).toMatch(/already ran as UID u1, intent recorded [^;]*; nothing was run again/);
  });

  test('a write conflict with another leader keeps both sides’ marks', async () => {
    const storage = new MemoryLedgerStorage();
    const a = new ExecutionLedger(storage, clock);
    const b = new ExecutionLedger(storage, clock);
    const mark = (uid: string) => ({ key: `k-${uid}`, request: uid, uid, at: now });
    a.setBreaker('web', 'restart', { windowMs: 0, lastOutcomes: 1 }, now);
    await a.persist('web', 'restart');
    await b.load();
    const docOf = (l: ExecutionLedger) => (l as unknown as { docs: Map<string, LedgerDocument> }).docs.get('web/restart')!;
    docOf(a).runs = [mark('ua')];
    a.setBreaker('web', 'restart', { windowMs: 0, lastOutcomes: 1 }, now + 1);
    await a.persist('web', 'restart');
    docOf(b).runs = [mark('ub')];
    b.setBreaker('web', 'restart', { windowMs: 0, lastOutcomes: 1 }, now + 2);
    await b.persist('web', 'restart');
    expect(
      docOf(b)
        .runs?.map((m) => m.uid)
        .sort(),
    ).toEqual(['ua', 'ub']);
  });
});

describe('keepRunMarks', () => {
  const now = Date.parse('2026-12-01T00:00:00Z');
  const doc = (): LedgerDocument => ({ namespace: 'web', policy: 'p', retention: { windowMs: 0, lastOutcomes: 1 }, entries: [] });

  test('marks expire after RUN_MARK_RETENTION_MS and are capped, newest kept', () => {
    const d = doc();
    const dropped = Array.from({ length: MAX_RUN_MARKS + 5 }, (_, i) => ({
      uid: `u${i}`,
      request: `r${i}`,
      runbook: 'rb',
      targets: [],
      at: now - RUN_MARK_RETENTION_MS + 1_000 + i,
      runKey: `k${i}`,
    }));
    keepRunMarks(
      d,
      [...dropped, { uid: 'old', request: 'old', runbook: 'rb', targets: [], at: now - RUN_MARK_RETENTION_MS - 1, runKey: 'ko' }],
      now,
    );
    expect(d.runs).toHaveLength(MAX_RUN_MARKS);
    expect(d.runs?.[0]?.uid).toBe('u5');
    expect(d.runs?.some((m) => m.uid === 'old')).toBe(false);
    keepRunMarks(d, [], now + RUN_MARK_RETENTION_MS);
    expect(d.runs).toBeUndefined();
  });

  test('entries without a run key (recorded before the guard existed) leave no mark', () => {
    const d = doc();
    keepRunMarks(d, [{ uid: 'u', request: 'r', runbook: 'rb', targets: [], at: now }], now);
    expect(d.runs).toBeUndefined();
    expect(alreadyRan(request('u2'), [], [], now)).toBeUndefined();
  });
});
