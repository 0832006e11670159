/**
 * The request reconciler's edge cases, driven with in-memory fakes of the API server and
 * AWS (the same paths run against the real ones in test/e2e): write conflicts after a
 * send, ambiguous sends, restarts, rejections, refusals by AWS, notifications that fail,
 * policies that change or vanish, and tags added after approval; and the trust model:
 * runbook grants, plans bound by digest, fail-closed approvals, expiry before approval.
 */
import { ApiException } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { AlertPolicy, RemediationRequest, Runbook } from '../../api/v1alpha1/index.js';
import type { CommandRunner, InstanceFacts, PublishInput, SendCommandInput } from '../../cloud/types.js';
import type { ResourceClient } from '../../kube/resources.js';
import { Metrics } from '../../observability/metrics.js';
import { resetToken, type AdmissionEpoch, type AdmissionVerdict } from '../admission.js';
import { ExecutionLedger } from '../ledger.js';
import { circuitState } from '../safety.js';
import { MemoryLedgerStorage } from '../../fakes/ledger-memory.js';
import { DEFAULT_RETENTION } from '../retention.js';
import type { AwsLocation } from '../../cloud/location.js';
import { RemediationRequestReconciler } from './reconciler.js';

const log = pino({ level: 'silent' });

const ID = 'i-0123456789abcdef0';
/** The admission enforcement the world's controller verified (ADR 0011). */
const EPOCH: AdmissionEpoch = { policy: { uid: 'vap-1', generation: 1 }, binding: { name: 'b', uid: 'b1', generation: 1 } };

class World {
  now = Date.parse('2026-11-23T12:00:00Z');
  readonly clock = { now: () => this.now };
  readonly ledger = new ExecutionLedger(new MemoryLedgerStorage(), this.clock);
  rr!: RemediationRequest;
  policy: AlertPolicy | undefined;
  runbook: Runbook | undefined;
  nsLabels: Record<string, string> | undefined = { 'kubernetes.io/metadata.name': 'ns' };
  verdict: AdmissionVerdict = { enforced: true, binding: 'b', epoch: EPOCH };
  /** What a read from the API server says, when it differs from the cache. */
  liveVerdict: AdmissionVerdict | undefined;
  locations: AwsLocation[] = [];
  /** Every AWS read of instances (describe or find by tags). */
  awsReads = 0;
  rv = 1;
  conflictsOnNextWrite = 0;
  writes = 0;
  tags: Record<string, string> = { Service: 'nginx' };
  sent: SendCommandInput[] = [];
  listed: string[] = []; // comments SSM lists
  /** ListCommands lags SendCommand (it does on AWS): a sent command is not listed yet. */
  listLag = false;
  sendError: unknown;
  published: PublishInput[] = [];
  publishError: unknown;
  /** What GetMetricData answers for every query (empty: no datapoints); and the windows it was asked for. */
  metricData: { values: number[]; timestamps: string[] } = { values: [], timestamps: [] };
  metricWindows: Array<[string, string]> = [];
  /** `type reason` of every Event recorded. */
  events: string[] = [];
  readonly metrics = new Metrics(false);

  readonly requests: ResourceClient<RemediationRequest> = {
    names: { kind: 'RemediationRequest', plural: 'remediationrequests', singular: 'remediationrequest', shortNames: [] },
    watchPath: '',
    listAll: async () => ({ items: [this.rr], resourceVersion: String(this.rv) }),
    get: async () => structuredClone(this.rr),
    create: async (_ns, b) => b,
    setFinalizers: async (_ns, _n, finalizers) => {
      this.rr = { ...this.rr, metadata: { ...this.rr.metadata, finalizers, resourceVersion: String(++this.rv) } };
      return structuredClone(this.rr);
    },
    delete: async () => true,
    replaceStatus: async (_ns, _n, body) => {
      if (this.conflictsOnNextWrite > 0) {
        this.conflictsOnNextWrite--;
        this.rr = { ...this.rr, metadata: { ...this.rr.metadata, resourceVersion: String(++this.rv) } };
        throw new ApiException(409, 'Conflict', '{}', {});
      }
      if (body.metadata?.resourceVersion !== this.rr.metadata?.resourceVersion) throw new ApiException(409, 'Conflict', '{}', {});
      this.writes++;
      this.rr = { ...structuredClone(body), metadata: { ...body.metadata, resourceVersion: String(++this.rv) } };
      return this.rr;
    },
  };

  readonly commands: CommandRunner = {
    sendCommand: async (input) => {
      if (this.sendError) throw this.sendError;
      this.sent.push(input);
      if (!this.listLag) this.listed.push(input.comment);
      return { commandId: `cmd-${this.sent.length}`, requestedAt: new Date(this.now).toISOString() };
    },
    findCommand: async (comment) => (this.listed.includes(comment) ? { commandId: `cmd-${this.listed.indexOf(comment) + 1}` } : undefined),
    getInvocation: async (_c, instanceId) => ({ instanceId, status: 'Success', responseCode: 0 }),
  };

