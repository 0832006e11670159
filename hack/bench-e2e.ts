/**
 * `make bench-e2e`: the whole job, measured against the floor of its irreducible calls.
 *
 * It starts a real control plane (etcd + kube-apiserver), moto behind the contract
 * gateway, and a small recording proxy in front of the gateway (it timestamps every
 * AWS call by operation, so "SendCommand left" is seen on the wire, the same way for
 * the controller and for the reference script). It seeds 50 instances with CPU
 * datapoints, then runs the controller as its own process (`dist/controller/main.js`, as in
 * test/e2e/harness.ts) and drives it through the real intake (Alertmanager webhook
 * payloads). In the same run, interleaved with the product blocks, it measures the
 * references:
 *
 *  - a bare script making the irreducible calls of one remediation back to back
 *    (create the request, DescribeInstances, GetMetricData, one status write,
 *    SendCommand), through the same API server, proxy, gateway and moto;
 *  - the API server's raw create rate of RemediationRequests (same concurrency as the
 *    intake's deliveries), in a namespace the controller does not watch.
 *
 * It prints:
 *  P1  alert received → SendCommand on the wire, p50/p95, against the bare script;
 *  P2  burst → all Succeeded, per second, against the raw create rate (bursts of 100,
 *      1,000 and, with --burst 5000, 5,000), and 1 vs 50 targets per alert;
 *  P3  AWS calls per alert (the controller's remediator_aws_api_calls_total);
 *  P4  API writes per remediation (kube-apiserver's apiserver_request_total by verb
 *      and resource: requests, status, events, alertpolicies; and 409s);
 *  P5  controller RSS idle, and with 1,000 and 10,000 finished requests in its cache.
 *
 * Each block starts from a reset moto and a fresh controller, so command history and
 * caches never carry over. A benchmark, not a test: nothing here asserts a goal.
 * Flags: --repeats N (default 3), --bursts 100,1000 (add 5000 if there is time),
 * --p1-samples N (default 15), --fill 1000,10000, --concurrency N (default 16, the product default),
 * --wide-burst N (alerts of 50 targets each, default 100), --json, and
 * --controller label=path/to/main.js (repeatable) to measure several builds in one
 * run, block by block interleaved (e.g. main's build against this one); node flags and
 * environment variables may precede the path, space-separated
 * ('after=NODE_OPTIONS=--max-semi-space-size=2 --enable-source-maps dist/controller/main.js').
 * --only p1,p2,p5 runs only those parts (P3 and P4 come with P2). P5 runs every build's
 * controller at the same time through one fill (--p5-repeats N fills), and reports
 * RSS next to the V8 heap and external memory from each one's /metrics;
 * --heap-snapshots DIR writes a heap snapshot of each controller at each fill level
 * (idle, then each of --fill) into DIR, through --heapsnapshot-signal. --p5-restart fills
 * with no controller running and then starts each build alone on the filled namespace
 * (as after a restart or a new leader), --p5-repeats times per level: no status writes
 * during the fill, so 10,000 requests take minutes instead of a quarter of an hour when
 * several builds run.
 */
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { CloudWatchClient, GetMetricDataCommand, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { API_VERSION, GROUP, VERSION, type RemediationRequest } from '../src/api/v1alpha1/index.js';
import { Informer } from '../src/runtime/informer.js';
import { alertmanagerPayload } from '../test/e2e/intake-harness.js';
import { awsEnv, seedClientConfig } from '../test/testbed/aws.js';
import { ensureTestbedBinaries, repoRoot } from '../test/testbed/binaries.js';
import { startControlPlane, type ControlPlane } from '../test/testbed/controlplane.js';
import { startGateway } from '../test/testbed/gateway.js';
import { newRunDir } from '../test/testbed/layout.js';
import { motoReset, startMoto } from '../test/testbed/moto.js';
import { freePort, spawnManaged, stopAll, waitUntil, type ManagedProcess } from '../test/testbed/procs.js';

const REGION = 'us-east-1';
const NS = 'bench';
/** Not watched by the controller: where the references create their requests. */
const REF_NS = 'bench-ref';
const FLEET = 50;
const RUNBOOK = 'bench-restart';
const ENDS = new Set(['Succeeded', 'Failed', 'Rejected', 'Expired', 'Skipped', 'Cancelled']);
/** Deliveries in flight at once, each an Alertmanager payload of up to PAYLOAD alerts; the raw-create reference uses the same. */
const DELIVERIES = 8;
const PAYLOAD = 50;

const { values: flags } = parseArgs({
  options: {
    repeats: { type: 'string', default: '3' },
    bursts: { type: 'string', default: '100,1000' },
    'p1-samples': { type: 'string', default: '15' },
    fill: { type: 'string', default: '1000,10000' },
    concurrency: { type: 'string', default: '16' },
    'wide-burst': { type: 'string', default: '100' },
    json: { type: 'boolean', default: false },
    /** label=[node flags ]path/to/main.js, repeatable: several builds measured in one run, block by block interleaved. */
    controller: { type: 'string', multiple: true },
    only: { type: 'string', default: 'p1,p2,p5' },
    'p5-repeats': { type: 'string', default: '1' },
    'heap-snapshots': { type: 'string' },
    'p5-restart': { type: 'boolean', default: false },
  },
});
const ONLY = new Set(flags.only.split(',').map((x) => x.trim().toLowerCase()));
const P5_REPEATS = Number(flags['p5-repeats']);
const SNAPSHOTS = flags['heap-snapshots'];
const P5_RESTART = flags['p5-restart'];
const REPEATS = Number(flags.repeats);
const BURSTS = flags.bursts.split(',').filter(Boolean).map(Number);
const P1_SAMPLES = Number(flags['p1-samples']);
const FILLS = flags.fill.split(',').filter(Boolean).map(Number);
const CONCURRENCY = flags.concurrency;
const WIDE_BURST = Number(flags['wide-burst']);
const CONTROLLERS =
  (flags.controller ?? []).length > 0
    ? flags.controller!.map((c) => {
        const words = c
          .slice(c.indexOf('=') + 1)
          .trim()
          .split(/\s+/);
        const env = words.filter((w) => /^[A-Z_]+=/.test(w));
        return {
          label: c.slice(0, c.indexOf('=')),
          main: words.at(-1)!,
          nodeFlags: words.slice(0, -1).filter((w) => !env.includes(w)),
          env: Object.fromEntries(env.map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)])),
        };
      })
    : [
        {
          label: 'controller',
          main: join(repoRoot(), 'dist', 'controller', 'main.js'),
          // As the image runs it (Dockerfile: NODE_OPTIONS and the ENTRYPOINT's flag).
          nodeFlags: ['--optimize-for-size', '--max-semi-space-size=1', '--max-old-space-size=384'],
          env: {} as Record<string, string>,
        },
      ];
