/**
 * `make bench`: throughput and memory of the hot paths, with in-process fakes for the
 * API server and AWS so the numbers measure remediator's own code, not the network.
 *
 *  - work queue: add/get/done cycles per second, with heavy key duplication;
 *  - template rendering with the allowlist: renders per second;
 *  - the request reconciler: requests driven from Pending to Succeeded per second, and
 *    heap per cached request (what a controller watching 10,000 requests holds).
 *
 * Prints one JSON object per benchmark (`--json`) or a table; numbers vary with the
 * machine, so compare runs on the same one.
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import type { AlertPolicy, RemediationRequest, Runbook } from '../src/api/v1alpha1/index.js';
import type { CommandRunner, InstanceDescriber, MetricsReader, Publisher } from '../src/cloud/types.js';
import { RemediationRequestReconciler } from '../src/controllers/request/reconciler.js';
import { ExecutionLedger } from '../src/controllers/ledger.js';
import { MemoryLedgerStorage } from '../src/fakes/ledger-memory.js';
import { DEFAULT_RETENTION } from '../src/controllers/retention.js';
import { render, valuePolicy } from '../src/controllers/template.js';
import type { EventRecorder, ResourceClient } from '../src/kube/resources.js';
import { Metrics } from '../src/observability/metrics.js';
import { WorkQueue } from '../src/runtime/workqueue.js';

interface Result {
  name: string;
  value: number;
  unit: string;
  detail?: string;
}

const results: Result[] = [];
function report(r: Result): void {
  results.push(r);
}

async function benchQueue(): Promise<void> {
  const q = new WorkQueue();
  const N = 500_000;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    q.add(`ns/key-${i % 1000}`);
    if (q.length > 0) {
      const k = await q.get();
      q.done(k!);
    }
  }
  const secs = (performance.now() - t0) / 1000;
  report({ name: 'workqueue add/get/done', value: Math.round(N / secs), unit: 'ops/s', detail: '1,000 distinct keys' });
  await q.shutdown(false);
}

function benchTemplate(): void {
  const ctx = {
    alert: { name: 'NginxDown', source: 'alertmanager' },
    labels: { service: 'nginx', instance_id: 'i-0123456789abcdef0' },
    annotations: {},
  };
  const policy = valuePolicy();
  const N = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) render('systemctl restart {{ labels.service }} # {{ labels.instance_id }}', ctx, policy);
  const secs = (performance.now() - t0) / 1000;
  report({ name: 'template render + allowlist', value: Math.round(N / secs), unit: 'renders/s' });
}

/** An in-memory ResourceClient: stores what the reconciler writes, bumping resourceVersion like the API server. */
class MemoryRequests implements ResourceClient<RemediationRequest> {
  readonly names = { kind: 'RemediationRequest', plural: 'remediationrequests', singular: 'remediationrequest', shortNames: ['rr'] };
  readonly watchPath = '';
  readonly store = new Map<string, RemediationRequest>();
  private rv = 1;
  writes = 0;
  listAll = async () => ({ items: [...this.store.values()], resourceVersion: String(this.rv) });
  get = async (ns: string, name: string) => this.store.get(`${ns}/${name}`);
  create = async (ns: string, body: RemediationRequest) => this.put(ns, body);
  replace = async (ns: string, _name: string, body: RemediationRequest) => this.put(ns, body);
  replaceStatus = async (ns: string, _name: string, body: RemediationRequest) => this.put(ns, body);
  setFinalizers = async (ns: string, name: string, finalizers: string[]) => {
    const current = this.store.get(`${ns}/${name}`)!;
    return this.put(ns, { ...current, metadata: { ...current.metadata, finalizers } });
  };
  delete = async (ns: string, name: string) => this.store.delete(`${ns}/${name}`);
  private put(ns: string, body: RemediationRequest): RemediationRequest {
    this.writes++;
    const obj = { ...body, metadata: { ...body.metadata, namespace: ns, resourceVersion: String(++this.rv) } };
    this.store.set(`${ns}/${obj.metadata.name}`, obj);
    return obj;
  }
}