  reconciler(): RemediationRequestReconciler {
    return new RemediationRequestReconciler({
      requests: this.requests,
      getRequest: () => this.rr,
      getPolicy: () => this.policy,
      getRunbook: () => this.runbook,
      namespaceLabels: () => this.nsLabels,
      admission: () => this.verdict,
      admissionLive: async () => this.liveVerdict ?? this.verdict,
      ledger: this.ledger,
      retentionDefaults: DEFAULT_RETENTION,
      cloudFor: (location) => {
        this.locations.push(location);
        return {
          instances: {
            describe: async (ids) => (
              this.awsReads++,
              { found: ids.map((instanceId): InstanceFacts => ({ instanceId, state: 'running', tags: { ...this.tags } })), missing: [] }
            ),
            findByTags: async () => (this.awsReads++, []),
          },
          commands: this.commands,
          agents: { agentStatus: async () => new Map() },
          cancels: { cancelCommand: async () => undefined },
          alarms: { alarmStates: async () => new Map() },
          metrics: {
            getMetricData: async (queries, start, end) => {
              this.metricWindows.push([start.toISOString(), end.toISOString()]);
              return new Map(queries.map((q) => [q.id, this.metricData]));
            },
          },
          publisher: {
            publish: async (input) => {
              if (this.publishError) throw this.publishError;
              this.published.push(input);
              return { messageId: `m-${this.published.length}` };
            },
          },
        };
      },
      defaultRegion: 'eu-west-1',
      events: { record: async (_o, type, reason) => void this.events.push(`${type} ${reason}`) },
      metrics: this.metrics,
      clock: this.clock,
      allowedDocuments: new Set(['AWS-RunShellScript']),
    });
  }

  constructor(
    spec: Partial<AlertPolicy['spec']> = {},
    rrSpec: Partial<RemediationRequest['spec']> = {},
    runbook: Partial<Runbook['spec']> = {},
  ) {
    this.runbook = {
      metadata: { name: 'restart', generation: 1, uid: 'rb-uid-1' },
      spec: {
        namespaceSelector: {},
        maxAutoApprovedRisk: 'Low',
        inputs: [{ name: 'service', allowedPattern: 'nginx|php-fpm' }],
        action: { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart {{ inputs.service }}'] }] } },
        // The admin grants the policy's topic unless a test says otherwise.
        ...(spec.notify && { notifyTopics: [spec.notify.topicArn] }),
        ...runbook,
      },
    };
    this.policy = {
      metadata: { name: 'p', namespace: 'ns', generation: 1, uid: 'p-uid-1', annotations: { 'remediator.dev/changed-by': 'carol' } },
      spec: {
        targets: { fromLabels: ['instance_id'] },
        runbookRef: { name: 'restart' },
        inputs: { service: '{{ labels.service }}' },
        ...spec,
      },
    };
    this.rr = {
      metadata: { name: 'r', namespace: 'ns', uid: 'uid-1', generation: 1, resourceVersion: '1' },
      spec: {
        policyRef: { name: 'p' },
        alert: { source: 'generic', name: 'Down', status: 'firing', labels: { instance_id: ID, service: 'nginx' } },
        ...rrSpec,
      },
    };
  }

  get phase() {
    return this.rr.status?.phase;
  }

  /** A person's decision on the plan in status, as `kubectl remediator approve` writes it. */
  decide(approver: string, decision: 'Approved' | 'Rejected' = 'Approved', planDigest = this.rr.status?.plan?.digest): void {
    this.rr = {
      ...this.rr,
      metadata: { ...this.rr.metadata, generation: (this.rr.metadata?.generation ?? 1) + 1 },
      spec: { ...this.rr.spec, approval: { decision, approver, planDigest } },
    };
  }

  /** Reconcile until the phase stops changing or `until` is reached; returns the last requeue delay. */
  async drive(r: RemediationRequestReconciler, until?: string, max = 12): Promise<number | undefined> {
    let last: number | undefined;
    for (let i = 0; i < max; i++) {
      const before = JSON.stringify(this.rr.status);
      const res = await r.reconcile({ namespace: 'ns', name: 'r' }, log).catch((e: unknown) => ({ error: e }));
      last = res && 'requeueAfterMs' in res ? res.requeueAfterMs : undefined;
      if (until && this.phase === until) break;
      if (JSON.stringify(this.rr.status) === before && !(res && 'error' in res)) {
        // Waiting for a command to run (the first poll): the queue's requeue, in time.
        if (this.phase !== 'Executing' || !last || last > 5_000) break;
        this.now += last;
      }
    }
    return last;
  }
}

const networkError = Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });

describe('RemediationRequestReconciler: exactly once', () => {
  test('an auto-approved plan records its intent in the same write that leaves Pending, then sends at once', async () => {
    const w = new World();
    let found = 0;
    const find = w.commands.findCommand;
    w.commands.findCommand = (...args) => (found++, find(...args));
    const r = w.reconciler();
    expect(await r.reconcile({ namespace: 'ns', name: 'r' }, log)).toEqual({ requeueAfterMs: 1_000 });
    expect(w.writes).toBe(1);
    expect(w.phase).toBe('Executing');
    expect(w.rr.status?.plan?.ssm?.parameters).toEqual({ commands: ['systemctl restart nginx'] });
    expect(w.rr.status?.execution?.ssm?.comment).toBe('remediator:uid-1');
    // This process wrote the intent on a version without one: no ListCommands before the send.
    expect(w.sent).toHaveLength(1);
    expect(found).toBe(0);
    // The command id and the first results go to status in one write, at the first poll.
    expect(await r.reconcile({ namespace: 'ns', name: 'r' }, log)).toEqual({ requeueAfterMs: 1_000 });
    expect(w.writes).toBe(1);
    w.now += 1_000;
    await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    expect(w.writes).toBe(2);
    expect(w.phase).toBe('Succeeded');
    expect(w.rr.status?.execution?.ssm?.commandId).toBe('cmd-1');
    expect(w.sent).toHaveLength(1);
  });

  test('a command still running at the first poll gets its id written then, and is followed', async () => {
    const w = new World();
    let running = true;
    w.commands.getInvocation = async (_c, instanceId) => ({ instanceId, status: running ? 'InProgress' : 'Success', responseCode: 0 });
    const r = w.reconciler();
    await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    w.now += 1_000;
    await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    expect(w.phase).toBe('Executing');
    expect(w.rr.status?.execution?.ssm?.commandId).toBe('cmd-1');
    expect(w.rr.status?.execution?.ssm?.invocations).toEqual([{ instanceId: ID, status: 'InProgress', responseCode: 0 }]);
    running = false;
    await w.drive(r, 'Succeeded');
    expect(w.sent).toHaveLength(1);
  });

  test("the first poll follows the send by the controller's clock, not SSM's (an AWS clock ahead does not delay it)", async () => {
    const w = new World();
    const send = w.commands.sendCommand;
    w.commands.sendCommand = async (input) => ({ ...(await send(input)), requestedAt: new Date(w.now + 600_000).toISOString() });
    const r = w.reconciler();
    expect(await r.reconcile({ namespace: 'ns', name: 'r' }, log)).toEqual({ requeueAfterMs: 1_000 });
    w.now += 1_000;
    await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    expect(w.phase).toBe('Succeeded');
  });

  test('a crash between the send and its first poll: the successor adopts the command by its comment', async () => {
    const w = new World();
    await w.reconciler().reconcile({ namespace: 'ns', name: 'r' }, log);
    expect(w.sent).toHaveLength(1);
    expect(w.rr.status?.execution?.ssm?.commandId).toBeUndefined();
    const successor = w.reconciler();
    await w.drive(successor, 'Succeeded');
    expect(w.phase).toBe('Succeeded');
    expect(w.sent).toHaveLength(1);
    expect(w.rr.status?.execution?.ssm?.commandId).toBe('cmd-1');
  });

  test('a write conflict right after SendCommand still records the command id, and nothing is sent twice', async () => {
    const w = new World();
    w.listLag = true;
    const r = w.reconciler();
    await w.drive(r, 'Executing');
    w.conflictsOnNextWrite = 1; // someone labels the request while the command is in flight
    await w.drive(r, 'Succeeded');
    expect(w.phase).toBe('Succeeded');
    expect(w.sent).toHaveLength(1);
    expect(w.sent[0]?.parameters).toEqual({ commands: ['systemctl restart nginx'] });
    expect(w.rr.status?.execution?.ssm?.commandId).toBe('cmd-1');
  });

  test('after an ambiguous send the controller waits for SSM to list the command instead of sending again', async () => {
    const w = new World();
    const r = w.reconciler();
    // The intent is written, the send reached SSM, its answer was lost, and ListCommands does not show it yet.
    w.sendError = networkError;
    await r.reconcile({ namespace: 'ns', name: 'r' }, log).catch(() => undefined);
    expect(w.phase).toBe('Executing');
    w.sendError = undefined;
    const wait = await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    expect(wait).toEqual({ requeueAfterMs: 30_000 });
    expect(w.sent).toHaveLength(0);
    // It shows up: adopted, never re-sent.
    w.listed.push('remediator:uid-1');
    await w.drive(r, 'Succeeded');
    expect(w.sent).toHaveLength(0);
    expect(w.rr.status?.execution?.ssm?.commandId).toBe('cmd-1');
  });

  test('a restarted controller finding intent without a command waits out the settle time before sending', async () => {
    const w = new World();
    w.sendError = networkError; // the process that wrote the intent dies before its send is known
    await w
      .reconciler()
      .reconcile({ namespace: 'ns', name: 'r' }, log)
      .catch(() => undefined);
    expect(w.phase).toBe('Executing');
    w.sendError = undefined;
    const fresh = w.reconciler(); // a new process: it did not write that intent
    expect(await fresh.reconcile({ namespace: 'ns', name: 'r' }, log)).toEqual({ requeueAfterMs: 30_000 });
    expect(w.sent).toHaveLength(0);
    w.now += 30_000;
    await w.drive(fresh, 'Succeeded');
    expect(w.sent).toHaveLength(1);
  });

  test('a command SSM refuses outright fails the request instead of retrying forever', async () => {
    const w = new World();
    w.sendError = Object.assign(new Error('Instances [[i-0123456789abcdef0]] not in a valid state'), {
      name: 'InvalidInstanceId',
      $fault: 'client',
    });
    await w.drive(w.reconciler());
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('CommandRejected');
  });

  test('a notification that cannot be published is recorded and does not hold the remediation up', async () => {
    const w = new World({ notify: { topicArn: 'arn:aws:sns:eu-west-1:123456789012:t', on: ['Executing', 'Succeeded'] } });
    w.publishError = Object.assign(new Error('Topic does not exist'), { name: 'NotFoundException', $fault: 'client' });
    await w.drive(w.reconciler(), undefined, 20);
    expect(w.phase).toBe('Succeeded');
    expect(w.sent).toHaveLength(1);
    expect(w.rr.status?.notifications?.map((n) => [n.phase, n.error])).toEqual([
      ['Executing', 'Topic does not exist'],
      ['Succeeded', 'Topic does not exist'],
    ]);
  });

  test('a policy deleted while the command runs does not strand the request', async () => {
    const w = new World();
    const r = w.reconciler();
    await w.drive(r, 'Executing');
    await r.reconcile({ namespace: 'ns', name: 'r' }, log); // sends
    w.policy = undefined;
    w.runbook = undefined;
    await w.drive(r, 'Succeeded');
    expect(w.phase).toBe('Succeeded');
    expect(w.sent).toHaveLength(1);
  });
});