type Build = (typeof CONTROLLERS)[number];

// ---------- statistics ----------
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
function pct(xs: number[], p: number): number {
  const s = sorted(xs);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const median = (xs: number[]) => pct(xs, 50);
const spread = (xs: number[]) => (xs.length ? `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}` : 'n/a');
function fmt(n: number, digits = 2): string {
  if (!Number.isFinite(n)) return 'n/a';
  return Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(digits);
}

// ---------- a recording proxy in front of the gateway ----------
interface AwsCall {
  at: number;
  operation: string;
  comment?: string;
}

/** Forwards every request to `upstream` unchanged, and notes when each AWS operation went out. */
async function startRecorder(
  upstream: string,
): Promise<{ endpoint: string; calls: AwsCall[]; next(match: (c: AwsCall) => boolean): Promise<AwsCall>; close(): Promise<void> }> {
  const calls: AwsCall[] = [];
  const waiters: Array<{ match: (c: AwsCall) => boolean; resolve: (c: AwsCall) => void }> = [];
  const target = new URL(upstream);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const xTarget = req.headers['x-amz-target'];
      const text = body.toString('utf8');
      const operation =
        typeof xTarget === 'string' ? xTarget.split('.').pop()! : (/(?:^|&)Action=([A-Za-z]+)/.exec(text)?.[1] ?? 'unknown');
      const call: AwsCall = { at: performance.now(), operation };
      if (operation === 'SendCommand') call.comment = (JSON.parse(text) as { Comment?: string }).Comment;
      calls.push(call);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.match(call)) waiters.splice(i, 1)[0]!.resolve(call);
      }
      const up = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        },
      );
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      up.end(body);
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    next: (match) => new Promise((resolve) => waiters.push({ match, resolve })),
    close: () => new Promise((r) => server.close(() => r())),
  };
}

// ---------- the test bed ----------
interface Bench {
  cp: ControlPlane;
  motoEndpoint: string;
  aws: string; // the recorder, in front of the gateway
  recorder: Awaited<ReturnType<typeof startRecorder>>;
  api: CustomObjectsApi;
  admin: KubeConfig;
  dir: string;
  token: string;
}

async function seedFleet(b: Bench): Promise<string[]> {
  await motoReset(b.motoEndpoint);
  const ec2 = new EC2Client(seedClientConfig(b.motoEndpoint, REGION));
  // Large PutMetricData bodies are gzipped by the SDK, which moto cannot read.
  const cw = new CloudWatchClient({ ...seedClientConfig(b.motoEndpoint, REGION), disableRequestCompression: true });
  try {
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: 'ami-1e749f67',
        InstanceType: 't3.micro',
        MinCount: FLEET,
        MaxCount: FLEET,
        TagSpecifications: [
          {
            ResourceType: 'instance',
            Tags: [
              { Key: 'Service', Value: 'nginx' },
              { Key: 'remediator.dev/managed', Value: 'true' },
            ],
          },
        ],
      }),
    );
    const ids = (out.Instances ?? []).map((i) => i.InstanceId!);
    const now = Date.now();
    const data = ids.flatMap((id) =>
      [0, 1, 2].map((k) => ({
        MetricName: 'CPUUtilization',
        Dimensions: [{ Name: 'InstanceId', Value: id }],
        Timestamp: new Date(now - k * 60_000),
        Value: 95,
        Unit: 'Percent' as const,
      })),
    );
    await cw.send(new PutMetricDataCommand({ Namespace: 'AWS/EC2', MetricData: data }));
    return ids;
  } finally {
    ec2.destroy();
    cw.destroy();
  }
}

