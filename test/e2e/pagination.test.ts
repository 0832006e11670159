/**
 * The controller's caches at scale, against the real kube-apiserver: 10,000
 * RemediationRequests in one namespace, then the controller process starts (as a
 * follower: it caches everything and reconciles nothing) and fills its cache. The API server's own request counters (`apiserver_request_total`, verb
 * LIST, resource remediationrequests) show the list was paginated — at least one LIST
 * per 500 objects, where an unpaginated list is one — and the controller's scrape-time
 * gauge shows all 10,000 in its cache. Its memory (RSS and V8 heap, from its /metrics)
 * is written to the test's log next to an idle controller's. Both run as the image runs
 * them — the Dockerfile ENTRYPOINT's node flags, the chart's NODE_OPTIONS, malloc settings and log level,
 * no source maps — since the harness's default `--enable-source-maps` alone adds about
 * 100 MB of heap and made these figures (274 MiB idle) disagree with the benchmark's.
 * These requests are Pending (no policy reconciles them), so each is cached whole minus
 * managedFields; finished requests are cached in a smaller form (src/caches.ts).
 *
 * Other test files share the API server and their controllers list too, so their LISTs
 * can only add to the count: the bound below is a floor.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { join } from 'node:path';
import { CoordinationV1Api, V1MicroTime, type KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, GROUP, VERSION } from '../../src/api/v1alpha1/index.js';
import { parse } from 'yaml';
import { repoRoot } from '../testbed/binaries.js';
import { Resources, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';

const REGION = 'ap-southeast-4';
const NS = 'pagination';
const IDLE_NS = 'pagination-idle';
const COUNT = 10_000;
const PAGE_SIZE = 500; // the controller's default --list-page-size
const POLICIES = 10;

/**
 * The controller's node flags and environment as the image and chart ship them: the flags
 * between the node binary and the bundle in the Dockerfile's ENTRYPOINT, NODE_OPTIONS
 * and the log level from the chart's values. Read from those files, so they cannot drift.
 */
function asShipped(): { nodeFlags: string[]; env: Record<string, string> } {
  const dockerfile = readFileSync(join(repoRoot(), 'Dockerfile'), 'utf8');
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
  const values = parse(readFileSync(join(repoRoot(), 'charts', 'remediator', 'values.yaml'), 'utf8')) as {
    controller: { nodeOptions?: string; logLevel?: string; malloc?: { arenaMax?: number; trimThresholdBytes?: number } };
  };
  const malloc = values.controller.malloc ?? {};
  return {
    nodeFlags: entrypoint.slice(1, -1),
    env: {
      NODE_OPTIONS: values.controller.nodeOptions ?? '',
      ...(values.controller.logLevel && { LOG_LEVEL: values.controller.logLevel }),
      ...(malloc.arenaMax !== undefined && { MALLOC_ARENA_MAX: String(malloc.arenaMax) }),
      ...(malloc.trimThresholdBytes !== undefined && { MALLOC_TRIM_THRESHOLD_: String(malloc.trimThresholdBytes) }),
    },
  };
}

/** Sum of the samples of `name` whose labels include every one of `labels`. */
function sumSamples(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const line of text.split('\n')) {
    if (!(line.startsWith(`${name}{`) || line.startsWith(`${name} `)) || !want.every((w) => line.includes(w))) continue;
    total += Number(line.split(' ').at(-1));
  }
  return total;
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

/** Runs `task(i)` for i in [0, n) with at most `parallel` at once. */
async function pool(n: number, parallel: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = next++; i < n; i = next++) await task(i);
    }),
  );
}

/**
 * POSTs `count` objects to `path` over one HTTP/2 connection, `parallel` at a time: the
 * generated client's per-call overhead made this the slow part on a loaded machine.
 * An object that exists already (409) counts as created.
 */
async function bulkCreate(kc: KubeConfig, path: string, count: number, parallel: number, body: (i: number) => object): Promise<void> {
  const opts: { ca?: Buffer; cert?: Buffer; key?: Buffer; headers?: Record<string, string> } = {};
  await kc.applyToHTTPSOptions(opts as never);
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('kubeconfig has no current cluster');
  const session = connect(server, { ca: opts.ca, cert: opts.cert, key: opts.key });
  session.on('error', () => undefined);
  try {
    await pool(
      count,
      parallel,
      (i) =>
        new Promise<void>((resolve, reject) => {
          const req = session.request({
            ':method': 'POST',
            ':path': path,
            'content-type': 'application/json',
            accept: 'application/json',
            ...opts.headers,
          });
          let status = 0;
          const chunks: Buffer[] = [];
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('end', () =>
            status === 201 || status === 409
              ? resolve()
              : reject(new Error(`POST ${path} #${i}: HTTP ${status}: ${Buffer.concat(chunks).toString('utf8').slice(0, 300)}`)),
          );
          req.on('error', reject);
          req.end(JSON.stringify(body(i)));
        }),
    );
  } finally {
    session.close();
  }
}