describe('RemediationRequestReconciler: verification after success', () => {
  const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:t';
  const verified = (w: World) => w.rr.status?.conditions?.find((c) => c.type === 'Verified');
  const counted = async (w: World, result: string) =>
    (await w.metrics.verifications.get()).values.find((v) => v.labels.result === result)?.value ?? 0;

  test('a resolution recorded in status within the time: Verified=True, the ledger says so, the finalizer goes', async () => {
    const w = new World({ verify: { within: '10m' }, notify: { topicArn: TOPIC, on: ['Verified', 'Ineffective'] } });
    const r = w.reconciler();
    await w.drive(r, 'Succeeded');
    const wait = await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    expect(verified(w)).toMatchObject({ status: 'Unknown', reason: 'Verifying' });
    expect(wait).toEqual({ requeueAfterMs: 10 * 60_000 });
    expect(w.rr.metadata?.finalizers).toEqual(['remediator.dev/execution']);
    expect(w.ledger.entry('ns', 'p', 'uid-1')?.outcome).toBe('Succeeded');
    // Re-reconciling before anything happened changes nothing and asks to be woken at the deadline.
    w.now += 60_000;
    expect(await r.reconcile({ namespace: 'ns', name: 'r' }, log)).toEqual({ requeueAfterMs: 9 * 60_000 });
    // The intake saw the alert resolve (it writes status.verification.alertResolvedAt).
    w.rr = { ...w.rr, status: { ...w.rr.status, verification: { ...w.rr.status?.verification, alertResolvedAt: '2026-11-23T12:01:00Z' } } };
    await w.drive(r, undefined, 20);
    expect(verified(w)).toMatchObject({ status: 'True', reason: 'AlertResolved' });
    expect(w.rr.status?.phase).toBe('Succeeded');
    expect(w.events).toContain('Normal Verified');
    expect(w.ledger.entry('ns', 'p', 'uid-1')?.verified).toBe(true);
    expect(w.rr.metadata?.finalizers).toEqual([]);
    expect(w.rr.status?.notifications?.map((n) => n.phase)).toEqual(['Verified']);
    expect(await counted(w, 'Verified')).toBe(1);
  });

  test('no resolution by the deadline: Verified=False/Ineffective, announced, and the breaker counts it as a failure', async () => {
    const w = new World({
      verify: { within: '30s' },
      notify: { topicArn: TOPIC, on: ['Ineffective'] },
      safety: { circuitBreaker: { maxConsecutiveFailures: 1 } },
    });
    const r = w.reconciler();
    await w.drive(r, 'Succeeded');
    await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    expect(verified(w)?.status).toBe('Unknown');
    // An editor setting spec.alert.status proves nothing: only status written by the intake counts.
    w.rr = { ...w.rr, spec: { ...w.rr.spec, alert: { ...w.rr.spec.alert, status: 'resolved' } } };
    w.now += 31_000;
    await w.drive(r, undefined, 20);
    expect(verified(w)).toMatchObject({ status: 'False', reason: 'Ineffective' });
    expect(verified(w)?.message).toContain('still firing 30s after');
    expect(w.events).toContain('Warning Ineffective');
    expect(w.published.map((p) => p.attributes?.phase)).toEqual(['Ineffective']);
    expect(JSON.parse(w.published[0]!.message)).toMatchObject({ phase: 'Ineffective', reason: 'Ineffective' });
    const entry = w.ledger.entry('ns', 'p', 'uid-1');
    expect(entry).toMatchObject({ outcome: 'Succeeded', verified: false });
    expect(circuitState(w.policy!, w.ledger.records('ns', 'p'), w.now)).toMatchObject({ open: true, consecutiveFailures: 1 });
    expect(w.rr.metadata?.finalizers).toEqual([]);
    expect(await counted(w, 'Ineffective')).toBe(1);
  });

  test('no resolution, but verify.metric recovered since the success: Verified=True (MetricRecovered); not recovered: Ineffective', async () => {
    const spec = {
      enrichment: { metrics: [{ name: 'cpu', namespace: 'AWS/EC2', metricName: 'CPUUtilization' }] },
      verify: { within: '5m', metric: { name: 'cpu', operator: '<' as const, threshold: 80 } },
    };
    const ok = new World(spec);
    const r = ok.reconciler();
    await ok.drive(r, 'Succeeded');
    ok.metricWindows = []; // enrichment read it before planning
    await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    expect(ok.metricWindows).toEqual([]); // verification reads it once, at the deadline
    ok.metricData = { values: [95, 40, 30], timestamps: [] };
    ok.now += 5 * 60_000;
    await ok.drive(r, undefined, 20);
    expect(verified(ok)).toMatchObject({ status: 'True', reason: 'MetricRecovered' });
    expect(verified(ok)?.message).toContain(`cpu on ${ID} averaged 55`);
    const done = Date.parse(ok.rr.status!.completionTime!);
    expect(ok.metricWindows).toEqual([[new Date(done).toISOString(), new Date(done + 5 * 60_000).toISOString()]]);
    expect(ok.ledger.entry('ns', 'p', 'uid-1')?.verified).toBe(true);

    const hot = new World(spec);
    const h = hot.reconciler();
    await hot.drive(h, 'Succeeded');
    await h.reconcile({ namespace: 'ns', name: 'r' }, log);
    hot.metricData = { values: [97, 99], timestamps: [] };
    hot.now += 5 * 60_000;
    await hot.drive(h, undefined, 20);
    expect(verified(hot)).toMatchObject({ status: 'False', reason: 'Ineffective' });
    expect(verified(hot)?.message).toContain(`metric cpu did not recover: cpu on ${ID} averaged 98`);

    const silent = new World(spec);
    const q = silent.reconciler();
    await silent.drive(q, 'Succeeded');
    await q.reconcile({ namespace: 'ns', name: 'r' }, log);
    silent.now += 5 * 60_000;
    await silent.drive(q, undefined, 20);
    expect(verified(silent)?.message).toContain(`no datapoints of cpu on ${ID}`);
  });

  test('a policy without verify, a dry run, or a request settled before verify was added: no Verified condition', async () => {
    const plain = new World();
    await plain.drive(plain.reconciler(), undefined, 20);
    expect(plain.phase).toBe('Succeeded');
    expect(verified(plain)).toBeUndefined();
    const dry = new World({ verify: { within: '10m' }, safety: { dryRun: true } });
    await dry.drive(dry.reconciler(), undefined, 20);
    expect(dry.phase).toBe('Succeeded');
    expect(verified(dry)).toBeUndefined();
    plain.policy = { ...plain.policy!, spec: { ...plain.policy!.spec, verify: { within: '10m' } } };
    await plain.drive(plain.reconciler(), undefined, 20);
    expect(verified(plain)).toBeUndefined();
  });

  test('a request deleted while it is verified keeps its finalizer until the verdict', async () => {
    const w = new World({ verify: { within: '30s' } });
    const r = w.reconciler();
    await w.drive(r, 'Succeeded');
    await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    w.rr = { ...w.rr, metadata: { ...w.rr.metadata, deletionTimestamp: '2026-11-23T12:00:10Z' } };
    await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    expect(w.rr.metadata?.finalizers).toEqual(['remediator.dev/execution']);
    w.now += 31_000;
    await w.drive(r, undefined, 20);
    expect(verified(w)?.status).toBe('False');
    expect(w.rr.metadata?.finalizers).toEqual([]);
  });

  test('verify removed from the policy before a verdict: Verified=Unknown/NotVerified, nothing counted', async () => {
    const w = new World({ verify: { within: '30s' } });
    const r = w.reconciler();
    await w.drive(r, 'Succeeded');
    await r.reconcile({ namespace: 'ns', name: 'r' }, log);
    w.policy = { ...w.policy!, spec: { ...w.policy!.spec, verify: undefined } };
    await w.drive(r, undefined, 20);
    expect(verified(w)).toMatchObject({ status: 'Unknown', reason: 'NotVerified' });
    expect(w.ledger.entry('ns', 'p', 'uid-1')?.verified).toBeUndefined();
    expect(w.rr.metadata?.finalizers).toEqual([]);
  });
});