async function setUpKube(b: Bench): Promise<void> {
  const core = b.admin.makeApiClient(CoreV1Api);
  for (const ns of [NS, REF_NS]) await core.createNamespace({ body: { metadata: { name: ns } } });
  await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'intake-token' }, stringData: { token: b.token } } });
  await b.api.createClusterCustomObject({
    group: GROUP,
    version: VERSION,
    plural: 'runbooks',
    body: {
      apiVersion: API_VERSION,
      kind: 'Runbook',
      metadata: { name: RUNBOOK },
      spec: {
        minRisk: 'Low',
        namespaceSelector: {},
        scope: { maxTargets: FLEET },
        inputs: [{ name: 'service' }],
        action: {
          ssm: {
            documentName: 'AWS-RunShellScript',
            parameters: [{ name: 'commands', values: ['systemctl restart {{ inputs.service }}'] }],
          },
        },
      },
    },
  });
  // One policy per shape, so the 1- and 50-target runs share nothing but the fleet.
  for (const [name, alertname, maxTargets] of [
    ['bench-one', 'BenchOne', 1],
    ['bench-wide', 'BenchWide', FLEET],
  ] as const) {
    await b.api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: 'alertpolicies',
      body: {
        apiVersion: API_VERSION,
        kind: 'AlertPolicy',
        metadata: { name, namespace: NS },
        spec: {
          runbookRef: { name: RUNBOOK },
          inputs: { service: 'nginx' },
          match: { labels: [{ name: 'alertname', op: '=', value: alertname }] },
          targets: { fromLabels: ['instance_id'], maxTargets },
          enrichment: {
            metrics: [
              { name: 'cpu', namespace: 'AWS/EC2', metricName: 'CPUUtilization', statistic: 'Average', periodSeconds: 60, lookback: '10m' },
            ],
            guards: [{ metric: 'cpu', operator: '>', threshold: 50 }],
          },
          risk: 'Low',
          approval: { mode: 'Auto' },
          // Bursts are counted by their ended requests: retention must not delete them
          // meanwhile (the default history limit, 100, would, and its deletes would count
          // as writes). Retention's own delete is one more write per request, later.
          retention: { historyLimit: 10_000 },
        },
      },
    });
  }
}

interface Controller {
  proc: ManagedProcess;
  metricsUrl: string;
  intake: string;
}

