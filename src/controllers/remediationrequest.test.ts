/**
 * The request reconciler's edge cases, driven with in-memory fakes of the API server and
 * AWS (the same paths run against the real ones in test/e2e): write conflicts after a
 * send, ambiguous sends, restarts, rejections, refusals by AWS, notifications that fail,
 * policies that change or vanish, and tags added after approval.
 */
import { ApiException } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { AlertPolicy, RemediationRequest } from '../api/v1alpha1/index.js';
import type { CommandRunner, InstanceFacts, PublishInput, SendCommandInput } from '../cloud/types.js';
import type { ResourceClient } from '../kube/resources.js';
import { Metrics } from '../observability/metrics.js';
import { RemediationRequestReconciler } from './remediationrequest.js';

const log = pino({ level: 'silent' });
const ID = 'i-0123456789abcdef0';

class World {
  now = Date.parse('2026-11-23T12:00:00Z');
  readonly clock = { now: () => this.now };
  rr!: RemediationRequest;
  policy: AlertPolicy | undefined;
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

  readonly requests: ResourceClient<RemediationRequest> = {
    names: { kind: 'RemediationRequest', plural: 'remediationrequests', singular: 'remediationrequest', shortNames: [] },
    watchPath: '',
    listAll: async () => ({ items: [this.rr], resourceVersion: String(this.rv) }),
    get: async () => structuredClone(this.rr),
    create: async (_ns, b) => b,
    replace: async (_ns, _n, b) => b,
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
      requestsOf: () => [this.rr],
      instances: {
        describe: async (ids) => ({ found: ids.map((instanceId): InstanceFacts => ({ instanceId, state: 'running', tags: { ...this.tags } })), missing: [] }),
        findByTags: async () => [],
      },
      commands: this.commands,
      metricsReader: { getMetricData: async () => new Map() },
      publisher: {
        publish: async (input) => {
          if (this.publishError) throw this.publishError;
          this.published.push(input);
          return { messageId: `m-${this.published.length}` };
        },
      },
      events: { record: async () => {} },
      metrics: new Metrics(false),
      clock: this.clock,
      allowedDocuments: new Set(['AWS-RunShellScript']),
    });
  }

  constructor(spec: Partial<AlertPolicy['spec']> = {}, rrSpec: Partial<RemediationRequest['spec']> = {}) {
    this.policy = {
      metadata: { name: 'p', namespace: 'ns', generation: 1 },
      spec: { targets: { fromLabels: ['instance_id'] }, action: { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart {{ labels.service }}'] }] } }, ...spec },
    };
    this.rr = {
      metadata: { name: 'r', namespace: 'ns', uid: 'uid-1', generation: 1, resourceVersion: '1' },
      spec: { policyRef: { name: 'p' }, alert: { source: 'generic', name: 'Down', status: 'firing', labels: { instance_id: ID, service: 'nginx' } }, ...rrSpec },
    };
  }

  get phase() {
    return this.rr.status?.phase;
  }

  /** Reconcile until the phase stops changing or `until` is reached; returns the last requeue delay. */
  async drive(r: RemediationRequestReconciler, until?: string, max = 12): Promise<number | undefined> {
    let last: number | undefined;
    for (let i = 0; i < max; i++) {
      const before = JSON.stringify(this.rr.status);
      const res = await r.reconcile({ namespace: 'ns', name: 'r' }, log).catch((e: unknown) => ({ error: e }));
      last = res && 'requeueAfterMs' in res ? res.requeueAfterMs : undefined;
      if (until && this.phase === until) break;
      if (JSON.stringify(this.rr.status) === before && !(res && 'error' in res)) break;
    }
    return last;
  }
}

const networkError = Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });

describe('RemediationRequestReconciler', () => {
  test('a write conflict right after SendCommand still records the command id, and nothing is sent twice', async () => {
    const w = new World();
    w.listLag = true;
    const r = w.reconciler();
    await w.drive(r, 'Executing');
    w.conflictsOnNextWrite = 1; // someone labels the request while the command is in flight
    await w.drive(r, 'Succeeded');
    expect(w.phase).toBe('Succeeded');
    expect(w.sent).toHaveLength(1);
    expect(w.rr.status?.execution?.ssm?.commandId).toBe('cmd-1');
  });

  test('after an ambiguous send the controller waits for SSM to list the command instead of sending again', async () => {
    const w = new World();
    const r = w.reconciler();
    await w.drive(r, 'Executing');
    // The request reached SSM, the answer was lost, and ListCommands does not show it yet.
    w.sendError = networkError;
    await r.reconcile({ namespace: 'ns', name: 'r' }, log).catch(() => undefined);
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
    await w.drive(w.reconciler(), 'Executing');
    const fresh = w.reconciler(); // a new process: it did not write that intent
    expect(await fresh.reconcile({ namespace: 'ns', name: 'r' }, log)).toEqual({ requeueAfterMs: 30_000 });
    expect(w.sent).toHaveLength(0);
    w.now += 30_000;
    await w.drive(fresh, 'Succeeded');
    expect(w.sent).toHaveLength(1);
  });

  test('a rejection is honoured in every phase, also for auto-approved policies', async () => {
    const w = new World({}, { approval: { decision: 'Rejected', approver: 'alice', reason: 'not now' } });
    await w.drive(w.reconciler());
    expect(w.phase).toBe('Rejected');
    expect(w.sent).toHaveLength(0);
  });

  test('a command SSM refuses outright fails the request instead of retrying forever', async () => {
    const w = new World();
    w.sendError = Object.assign(new Error('Instances [[i-0123456789abcdef0]] not in a valid state'), { name: 'InvalidInstanceId', $fault: 'client' });
    await w.drive(w.reconciler());
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('CommandRejected');
  });

  test('a notification that cannot be published is recorded and does not hold the remediation up', async () => {
    const w = new World({ action: { ssm: { parameters: [{ name: 'commands', values: ['true'] }] }, notify: { topicArn: 'arn:aws:sns:eu-west-1:123456789012:t', on: ['Approved', 'Succeeded'] } } });
    w.publishError = Object.assign(new Error('Topic does not exist'), { name: 'NotFoundException', $fault: 'client' });
    await w.drive(w.reconciler(), undefined, 20);
    expect(w.phase).toBe('Succeeded');
    expect(w.rr.status?.notifications?.map((n) => [n.phase, n.error])).toEqual([
      ['Approved', 'Topic does not exist'],
      ['Succeeded', 'Topic does not exist'],
    ]);
  });

  test('a policy deleted while the command runs does not strand the request', async () => {
    const w = new World();
    const r = w.reconciler();
    await w.drive(r, 'Executing');
    await r.reconcile({ namespace: 'ns', name: 'r' }, log); // sends
    w.policy = undefined;
    await w.drive(r, 'Succeeded');
    expect(w.phase).toBe('Succeeded');
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
    w.rr = { ...w.rr, spec: { ...w.rr.spec, approval: { decision: 'Approved', approver: 'bob' } } };
    await w.drive(r);
    expect(w.phase).toBe('Skipped');
    expect(w.rr.status?.reason).toBe('OptOut');
    expect(w.sent).toHaveLength(0);
  });

  test('a Manual policy changed after approval needs a new decision', async () => {
    const w = new World({ risk: 'High' });
    const r = w.reconciler();
    await w.drive(r, 'AwaitingApproval');
    w.policy = { ...w.policy!, metadata: { ...w.policy!.metadata, generation: 2 } };
    w.rr = { ...w.rr, spec: { ...w.rr.spec, approval: { decision: 'Approved', approver: 'bob' } } };
    await w.drive(r);
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('PolicyChanged');
    expect(w.sent).toHaveLength(0);
  });

  test('an allowedPattern that is not a valid regex fails the request instead of retrying forever', async () => {
    const w = new World({ action: { ssm: { parameters: [{ name: 'commands', values: ['x {{ labels.service }}'], allowedPattern: '[a-z+\\$' }] } } });
    await w.drive(w.reconciler());
    expect(w.phase).toBe('Failed');
    expect(w.rr.status?.reason).toBe('InvalidParameter');
  });
});