describe('RemediationRequestReconciler: notify', () => {
  test('on: [Approved] announces an auto-approved request, which never rests in phase Approved', async () => {
    const w = new World({ notify: { topicArn: 'arn:aws:sns:eu-west-1:123456789012:t', on: ['Approved', 'Succeeded'] } });
    await w.drive(w.reconciler(), undefined, 20);
    expect(w.phase).toBe('Succeeded');
    expect(w.published.map((p) => p.attributes?.phase)).toEqual(['Approved', 'Succeeded']);
  });

  test('labels carrying control or bidi characters are announced escaped, never raw', async () => {
    const labels = { instance_id: ID, service: 'nginx', note: 'a\u0085b\u202Ec\nd' };
    const w = new World(
      { notify: { topicArn: 'arn:aws:sns:eu-west-1:123456789012:t', on: ['Succeeded'] } },
      { alert: { source: 'generic', name: 'Down', status: 'firing', labels } },
    );
    await w.drive(w.reconciler(), undefined, 20);
    expect(w.phase).toBe('Succeeded');
    const [published] = w.published;
    expect(published!.message).not.toMatch(/[\u0085\u202E]/u);
    expect(JSON.parse(published!.message).alert.labels.note).toBe(labels.note);
  });

  test('a topic the runbook does not grant: the policy is refused and nothing is announced, not even the failure', async () => {
    const w = new World(
      { notify: { topicArn: 'arn:aws:sns:eu-west-1:123456789012:team-b', on: ['Failed', 'Succeeded'] } },
      {},
      { notifyTopics: [] },
    );
    await w.drive(w.reconciler(), undefined, 20);
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('NotifyTopicNotGranted');
    expect(w.published).toEqual([]);
    expect(w.sent).toEqual([]);
  });
});

