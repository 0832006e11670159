import pino from 'pino';
import { parseRecord, verifyChain } from '../api/audit/v1.js';
import type { RemediationRequest } from '../api/v1alpha1/index.js';
import type { AuditEntryToWrite, AuditSink, StoredAuditEntry } from '../cloud/audit-sink.js';
import { Metrics } from '../observability/metrics.js';
import { AuditHeldError, AuditRecorder, auditRecordOf } from './audit.js';

/** A sink in memory that can be told to fail, or to lose the response of a write that landed. */
class MemorySink implements AuditSink {
  readonly location = 'memory';
  readonly writeAction = 'test:Write';
  readonly streams = new Map<string, StoredAuditEntry[]>();
  fail: 'before' | 'after' | undefined;

  async write(namespace: string, entry: AuditEntryToWrite): Promise<void> {
    if (this.fail === 'before') throw new Error('AccessDenied');
    const s = this.streams.get(namespace) ?? [];
    s.push({ text: entry.text, timestamp: entry.timestamp, where: `${namespace}#${s.length}` });
    this.streams.set(namespace, s);
    if (this.fail === 'after') throw new Error('socket hang up');
  }
  async read(namespace: string) {
    return [...(this.streams.get(namespace) ?? [])];
  }
  async last(namespace: string) {
    return this.streams.get(namespace)?.at(-1);
  }
  async namespaces() {
    return [...this.streams.keys()];
  }
  destroy() {}
}

const T0 = Date.parse('2026-12-06T10:00:00Z');

function request(uid: string, ns = 'ns'): RemediationRequest {
  return {
    metadata: { namespace: ns, name: `r-${uid}`, uid, creationTimestamp: '2026-12-06T09:00:00Z' },
    spec: {
      policyRef: { name: 'p' },
      alert: { source: 'generic', name: 'Down', labels: { instance_id: 'i-0123456789abcdef0' } },
      requestedBy: 'mallory',
    },
    status: {
      phase: 'Succeeded',
      reason: 'CommandSucceeded',
      completionTime: '2026-12-06T09:30:00Z',
      targets: ['i-0123456789abcdef0'],
      approval: { decision: 'Approved', approver: 'alice', planDigest: `sha256:${'a'.repeat(64)}` },
      conditions: [
        { type: 'Approved', status: 'True', reason: 'ApprovedByApprover', message: '', lastTransitionTime: '2026-12-06T09:10:00Z' },
        { type: 'Verified', status: 'True', reason: 'AlertResolved', message: 'resolved', lastTransitionTime: '2026-12-06T09:40:00Z' },
      ],
      plan: {
        digest: `sha256:${'a'.repeat(64)}`,
        runbook: { name: 'restart', generation: 1 },
        policyGeneration: 2,
        risk: 'Medium',
        targets: ['i-0123456789abcdef0'],
        region: 'eu-west-1',
        ssm: {
          documentName: 'AWS-RunShellScript',
          parameters: { commands: ['systemctl restart nginx'] },
          timeoutSeconds: 60,
          maxConcurrency: '1',
          maxErrors: '0',
        },
      },
      execution: {
        ssm: {
          documentName: 'AWS-RunShellScript',
          comment: `remediator:${uid}`,
          intentRecordedAt: '2026-12-06T09:11:00Z',
          commands: [
            { comment: `remediator:${uid}`, instanceIds: ['i-0123456789abcdef0'], commandId: 'cmd-1', requestedAt: '2026-12-06T09:11:01Z' },
          ],
          invocations: [{ instanceId: 'i-0123456789abcdef0', status: 'Success', responseCode: 0, stdoutTail: 'secret output' }],
        },
      },
    },
  } as RemediationRequest;
}

function setup(sink: AuditSink | undefined, objects: RemediationRequest[]) {
  const events: string[] = [];
  const metrics = new Metrics(false);
  const recorder = new AuditRecorder({
    sink,
    requests: { get: async (ns, name) => objects.find((o) => o.metadata?.namespace === ns && o.metadata?.name === name) },
    events: { record: async (_o, type, reason, message) => void events.push(`${type} ${reason} ${message}`) },
    metrics,
    clock: { now: () => T0 },
    logger: pino({ level: 'silent' }),
  });
  return { recorder, events, metrics };
}

