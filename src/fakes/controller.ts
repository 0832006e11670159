/**
 * One request controller process wired to the fakes: the real reconciler, reading from a
 * `FakeCache` of a `FakeApiServer` (a cache that lags until `deliver()`), SSM and SNS
 * fakes, and the execution ledger on shared in-memory storage — what the simulation runs
 * several of, and what a phase handler's test drives by hand.
 */
import { pino } from 'pino';
import { EXECUTION_FINALIZER, type AlertPolicy, type RemediationRequest, type Runbook } from '../api/v1alpha1/index.js';
import type { InstanceFacts } from '../cloud/types.js';
import { ExecutionLedger } from '../controllers/ledger.js';
import type { RemediationRequestReconcilerDeps } from '../controllers/request/deps.js';
import { RemediationRequestReconciler } from '../controllers/request/reconciler.js';
import { DEFAULT_RETENTION } from '../controllers/retention.js';
import { Metrics } from '../observability/metrics.js';
import type { FakeSns, FakeSsm } from './aws.js';
import { FakeCache, type FakeApiServer } from './cluster.js';
import type { MemoryLedgerStorage } from './ledger-memory.js';

export const MANAGED_TAG = { key: 'remediator.dev/managed', value: 'true' } as const;

/** Metrics are not what these tests check, and building them is not free: one set for all. */
const metrics = new Metrics(false);
const silent = pino({ level: 'silent' });

export interface FakeWorld {
  server: FakeApiServer;
  ssm: FakeSsm;
  sns: FakeSns;
  storage: MemoryLedgerStorage;
  clock: { now(): number };
  policies: Map<string, AlertPolicy>;
  runbooks: Map<string, Runbook>;
  /** Instances a tag selector finds (each carries the managed tag and `tags`). */
  fleet?: { ids: readonly string[]; tags: Record<string, string> };
}

export class FakeController {
  readonly cache: FakeCache;
  readonly ledger: ExecutionLedger;
  readonly reconciler: RemediationRequestReconciler;
  /** Keys the informer's handlers enqueued, in order (a test or the simulation drains them). */
  readonly enqueued: string[] = [];
  private readonly observers: Array<(o: RemediationRequest, deleted: boolean) => void> = [];

  constructor(
    readonly name: string,
    world: FakeWorld,
    overrides: Partial<RemediationRequestReconcilerDeps> = {},
  ) {
    this.cache = new FakeCache(world.server);
    this.ledger = new ExecutionLedger(world.storage, world.clock);
    const managed = { [MANAGED_TAG.key]: MANAGED_TAG.value };
    const instances = {
      describe: async (want: readonly string[]) => ({
        found: want.map((instanceId): InstanceFacts => ({ instanceId, state: 'running', tags: { ...managed } })),
        missing: [],
      }),
      findByTags: async () =>
        (world.fleet?.ids ?? []).map(
          (instanceId): InstanceFacts => ({ instanceId, state: 'running', tags: { ...world.fleet?.tags, ...managed } }),
        ),
    };
    const commands = world.ssm.runner(name);
    const cancels = world.ssm.canceller(name);
    const publisher = world.sns.publisher(name);
    this.reconciler = new RemediationRequestReconciler({
      requests: world.server.client(name),
      getRequest: (ns, n) => this.cache.get(`${ns}/${n}`),
      observeRequests: (fn) => this.observers.push(fn),
      getPolicy: (_ns, n) => world.policies.get(n),
      getRunbook: (n) => world.runbooks.get(n),
      namespaceLabels: (ns) => ({ 'kubernetes.io/metadata.name': ns }),
      admission: () => ({
        enforced: true,
        binding: 'fake',
        epoch: { policy: { uid: 'fake', generation: 1 }, binding: { name: 'fake', uid: 'fake', generation: 1 } },
      }),
      ledger: this.ledger,
      retentionDefaults: DEFAULT_RETENTION,
      cloudFor: () => ({
        instances,
        commands,
        agents: { agentStatus: async () => new Map() },
        metrics: { getMetricData: async () => new Map() },
        publisher,
        cancels,
        alarms: { alarmStates: async () => new Map() },
      }),
      defaultRegion: 'eu-west-1',
      events: { record: async () => undefined },
      metrics,
      clock: world.clock,
      allowedDocuments: new Set(['AWS-RunShellScript']),
      requiredTargetTag: MANAGED_TAG,
      ...overrides,
    });
    this.cache.onEvent = (type, object) => {
      for (const fn of this.observers) fn(object, type === 'delete');
      this.enqueued.push(`${object.metadata?.namespace}/${object.metadata?.name}`);
    };
  }

  /** Loads the ledger and lists: what a new leader does first. */
  async start(): Promise<void> {
    await this.ledger.load();
    this.cache.relist();
  }

  /** One reconcile of `namespace/name`, as a worker runs it. */
  reconcile(key: string): Promise<{ requeueAfterMs?: number } | void> {
    const [namespace, name] = key.split('/') as [string, string];
    return this.reconciler.reconcile({ namespace, name }, silent);
  }
}