describe('RemediationRequestReconciler: decisions', () => {
  test('a rejection is honoured in every phase, also for auto-approved policies', async () => {
    const w = new World({}, { approval: { decision: 'Rejected', approver: 'alice', reason: 'not now' } });
    await w.drive(w.reconciler());
    expect(w.phase).toBe('Rejected');
    expect(w.sent).toHaveLength(0);
  });

  test('a policy deleted before execution fails the request, running nothing', async () => {
    const w = new World({ risk: 'High' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.policy = undefined;
    await w.drive(r);
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('PolicyNotFound');
  });

  test('an opt-out tag added after approval still wins', async () => {
    const w = new World({ risk: 'High' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.tags['remediator.dev/opt-out'] = 'true';
    w.decide('bob');
    await w.drive(r);
    expect(w.phase).toBe('Skipped');
    expect(w.rr.status?.reason).toBe('OptOut');
    expect(w.sent).toHaveLength(0);
  });

  test('a manual approval of the plan in status runs exactly that plan', async () => {
    const w = new World({ risk: 'High' }, { requestedBy: 'mallory' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    expect(w.rr.status?.plan?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    w.decide('alice');
    await w.drive(r, 'Succeeded', 20);
    expect(w.phase).toBe('Succeeded');
    expect(w.sent.map((s) => s.parameters)).toEqual([{ commands: ['systemctl restart nginx'] }]);
    expect(w.rr.status?.approval?.approver).toBe('alice');
  });

  test('an editor removing the circuit breaker after it opened does not close it (trust model: only an approver resumes)', async () => {
    const w = new World({ safety: { circuitBreaker: { maxConsecutiveFailures: 1 } } });
    w.commands.getInvocation = async (_c, instanceId) => ({ instanceId, status: 'Failed', responseCode: 1 });
    const r = w.reconciler();
    await w.drive(r, 'Failed');
    await w.drive(r); // settled: the outcome, and the opened breaker, are in the ledger
    expect(w.ledger.breakerOpenedAt('ns', 'p')).toBeDefined();
    // The editor drops the breaker (and raises nothing else) before the next alert.
    w.policy = { ...w.policy!, metadata: { ...w.policy!.metadata, generation: 2 }, spec: { ...w.policy!.spec, safety: {} } };
    w.rr = {
      metadata: { name: 'r', namespace: 'ns', uid: 'uid-2', generation: 1, resourceVersion: String(++w.rv) },
      spec: { ...w.rr.spec, alert: { ...w.rr.spec.alert, fingerprint: 'next' } }, // another occurrence (rerun.ts)
    };
    await w.drive(r);
    expect(w.phase).toBe('Skipped');
    expect(w.rr.status?.reason).toBe('CircuitOpen');
    expect(w.sent).toHaveLength(1);
    // A reset without the token the controller issued under the current enforcement does not count (ADR 0011).
    const at = new Date(w.now + 1_000).toISOString();
    w.now += 2_000;
    const token = resetToken(undefined, w.verdict)!;
    const forged = { ...w.policy!.metadata?.annotations, 'remediator.dev/circuit-reset-at': at, 'remediator.dev/circuit-reset-token': 'x' };
    w.policy = {
      ...w.policy!,
      metadata: { ...w.policy!.metadata, annotations: forged },
      status: { circuitBreaker: { open: true, resetToken: token } },
    };
    w.rr = { metadata: { ...w.rr.metadata, uid: 'uid-3', resourceVersion: String(++w.rv) }, spec: { ...w.rr.spec } };
    await w.drive(r);
    expect(w.rr.status?.reason).toBe('CircuitOpen');
    // A token issued under another epoch (a binding re-created since) does not count either.
    const stale = resetToken(undefined, {
      ...w.verdict,
      epoch: { ...EPOCH, binding: { ...EPOCH.binding, uid: 'other' } },
    } as AdmissionVerdict)!;
    w.policy = {
      ...w.policy!,
      metadata: { ...w.policy!.metadata, annotations: { ...forged, 'remediator.dev/circuit-reset-token': stale } },
      status: { circuitBreaker: { open: true, resetToken: stale } },
    };
    w.rr = { metadata: { ...w.rr.metadata, uid: 'uid-4', resourceVersion: String(++w.rv) }, spec: { ...w.rr.spec } };
    await w.drive(r);
    expect(w.rr.status?.reason).toBe('CircuitOpen');
    expect(w.sent).toHaveLength(1);
    // A person with the approver verb resumes it with the current token: it runs again.
    const resumed = { ...forged, 'remediator.dev/circuit-reset-token': token };
    w.policy = {
      ...w.policy!,
      metadata: { ...w.policy!.metadata, annotations: resumed },
      status: { circuitBreaker: { open: true, resetToken: token } },
    };
    w.rr = { metadata: { ...w.rr.metadata, uid: 'uid-5', resourceVersion: String(++w.rv) }, spec: { ...w.rr.spec } };
    w.commands.getInvocation = async (_c, instanceId) => ({ instanceId, status: 'Success', responseCode: 0 });
    w.rr = {
      metadata: { name: 'r', namespace: 'ns', uid: 'uid-3', generation: 1, resourceVersion: String(++w.rv) },
      spec: { ...w.rr.spec },
    };
    await w.drive(r, 'Succeeded', 20);
    expect(w.phase).toBe('Succeeded');
    expect(w.ledger.breakerOpenedAt('ns', 'p')).toBeUndefined();
  });

  test('a policy changed after approval changes the plan: nothing is sent', async () => {
    const w = new World({ risk: 'High' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.decide('bob');
    // Lowered to Low risk after the approval (attack 3): the current policy being Auto does not skip the check.
    w.policy = { ...w.policy!, metadata: { ...w.policy!.metadata, generation: 2 }, spec: { ...w.policy!.spec, risk: 'Low' } };
    await w.drive(r);
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('PlanChanged');
    expect(w.sent).toHaveLength(0);
  });

  test('a runbook whose command changed after approval: nothing is sent', async () => {
    const w = new World({ risk: 'High' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.decide('bob');
    w.runbook = {
      metadata: { name: 'restart', generation: 2 },
      spec: { ...w.runbook!.spec, action: { ssm: { parameters: [{ name: 'commands', values: ['dd if=/dev/zero of=/dev/xvda'] }] } } },
    };
    await w.drive(r);
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('PlanChanged');
    expect(w.rr.status?.message).toContain('runbook restart@1');
    expect(w.sent).toHaveLength(0);
  });

  test('an approval naming another plan digest is refused', async () => {
    const w = new World({ risk: 'High' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.decide('bob', 'Approved', 'sha256:0000');
    await w.drive(r);
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('PlanMismatch');
    expect(w.sent).toHaveLength(0);
  });

  test('without a verified admission policy an approval is not honoured: the request waits, then expires', async () => {
    const w = new World({ risk: 'High', approval: { timeout: '10m' } });
    w.verdict = { enforced: false, message: 'ValidatingAdmissionPolicy remediator-approvals is not installed' };
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.decide('alice');
    await w.drive(r);
    expect(w.phase).toBe('AwaitingApproval');
    expect(w.rr.status?.conditions?.find((c) => c.type === 'Approved')).toMatchObject({
      status: 'Unknown',
      reason: 'AdmissionPolicyNotEnforced',
    });
    expect(w.sent).toHaveLength(0);
    w.now += 11 * 60_000;
    await w.drive(r);
    expect(w.phase).toBe('Expired');
    expect(w.sent).toHaveLength(0);
  });

  test('auto approval does not depend on the admission policy', async () => {
    const w = new World();
    w.verdict = { enforced: false, message: 'not installed' };
    await w.drive(w.reconciler(), 'Succeeded', 20);
    expect(w.phase).toBe('Succeeded');
    expect(w.sent).toHaveLength(1);
  });

  test('an approval that lands after the deadline does not run (expiry before approval)', async () => {
    const w = new World({ risk: 'High', approval: { timeout: '10m' } });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.now += 11 * 60_000;
    w.decide('alice');
    await w.drive(r);
    expect(w.phase).toBe('Expired');
    expect(w.rr.status?.message).toContain('came too late');
    expect(w.sent).toHaveLength(0);
  });

  test('four eyes: the requester may not approve their own High risk request', async () => {
    const w = new World({ risk: 'High' }, { requestedBy: 'bob' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.decide('bob');
    await w.drive(r);
    expect(w.phase).toBe('Rejected');
    expect(w.rr.status?.reason).toBe('SelfApproval');
    expect(w.sent).toHaveLength(0);
  });

  test('four eyes: whoever last changed the policy may not approve its High risk request', async () => {
    const w = new World({ risk: 'High' }, { requestedBy: 'mallory' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    expect(w.rr.status?.plan?.policy?.changedBy).toBe('carol');
    w.decide('carol');
    await w.drive(r);
    expect(w.phase).toBe('Rejected');
    expect(w.rr.status?.reason).toBe('SelfApproval');
    expect(w.sent).toHaveLength(0);
  });

  test('four eyes: a policy that does not record its writer cannot have High risk approved', async () => {
    const w = new World({ risk: 'High' }, { requestedBy: 'mallory' });
    w.policy = { ...w.policy!, metadata: { ...w.policy!.metadata, annotations: {} } };
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.decide('alice');
    await w.drive(r);
    expect(w.rr.status?.reason).toBe('PolicyWriterUnknown');
    expect(w.sent).toHaveLength(0);
  });

  test('the plan binds the enforcement epoch: a change re-plans, and an approval from before it never counts', async () => {
    const w = new World({ risk: 'High' }, { requestedBy: 'mallory' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    const first = w.rr.status?.plan?.digest;
    expect(w.rr.status?.plan?.admission).toEqual(EPOCH);
    // The binding is re-created (new uid) while nobody approved yet: a new plan, a new digest.
    w.verdict = { enforced: true, binding: 'b', epoch: { ...EPOCH, binding: { ...EPOCH.binding, uid: 'b2' } } };
    await w.drive(r);
    expect(w.phase).toBe('AwaitingApproval');
    const second = w.rr.status?.plan?.digest;
    expect(second).not.toBe(first);
    // An approval of that plan (say, forged in a gap) is seen only after yet another change: refused.
    w.decide('alice');
    w.verdict = { enforced: true, binding: 'b', epoch: { ...EPOCH, binding: { ...EPOCH.binding, generation: 2 } } };
    await w.drive(r);
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('ApprovalNotProven');
    expect(w.sent).toHaveLength(0);
  });

  test('an approval is judged on a live read: a cache that missed a re-created binding does not make it count', async () => {
    const w = new World({ risk: 'High' }, { requestedBy: 'mallory' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.decide('alice');
    w.liveVerdict = { enforced: true, binding: 'b', epoch: { ...EPOCH, binding: { ...EPOCH.binding, uid: 'b2' } } };
    await w.drive(r);
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('ApprovalNotProven');
    expect(w.sent).toHaveLength(0);
  });

  test('a plan rendered while approvals were not enforced can never be approved, even once they are', async () => {
    const w = new World({ risk: 'High' }, { requestedBy: 'mallory' });
    w.verdict = { enforced: false, message: 'not covered' };
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    expect(w.rr.status?.plan?.admission).toBeUndefined();
    w.decide('alice');
    await w.drive(r);
    expect(w.rr.status?.reason).toBe('AdmissionPolicyNotEnforced');
    w.verdict = { enforced: true, binding: 'b', epoch: EPOCH };
    await w.drive(r);
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('ApprovalNotProven');
    expect(w.sent).toHaveLength(0);
  });

  test('an approval already there when the plan is rendered never counts', async () => {
    const w = new World(
      { risk: 'High' },
      { requestedBy: 'mallory', approval: { decision: 'Approved', approver: 'alice', planDigest: `sha256:${'0'.repeat(64)}` } },
    );
    await w.drive(w.reconciler());
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('ApprovalNotProven');
    expect(w.sent).toHaveLength(0);
  });

  test('a policy re-created under the same name is another plan; so is one in dry run', async () => {
    const w = new World({ risk: 'High', safety: { dryRun: true } }, { requestedBy: 'mallory' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    expect(w.rr.status?.plan).toMatchObject({ dryRun: true, policy: { uid: 'p-uid-1' }, runbook: { uid: 'rb-uid-1' } });
    w.decide('alice');
    // Re-created without dryRun, generation 1 again, before the controller saw the approval.
    w.policy = { ...w.policy!, metadata: { ...w.policy!.metadata, uid: 'p-uid-2' }, spec: { ...w.policy!.spec, safety: {} } };
    await w.drive(r);
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('PlanChanged');
    expect(w.sent).toHaveLength(0);
  });

  test('an approver outside the policy list is refused', async () => {
    const w = new World({ risk: 'High', approval: { approvers: ['alice'] } });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.decide('carol');
    await w.drive(r);
    expect(w.phase).toBe('Rejected');
    expect(w.rr.status?.reason).toBe('ApproverNotAllowed');
  });
});

describe('RemediationRequestReconciler: runbooks and targets', () => {
  test('a runbook not granted to the namespace fails the request before any AWS call', async () => {
    const w = new World({}, {}, { namespaceSelector: { matchLabels: { tenant: 'yes' } } });
    await w.drive(w.reconciler());
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('RunbookNotGranted');
    expect(w.awsReads).toBe(0);
    expect(w.sent).toHaveLength(0);
  });

  test('a risk below the runbook floor, or Auto above its auto-approval cap, is refused', async () => {
    const low = new World({ risk: 'Low' }, {}, { minRisk: 'High' });
    await low.drive(low.reconciler());
    expect(low.rr.status?.reason).toBe('RiskBelowRunbookMinimum');
    const auto = new World({ risk: 'Critical', approval: { mode: 'Auto' } });
    await auto.drive(auto.reconciler());
    expect(auto.rr.status?.reason).toBe('AutoApprovalNotAllowed');
    expect([...low.sent, ...auto.sent]).toHaveLength(0);
  });

  test('a missing runbook fails with RunbookNotFound', async () => {
    const w = new World();
    w.runbook = undefined;
    await w.drive(w.reconciler());
    expect(w.rr.status?.reason).toBe('RunbookNotFound');
  });

  test('spec.targets may only narrow: an instance the alert does not name is refused, naming it', async () => {
    const w = new World({}, { targets: ['i-00000000000000bad'] });
    await w.drive(w.reconciler());
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('TargetNotAllowed');
    expect(w.rr.status?.message).toContain('i-00000000000000bad');
    expect(w.awsReads).toBe(0);
    expect(w.sent).toHaveLength(0);
  });

  test("a target outside the policy's tag selector or the runbook's namespace scope fails before sending", async () => {
    const role = new World({ targets: { fromLabels: ['instance_id'], tagSelector: { role: 'web' } } });
    role.tags.role = 'db';
    await role.drive(role.reconciler());
    expect(role.rr.status?.reason).toBe('TargetOutOfScope');
    const team = new World({}, {}, { scope: { tagSelector: { team: '{{ namespace }}' } } });
    team.tags.team = 'other';
    await team.drive(team.reconciler());
    expect(team.rr.status).toMatchObject({ phase: 'Failed', reason: 'TargetOutOfScope', message: expect.stringContaining('team=ns') });
    expect([...role.sent, ...team.sent]).toHaveLength(0);
  });

  test('an input outside its allowedPattern fails the request, nothing is sent', async () => {
    const w = new World({}, { alert: { source: 'generic', name: 'Down', status: 'firing', labels: { instance_id: ID, service: 'sshd' } } });
    await w.drive(w.reconciler());
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('InvalidParameter');
    expect(w.rr.status?.message).toContain('input service');
    expect(w.sent).toHaveLength(0);
  });

  test('an allowedPattern that is not a valid regex fails the request instead of retrying forever', async () => {
    const w = new World({}, {}, { inputs: [{ name: 'service', allowedPattern: '[a-z+\\$' }] });
    await w.drive(w.reconciler());
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('InvalidPolicy');
  });
});

describe('RemediationRequestReconciler: a request re-created after it ran (rerun.ts)', () => {
  test('the same name and spec under a new UID ends Skipped (AlreadyRan) past the cooldown, through a restart; a new name runs', async () => {
    const w = new World({ safety: { cooldown: '10m' } });
    await w.drive(w.reconciler(), 'Succeeded');
    await w.drive(w.reconciler()); // settled in the ledger
    const spec = structuredClone(w.rr.spec);
    // Retention deletes it a day later; GitOps applies the same file again. A new leader runs by then.
    w.now += 24 * 3_600_000;
    w.rr = { metadata: { name: 'r', namespace: 'ns', uid: 'uid-2', generation: 1, resourceVersion: String(++w.rv) }, spec };
    const restarted = w.reconciler();
    await w.drive(restarted);
    expect(w.phase).toBe('Skipped');
    expect(w.rr.status?.reason).toBe('AlreadyRan');
    expect(w.rr.status?.message).toContain('already ran as UID uid-1');
    expect(w.rr.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(w.sent).toHaveLength(1);
    expect(w.events).toContain('Normal AlreadyRan');
    // A deliberate re-run is a new request: another name.
    w.rr = { metadata: { name: 'r-again', namespace: 'ns', uid: 'uid-3', generation: 1, resourceVersion: String(++w.rv) }, spec };
    for (let i = 0; i < 6 && w.phase !== 'Succeeded'; i++) {
      await restarted.reconcile({ namespace: 'ns', name: 'r-again' }, log);
      w.now += 1_000;
    }
    expect(w.phase).toBe('Succeeded');
    expect(w.sent).toHaveLength(2);
  });
});
