import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { AlertPolicy, RemediationRequest } from '../api/v1alpha1/index.js';
import { alertIdentity, type IntakeAlert } from './alert.js';
import { parseAlertmanager } from './alertmanager.js';
import { parseCloudWatchAlarm } from './cloudwatch.js';
import type { IntakeKubeApi, ResolveResult } from './kube.js';
import { IntakeMetrics } from './metrics.js';
import { AlertProcessor, awaitsResolution, endsOccurrence } from './processor.js';

const FP = 'c4a2d3e1f5b60718';

function request(name: string, startsAt: string, over: Partial<RemediationRequest['spec']['alert']> = {}): RemediationRequest {
  return {
    metadata: { name, namespace: 'ns', resourceVersion: '1' },
    spec: {
      policyRef: { name: 'p' },
      alert: {
        source: 'alertmanager',
        name: 'NginxDown',
        labels: {},
        annotations: {},
        fingerprint: FP,
        startsAt,
        status: 'firing',
        ...over,
      },
      requestedBy: 'intake',
    },
  } as RemediationRequest;
}

/** Lists the given requests for any alert identity; records what was marked resolved. */
class FakeKube implements IntakeKubeApi {
  marked: string[] = [];
  resolutions: string[] = [];
  constructor(private readonly items: RemediationRequest[]) {}
  async whoAmI(): Promise<string> {
    return 'intake';
  }
  async readSecretValue(): Promise<string | undefined> {
    return undefined;
  }
  async createRequest(): Promise<'created' | 'exists'> {
    return 'created';
  }
  async listRequestsOfAlert(): Promise<RemediationRequest[]> {
    return this.items;
  }
  async markResolved(namespace: string, name: string): Promise<ResolveResult> {
    this.marked.push(`${namespace}/${name}`);
    return 'patched';
  }
  async recordResolution(namespace: string, name: string): Promise<boolean> {
    this.resolutions.push(`${namespace}/${name}`);
    return true;
  }
  /** `ns/name@resourceVersion` (plus ` verifying`) per call; `stopOutcomes` are answered in turn, then `patched`. */
  stops: string[] = [];
  stopOutcomes: Array<'conflict' | 'gone'> = [];
  async recordStop(namespace: string, name: string, resourceVersion: string, _at: string, verifying: boolean) {
    this.stops.push(`${namespace}/${name}@${resourceVersion}${verifying ? ' verifying' : ''}`);
    return this.stopOutcomes.shift() ?? ('patched' as const);
  }
}

function processor(kube: IntakeKubeApi, policies: AlertPolicy[] = [], registry = new Registry()): AlertProcessor {
  return new AlertProcessor({
    kube,
    policies: () => policies,
    identity: () => 'intake',
    metrics: new IntakeMetrics(registry),
    logger: pino({ level: 'silent' }),
    retryBudgetMs: 100,
  });
}

const amResolved = (startsAt: string): IntakeAlert =>
  parseAlertmanager(
    {
      version: '4',
      status: 'resolved',
      receiver: 'r',
      groupLabels: {},
      commonLabels: {},
      commonAnnotations: {},
      externalURL: 'http://am',
      alerts: [
        {
          status: 'resolved',
          labels: { alertname: 'NginxDown' },
          annotations: {},
          startsAt,
          endsAt: '2025-03-01T12:00:00Z',
          fingerprint: FP,
        },
      ],
    },
    10,
  )[0]!;

const ARN = 'arn:aws:cloudwatch:us-east-1:123456789012:alarm:cpu-high';
function cloudWatch(state: 'ALARM' | 'OK', changedAt: string): IntakeAlert {
  const r = parseCloudWatchAlarm(
    JSON.stringify({
      AlarmName: 'cpu-high',
      AlarmArn: ARN,
      AWSAccountId: '123456789012',
      NewStateValue: state,
      StateChangeTime: changedAt,
    }),
    'arn:aws:sns:us-east-1:123456789012:alarms',
  );
  if (r.kind !== 'alert') throw new Error('expected an alert');
  return r.alert;
}