describe('the request cache at 10,000 requests', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  const coordination = tb.admin().makeApiClient(CoordinationV1Api);
  const running: RunningController[] = [];

  const apiserverMetrics = async () => (await tb.kubectl(['get', '--raw', '/metrics'])).stdout;
  const listCalls = async () =>
    sumSamples(await apiserverMetrics(), 'apiserver_request_total', { verb: 'LIST', resource: 'remediationrequests' });
  const scrape = async (c: RunningController) => (await fetch(`${c.metricsUrl}/metrics`)).text();
  const memory = (text: string) => ({
    rss: sumSamples(text, 'process_resident_memory_bytes'),
    heapUsed: sumSamples(text, 'nodejs_heap_size_used_bytes'),
  });

  beforeAll(async () => {
    await res.namespace(NS);
    await res.namespace(IDLE_NS);
  });

  // The 10,000 stay: no other file's controller watches this namespace, the test bed's
  // API server goes at the end of the run, and deleting them takes about as long as
  // creating half of them.
  afterAll(async () => {
    for (const c of running) await c.stop();
  });

  test('is filled by a paginated LIST (counted by the API server) and holds every request', async () => {
    const t0 = Date.now();
    await bulkCreate(tb.admin(), `/apis/${GROUP}/${VERSION}/namespaces/${NS}/remediationrequests`, COUNT, 64, (i) => ({
      apiVersion: API_VERSION,
      kind: 'RemediationRequest',
      metadata: { name: `rr-${i}`, namespace: NS, labels: { 'remediator.dev/policy': `policy-${i % POLICIES}` } },
      spec: {
        policyRef: { name: `policy-${i % POLICIES}` },
        alert: {
          source: 'generic',
          name: 'DiskFull',
          status: 'firing',
          fingerprint: i.toString(16).padStart(16, '0'),
          labels: { alertname: 'DiskFull', instance_id: 'i-0123456789abcdef0', severity: 'warning', n: String(i) },
          annotations: { summary: `disk /var is 97% full on i-0123456789abcdef0 (${i})` },
        },
      },
    }));
    const createdInS = (Date.now() - t0) / 1000;
    // Another replica leads: this controller is a follower, which fills every cache as the
    // leader does but reconciles nothing, so 10,000 requests of a policy that does not
    // exist cost no status writes (and what is measured is the cache, not the work).
    await coordination.createNamespacedLease({
      namespace: NS,
      body: {
        metadata: { name: 'remediator-leader', namespace: NS },
        spec: { holderIdentity: 'another-replica', leaseDurationSeconds: 3600, renewTime: new V1MicroTime(Date.now()) },
      },
    });

    // An idle controller (an empty namespace) beside it: what the process costs without a cache.
    const shipped = asShipped();
    const idle = await startController(tb, {
      region: REGION,
      namespace: IDLE_NS,
      name: 'controller-pagination-idle',
      nodeFlags: shipped.nodeFlags,
      extraEnv: shipped.env,
    });
    running.push(idle);

    const before = await listCalls();
    const t1 = Date.now();
    const controller = await startController(tb, {
      region: REGION,
      namespace: NS,
      name: 'controller-pagination',
      nodeFlags: shipped.nodeFlags,
      extraEnv: { ...shipped.env, LEADER_ELECT: 'true', POD_NAMESPACE: NS, POD_NAME: 'controller-pagination' },
    });
    running.push(controller);
    const syncedInS = (Date.now() - t1) / 1000;
    const lists = (await listCalls()) - before;

    // readyz means every cache synced; the gauge counts the request cache at scrape time.
    const text = await waitFor(
      'the request cache to hold every request',
      async () => {
        const t = await scrape(controller);
        return sumSamples(t, 'remediator_requests', { namespace: NS, phase: 'Pending' }) === COUNT ? t : undefined;
      },
      30_000,
    );
    const mem = memory(text);
    const idleMem = memory(await scrape(idle));
    process.stderr.write(
      `\npagination: ${COUNT} requests created in ${createdInS.toFixed(1)} s; controller ready in ${syncedInS.toFixed(1)} s; ` +
        `LIST remediationrequests at the API server: ${lists} (page size ${PAGE_SIZE}, ≥ ${COUNT / PAGE_SIZE} expected; unpaginated: 1); ` +
        `controller with ${COUNT} cached: RSS ${mib(mem.rss)}, heap used ${mib(mem.heapUsed)}; ` +
        `idle controller: RSS ${mib(idleMem.rss)}, heap used ${mib(idleMem.heapUsed)}\n`,
    );
    expect(lists).toBeGreaterThanOrEqual(Math.ceil(COUNT / PAGE_SIZE));
    expect(
      sumSamples(text, 'remediator_informer_lifecycle_total', { informer: 'remediationrequests', event: 'listed' }),
    ).toBeGreaterThanOrEqual(1);
    expect(mem.rss).toBeGreaterThan(0);
    expect(sumSamples(text, 'remediator_leader')).toBe(0);
  }, 300_000);
});