describe('AuditRecorder', () => {
  test('the record says who asked, what was approved by whom and when, what ran where, and the verdict', () => {
    const r = auditRecordOf(request('u1'), '2026-12-06T10:00:00.000Z');
    expect(r).toMatchObject({
      request: { namespace: 'ns', name: 'r-u1', uid: 'u1', policy: 'p', requestedBy: 'mallory' },
      plan: { digest: `sha256:${'a'.repeat(64)}`, runbook: 'restart', region: 'eu-west-1', targets: ['i-0123456789abcdef0'] },
      approval: { decision: 'Approved', approver: 'alice', at: '2026-12-06T09:10:00Z' },
      execution: { ssm: { commands: [{ commandId: 'cmd-1', instanceIds: ['i-0123456789abcdef0'] }] } },
      instances: [{ instanceId: 'i-0123456789abcdef0', status: 'Success', responseCode: 0 }],
      verification: { verdict: 'Verified', reason: 'AlertResolved' },
      outcome: { phase: 'Succeeded', completionTime: '2026-12-06T09:30:00Z' },
    });
    // Command output may hold secrets and is large: it stays in SSM's own output location.
    expect(JSON.stringify(r)).not.toContain('secret output');
  });

  test('writes one chained record per request and per namespace', async () => {
    const sink = new MemorySink();
    const objects = [request('u1'), request('u2'), request('u3', 'other')];
    const { recorder } = setup(sink, objects);
    expect(await recorder.beforeDelete('ns', 'r-u1', 'u1')).toBe('written');
    expect(await recorder.beforeDelete('ns', 'r-u2', 'u2')).toBe('written');
    expect(await recorder.beforeDelete('other', 'r-u3', 'u3')).toBe('written');
    expect(await recorder.beforeDelete('ns', 'r-u2', 'u2')).toBe('already_written');
    const ns = await sink.read('ns');
    expect(ns.map((e) => parseRecord(e.text).sequence)).toEqual([1, 2]);
    expect(verifyChain(ns)).toMatchObject({ intact: true, records: 2 });
    expect(parseRecord((await sink.read('other'))[0]!.text).sequence).toBe(1);
  });

  test('a new process continues the chain it reads back from the sink, and does not write a record twice', async () => {
    const sink = new MemorySink();
    const objects = [request('u1'), request('u2')];
    await setup(sink, objects).recorder.beforeDelete('ns', 'r-u1', 'u1');
    // Restarted: the deletion of u1 had not happened yet; u1 is the sink's head.
    const { recorder, metrics } = setup(sink, objects);
    expect(await recorder.beforeDelete('ns', 'r-u1', 'u1')).toBe('already_written');
    expect(await recorder.beforeDelete('ns', 'r-u2', 'u2')).toBe('written');
    expect(verifyChain(await sink.read('ns'))).toMatchObject({ intact: true, records: 2, duplicates: [] });
    expect((await metrics.auditRecords.get()).values.map((v) => [v.labels.outcome, v.value])).toEqual([
      ['already_written', 1],
      ['written', 1],
    ]);
  });

  test('a failed write holds the deletion and says why; a lost response is found, not written again', async () => {
    const sink = new MemorySink();
    const objects = [request('u1'), request('u2')];
    const { recorder, events } = setup(sink, objects);
    sink.fail = 'before';
    await expect(recorder.beforeDelete('ns', 'r-u1', 'u1')).rejects.toThrow(AuditHeldError);
    expect(events).toEqual([
      expect.stringMatching(/^Warning AuditWriteFailed could not write the audit record to memory: AccessDenied.*test:Write/),
    ]);
    sink.fail = 'after';
    await expect(recorder.beforeDelete('ns', 'r-u1', 'u1')).rejects.toThrow(/socket hang up/);
    sink.fail = undefined;
    expect(await recorder.beforeDelete('ns', 'r-u1', 'u1')).toBe('already_written');
    expect(await recorder.beforeDelete('ns', 'r-u2', 'u2')).toBe('written');
    expect(verifyChain(await sink.read('ns'))).toMatchObject({ intact: true, records: 2 });
  });

  test('concurrent writes to one namespace are serialized into one chain', async () => {
    const sink = new MemorySink();
    const objects = Array.from({ length: 20 }, (_, i) => request(`u${i}`));
    const { recorder } = setup(sink, objects);
    await Promise.all(objects.map((o) => recorder.beforeDelete('ns', o.metadata!.name!, o.metadata!.uid!)));
    expect(verifyChain(await sink.read('ns'))).toMatchObject({ intact: true, records: 20 });
  });

  test('a head that is not a record stops the chain loudly instead of forking it', async () => {
    const sink = new MemorySink();
    sink.streams.set('ns', [{ text: 'garbage', timestamp: T0, where: 'ns#0' }]);
    const { recorder } = setup(sink, [request('u1')]);
    await expect(recorder.beforeDelete('ns', 'r-u1', 'u1')).rejects.toThrow(/not an audit record.*history -n ns --verify/);
  });

  test('without a sink nothing is held; a request gone or replaced is not recorded', async () => {
    expect(await setup(undefined, []).recorder.beforeDelete('ns', 'r', 'u')).toBe('disabled');
    const sink = new MemorySink();
    const { recorder } = setup(sink, [request('u9')]);
    expect(await recorder.beforeDelete('ns', 'r-u1', 'u1')).toBe('gone');
    expect(await recorder.beforeDelete('ns', 'r-u9', 'other-uid')).toBe('gone');
    expect(sink.streams.size).toBe(0);
  });
});