export const FAKE_NS = 'sim';
export const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:runbook';
export const FIFO_TOPIC = 'arn:aws:sns:eu-west-1:123456789012:runbook.fifo';
export const NOTIFY_TOPIC = 'arn:aws:sns:eu-west-1:123456789012:notify';
/** The tag of the fleet a `fleet` request selects. */
export const FLEET_TAGS = { Fleet: 'sim' };

/** The kinds of request the catalog has a policy for. */
export type RequestKind = 'ssm' | 'fleet' | 'sns' | 'fifo' | 'rollout';
export const POLICY_OF: Record<RequestKind, string> = { ssm: 'one', fleet: 'fleet', sns: 'page', fifo: 'page-fifo', rollout: 'waves' };

/**
 * Runbooks and auto-approved policies for each kind: one instance from the alert's
 * labels (`one`), a tag-selected fleet (`fleet`), a message to a standard topic (`page`)
 * or a FIFO one (`page-fifo`); every policy announces Executing, Succeeded and Failed on
 * `notify` when it is set (a standard topic unless `notifyTopic` says otherwise). Every
 * runbook grants that topic (spec.notifyTopics, the administrator's grant) unless
 * `grantNotify` is false: then every request ends Failed/NotifyTopicNotGranted.
 */
export function catalog(opts: { notify?: boolean; notifyTopic?: string; grantNotify?: boolean } = {}): {
  policies: Map<string, AlertPolicy>;
  runbooks: Map<string, Runbook>;
} {
  const runbooks = new Map<string, Runbook>();
  const policies = new Map<string, AlertPolicy>();
  const ssmAction = { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart nginx'] }] } };
  const notifyTopic = opts.notifyTopic ?? NOTIFY_TOPIC;
  const granted = opts.notify && opts.grantNotify !== false ? { notifyTopics: [notifyTopic] } : {};
  const rb = (name: string, spec: Partial<Runbook['spec']>): void => {
    runbooks.set(name, {
      metadata: { name, generation: 1 },
      spec: { namespaceSelector: {}, maxAutoApprovedRisk: 'Low', action: ssmAction, ...granted, ...spec } as Runbook['spec'],
    });
  };
  rb('restart', {});
  rb('fleet-restart', { scope: { tagSelector: FLEET_TAGS, maxTargets: 150 } });
  // A canary of one, then waves of half the fleet, paused, at 10 at a time (60 targets: 1, 30, 29).
  rb('fleet-waves', {
    scope: { tagSelector: FLEET_TAGS, maxTargets: 150 },
    action: {
      ssm: { ...ssmAction.ssm, maxConcurrency: '10', rollout: { waves: [{ size: '1' }, { size: '50%' }], pauseBetweenWaves: '1s' } },
    },
  });
  rb('page', { action: { sns: { topicArn: TOPIC, message: 'alert {{ alert.name }}' } } });
  rb('page-fifo', { action: { sns: { topicArn: FIFO_TOPIC, message: 'alert {{ alert.name }}' } } });
  const notify = opts.notify ? { notify: { topicArn: notifyTopic, on: ['Executing', 'Succeeded', 'Failed'] } } : {};
  const policy = (name: string, spec: Partial<AlertPolicy['spec']>): void => {
    policies.set(name, {
      metadata: { name, namespace: FAKE_NS, generation: 1 },
      spec: {
        targets: { fromLabels: ['instance_id'] },
        runbookRef: { name: 'restart' },
        risk: 'Low',
        ...notify,
        ...spec,
      } as AlertPolicy['spec'],
    });
  };
  policy('one', {});
  policy('fleet', { runbookRef: { name: 'fleet-restart' }, targets: { tagSelector: FLEET_TAGS, maxTargets: 150 } });
  policy('waves', { runbookRef: { name: 'fleet-waves' }, targets: { tagSelector: FLEET_TAGS, maxTargets: 150 } });
  policy('page', { runbookRef: { name: 'page' } });
  policy('page-fifo', { runbookRef: { name: 'page-fifo' } });
  return { policies, runbooks };
}

/** The UID of the `i`th request: a UUID, as the API server gives. */
export const uidOf = (i: number) => `00000000-0000-4000-8000-${i.toString().padStart(12, '0')}`;

/** Instance ids `i-<prefix><hex>` (17 characters after `i-`). */
export const instanceIds = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `i-${prefix}${i.toString(16).padStart(16, '0')}`);

/**
 * Creates request `r<i>` of a kind, firing; returns its key. Even `i` as the intake
 * creates it, with the execution finalizer already set (src/intake/kube.ts); odd `i` as
 * kubectl or GitOps would, without it (the controller adds it).
 */
export function createRequest(server: FakeApiServer, i: number, kind: RequestKind): string {
  const name = `r${i}`;
  server.create(
    {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'RemediationRequest',
      metadata: { name, namespace: FAKE_NS, uid: uidOf(i), ...(i % 2 === 0 && { finalizers: [EXECUTION_FINALIZER] }) },
      spec: {
        policyRef: { name: POLICY_OF[kind] },
        alert: { source: 'generic', name: 'Down', status: 'firing', labels: { instance_id: instanceIds('a', 10)[i % 10]! } },
      },
    },
    'intake',
  );
  return `${FAKE_NS}/${name}`;
}