async function benchReconciler(): Promise<void> {
  const N = 5_000;
  const requests = new MemoryRequests();
  const runbook: Runbook = {
    metadata: { name: 'restart-service', generation: 1 },
    spec: {
      namespaceSelector: {},
      scope: { tagSelector: { Environment: 'prod' } },
      inputs: [{ name: 'service', allowedPattern: 'nginx|php-fpm' }],
      action: { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart {{ inputs.service }}'] }] } },
    },
  };
  const policy: AlertPolicy = {
    metadata: { name: 'restart', namespace: 'bench', generation: 1 },
    spec: {
      targets: { fromLabels: ['instance_id'] },
      runbookRef: { name: 'restart-service' },
      inputs: { service: '{{ labels.service }}' },
      risk: 'Low',
    },
  };
  const instances: InstanceDescriber = {
    describe: async (ids) => ({
      found: ids.map((instanceId) => ({ instanceId, state: 'running', tags: { Environment: 'prod', Service: 'nginx' } })),
      missing: [],
    }),
    findByTags: async () => [],
  };
  let commands = 0;
  const runner: CommandRunner = {
    sendCommand: async () => ({ commandId: `cmd-${++commands}` }),
    findCommand: async () => undefined,
    getInvocation: async (_c, instanceId) => ({ instanceId, status: 'Success', responseCode: 0, stdout: 'ok' }),
  };
  // The queue's requeue delays pass at once: the bench measures CPU, not the poll interval.
  let skew = 0;
  const clock = { now: () => Date.now() + skew };
  const metrics: MetricsReader = { getMetricData: async () => new Map() };
  const publisher: Publisher = { publish: async () => ({ messageId: 'm' }) };
  const events: EventRecorder = { record: async () => {} };
  const reconciler = new RemediationRequestReconciler({
    requests,
    getRequest: (ns, name) => requests.store.get(`${ns}/${name}`),
    getPolicy: () => policy,
    getRunbook: () => runbook,
    namespaceLabels: (ns) => ({ 'kubernetes.io/metadata.name': ns }),
    admission: () => ({
      enforced: true,
      binding: 'bench',
      epoch: { policy: { uid: 'p', generation: 1 }, binding: { name: 'b', uid: 'b', generation: 1 } },
    }),
    // The ledger's storage in memory: what the bench measures is the reconciler, not ConfigMap writes.
    ledger: new ExecutionLedger(new MemoryLedgerStorage(), clock),
    retentionDefaults: DEFAULT_RETENTION,
    cloudFor: () => ({
      instances,
      commands: runner,
      metrics,
      publisher,
      agents: { agentStatus: async () => new Map() },
      cancels: { cancelCommand: async () => undefined },
      alarms: { alarmStates: async () => new Map() },
    }),
    defaultRegion: 'eu-west-1',
    events,
    metrics: new Metrics(false),
    clock,
    allowedDocuments: new Set(['AWS-RunShellScript']),
  });
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  for (let i = 0; i < N; i++) {
    const hex = i.toString(16).padStart(17, '0');
    await requests.create('bench', {
      metadata: { name: `r-${i}`, uid: `uid-${i}`, generation: 1 },
      spec: {
        policyRef: { name: 'restart' },
        alert: { source: 'alertmanager', name: 'NginxDown', status: 'firing', labels: { instance_id: `i-${hex}`, service: 'nginx' } },
      },
    });
  }
  const log = pino({ level: 'silent' });
  const t0 = performance.now();
  let reconciles = 0;
  for (let i = 0; i < N; i++) {
    for (let step = 0; step < 10; step++) {
      // Until it is settled, as in the controller: the outcome in the ledger, the finalizer gone.
      const rr = requests.store.get(`bench/r-${i}`);
      const phase = rr?.status?.phase;
      if ((phase === 'Succeeded' || phase === 'Failed') && !rr?.metadata?.finalizers?.length) break;
      const result = await reconciler.reconcile({ namespace: 'bench', name: `r-${i}` }, log);
      if (result?.requeueAfterMs) skew += result.requeueAfterMs;
      reconciles++;
    }
  }
  const secs = (performance.now() - t0) / 1000;
  const ok = [...requests.store.values()].filter((r) => r.status?.phase === 'Succeeded').length;
  if (ok !== N) throw new Error(`only ${ok} of ${N} requests succeeded`);
  global.gc?.();
  const heapAfter = process.memoryUsage().heapUsed;
  report({
    name: 'request reconciler, Pending→Succeeded',
    value: Math.round(N / secs),
    unit: 'requests/s',
    detail: `${reconciles} reconciles, ${requests.writes - N} writes after the creates (status, finalizer)`,
  });
  report({
    name: 'heap per finished request in cache',
    value: Math.round((heapAfter - heapBefore) / N),
    unit: 'bytes',
    detail: global.gc ? `${N} requests` : 'run with --expose-gc for a precise figure',
  });
}

async function main(): Promise<void> {
  await benchQueue();
  benchTemplate();
  await benchReconciler();
  if (process.argv.includes('--json')) {
    for (const r of results) console.log(JSON.stringify(r));
    return;
  }
  console.log(`remediator benchmarks (node ${process.version}, ${new Date().toISOString()})`);
  for (const r of results)
    console.log(`  ${r.name.padEnd(42)} ${String(r.value).padStart(10)} ${r.unit}${r.detail ? `  (${r.detail})` : ''}`);
}

await main();