async function startControllerProcess(b: Bench, build: Build, label: string, extraFlags: string[] = []): Promise<Controller> {
  const metricsPort = await freePort();
  const intakePort = await freePort();
  const proc = spawnManaged(`${build.label}-${label}`, process.execPath, [...build.nodeFlags, ...extraFlags, build.main], {
    logDir: join(b.dir, 'logs'),
    env: {
      ...awsEnv(b.aws, REGION, { dir: join(b.dir, 'aws') }),
      KUBECONFIG: b.cp.adminKubeconfig,
      LEADER_ELECT: 'false',
      WATCH_NAMESPACE: NS,
      LOG_LEVEL: 'warn',
      CONCURRENCY,
      POLL_INTERVAL: '200',
      METRICS_BIND_ADDRESS: `127.0.0.1:${metricsPort}`,
      INTAKE_BIND_ADDRESS: `127.0.0.1:${intakePort}`,
      INTAKE_TOKEN_SECRET: `${NS}/intake-token`,
      ...build.env,
    },
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  const intake = `http://127.0.0.1:${intakePort}`;
  await waitUntil(
    `controller ${label} ready`,
    async () => ((await fetch(`${metricsUrl}/readyz`)).ok && (await fetch(`${intake}/readyz`)).ok ? true : undefined),
    {
      timeoutMs: 60_000,
      processes: [proc],
    },
  );
  return { proc, metricsUrl, intake };
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

interface P5Sample {
  build: string;
  repeat: number;
  requests: number;
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
}

/** RSS from /proc; the V8 heap and external memory from the controller's own /metrics (prom-client's defaults). */
async function memorySample(c: Controller, build: string, requests: number, repeat: number): Promise<P5Sample> {
  const text = await (await fetch(`${c.metricsUrl}/metrics`)).text();
  const mb = (name: string) => (samples(text, name)[0]?.value ?? plain(text, name)) / 2 ** 20;
  return {
    build,
    repeat,
    requests,
    rssMb: rssBytes(c.proc.pid) / 2 ** 20,
    heapUsedMb: mb('nodejs_heap_size_used_bytes'),
    heapTotalMb: mb('nodejs_heap_size_total_bytes'),
    externalMb: mb('nodejs_external_memory_bytes'),
  };
}

/** How many requests the controller's cache holds (its remediator_requests gauges). */
async function cachedRequests(c: Controller): Promise<number> {
  const text = await (await fetch(`${c.metricsUrl}/metrics`)).text();
  return samples(text, 'remediator_requests').reduce((sum, x) => sum + x.value, 0);
}

/** A sample without labels (`name value`). */
function plain(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

/** SIGUSR2 (--heapsnapshot-signal) and wait until the new .heapsnapshot file stops growing. */
async function heapSnapshot(c: Controller, dir: string): Promise<void> {
  const before = new Set(readdirSync(dir));
  process.kill(c.proc.pid, 'SIGUSR2');
  let last = -1;
  await waitUntil(
    'heap snapshot written',
    async () => {
      const f = readdirSync(dir).find((x) => !before.has(x) && x.endsWith('.heapsnapshot'));
      if (!f) return undefined;
      const size = statSync(join(dir, f)).size;
      // The file is written in chunks; it is complete once its size holds for a second.
      if (size > 0 && size === last) return true;
      last = size;
      return undefined;
    },
    { timeoutMs: 300_000, intervalMs: 1000, processes: [c.proc] },
  );
}

/** Sums a Prometheus text exposition's samples of `name` by the value of the labels `by` picks. */
function samples(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const labels: Record<string, string> = {};
    for (const m of line.slice(name.length + 1, close).matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    out.push({
      labels,
      value: Number(
        line
          .slice(close + 1)
          .trim()
          .split(' ')[0],
      ),
    });
  }
  return out;
}

async function controllerAwsCalls(c: Controller): Promise<Map<string, number>> {
  const text = await (await fetch(`${c.metricsUrl}/metrics`)).text();
  const m = new Map<string, number>();
  for (const s of samples(text, 'remediator_aws_api_calls_total'))
    m.set(s.labels['operation']!, (m.get(s.labels['operation']!) ?? 0) + s.value);
  return m;
}

interface Writes {
  requests: number;
  status: number;
  events: number;
  alertpolicies: number;
  /** The execution ledger's ConfigMaps (controller namespace). */
  ledger: number;
  conflicts: number;
}

async function apiserverWrites(b: Bench): Promise<Writes> {
  const text = await rawGet(b, '/metrics');
  const w: Writes = { requests: 0, status: 0, events: 0, alertpolicies: 0, ledger: 0, conflicts: 0 };
  for (const s of samples(String(text), 'apiserver_request_total')) {
    const { verb, resource, subresource, code } = s.labels;
    if (!['POST', 'PUT', 'PATCH', 'DELETE', 'CREATE', 'UPDATE', 'APPLY'].includes((verb ?? '').toUpperCase())) continue;
    if (code === '409') w.conflicts += s.value;
    if (resource === 'remediationrequests' && subresource === 'status') w.status += s.value;
    else if (resource === 'remediationrequests') w.requests += s.value;
    else if (resource === 'events') w.events += s.value;
    else if (resource === 'alertpolicies') w.alertpolicies += s.value;
    else if (resource === 'configmaps') w.ledger += s.value;
  }
  return w;
}

/** GET on the API server as the admin (client certificate), e.g. /metrics. */
async function rawGet(b: Bench, path: string): Promise<string> {
  const opts: { headers: Record<string, string> } & Record<string, unknown> = { headers: {} };
  await b.admin.applyToHTTPSOptions(opts as never);
  const url = new URL(path, b.admin.getCurrentCluster()!.server);
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(url, { ...opts, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', reject);
    req.end();
  });
}

const diff = (a: Writes, b: Writes): Writes => ({
  requests: b.requests - a.requests,
  status: b.status - a.status,
  events: b.events - a.events,
  alertpolicies: b.alertpolicies - a.alertpolicies,
  ledger: b.ledger - a.ledger,
  conflicts: b.conflicts - a.conflicts,
});

// ---------- the product ----------
function alert(policy: 'one' | 'wide', ids: string[], i: number) {
  return {
    labels: { alertname: policy === 'one' ? 'BenchOne' : 'BenchWide', instance_id: ids.join(','), severity: 'warning', n: String(i) },
    fingerprint: randomBytes(8).toString('hex'),
  };
}

async function deliver(c: Controller, b: Bench, alerts: ReturnType<typeof alert>[]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${c.intake}/v1/alerts/alertmanager?namespace=${NS}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${b.token}` },
      body: JSON.stringify(alertmanagerPayload(alerts)),
    });
    await res.arrayBuffer();
    if (res.status < 300) return;
    // 429/503 is the intake's overload answer; Alertmanager retries, and so do we.
    if ((res.status === 429 || res.status === 503) && attempt < 100) {
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    throw new Error(`intake answered ${res.status}`);
  }
}

/** Watches the bench namespace's requests and counts those that ended. */
function endWatcher(b: Bench) {
  const requests = b.api;
  const inf = new Informer<RemediationRequest>({
    name: 'bench',
    list: async () => {
      const l = (await requests.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: NS,
        plural: 'remediationrequests',
      })) as { items: RemediationRequest[]; metadata: { resourceVersion: string } };
      return { items: l.items, resourceVersion: l.metadata.resourceVersion };
    },
    watchPath: `/apis/${GROUP}/${VERSION}/namespaces/${NS}/remediationrequests`,
    kubeConfig: b.admin,
    logger: pino({ level: 'silent' }),
  });
  return inf;
}

async function clearRequests(b: Bench, ns: string): Promise<void> {
  // With thousands of objects the call itself may time out while the API server goes on deleting: wait for the list.
  await b.api
    .deleteCollectionNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'remediationrequests' })
    .catch(() => undefined);
  await waitUntil(
    `${ns} requests deleted`,
    async () => {
      const l = (await b.api.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: 'remediationrequests',
        limit: 100,
      })) as { items: RemediationRequest[] };
      // The controller was stopped with some still executing: their execution finalizer
      // stays until someone removes it (as an administrator would after uninstalling).
      for (const rr of l.items.filter((x) => x.metadata?.deletionTimestamp && x.metadata.finalizers?.length)) {
        await b.api
          .patchNamespacedCustomObject(
            {
              group: GROUP,
              version: VERSION,
              namespace: ns,
              plural: 'remediationrequests',
              name: rr.metadata!.name!,
              body: { metadata: { finalizers: null } },
            },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          )
          .catch(() => undefined);
      }
      return l.items.length === 0 ? true : undefined;
    },
    { timeoutMs: 600_000, intervalMs: 1_000 },
  );
}

interface BurstResult {
  build: string;
  n: number;
  targets: number;
  seconds: number;
  perSecond: number;
  succeeded: number;
  ended: number;
  aws: Record<string, number>;
  writes: Writes;
  firstSendMs: number;
  rssAfterMb: number;
}

/** A fresh controller; `n` alerts through the intake, `DELIVERIES` payloads in flight; until every request ended. */
async function productBurst(b: Bench, build: Build, n: number, shape: 'one' | 'wide', label: string): Promise<BurstResult> {
  const ids = await seedFleet(b);
  const c = await startControllerProcess(b, build, label);
  const watch = endWatcher(b);
  watch.start();
  await watch.waitForSync();
  try {
    const aws0 = await controllerAwsCalls(c);
    const w0 = await apiserverWrites(b);
    const mark = b.recorder.calls.length;
    const alerts = Array.from({ length: n }, (_, i) => alert(shape, shape === 'one' ? [ids[i % FLEET]!] : ids, i));
    const chunks: Array<ReturnType<typeof alert>[]> = [];
    for (let i = 0; i < alerts.length; i += PAYLOAD) chunks.push(alerts.slice(i, i + PAYLOAD));
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: DELIVERIES }, async () => {
        while (next < chunks.length) await deliver(c, b, chunks[next++]!);
      }),
    );
    const ended = await waitUntil(
      `${n} requests to end`,
      async () => {
        const done = watch.list().filter((r) => ENDS.has(r.status?.phase ?? ''));
        return done.length >= n ? done : undefined;
      },
      { timeoutMs: Math.max(300_000, n * 1_000), intervalMs: 100, processes: [c.proc] },
    );
    const seconds = (performance.now() - t0) / 1000;
    // Let trailing writes (policy status, events) land before counting them.
    await new Promise((r) => setTimeout(r, 3_000));
    const aws1 = await controllerAwsCalls(c);
    const w1 = await apiserverWrites(b);
    const aws: Record<string, number> = {};
    for (const [k, v] of aws1) if (v - (aws0.get(k) ?? 0) > 0) aws[k] = v - (aws0.get(k) ?? 0);
    const firstSend = b.recorder.calls.slice(mark).find((x) => x.operation === 'SendCommand');
    return {
      build: build.label,
      n,
      targets: shape === 'one' ? 1 : FLEET,
      seconds,
      perSecond: n / seconds,
      succeeded: ended.filter((r) => r.status?.phase === 'Succeeded').length,
      ended: ended.length,
      aws,
      writes: diff(w0, w1),
      firstSendMs: firstSend ? firstSend.at - t0 : NaN,
      rssAfterMb: rssBytes(c.proc.pid) / 2 ** 20,
    };
  } finally {
    watch.stop();
    await c.proc.stop(10_000);
    await clearRequests(b, NS);
  }
}

/** P1 for the product: one alert at a time into an idle controller; alert POSTed → SendCommand on the wire. */
async function productLatency(c: Controller, b: Bench, ids: string[], i: number): Promise<number> {
  const sent = b.recorder.next((x) => x.operation === 'SendCommand');
  const t0 = performance.now();
  await deliver(c, b, [alert('one', [ids[i % FLEET]!], 100_000 + i)]);
  const call = await Promise.race([
    sent,
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no SendCommand within 60 s')), 60_000)),
  ]);
  return call.at - t0;
}

// ---------- the references ----------
function refRequest(name: string, id: string) {
  return {
    apiVersion: API_VERSION,
    kind: 'RemediationRequest',
    metadata: { name, namespace: REF_NS },
    spec: {
      policyRef: { name: 'bench-one' },
      alert: { source: 'alertmanager', name: 'BenchOne', labels: { alertname: 'BenchOne', instance_id: id }, status: 'firing' },
    },
  };
}

/** The irreducible calls of one remediation, back to back; alert "received" → SendCommand on the wire. */
async function bareScript(
  b: Bench,
  clients: { ec2: EC2Client; cw: CloudWatchClient; ssm: SSMClient },
  id: string,
  i: number,
): Promise<number> {
  const comment = `bare-${i}-${randomBytes(3).toString('hex')}`;
  const sent = b.recorder.next((x) => x.operation === 'SendCommand' && x.comment === comment);
  const t0 = performance.now();
  const created = (await b.api.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: REF_NS,
    plural: 'remediationrequests',
    body: refRequest(`bare-${i}-${Date.now()}`, id),
  })) as RemediationRequest;
  const described = await clients.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: [id] }] }));
  const end = new Date();
  const metrics = await clients.cw.send(
    new GetMetricDataCommand({
      StartTime: new Date(end.getTime() - 600_000),
      EndTime: end,
      MetricDataQueries: [
        {
          Id: 'cpu0',
          MetricStat: {
            Metric: { Namespace: 'AWS/EC2', MetricName: 'CPUUtilization', Dimensions: [{ Name: 'InstanceId', Value: id }] },
            Period: 60,
            Stat: 'Average',
          },
        },
      ],
    }),
  );
  await b.api.replaceNamespacedCustomObjectStatus({
    group: GROUP,
    version: VERSION,
    namespace: REF_NS,
    plural: 'remediationrequests',
    name: created.metadata!.name!,
    body: {
      ...created,
      status: {
        phase: 'Executing',
        targets: [id],
        enrichment: {
          observedAt: new Date().toISOString(),
          instances: [{ instanceId: id, state: described.Reservations?.[0]?.Instances?.[0]?.State?.Name }],
          metrics: [{ name: 'cpu', statistic: 'Average', values: metrics.MetricDataResults?.[0]?.Values ?? [], timestamps: [] }],
        },
        execution: { ssm: { documentName: 'AWS-RunShellScript', comment, intentRecordedAt: new Date().toISOString() } },
      },
    },
  });
  await clients.ssm.send(
    new SendCommandCommand({
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: [id],
      Comment: comment,
      Parameters: { commands: ['systemctl restart nginx'] },
    }),
  );
  return (await sent).at - t0;
}

/** The API server's raw create rate of RemediationRequests, `DELIVERIES` creates in flight. */
async function rawCreateRate(b: Bench, n: number, ids: string[]): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: DELIVERIES }, async () => {
      while (next < n) {
        const i = next++;
        await b.api.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: REF_NS,
          plural: 'remediationrequests',
          body: refRequest(`raw-${i}-${randomBytes(3).toString('hex')}`, ids[i % FLEET]!),
        });
      }
    }),
  );
  const rate = n / ((performance.now() - t0) / 1000);
  await clearRequests(b, REF_NS);
  return rate;
}

/**
 * P5: finished requests created directly (create, then a merge patch of status) in the
 * watched namespace. They name a policy that does not exist, so the controller never
 * acts on one before its status lands (it only notes PolicyNotFound, and then sees the
 * end phase).
 */
async function fillCache(b: Bench, from: number, to: number, status: RemediationRequest['status']): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < to) {
        const i = next++;
        const body = refRequest(`fill-${i}`, (status?.targets ?? ['i-00000000'])[0]!);
        body.metadata.namespace = NS;
        body.spec.policyRef.name = 'bench-fill';
        await b.api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'remediationrequests', body });
        await b.api.patchNamespacedCustomObjectStatus(
          { group: GROUP, version: VERSION, namespace: NS, plural: 'remediationrequests', name: `fill-${i}`, body: { status } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      }
    }),
  );
}

// ---------- main ----------
async function main(): Promise<void> {
  const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
  const binaries = await ensureTestbedBinaries();
  const dir = newRunDir('bench-e2e');
  log(`run directory ${dir}`);
  const [cp, moto] = await Promise.all([startControlPlane({ dir, binaries }), startMoto({ logDir: join(dir, 'logs') })]);
  const gateway = await startGateway({ upstream: moto.endpoint });
  const recorder = await startRecorder(gateway.endpoint);
  await cp.installCRDs();
  const admin = cp.adminConfig();
  const b: Bench = {
    cp,
    motoEndpoint: moto.endpoint,
    aws: recorder.endpoint,
    recorder,
    api: admin.makeApiClient(CustomObjectsApi),
    admin,
    dir,
    token: randomBytes(24).toString('hex'),
  };
  await setUpKube(b);
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  log(`test bed up; load average ${loadavg}`);

  // ---- P1: latency, each build's block with the bare script interleaved, one alert at a time ----
  const p1 = new Map<string, { product: number[]; bare: number[] }>();
  for (const build of ONLY.has('p1') ? CONTROLLERS : []) {
    const samplesOf = { product: [] as number[], bare: [] as number[] };
    p1.set(build.label, samplesOf);
    const ids = await seedFleet(b);
    const c = await startControllerProcess(b, build, 'p1');
    await new Promise((r) => setTimeout(r, 3_000));
    const clients = {
      ec2: new EC2Client(seedClientConfig(b.aws, REGION)),
      cw: new CloudWatchClient(seedClientConfig(b.aws, REGION)),
      ssm: new SSMClient(seedClientConfig(b.aws, REGION)),
    };
    // Warm both paths (connections, credentials, JIT) before measuring.
    await productLatency(c, b, ids, 0);
    await bareScript(b, clients, ids[0]!, 0);
    for (let i = 1; i <= P1_SAMPLES; i++) {
      // Described instances are cached 5 s: another instance each time, as separate alerts would be.
      samplesOf.product.push(await productLatency(c, b, ids, i));
      samplesOf.bare.push(await bareScript(b, clients, ids[(i + 25) % FLEET]!, i));
    }
    for (const x of Object.values(clients)) x.destroy();
    log(`P1 ${build.label} p50 ${fmt(median(samplesOf.product))} ms, bare p50 ${fmt(median(samplesOf.bare))} ms`);
    await c.proc.stop(10_000);
    await clearRequests(b, NS);
    await clearRequests(b, REF_NS);
  }

  // ---- P2–P4: bursts, each build and the raw create rate interleaved ----
  const bursts: BurstResult[] = [];
  const raw = new Map<number, number[]>();
  for (let r = 0; r < (ONLY.has('p2') ? REPEATS : 0); r++) {
    for (const n of BURSTS) {
      const ids = await seedFleet(b);
      const rate = await rawCreateRate(b, n, ids);
      raw.set(n, [...(raw.get(n) ?? []), rate]);
      log(`raw create ${n} #${r + 1}: ${fmt(rate)}/s`);
      for (const build of CONTROLLERS) {
        const res = await productBurst(b, build, n, 'one', `burst-${n}-${r}`);
        bursts.push(res);
        log(
          `${build.label} burst ${n} (1 target) #${r + 1}: ${fmt(res.perSecond)}/s in ${fmt(res.seconds)} s, ${res.succeeded}/${res.n} Succeeded`,
        );
      }
    }
    for (const build of CONTROLLERS) {
      const wide = await productBurst(b, build, WIDE_BURST, 'wide', `wide-${r}`);
      bursts.push(wide);
      log(
        `${build.label} burst ${WIDE_BURST} (50 targets) #${r + 1}: ${fmt(wide.perSecond)}/s in ${fmt(wide.seconds)} s, ${wide.succeeded}/${wide.n} Succeeded`,
      );
    }
  }

  // ---- P5: RSS with finished requests in the cache ----
  // Every build's controller runs through the same fill at the same time (the strongest
  // interleaving: same load, same objects, same moment); each is measured at each level.
  const p5: P5Sample[] = [];
  if (ONLY.has('p5') && FILLS.length > 0)
    try {
      // A real finished request's status, as the controller wrote it, is what fills the cache.
      const ids = await seedFleet(b);
      const first = await startControllerProcess(b, CONTROLLERS[0]!, 'p5-template');
      const watch = endWatcher(b);
      watch.start();
      await watch.waitForSync();
      await deliver(first, b, [alert('one', [ids[0]!], 0)]);
      const template = await waitUntil('a finished request', async () => watch.list().find((x) => x.status?.phase === 'Succeeded'), {
        timeoutMs: 60_000,
      });
      watch.stop();
      await first.proc.stop(10_000);
      await clearRequests(b, NS);
      if (SNAPSHOTS) mkdirSync(SNAPSHOTS, { recursive: true });
      if (P5_RESTART) {
        // Fill with no controller running (no status writes), then start each build alone on
        // the filled namespace, as a restarted or newly elected controller finds it.
        let have = 0;
        for (const target of [0, ...FILLS]) {
          if (target > have) await fillCache(b, have, target, template.status);
          have = Math.max(have, target);
          for (let r = 0; r < P5_REPEATS; r++)
            for (const build of CONTROLLERS) {
              const dir = SNAPSHOTS ? join(SNAPSHOTS, `${build.label}-${r}`) : undefined;
              if (dir) mkdirSync(dir, { recursive: true });
              const extra = dir ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] : [];
              const c = await startControllerProcess(b, build, `p5-${target}-${r}`, extra);
              await waitUntil('controller cache filled', async () => ((await cachedRequests(c)) >= target ? true : undefined), {
                timeoutMs: 900_000,
                intervalMs: 1000,
                processes: [c.proc],
              });
              await new Promise((res) => setTimeout(res, 10_000)); // let recounts and GC settle
              const s = await memorySample(c, build.label, target, r);
              p5.push(s);
              log(
                `P5 ${build.label} #${r + 1} ${target} requests: RSS ${fmt(s.rssMb)} MB, heap used ${fmt(s.heapUsedMb)} of ${fmt(s.heapTotalMb)} MB, external ${fmt(s.externalMb)} MB`,
              );
              if (dir) await heapSnapshot(c, dir);
              await c.proc.stop(10_000);
            }
        }
        await clearRequests(b, NS);
      }
      for (let r = 0; r < (P5_RESTART ? 0 : P5_REPEATS); r++) {
        const running: Array<{ build: Build; c: Controller; dir: string | undefined }> = [];
        for (const build of CONTROLLERS) {
          const dir = SNAPSHOTS ? join(SNAPSHOTS, `${build.label}-${r}`) : undefined;
          if (dir) mkdirSync(dir, { recursive: true });
          const extra = dir ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] : [];
          running.push({ build, c: await startControllerProcess(b, build, `p5-${r}`, extra), dir });
        }
        const measure = async (requests: number) => {
          await new Promise((res) => setTimeout(res, 5_000)); // let recounts and GC settle
          for (const { build, c, dir } of running) {
            const s = await memorySample(c, build.label, requests, r);
            p5.push(s);
            log(
              `P5 ${build.label} #${r + 1} ${requests} requests: RSS ${fmt(s.rssMb)} MB, heap used ${fmt(s.heapUsedMb)} of ${fmt(s.heapTotalMb)} MB, external ${fmt(s.externalMb)} MB`,
            );
            if (dir) await heapSnapshot(c, dir);
          }
        };
        await measure(0);
        let have = 0;
        for (const target of FILLS) {
          await fillCache(b, have, target, template.status);
          have = target;
          for (const { c } of running)
            await waitUntil(`controller cache at ${target}`, async () => ((await cachedRequests(c)) >= target ? true : undefined), {
              timeoutMs: 900_000,
              intervalMs: 1000,
              processes: [c.proc],
            });
          await measure(target);
        }
        for (const { c } of running) await c.proc.stop(10_000);
        await clearRequests(b, NS);
      }
    } catch (error) {
      log(`P5 stopped early: ${error instanceof Error ? error.message : String(error)}`);
    }

  // ---- report ----
  const loadEnd = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const lines: string[] = [];
  const out = (x = '') => lines.push(x);
  out(
    `remediator bench-e2e — ${new Date().toISOString()}, concurrency ${CONCURRENCY}, ${FLEET} instances, ${ONLY.has('p2') ? REPEATS : P5_REPEATS} repeat(s); load average ${loadavg} → ${loadEnd} (a shared 2-core machine: numbers are noisy)`,
  );
  for (const build of CONTROLLERS) {
    const mine = bursts.filter((x) => x.build === build.label);
    const lat = p1.get(build.label)!;
    out();
    out(`== ${build.label} (${[...Object.entries(build.env).map(([k, v]) => `${k}=${v}`), ...build.nodeFlags, build.main].join(' ')})`);
    if (ONLY.has('p1')) {
      out(`P1 alert received → SendCommand on the wire (${lat.product.length} samples each, interleaved with the bare script)`);
      out(`   controller  p50 ${fmt(median(lat.product))} ms  p95 ${fmt(pct(lat.product, 95))} ms  (range ${spread(lat.product)})`);
      out(`   bare script p50 ${fmt(median(lat.bare))} ms  p95 ${fmt(pct(lat.bare, 95))} ms  (range ${spread(lat.bare)})`);
      out(
        `   ratio p50 ${fmt(median(lat.product) / median(lat.bare))}×, p95 ${fmt(pct(lat.product, 95) / pct(lat.bare, 95))}×   (goal ≤ 1.5×)`,
      );
    }
    if (ONLY.has('p2')) reportBursts(mine, raw, out);
    if (ONLY.has('p5')) {
      out(`P5 controller memory (goal RSS ≤ 150 MB at 10,000; median of ${P5_REPEATS} fill(s), range)`);
      for (const n of [0, ...FILLS]) {
        const xs = p5.filter((x) => x.build === build.label && x.requests === n);
        if (xs.length === 0) continue;
        const col = (k: keyof P5Sample) => `${fmt(median(xs.map((x) => x[k] as number)))} (${spread(xs.map((x) => x[k] as number))})`;
        out(
          `   ${String(n).padStart(6)} requests in the cache: RSS ${col('rssMb')} MB; V8 heap used ${col('heapUsedMb')}, heap total ${col('heapTotalMb')}, external ${col('externalMb')} MB`,
        );
      }
    }
  }
  console.log(lines.join('\n'));
  if (flags.json)
    console.log(
      JSON.stringify({
        p1: Object.fromEntries(p1),
        bursts,
        raw: Object.fromEntries(raw),
        p5,
        loadavg: [loadavg, loadEnd],
      }),
    );
  await recorder.close();
  await gateway.stop();
}