describe('a resolved alert ends only its own and earlier occurrences', () => {
  test("Alertmanager: a request whose startsAt is at or before the resolved alert's startsAt, never a newer one", () => {
    const resolved = amResolved('2025-03-01T10:00:00.123456789Z');
    expect(endsOccurrence(request('same', '2025-03-01T10:00:00.123Z'), resolved)).toBe(true);
    expect(endsOccurrence(request('older', '2025-03-01T09:00:00.000Z'), resolved)).toBe(true);
    expect(endsOccurrence(request('newer', '2025-03-01T11:00:00.000Z'), resolved)).toBe(false);
  });

  test('CloudWatch: OK ends requests of ALARMs that changed state at or before it; a replayed older OK ends nothing newer', () => {
    const alarm = cloudWatch('ALARM', '2025-03-01T10:00:00.000+0000');
    const rr = request('cw', alarm.startsAt, { source: 'cloudwatch', fingerprint: alarm.fingerprint });
    expect(endsOccurrence(rr, cloudWatch('OK', '2025-03-01T10:05:00.000+0000'))).toBe(true);
    expect(endsOccurrence(rr, cloudWatch('OK', '2025-03-01T09:55:00.000+0000'))).toBe(false);
  });

  test('a request without a readable startsAt is treated as ended (nothing gets stuck)', () => {
    expect(endsOccurrence(request('none', ''), amResolved('2025-03-01T10:00:00Z'))).toBe(true);
  });

  test("a late Alertmanager resolution of the old occurrence leaves the newer occurrence's request firing", async () => {
    const kube = new FakeKube([request('old', '2025-03-01T10:00:00.123Z'), request('new', '2025-03-01T11:00:00.000Z')]);
    const result = await processor(kube).process([amResolved('2025-03-01T10:00:00.123456789Z')]);
    expect(kube.marked).toEqual(['ns/old']);
    expect(result).toMatchObject({ cancelled: ['ns/old'], unchanged: [] });
    // The current resolution (of the newer occurrence) ends both.
    const now = new FakeKube([request('old', '2025-03-01T10:00:00.123Z'), request('new', '2025-03-01T11:00:00.000Z')]);
    expect((await processor(now).process([amResolved('2025-03-01T11:00:00Z')])).cancelled).toEqual(['ns/new', 'ns/old']);
  });

  test('a replayed CloudWatch OK older than the current ALARM cancels nothing of it', async () => {
    const first = cloudWatch('ALARM', '2025-03-01T10:00:00.000+0000');
    const second = cloudWatch('ALARM', '2025-03-01T10:10:00.000+0000');
    const items = () => [
      request('first', first.startsAt, { source: 'cloudwatch', fingerprint: first.fingerprint }),
      request('second', second.startsAt, { source: 'cloudwatch', fingerprint: second.fingerprint }),
    ];
    const replay = new FakeKube(items());
    expect((await processor(replay).process([cloudWatch('OK', '2025-03-01T10:05:00.000+0000')])).cancelled).toEqual(['ns/first']);
    expect(replay.marked).toEqual(['ns/first']);
    const current = new FakeKube(items());
    expect((await processor(current).process([cloudWatch('OK', '2025-03-01T10:15:00.000+0000')])).cancelled).toEqual([
      'ns/first',
      'ns/second',
    ]);
    expect(alertIdentity('cloudwatch', first.fingerprint)).toBe(alertIdentity('cloudwatch', second.fingerprint));
  });
});

describe('a resolved alert is the evidence verification after success waits for', () => {
  const verifying: AlertPolicy = {
    metadata: { name: 'p', namespace: 'ns' },
    spec: { targets: {}, runbookRef: { name: 'rb' }, verify: { within: '10m' } },
  };
  const inPhase = (name: string, phase: 'Executing' | 'Succeeded' | 'Failed', verified?: 'Unknown' | 'True' | 'False') => {
    const rr = request(name, '2025-03-01T10:00:00Z');
    rr.status = {
      phase,
      ...(verified && {
        conditions: [
          {
            type: 'Verified',
            status: verified,
            reason: verified === 'Unknown' ? 'Verifying' : 'AlertResolved',
            message: '',
            lastTransitionTime: '2025-03-01T10:01:00Z',
          },
        ],
      }),
    };
    return rr;
  };

  test('only requests that executed or succeeded under a policy with verify, with no verdict yet', () => {
    expect(awaitsResolution(inPhase('a', 'Succeeded', 'Unknown'), verifying)).toBe(true);
    expect(awaitsResolution(inPhase('b', 'Executing'), verifying)).toBe(true);
    expect(awaitsResolution(inPhase('c', 'Succeeded', 'True'), verifying)).toBe(false);
    expect(awaitsResolution(inPhase('d', 'Failed'), verifying)).toBe(false);
    expect(awaitsResolution(inPhase('e', 'Succeeded', 'Unknown'), { ...verifying, spec: { ...verifying.spec, verify: undefined } })).toBe(
      false,
    );
    const recorded = inPhase('f', 'Succeeded', 'Unknown');
    recorded.status!.verification = { alertResolvedAt: '2025-03-01T10:02:00Z' };
    expect(awaitsResolution(recorded, verifying)).toBe(false);
  });

  test('the resolution goes to status (not spec) of a succeeded request being verified; nothing is cancelled', async () => {
    const kube = new FakeKube([inPhase('done', 'Succeeded', 'Unknown'), inPhase('over', 'Succeeded', 'False')]);
    const result = await processor(kube, [verifying]).process([amResolved('2025-03-01T10:05:00Z')]);
    expect(kube.resolutions).toEqual(['ns/done']);
    expect(kube.marked).toEqual([]);
    expect(result).toMatchObject({ cancelled: [], unchanged: [] });
  });
});