function reportBursts(mine: BurstResult[], raw: Map<number, number[]>, out: (x?: string) => void): void {
  out(`P2 burst → every request ended, per second (median of ${REPEATS}; range)`);
  for (const n of BURSTS) {
    const rs = mine.filter((x) => x.n === n && x.targets === 1);
    const rates = rs.map((x) => x.perSecond);
    const rawRates = raw.get(n) ?? [];
    out(
      `   ${String(n).padStart(5)} alerts × 1 target: ${fmt(median(rates))}/s (${spread(rates)}); raw create ${fmt(median(rawRates))}/s (${spread(rawRates)}); ratio ${fmt(median(rates) / median(rawRates), 3)} (goal ≥ 0.2 at 1,000); first SendCommand after ${fmt(median(rs.map((x) => x.firstSendMs)))} ms; Succeeded ${rs.map((x) => `${x.succeeded}/${x.n}`).join(' ')}; RSS after ${fmt(median(rs.map((x) => x.rssAfterMb)))} MB`,
    );
  }
  const wides = mine.filter((x) => x.targets === FLEET);
  out(
    `   ${String(WIDE_BURST).padStart(5)} alerts × ${FLEET} targets: ${fmt(median(wides.map((x) => x.perSecond)))}/s (${spread(wides.map((x) => x.perSecond))}); Succeeded ${wides.map((x) => `${x.succeeded}/${x.n}`).join(' ')}`,
  );
  if (!BURSTS.includes(5000))
    out('   5,000 alerts: not run (add --bursts 100,1000,5000; at the rates above it takes many minutes per repeat)');
  out('P3 AWS calls per alert (controller /metrics remediator_aws_api_calls_total; median over repeats)');
  for (const g of [...BURSTS.map((n) => ({ n, t: 1 })), { n: WIDE_BURST, t: FLEET }]) {
    const rs = mine.filter((x) => x.n === g.n && x.targets === g.t);
    const ops = [...new Set(rs.flatMap((x) => Object.keys(x.aws)))].sort();
    const per = (op: string) => median(rs.map((x) => (x.aws[op] ?? 0) / x.n));
    const enrich = median(rs.map((x) => ((x.aws['DescribeInstances'] ?? 0) + (x.aws['GetMetricData'] ?? 0)) / x.n));
    out(`   ${g.n} × ${g.t}: enrichment ${fmt(enrich, 3)} (goal ≤ 0.02); ${ops.map((op) => `${op} ${fmt(per(op), 3)}`).join(', ')}`);
  }
  out('P4 API writes per remediation (kube-apiserver apiserver_request_total, write verbs; median over repeats; bare script 3, goal ≤ 4)');
  for (const g of [...BURSTS.map((n) => ({ n, t: 1 })), { n: WIDE_BURST, t: FLEET }]) {
    const rs = mine.filter((x) => x.n === g.n && x.targets === g.t);
    const per = (k: keyof Writes) => median(rs.map((x) => x.writes[k] / x.n));
    const total = median(
      rs.map((x) => (x.writes.requests + x.writes.status + x.writes.events + x.writes.alertpolicies + x.writes.ledger) / x.n),
    );
    out(
      `   ${g.n} × ${g.t}: ${fmt(total)} = requests ${fmt(per('requests'))} (create, finalizer) + status ${fmt(per('status'))} + events ${fmt(per('events'))} + alertpolicies ${fmt(per('alertpolicies'))} + ledger ${fmt(per('ledger'))}; 409s ${fmt(per('conflicts'))}`,
    );
  }
}

let interrupted = false;
process.once('SIGINT', () => {
  interrupted = true;
  void stopAll().finally(() => process.exit(130));
});

main()
  .catch((error: unknown) => {
    if (interrupted) return;
    console.error(`bench-e2e failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