describe('a resolved alert stops a request that is executing, through status', () => {
  const executing = (name: string, startsAt = '2025-03-01T10:00:00Z') => {
    const rr = request(name, startsAt);
    // Approved by a person: its spec is frozen, so only status can carry the stop.
    rr.spec.approval = { decision: 'Approved', approver: 'alice' } as RemediationRequest['spec']['approval'];
    rr.status = { phase: 'Executing' };
    return rr;
  };
  const stopped = async (registry: Registry) =>
    (await registry.getSingleMetric('remediator_intake_resolutions_total')!.get()).values.filter((v) => v.labels.result === 'stopped');

  test('records status.alertResolvedAt at the version seen Executing, never the spec; counted as stopped', async () => {
    const kube = new FakeKube([executing('run'), executing('next', '2025-03-01T11:00:00Z')]);
    const registry = new Registry();
    const result = await processor(kube, [], registry).process([amResolved('2025-03-01T10:05:00Z')]);
    expect(kube.stops).toEqual(['ns/run@1']);
    expect(kube.marked).toEqual([]);
    expect(kube.resolutions).toEqual([]);
    expect(result).toMatchObject({ cancelled: ['ns/run'], unchanged: [] });
    expect(await stopped(registry)).toEqual([expect.objectContaining({ value: 1, labels: { source: 'alertmanager', result: 'stopped' } })]);
  });

  test("under a verifying policy one patch carries both the stop and verification's evidence", async () => {
    const policy: AlertPolicy = {
      metadata: { name: 'p', namespace: 'ns' },
      spec: { targets: {}, runbookRef: { name: 'rb' }, verify: { within: '10m' } },
    };
    const kube = new FakeKube([executing('run')]);
    await processor(kube, [policy]).process([amResolved('2025-03-01T10:05:00Z')]);
    expect(kube.stops).toEqual(['ns/run@1 verifying']);
    expect(kube.resolutions).toEqual([]);
  });

  test('a stop already asked for (a re-sent resolution, or spec resolved) is not written again', async () => {
    const again = executing('again');
    again.status!.alertResolvedAt = '2025-03-01T10:05:00Z';
    const bySpec = executing('spec');
    bySpec.spec.alert.status = 'resolved';
    const kube = new FakeKube([again, bySpec]);
    const result = await processor(kube).process([amResolved('2025-03-01T10:06:00Z')]);
    expect(kube.stops).toEqual([]);
    expect(result).toMatchObject({ cancelled: [], unchanged: [] });
  });

  test('a conflict (the controller wrote meanwhile) re-reads and decides again; a deleted request is nothing to do', async () => {
    const kube = new FakeKube([executing('run')]);
    kube.stopOutcomes = ['conflict'];
    expect((await processor(kube).process([amResolved('2025-03-01T10:05:00Z')])).cancelled).toEqual(['ns/run']);
    expect(kube.stops).toEqual(['ns/run@1', 'ns/run@1']);
    const gone = new FakeKube([executing('run')]);
    gone.stopOutcomes = ['gone'];
    expect(await processor(gone).process([amResolved('2025-03-01T10:05:00Z')])).toMatchObject({ cancelled: [], unchanged: [] });
  });
});
