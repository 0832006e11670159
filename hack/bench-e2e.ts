/**
 * `make bench-e2e`: the whole job, measured against an honest floor (issue 24).
 *
 * It starts a real control plane (etcd + kube-apiserver), moto behind the contract
 * gateway, and a small recording proxy in front of the gateway (it timestamps every
 * AWS call by operation, so "SendCommand left" is seen on the wire, the same way for
 * the controller and for the references). It installs what the chart installs (RBAC,
 * the approval admission policy, the intake Secret: rendered from charts/remediator
 * with helm, as hack/demo.ts does) and runs the controller as the chart runs it: its
 * own process (`dist/controller/main.js`) with the Deployment's environment as rendered
 * from the chart's defaults (LOG_LEVEL info, 1,000 ms poll, concurrency 16, leader
 * election on, NODE_OPTIONS) and the image's ENTRYPOINT flag (--optimize-for-size),
 * authenticated as the chart's ServiceAccount with a token from the TokenRequest API.
 * The one value set is `controller.watchNamespaces: [bench]`, so the references'
 * requests (in another namespace) are not the controller's work. Alerts go through the
 * real intake (Alertmanager webhook payloads, 8 deliveries of 50 alerts in flight).
 *
 * The references, interleaved with the product blocks and through the same API server,
 * proxy, gateway and moto, use the controller's own connection reuse (PooledKubeConfig;
 * a plain client-node KubeConfig opens a TLS connection per call, which handicapped the
 * floor before):
 *  - the bare script: the irreducible calls of one remediation back to back (create the
 *    request, DescribeInstances, GetMetricData, one status write, SendCommand) — P1's floor;
 *  - the bare full job: the same plus the poll (GetCommandInvocation, first after the
 *    chart's 1,000 ms, without holding a worker while it waits) and the result status
 *    write, with the controller's concurrency (16) — P2's floor, from the same repeat;
 *  - the API server's raw create rate (pooled, 8 in flight as the intake's deliveries).
 *
 * Writes (P4) are counted from the API server's apiserver_request_total until it stops
 * moving (unchanged for 5 s after every request was deleted), not at a fixed time after
 * the last request ended: the bench policies set retention.ttlAfterFinished (2 s), so
 * retention's delete happens in the run and is counted (in its own column too). Every
 * figure is a median over the repeats (true median), with the spread (min–max); P2's
 * ratio is computed within each repeat and then summarized. P5 measures RSS after real
 * bursts through the intake (1,000, then 10,000 requests: intake, ledger, policy status
 * and all), P6 the time per remediation at 5,000 alerts against 100, and every burst
 * reports the controller's remediator_events_total (dropped and coalesced Events).
 *
 * Burst shape (since 2026-12-08): a burst of n single-target alerts is a fleet-wide
 * storm, one alert about each of n distinct instances, for the controller and both
 * references alike; every block seeds its fleet anew, max(50, n) instances (--fleet N
 * for one size everywhere; P1 uses 50, P5 up to 1,000). Before, alert i named instance i mod 50, so at 1,000 alerts twenty
 * requests per instance waited for each other (one remediation per instance at a time,
 * safety.whenInstanceBusy: Wait) and P2/P6 measured that queue, while the bare full job
 * does not serialize. --queue-instances N runs that shape too, on its own lines. The wide
 * burst names the fleet's first 50 instances in every alert, as before. P5 fills in
 * rounds of distinct instances, each round settled before the next, for the same reason.
 *
 * Each block starts from a reset moto and a fresh controller, so command history and
 * caches never carry over. A benchmark, not a test: nothing here asserts a goal.
 * Flags: --repeats N (default 3), --bursts 100,1000,5000, --p1-samples N (per repeat,
 * default 9), --p1-idle-ms N (quiet before each P1 alert, default 31000: the cold path), --fill 1000,10000 (P5; empty to skip), --wide-burst N (alerts of 50 targets
 * each, default 100; 0 to skip), --fleet N, --queue-instances N (see above), --once 5000 (burst sizes run in the first repeat only), --ttl 2s, --json, --only p1,p2,p5, and --controller
 * label=path/to/main.js (repeatable) to measure several builds in one run, block by
 * block interleaved; node flags and environment variables may precede the path,
 * space-separated ('before=LOG_LEVEL=warn /tmp/main/dist/controller/main.js').
 * --baseline label=path (repeatable) adds builds measured in P1 only (main's, say, as a before).
 * --heap-snapshots DIR writes a heap snapshot of the controller at each P5 level.
 */
import {
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { CloudWatchClient, GetMetricDataCommand, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { API_VERSION, CHANGED_BY_ANNOTATION, GROUP, VERSION, type RemediationRequest } from '../src/api/v1alpha1/index.js';
import { PooledKubeConfig } from '../src/kube/kubeconfig.js';
import { Informer } from '../src/runtime/informer.js';
import { parseManifests, renderChart } from './chart/render.js';
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
const SYSTEM_NS = 'remediator-system';
const RELEASE = 'remediator';
/**
 * The wide burst's targets (each alert names this many instances) and the runbook's
 * scope.maxTargets: the first WIDE instances of the fleet, as before.
 */
const WIDE = 50;
const RUNBOOK = 'bench-restart';
const ENDS = new Set(['Succeeded', 'Failed', 'Rejected', 'Expired', 'Skipped', 'Cancelled']);
/** Deliveries in flight at once, each an Alertmanager payload of up to PAYLOAD alerts; the raw-create reference uses the same. */
const DELIVERIES = 8;
const PAYLOAD = 50;
/** The API server's write counters must hold this long (after every request was deleted) to call the writes done. */
const QUIET_MS = 5_000;

const { values: flags } = parseArgs({
  options: {
    repeats: { type: 'string', default: '3' },
    bursts: { type: 'string', default: '100,1000,5000' },
    'p1-samples': { type: 'string', default: '9' },
    /** Quiet before each P1 alert: past the metric cache's longest TTL (30 s), so P1 is the cold path, not a warm fleet cache. */
    'p1-idle-ms': { type: 'string', default: '31000' },
    fill: { type: 'string', default: '1000,10000' },
    'wide-burst': { type: 'string', default: '100' },
    /**
     * Instances seeded in moto before every block; default max(50, the largest burst).
     * Above the controller's sweep limit (2,000) its fleet sweep pauses by design.
     */
    fleet: { type: 'string', default: '' },
    /**
     * The queue shape, run besides the storm when set: each burst of n also sent about
     * only this many instances (alert i names instance i mod N; the bench before
     * 2026-12-08 used 50), so alerts about one instance wait for each other
     * (safety.whenInstanceBusy: Wait). Reported on its own labelled lines.
     */
    'queue-instances': { type: 'string', default: '' },
    /** Burst sizes run in the first repeat only (a shared machine: 5,000 takes minutes per block). */
    once: { type: 'string', default: '' },
    ttl: { type: 'string', default: '2s' },
    json: { type: 'boolean', default: false },
    /** label=[node flags ]path/to/main.js, repeatable: several builds measured in one run, block by block interleaved. */
    controller: { type: 'string', multiple: true },
    /** label=path, repeatable: builds measured in P1 only (e.g. main's, as a before), interleaved with the others. */
    baseline: { type: 'string', multiple: true },
    only: { type: 'string', default: 'p1,p2,p5' },
    'heap-snapshots': { type: 'string' },
  },
});
const ONLY = new Set(flags.only.split(',').map((x) => x.trim().toLowerCase()));
const SNAPSHOTS = flags['heap-snapshots'];
const REPEATS = Number(flags.repeats);
const BURSTS = flags.bursts.split(',').filter(Boolean).map(Number);
const P1_SAMPLES = Number(flags['p1-samples']);
const P1_IDLE_MS = Number(flags['p1-idle-ms']);
// Zero and empty both mean none ('0' is a non-empty string: it used to run P5 at 0 twice).
const FILLS = flags.fill
  .split(',')
  .map(Number)
  .filter((x) => x > 0);
const WIDE_BURST = Number(flags['wide-burst']);
const ONCE = new Set(flags.once.split(',').filter(Boolean).map(Number));
/**
 * Burst shapes: a burst of n single-target alerts is a fleet-wide storm, one alert per
 * instance (instances = n), so it measures the controller and not the per-instance
 * queue; with --queue-instances N also the old shape (instance i mod N).
 */
const QUEUE_INSTANCES = Number(flags['queue-instances'] || 0);
/** Distinct instances the bursts of `n` single-target alerts name: the storm's n, then the queue shape's if it differs. */
const instancesFor = (n: number): number[] => (QUEUE_INSTANCES > 0 && QUEUE_INSTANCES < n ? [n, QUEUE_INSTANCES] : [n]);
/** A burst's line label: which shape it is. */
const shapeLabel = (n: number, instances: number) =>
  instances === n ? `storm, ${n} instances` : `queue, ${instances} instances, ~${fmt(n / instances, 1)} alerts each`;
/**
 * The instances seeded for a block of `n` alerts: max(50, n) (the storm's n, the wide
 * burst's 50), or --fleet for every block. Not the largest burst's for all: in moto a
 * DescribeInstances of the whole tagged fleet (the controller's sweep) costs about 10 ms
 * per instance, so a burst of 100 on a fleet of 1,000 measured moto's sweeps (0.89/s
 * against 7.6/s on 100; method-2026-12-08.md).
 */
const fleetFor = (n: number) => Number(flags.fleet || Math.max(WIDE, n));
/** P5 fills in rounds of this many distinct instances (see memoryAfterBursts). */
const P5_FLEET = Number(flags.fleet || Math.max(WIDE, Math.min(1_000, ...FILLS)));
if (BURSTS.some((n) => !(n > 0) || fleetFor(n) < Math.max(WIDE, n)))
  throw new Error(`--fleet must be at least ${WIDE} and the largest burst (a storm names one instance per alert); --bursts sizes positive`);
/** Beyond this the controller's fleet sweep pauses (src/cloud/ec2.ts SweepOptions.maxInstances): said in the header. */
const SWEEP_LIMIT = 2_000;
function parseBuild(c: string) {
  const words = c
    .slice(c.indexOf('=') + 1)
    .trim()
    .split(/\s+/);
  const env = words.filter((w) => /^[A-Z_]+=/.test(w));
  return {
    label: c.slice(0, c.indexOf('=')),
    main: words.at(-1)!,
    nodeFlags: ['--optimize-for-size', ...words.slice(0, -1).filter((w) => !env.includes(w))],
    env: Object.fromEntries(env.map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)])),
  };
}
const CONTROLLERS =
  (flags.controller ?? []).length > 0
    ? flags.controller!.map(parseBuild)
    : [
        {
          label: 'controller',
          main: join(repoRoot(), 'dist', 'controller', 'main.js'),
          // The image's ENTRYPOINT flag; NODE_OPTIONS comes from the chart's Deployment.
          nodeFlags: ['--optimize-for-size'],
          env: {} as Record<string, string>,
        },
      ];
type Build = (typeof CONTROLLERS)[number];
const BASELINES: Build[] = (flags.baseline ?? []).map(parseBuild);
const P1_BUILDS = [...CONTROLLERS, ...BASELINES];

// ---------- statistics ----------
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
function pct(xs: number[], p: number): number {
  const s = sorted(xs);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
/** The true median: the mean of the middle two for an even count. */
function median(xs: number[]): number {
  const s = sorted(xs.filter((x) => Number.isFinite(x)));
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
const spread = (xs: number[]) => {
  const f = xs.filter((x) => Number.isFinite(x));
  return f.length ? `${fmt(Math.min(...f))}–${fmt(Math.max(...f))}` : 'n/a';
};
function fmt(n: number, digits = 2): string {
  if (!Number.isFinite(n)) return 'n/a';
  return Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(digits);
}
/** "median (min–max, n)" */
const summary = (xs: number[], digits = 2) =>
  `${fmt(median(xs), digits)} (${spread(xs)}, n=${xs.filter((x) => Number.isFinite(x)).length})`;

/** Load samples: the 1-minute load average at each block's start (the machine is shared). */
const loads: Array<{ at: string; block: string; load1: number; load5: number }> = [];
function noteLoad(block: string): void {
  const [l1, l5] = loadavg();
  loads.push({ at: new Date().toISOString().slice(11, 19), block, load1: l1!, load5: l5! });
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
  /** Setup, watching and cleaning up, as the admin (not measured). */
  api: CustomObjectsApi;
  admin: KubeConfig;
  /** The references' client: the admin's credentials with the controller's connection pool. */
  ref: CustomObjectsApi;
  dir: string;
  token: string;
  /** The Deployment's environment as the chart renders it by default (plain values only). */
  chartEnv: Record<string, string>;
  /** Processes whose CPU time a burst reports (the controller's is added per block). */
  pids: { apiserver: number; etcd: number; moto: number };
}

/** CPU time (user + system, ms) of a process and its reaped children, from /proc; NaN once it is gone. */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime, stime, cutime, cstime: fields 14–17 of stat(5), here 11–14 after the name; 100 ticks per second.
    return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) * 10;
  } catch {
    return NaN;
  }
}

/** CPU ms of each process of the job, and of this process (the recorder and the contract gateway run here). */
function cpuSnapshot(b: Bench, controllerPid: number): Record<string, number> {
  const self = process.cpuUsage();
  return {
    controller: cpuMs(controllerPid),
    apiserver: cpuMs(b.pids.apiserver),
    etcd: cpuMs(b.pids.etcd),
    moto: cpuMs(b.pids.moto),
    'bench+gateway': (self.user + self.system) / 1000,
  };
}

/** Seconds each seedFleet took (reset + instances + metrics), for the report. */
const seedSeconds = new Map<number, number[]>();
/** RunInstances per call, and PutMetricData datums per call (AWS's limit is 1,000). */
const SEED_BATCH = 500;
const METRIC_BATCH = 1_000;

/** A reset moto with `fleet` running instances carrying the scope tag, each with CPU at 95 %. */
async function seedFleet(b: Bench, fleet: number): Promise<string[]> {
  const t0 = performance.now();
  await motoReset(b.motoEndpoint);
  const ec2 = new EC2Client(seedClientConfig(b.motoEndpoint, REGION));
  // Large PutMetricData bodies are gzipped by the SDK, which moto cannot read.
  const cw = new CloudWatchClient({ ...seedClientConfig(b.motoEndpoint, REGION), disableRequestCompression: true });
  try {
    const ids: string[] = [];
    // In batches: one RunInstances of thousands is one long moto request (and real EC2 caps a call too).
    for (let left = fleet; left > 0; left -= SEED_BATCH) {
      const count = Math.min(SEED_BATCH, left);
      const out = await ec2.send(
        new RunInstancesCommand({
          ImageId: 'ami-1e749f67',
          InstanceType: 't3.micro',
          MinCount: count,
          MaxCount: count,
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
      ids.push(...(out.Instances ?? []).map((i) => i.InstanceId!));
    }
    if (ids.length !== fleet) throw new Error(`moto started ${ids.length} of ${fleet} instances`);
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
    for (let i = 0; i < data.length; i += METRIC_BATCH)
      await cw.send(new PutMetricDataCommand({ Namespace: 'AWS/EC2', MetricData: data.slice(i, i + METRIC_BATCH) }));
    seedSeconds.set(fleet, [...(seedSeconds.get(fleet) ?? []), (performance.now() - t0) / 1000]);
    return ids;
  } finally {
    ec2.destroy();
    cw.destroy();
  }
}

/**
 * What the chart installs besides the Deployment (RBAC, the approval admission policy),
 * rendered with helm and applied; the intake Secret; and the Deployment's environment.
 */
async function installChart(b: Bench, helm: string): Promise<Record<string, string>> {
  const core = b.admin.makeApiClient(CoreV1Api);
  for (const ns of [SYSTEM_NS, NS, REF_NS]) await core.createNamespace({ body: { metadata: { name: ns } } });
  const rendered = parseManifests(
    await renderChart({
      helm,
      release: RELEASE,
      namespace: SYSTEM_NS,
      values: {
        controller: { watchNamespaces: [NS] },
        intake: { tokenSecret: { create: false } },
        // Role aggregation needs kube-controller-manager, which does not run here.
        rbac: { aggregateToDefaultRoles: false },
      },
    }),
  );
  const kinds = new Set([
    'ServiceAccount',
    'ClusterRole',
    'ClusterRoleBinding',
    'Role',
    'RoleBinding',
    'ValidatingAdmissionPolicy',
    'ValidatingAdmissionPolicyBinding',
  ]);
  const file = join(b.dir, 'chart.yaml');
  writeFileSync(
    file,
    rendered
      .filter((o) => kinds.has(o.kind))
      .map((o) => stringify({ ...o, metadata: { ...o.metadata, namespace: o.metadata.namespace ?? SYSTEM_NS } }))
      .join('---\n'),
  );
  await b.cp.applyManifests(file);
  await core.createNamespacedSecret({
    namespace: SYSTEM_NS,
    body: { metadata: { name: `${RELEASE}-intake-token` }, stringData: { token: b.token } },
  });
  const deployment = rendered.find((o) => o.kind === 'Deployment') as unknown as {
    spec: { template: { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }> }> } } };
  };
  const env: Record<string, string> = {};
  for (const e of deployment.spec.template.spec.containers[0]!.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

async function setUpKube(b: Bench): Promise<void> {
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
        scope: { maxTargets: WIDE },
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
  // Every policy write names its writer (the chart's admission policy refuses it otherwise).
  const review = await b.admin.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  const writer = review.status?.userInfo?.username ?? '';
  // One policy per shape, so the 1- and 50-target runs share nothing but the fleet; and
  // one that keeps its requests, for P5.
  for (const [name, alertname, maxTargets, retention] of [
    // Retention's delete is part of the job: it happens within the run (a short TTL) and
    // is counted. The history limit is out of the way, so it never deletes early.
    ['bench-one', 'BenchOne', 1, { ttlAfterFinished: flags.ttl, historyLimit: 10_000 }],
    ['bench-wide', 'BenchWide', WIDE, { ttlAfterFinished: flags.ttl, historyLimit: 10_000 }],
    ['bench-keep', 'BenchKeep', 1, { historyLimit: 10_000 }],
  ] as const) {
    await b.api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: 'alertpolicies',
      body: {
        apiVersion: API_VERSION,
        kind: 'AlertPolicy',
        metadata: { name, namespace: NS, annotations: { [CHANGED_BY_ANNOTATION]: writer } },
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
          retention,
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
  // The chart's ServiceAccount, with a fresh token from the TokenRequest API, as a pod gets it.
  const saToken = await b.cp.tokenForServiceAccount(SYSTEM_NS, RELEASE, { create: false, expirationSeconds: 4 * 3600 });
  const kubeconfig = b.cp.kubeconfigForToken(saToken, `${RELEASE}-bench`);
  const proc = spawnManaged(`${build.label}-${label}`, process.execPath, [...build.nodeFlags, ...extraFlags, build.main], {
    logDir: join(b.dir, 'logs'),
    env: {
      ...b.chartEnv,
      // AWS through the recording proxy, with static test credentials (the chart's IRSA path is hack/demo.ts's).
      ...awsEnv(b.aws, REGION, { dir: join(b.dir, 'aws') }),
      KUBECONFIG: kubeconfig,
      // The Downward API's values in a pod.
      POD_NAMESPACE: SYSTEM_NS,
      POD_NAME: `${RELEASE}-bench-${label}`,
      // The chart binds all interfaces; here only loopback, on free ports.
      METRICS_BIND_ADDRESS: `127.0.0.1:${metricsPort}`,
      INTAKE_BIND_ADDRESS: `127.0.0.1:${intakePort}`,
      ...build.env,
    },
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  const intake = `http://127.0.0.1:${intakePort}`;
  await waitUntil(
    `controller ${label} ready`,
    async () => {
      if (!(await fetch(`${metricsUrl}/readyz`)).ok || !(await fetch(`${intake}/readyz`)).ok) return undefined;
      // Leader election is on, as the chart has it: ready once this replica leads.
      return plain(await (await fetch(`${metricsUrl}/metrics`)).text(), 'remediator_leader') === 1 ? true : undefined;
    },
    {
      timeoutMs: 60_000,
      processes: [proc],
    },
  );
  return { proc, metricsUrl, intake };
}

/** The controller's remediator_events_total by result (written, coalesced, dropped, failed). */
async function controllerEvents(c: Controller): Promise<Record<string, number>> {
  const text = await (await fetch(`${c.metricsUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const s of samples(text, 'remediator_events_total')) out[s.labels['result']!] = (out[s.labels['result']!] ?? 0) + s.value;
  return out;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** RSS from /proc; the V8 heap and external memory from the controller's own /metrics (prom-client's defaults). */
async function memorySample(c: Controller, build: string, requests: number): Promise<Omit<P5Sample, 'load1'>> {
  const text = await (await fetch(`${c.metricsUrl}/metrics`)).text();
  const mb = (name: string) => (samples(text, name)[0]?.value ?? plain(text, name)) / 2 ** 20;
  return {
    build,
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
  /** RemediationRequest creates (the intake's). */
  creates: number;
  /** RemediationRequest updates and patches other than status (the execution finalizer added and removed). */
  updates: number;
  /** RemediationRequest deletes (retention's). */
  deletes: number;
  status: number;
  events: number;
  alertpolicies: number;
  /** The execution ledger's ConfigMaps (controller namespace). */
  ledger: number;
  conflicts: number;
}
const WRITE_KEYS = ['creates', 'updates', 'deletes', 'status', 'events', 'alertpolicies', 'ledger'] as const;
const totalWrites = (w: Writes) => WRITE_KEYS.reduce((sum, k) => sum + w[k], 0);

async function apiserverWrites(b: Bench): Promise<Writes> {
  const text = await rawGet(b, '/metrics');
  const w: Writes = { creates: 0, updates: 0, deletes: 0, status: 0, events: 0, alertpolicies: 0, ledger: 0, conflicts: 0 };
  for (const s of samples(String(text), 'apiserver_request_total')) {
    const { verb, resource, subresource, code } = s.labels;
    const v = (verb ?? '').toUpperCase();
    if (!['POST', 'PUT', 'PATCH', 'DELETE', 'CREATE', 'UPDATE', 'APPLY'].includes(v)) continue;
    if (code === '409') w.conflicts += s.value;
    if (resource === 'remediationrequests' && subresource === 'status') w.status += s.value;
    else if (resource === 'remediationrequests' && (v === 'POST' || v === 'CREATE')) w.creates += s.value;
    else if (resource === 'remediationrequests' && v === 'DELETE') w.deletes += s.value;
    else if (resource === 'remediationrequests') w.updates += s.value;
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
  creates: b.creates - a.creates,
  updates: b.updates - a.updates,
  deletes: b.deletes - a.deletes,
  status: b.status - a.status,
  events: b.events - a.events,
  alertpolicies: b.alertpolicies - a.alertpolicies,
  ledger: b.ledger - a.ledger,
  conflicts: b.conflicts - a.conflicts,
});

/**
 * Waits until the API server's write counters stop moving: unchanged for QUIET_MS, and
 * (with `until`) after `until()` holds — every request deleted by retention, say.
 * Returns when the last write was seen, or NaN when they never stopped within the limit.
 */
async function writesQuiet(b: Bench, until: () => boolean, timeoutMs: number): Promise<{ quietAt: number; writes: Writes }> {
  const deadline = performance.now() + timeoutMs;
  let last = await apiserverWrites(b);
  let lastChange = performance.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await apiserverWrites(b);
    if (totalWrites(now) !== totalWrites(last)) {
      last = now;
      lastChange = performance.now();
    } else if (until() && performance.now() - lastChange >= QUIET_MS) return { quietAt: lastChange, writes: now };
    if (performance.now() > deadline) return { quietAt: NaN, writes: now };
  }
}

// ---------- the product ----------
type Shape = 'one' | 'wide' | 'keep';
const ALERTNAME: Record<Shape, string> = { one: 'BenchOne', wide: 'BenchWide', keep: 'BenchKeep' };

function alert(policy: Shape, ids: string[], i: number) {
  return {
    labels: { alertname: ALERTNAME[policy], instance_id: ids.join(','), severity: 'warning', n: String(i) },
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

/** `n` alerts through the intake, DELIVERIES payloads of PAYLOAD in flight. */
async function deliverAll(c: Controller, b: Bench, alerts: ReturnType<typeof alert>[]): Promise<void> {
  const chunks: Array<ReturnType<typeof alert>[]> = [];
  for (let i = 0; i < alerts.length; i += PAYLOAD) chunks.push(alerts.slice(i, i + PAYLOAD));
  let next = 0;
  await Promise.all(
    Array.from({ length: DELIVERIES }, async () => {
      while (next < chunks.length) await deliver(c, b, chunks[next++]!);
    }),
  );
}

/**
 * Watches the bench namespace's requests and remembers, by UID, each one seen in an end
 * phase and each one deleted: with a short retention TTL a request may be gone before
 * anyone lists it, so ended requests are counted as they pass, not listed at the end.
 */
function tracker(b: Bench) {
  const inf = new Informer<RemediationRequest>({
    name: 'bench',
    list: async () => {
      const l = (await b.api.listNamespacedCustomObject({
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
  const ended = new Map<string, string>();
  const deleted = new Set<string>();
  let lastEnd = NaN;
  inf.on((e) => {
    const uid = e.object.metadata?.uid ?? '';
    const phase = e.object.status?.phase ?? '';
    if (ENDS.has(phase) && !ended.has(uid)) {
      ended.set(uid, phase);
      lastEnd = performance.now();
    }
    if (e.type === 'delete') deleted.add(uid);
  });
  return {
    inf,
    ended,
    deleted,
    lastEnd: () => lastEnd,
    reset() {
      ended.clear();
      deleted.clear();
    },
  };
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
  repeat: number;
  n: number;
  targets: number;
  /** Distinct instances the burst named: n for the storm, fewer for the queue shape (--queue-instances). */
  instances: number;
  /** Burst start → every request in an end phase. */
  seconds: number;
  perSecond: number;
  /** Every request ended → the API server's write counters stopped (retention's deletes included). */
  settleSeconds: number;
  succeeded: number;
  ended: number;
  aws: Record<string, number>;
  writes: Writes;
  events: Record<string, number>;
  firstSendMs: number;
  rssAfterMb: number;
  load1: number;
  /** CPU ms per remediation by process, burst start → every request ended. */
  cpuPerRemediation: Record<string, number>;
}

/**
 * A fresh controller; `n` alerts through the intake; until every request ended and the
 * writes stopped. One target each: alert i names instance i mod `instances` (n: a storm,
 * one alert per instance); wide: every alert names the fleet's first WIDE instances.
 */
async function productBurst(
  b: Bench,
  build: Build,
  n: number,
  shape: 'one' | 'wide',
  repeat: number,
  instances: number,
): Promise<BurstResult> {
  const ids = await seedFleet(b, fleetFor(n));
  const c = await startControllerProcess(b, build, `${shape}-${n}-${repeat}`);
  const t = tracker(b);
  t.inf.start();
  await t.inf.waitForSync();
  try {
    const aws0 = await controllerAwsCalls(c);
    const ev0 = await controllerEvents(c);
    const w0 = await apiserverWrites(b);
    const mark = b.recorder.calls.length;
    const alerts = Array.from({ length: n }, (_, i) => alert(shape, shape === 'one' ? [ids[i % instances]!] : ids.slice(0, WIDE), i));
    const cpu0 = cpuSnapshot(b, c.proc.pid);
    const t0 = performance.now();
    await deliverAll(c, b, alerts);
    await waitUntil(`${n} requests to end`, async () => (t.ended.size >= n ? true : undefined), {
      timeoutMs: Math.max(300_000, n * 1_000),
      intervalMs: 100,
      processes: [c.proc],
    });
    const seconds = (t.lastEnd() - t0) / 1000;
    const endedAt = t.lastEnd();
    const cpu1 = cpuSnapshot(b, c.proc.pid);
    const cpuPerRemediation = Object.fromEntries(Object.entries(cpu1).map(([k, v]) => [k, (v - cpu0[k]!) / n]));
    const rssAfterMb = rssBytes(c.proc.pid) / 2 ** 20;
    // Until retention deleted every request and the API server's counters stopped moving.
    const quiet = await writesQuiet(b, () => t.deleted.size >= n, Math.max(300_000, n * 200));
    const aws1 = await controllerAwsCalls(c);
    const ev1 = await controllerEvents(c);
    const aws: Record<string, number> = {};
    for (const [k, v] of aws1) if (v - (aws0.get(k) ?? 0) > 0) aws[k] = v - (aws0.get(k) ?? 0);
    const events: Record<string, number> = {};
    for (const [k, v] of Object.entries(ev1)) events[k] = v - (ev0[k] ?? 0);
    const firstSend = b.recorder.calls.slice(mark).find((x) => x.operation === 'SendCommand');
    return {
      build: build.label,
      repeat,
      n,
      targets: shape === 'one' ? 1 : WIDE,
      instances,
      seconds,
      perSecond: n / seconds,
      settleSeconds: (quiet.quietAt - endedAt) / 1000,
      succeeded: [...t.ended.values()].filter((p) => p === 'Succeeded').length,
      ended: t.ended.size,
      aws,
      writes: diff(w0, quiet.writes),
      events,
      firstSendMs: firstSend ? firstSend.at - t0 : NaN,
      rssAfterMb,
      load1: loadavg()[0]!,
      cpuPerRemediation,
    };
  } finally {
    t.inf.stop();
    await c.proc.stop(10_000);
    await clearRequests(b, NS);
  }
}

/** P1 for the product: one alert at a time into an idle controller; alert POSTed → SendCommand on the wire. */
async function productLatency(c: Controller, b: Bench, ids: string[], i: number): Promise<number> {
  const sent = b.recorder.next((x) => x.operation === 'SendCommand');
  const t0 = performance.now();
  await deliver(c, b, [alert('one', [ids[i % ids.length]!], 100_000 + i)]);
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
      // The chart's admission policy asks people creating requests to say who they are.
      requestedBy: 'testbed-admin',
      alert: { source: 'alertmanager', name: 'BenchOne', labels: { alertname: 'BenchOne', instance_id: id }, status: 'firing' },
    },
  };
}

/**
 * P2's floor: the bare full job at the controller's concurrency. Each remediation makes
 * the irreducible calls (create, DescribeInstances, GetMetricData, the intent status
 * write, SendCommand), then polls GetCommandInvocation first after the chart's poll
 * interval — a timer, not a held worker, as the controller requeues — and writes the
 * result. `concurrency` steps run at once. Remediations per second, start → last result.
 */
async function bareFullJob(
  b: Bench,
  clients: { ec2: EC2Client; cw: CloudWatchClient; ssm: SSMClient },
  n: number,
  ids: string[],
  concurrency: number,
  pollMs: number,
  instances: number,
): Promise<number> {
  type Step = () => Promise<void>;
  const queue: Step[] = [];
  let running = 0;
  let done = 0;
  let fail: ((e: unknown) => void) | undefined;
  let finish: (() => void) | undefined;
  const finished = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const pump = () => {
    while (running < concurrency && queue.length > 0) {
      const step = queue.shift()!;
      running++;
      step()
        .then(() => {
          running--;
          pump();
        })
        .catch((e: unknown) => fail!(e));
    }
  };
  const enqueue = (s: Step) => {
    queue.push(s);
    pump();
  };
  const remediation = (i: number): Step => {
    // The same instance choice as the controller's burst of this shape.
    const id = ids[i % instances]!;
    return async () => {
      const created = (await b.ref.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: REF_NS,
        plural: 'remediationrequests',
        body: refRequest(`full-${i}-${randomBytes(3).toString('hex')}`, id),
      })) as RemediationRequest;
      const described = await clients.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: [id] }] }));
      const metrics = await clients.cw.send(metricQuery(id));
      const comment = `full-${i}`;
      const intent = (await b.ref.replaceNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        namespace: REF_NS,
        plural: 'remediationrequests',
        name: created.metadata!.name!,
        body: { ...created, status: intentStatus(id, described, metrics, comment) },
      })) as RemediationRequest;
      const sent = await clients.ssm.send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunShellScript',
          InstanceIds: [id],
          Comment: comment,
          Parameters: { commands: ['systemctl restart nginx'] },
        }),
      );
      const commandId = sent.Command!.CommandId!;
      const poll: Step = async () => {
        const inv = await clients.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id }));
        if (!['Success', 'Failed', 'Cancelled', 'TimedOut'].includes(inv.Status ?? '')) {
          setTimeout(() => enqueue(poll), pollMs);
          return;
        }
        await b.ref.replaceNamespacedCustomObjectStatus({
          group: GROUP,
          version: VERSION,
          namespace: REF_NS,
          plural: 'remediationrequests',
          name: created.metadata!.name!,
          body: {
            ...intent,
            status: {
              ...intent.status,
              phase: inv.Status === 'Success' ? 'Succeeded' : 'Failed',
              completionTime: new Date().toISOString(),
            },
          },
        });
        if (++done === n) finish!();
      };
      setTimeout(() => enqueue(poll), pollMs);
    };
  };
  const t0 = performance.now();
  for (let i = 0; i < n; i++) enqueue(remediation(i));
  await finished;
  const rate = n / ((performance.now() - t0) / 1000);
  await clearRequests(b, REF_NS);
  return rate;
}

function metricQuery(id: string): GetMetricDataCommand {
  const end = new Date();
  return new GetMetricDataCommand({
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
  });
}

function intentStatus(
  id: string,
  described: { Reservations?: Array<{ Instances?: Array<{ State?: { Name?: string } }> }> },
  metrics: { MetricDataResults?: Array<{ Values?: number[] }> },
  comment: string,
): RemediationRequest['status'] {
  return {
    phase: 'Executing',
    targets: [id],
    enrichment: {
      observedAt: new Date().toISOString(),
      instances: [{ instanceId: id, state: described.Reservations?.[0]?.Instances?.[0]?.State?.Name }],
      metrics: [{ name: 'cpu', statistic: 'Average', values: metrics.MetricDataResults?.[0]?.Values ?? [], timestamps: [] }],
    },
    execution: { ssm: { documentName: 'AWS-RunShellScript', comment, intentRecordedAt: new Date().toISOString() } },
  } as RemediationRequest['status'];
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
  const created = (await b.ref.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: REF_NS,
    plural: 'remediationrequests',
    body: refRequest(`bare-${i}-${Date.now()}`, id),
  })) as RemediationRequest;
  const described = await clients.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: [id] }] }));
  const metrics = await clients.cw.send(metricQuery(id));
  await b.ref.replaceNamespacedCustomObjectStatus({
    group: GROUP,
    version: VERSION,
    namespace: REF_NS,
    plural: 'remediationrequests',
    name: created.metadata!.name!,
    body: { ...created, status: intentStatus(id, described, metrics, comment) },
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

/** The API server's raw create rate of RemediationRequests, `DELIVERIES` creates in flight, pooled. */
async function rawCreateRate(b: Bench, n: number, ids: string[], instances: number): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: DELIVERIES }, async () => {
      while (next < n) {
        const i = next++;
        await b.ref.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: REF_NS,
          plural: 'remediationrequests',
          body: refRequest(`raw-${i}-${randomBytes(3).toString('hex')}`, ids[i % instances]!),
        });
      }
    }),
  );
  const rate = n / ((performance.now() - t0) / 1000);
  await clearRequests(b, REF_NS);
  return rate;
}

const awsClients = (b: Bench) => ({
  ec2: new EC2Client(seedClientConfig(b.aws, REGION)),
  cw: new CloudWatchClient(seedClientConfig(b.aws, REGION)),
  ssm: new SSMClient(seedClientConfig(b.aws, REGION)),
});

// ---------- P5: memory after real bursts ----------
interface P5Sample {
  build: string;
  requests: number;
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  load1: number;
}

/**
 * One controller; RSS idle, then after real bursts through the intake (policy
 * bench-keep, which keeps its requests) until the cache holds each of FILLS finished
 * requests and the API server's writes stopped.
 */
async function memoryAfterBursts(b: Bench, build: Build, log: (s: string) => void): Promise<P5Sample[]> {
  const out: P5Sample[] = [];
  const ids = await seedFleet(b, P5_FLEET);
  const dir = SNAPSHOTS ? join(SNAPSHOTS, build.label) : undefined;
  if (dir) mkdirSync(dir, { recursive: true });
  const extra = dir ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] : [];
  const c = await startControllerProcess(b, build, 'p5', extra);
  const t = tracker(b);
  t.inf.start();
  await t.inf.waitForSync();
  try {
    const measure = async (requests: number) => {
      await new Promise((res) => setTimeout(res, 5_000)); // let GC settle
      const s = { ...(await memorySample(c, build.label, requests)), load1: loadavg()[0]! };
      out.push(s);
      log(
        `P5 ${build.label} ${requests} requests: RSS ${fmt(s.rssMb)} MB, heap used ${fmt(s.heapUsedMb)} of ${fmt(s.heapTotalMb)} MB, external ${fmt(s.externalMb)} MB`,
      );
      if (dir) await heapSnapshot(c, dir);
    };
    await measure(0);
    let have = 0;
    for (const target of FILLS) {
      noteLoad(`p5 fill ${target}`);
      // In rounds of at most the fleet, each naming distinct instances, and each round
      // ended and settled (lock released) before the next: bench-keep has the default
      // safety.whenInstanceBusy (Wait), so two alerts about one instance in flight would
      // queue, and the fill would measure that queue rather than fill the cache.
      for (let from = have; from < target; from = Math.min(target, from + P5_FLEET)) {
        const to = Math.min(target, from + P5_FLEET);
        const alerts = Array.from({ length: to - from }, (_, i) => alert('keep', [ids[(from + i) % P5_FLEET]!], from + i));
        await deliverAll(c, b, alerts);
        await waitUntil(`${to} requests to end`, async () => (t.ended.size >= to ? true : undefined), {
          timeoutMs: Math.max(300_000, (to - from) * 1_000),
          intervalMs: 500,
          processes: [c.proc],
        });
        await writesQuiet(b, () => true, 600_000);
      }
      await waitUntil(`controller cache at ${target}`, async () => ((await cachedRequests(c)) >= target ? true : undefined), {
        timeoutMs: 120_000,
        intervalMs: 1000,
        processes: [c.proc],
      });
      have = target;
      await measure(target);
    }
  } finally {
    t.inf.stop();
    await c.proc.stop(10_000);
    await clearRequests(b, NS);
  }
  return out;
}

/** The references' rates are kept per burst size, shape (distinct instances) and repeat. */
const refKey = (n: number, instances: number, repeat: number) => `${n}:${instances}:${repeat}`;

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
  // The references get the controller's connection reuse (src/kube/kubeconfig.ts).
  const pooled = new PooledKubeConfig();
  pooled.loadFromString(admin.exportConfig());
  const b: Bench = {
    cp,
    motoEndpoint: moto.endpoint,
    aws: recorder.endpoint,
    recorder,
    api: admin.makeApiClient(CustomObjectsApi),
    admin,
    ref: pooled.makeApiClient(CustomObjectsApi),
    dir,
    token: randomBytes(24).toString('hex'),
    chartEnv: {},
    pids: { apiserver: cp.apiserver.pid, etcd: cp.etcd.pid, moto: moto.process.pid },
  };
  b.chartEnv = await installChart(b, binaries.helm);
  await setUpKube(b);
  const concurrency = Number(b.chartEnv['CONCURRENCY'] ?? 16);
  const pollMs = Number(b.chartEnv['POLL_INTERVAL'] ?? 1000);
  log(
    `test bed up; chart env ${Object.entries(b.chartEnv)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );
  noteLoad('start');

  const p1 = new Map<string, { product: number[]; bare: number[]; perRepeat: Array<{ product: number; bare: number }> }>();
  for (const build of P1_BUILDS) p1.set(build.label, { product: [], bare: [], perRepeat: [] });
  const bursts: BurstResult[] = [];
  const raw = new Map<string, number>(); // `${n}:${repeat}` → rate
  const bareFull = new Map<string, number>(); // `${n}:${repeat}` → rate
  for (let r = 0; r < REPEATS; r++) {
    // ---- P1: latency, one alert at a time, each sample interleaved with the bare script ----
    for (const build of ONLY.has('p1') ? P1_BUILDS : []) {
      noteLoad(`p1 #${r + 1} ${build.label}`);
      const mine = p1.get(build.label)!;
      // Samples are one at a time, with quiet between: the wide burst's 50 instances do.
      const ids = await seedFleet(b, WIDE);
      const c = await startControllerProcess(b, build, `p1-${r}`);
      const clients = awsClients(b);
      try {
        // Warm both paths (connections, credentials, JIT) before measuring.
        await productLatency(c, b, ids, 0);
        await bareScript(b, clients, ids[0]!, 0);
        const product: number[] = [];
        const bare: number[] = [];
        for (let i = 1; i <= P1_SAMPLES; i++) {
          // Quiet between alerts, longer than every enrichment cache's TTL (instances 5 s, metrics
          // up to 30 s, refreshed ahead only while asked): each sample is an alert after a quiet
          // period, making the same calls as the bare script. 1.5 s measured a warm fleet cache.
          await new Promise((res) => setTimeout(res, P1_IDLE_MS));
          product.push(await productLatency(c, b, ids, i + r * P1_SAMPLES));
          // Another instance than the product's sample (its other half of the fleet).
          bare.push(await bareScript(b, clients, ids[(i + r * P1_SAMPLES + (ids.length >> 1)) % ids.length]!, i + r * P1_SAMPLES));
        }
        mine.product.push(...product);
        mine.bare.push(...bare);
        mine.perRepeat.push({ product: median(product), bare: median(bare) });
        log(`P1 ${build.label} #${r + 1} p50 ${fmt(median(product))} ms, bare p50 ${fmt(median(bare))} ms`);
      } finally {
        for (const x of Object.values(clients)) x.destroy();
        await c.proc.stop(10_000);
        await clearRequests(b, NS);
        await clearRequests(b, REF_NS);
      }
    }

    // ---- P2–P4, P6: bursts, the references and each build interleaved ----
    const blocks = BURSTS.filter((x) => r === 0 || !ONCE.has(x)).flatMap((n) => instancesFor(n).map((instances) => ({ n, instances })));
    for (const { n, instances } of ONLY.has('p2') ? blocks : []) {
      const label = `${n} on ${instances} instances`;
      noteLoad(`burst ${label} #${r + 1}`);
      // Every block seeds the same fleet anew (moto reset): the references and the
      // controller name the same instances (alert i → instance i mod `instances`).
      const ids = await seedFleet(b, fleetFor(n));
      log(`fleet of ${fleetFor(n)} seeded in ${fmt(seedSeconds.get(fleetFor(n))!.at(-1)!)} s`);
      const rate = await rawCreateRate(b, n, ids, instances);
      raw.set(refKey(n, instances, r), rate);
      log(`raw create ${label} #${r + 1}: ${fmt(rate)}/s`);
      // The raw create does not touch moto, so the bare full job uses this seeding. (Until
      // 2026-12-08 it re-seeded here and kept the old ids: a reset moto starts instances
      // with new ids, so its DescribeInstances named instances that no longer existed.)
      const clients = awsClients(b);
      try {
        const full = await bareFullJob(b, clients, n, ids, concurrency, pollMs, instances);
        bareFull.set(refKey(n, instances, r), full);
        log(`bare full job ${label} #${r + 1}: ${fmt(full)}/s`);
      } finally {
        for (const x of Object.values(clients)) x.destroy();
      }
      for (const build of CONTROLLERS) {
        const res = await productBurst(b, build, n, 'one', r, instances);
        bursts.push(res);
        log(
          `${build.label} burst ${label} (1 target) #${r + 1}: ${fmt(res.perSecond)}/s in ${fmt(res.seconds)} s, writes settled ${fmt(res.settleSeconds)} s later, ${res.succeeded}/${res.n} Succeeded, ${fmt(totalWrites(res.writes) / n)} writes each, events ${JSON.stringify(res.events)}`,
        );
      }
    }
    for (const build of ONLY.has('p2') && WIDE_BURST > 0 ? CONTROLLERS : []) {
      noteLoad(`wide ${WIDE_BURST} #${r + 1}`);
      const wide = await productBurst(b, build, WIDE_BURST, 'wide', r, WIDE);
      bursts.push(wide);
      log(
        `${build.label} burst ${WIDE_BURST} (50 targets) #${r + 1}: ${fmt(wide.perSecond)}/s in ${fmt(wide.seconds)} s, ${wide.succeeded}/${wide.n} Succeeded`,
      );
    }
  }

  // ---- P5: RSS after real bursts ----
  const p5: P5Sample[] = [];
  if (ONLY.has('p5') && FILLS.length > 0)
    for (const build of CONTROLLERS) {
      try {
        p5.push(...(await memoryAfterBursts(b, build, log)));
      } catch (error) {
        log(`P5 ${build.label} stopped early: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  noteLoad('end');

  // ---- report ----
  const lines: string[] = [];
  const out = (x = '') => lines.push(x);
  const l1 = loads.map((x) => x.load1);
  out(
    `remediator bench-e2e — ${new Date().toISOString()}; fleets seeded per block (instances: median s per seeding) ${[...seedSeconds].map(([k, v]) => `${k}: ${fmt(median(v))} s ×${v.length}`).join(', ')}${[...seedSeconds.keys()].some((k) => k > SWEEP_LIMIT) ? `; above ${SWEEP_LIMIT} instances the controller's fleet sweep pauses by design (enrichment asks by id)` : ''}; ${REPEATS} repeat(s), interleaved; chart defaults (CONCURRENCY=${concurrency}, POLL_INTERVAL=${pollMs}, LOG_LEVEL=${b.chartEnv['LOG_LEVEL']}, NODE_OPTIONS="${b.chartEnv['NODE_OPTIONS']}", --optimize-for-size), as the chart's ServiceAccount; retention TTL ${flags.ttl}`,
  );
  out(
    `burst shape: ${QUEUE_INSTANCES > 0 ? `storm (a burst of n single-target alerts names n distinct instances) and, on lines marked queue, alert i about instance i mod ${QUEUE_INSTANCES} (waiting for each other: safety.whenInstanceBusy Wait)` : 'storm: a burst of n single-target alerts names n distinct instances, one alert each (--queue-instances N adds the old queue shape)'}; wide bursts name the fleet's first ${WIDE}; references use the same instances`,
  );
  out(
    `load average (1 min) at block starts: median ${fmt(median(l1))}, range ${spread(l1)} over ${loads.length} samples (a shared 2-core machine: figures are noisy)`,
  );
  for (const build of P1_BUILDS) {
    const mine = bursts.filter((x) => x.build === build.label);
    const baseline = BASELINES.includes(build);
    out();
    out(`== ${build.label} (${[...Object.entries(build.env).map(([k, v]) => `${k}=${v}`), ...build.nodeFlags, build.main].join(' ')})`);
    if (ONLY.has('p1')) {
      const lat = p1.get(build.label)!;
      const ratios = lat.perRepeat.map((x) => x.product / x.bare);
      out(`P1 alert received → SendCommand on the wire (${lat.product.length} samples each, interleaved with the bare script, pooled)`);
      out(`   controller  p50 ${fmt(median(lat.product))} ms  p95 ${fmt(pct(lat.product, 95))} ms  (range ${spread(lat.product)})`);
      out(`   bare script p50 ${fmt(median(lat.bare))} ms  p95 ${fmt(pct(lat.bare, 95))} ms  (range ${spread(lat.bare)})`);
      out(`   ratio p50 ${fmt(median(lat.product) / median(lat.bare))}× over all samples; per repeat ${summary(ratios)}   (goal ≤ 1.5×)`);
    }
    if (ONLY.has('p2') && !baseline) reportBursts(mine, raw, bareFull, out);
    if (ONLY.has('p5') && !baseline) {
      out('P5 controller memory after real bursts through the intake (goal RSS ≤ 150 MB at 10,000)');
      // A heap snapshot's native buffers stay in the process: every level after the first is inflated.
      if (SNAPSHOTS) out("   (--heap-snapshots: RSS after the first level includes the snapshots' buffers; run P5 without them for RSS)");
      for (const s of p5.filter((x) => x.build === build.label))
        out(
          `   ${String(s.requests).padStart(6)} finished requests: RSS ${fmt(s.rssMb)} MB; V8 heap used ${fmt(s.heapUsedMb)}, heap total ${fmt(s.heapTotalMb)}, external ${fmt(s.externalMb)} MB; load ${fmt(s.load1)}`,
        );
    }
  }
  out();
  out(`load samples: ${loads.map((x) => `${x.at} ${x.block} ${fmt(x.load1)}`).join('; ')}`);
  console.log(lines.join('\n'));
  if (flags.json)
    console.log(
      JSON.stringify({
        p1: Object.fromEntries(p1),
        bursts,
        raw: Object.fromEntries(raw),
        bareFull: Object.fromEntries(bareFull),
        p5,
        loads,
      }),
    );
  await recorder.close();
  await gateway.stop();
  // etcd's data holds *.snap files, which jest would take for obsolete snapshots in .testbed/.
  await cp.stop();
}

function reportBursts(mine: BurstResult[], raw: Map<string, number>, bareFull: Map<string, number>, out: (x?: string) => void): void {
  // One group per burst size and shape (storm, then the queue shape if asked), then the wide burst.
  const ones = BURSTS.flatMap((n) => instancesFor(n).map((instances) => ({ n, t: 1, instances })));
  const pick = (g: { n: number; t: number; instances: number }) =>
    mine.filter((x) => x.n === g.n && x.targets === g.t && x.instances === g.instances);
  const tag = (g: { n: number; t: number; instances: number }) =>
    g.t === 1 ? `${g.n} × 1 (${shapeLabel(g.n, g.instances)})` : `${g.n} × ${g.t} (wide, the same ${g.t} instances)`;
  out('P2 burst → every request ended, per second; floor: the bare full job at the same concurrency, same repeat (median (min–max, n))');
  for (const g of ones) {
    const rs = pick(g);
    const ref = (m: Map<string, number>, x: BurstResult) => m.get(refKey(g.n, g.instances, x.repeat)) ?? NaN;
    const ratios = rs.map((x) => x.perSecond / ref(bareFull, x));
    const rawRatios = rs.map((x) => x.perSecond / ref(raw, x));
    out(
      `   ${String(g.n).padStart(5)} alerts × 1 target (${shapeLabel(g.n, g.instances)}): ${summary(rs.map((x) => x.perSecond))}/s; bare full job ${summary(rs.map((x) => ref(bareFull, x)))}/s; ratio ${summary(ratios, 3)} (goal ≥ 0.9)`,
    );
    out(
      `         raw create (pooled) ${summary(rs.map((x) => ref(raw, x)))}/s, ratio ${summary(rawRatios, 3)}; first SendCommand after ${fmt(median(rs.map((x) => x.firstSendMs)))} ms; writes settled ${summary(rs.map((x) => x.settleSeconds))} s after the last end; Succeeded ${rs.map((x) => `${x.succeeded}/${x.n}`).join(' ')}; RSS at the end ${summary(rs.map((x) => x.rssAfterMb))} MB`,
    );
  }
  for (const g of ones) {
    const rs = pick(g);
    const keys = Object.keys(rs[0]?.cpuPerRemediation ?? {});
    out(
      `   ${tag(g)} CPU per remediation (ms, median): ${keys.map((k) => `${k} ${fmt(median(rs.map((x) => x.cpuPerRemediation[k]!)))}`).join(', ')}; total ${fmt(median(rs.map((x) => Object.values(x.cpuPerRemediation).reduce((a, v) => a + v, 0))))} ms over 2 cores`,
    );
  }
  const wides = mine.filter((x) => x.targets === WIDE);
  if (wides.length)
    out(
      `   ${String(WIDE_BURST).padStart(5)} alerts × ${WIDE} targets (the same ${WIDE} instances): ${summary(wides.map((x) => x.perSecond))}/s; Succeeded ${wides.map((x) => `${x.succeeded}/${x.n}`).join(' ')}`,
    );
  const groups = [...ones, ...(wides.length ? [{ n: WIDE_BURST, t: WIDE, instances: WIDE }] : [])];
  out('P3 AWS calls per alert (controller /metrics remediator_aws_api_calls_total)');
  for (const g of groups) {
    const rs = pick(g);
    const ops = [...new Set(rs.flatMap((x) => Object.keys(x.aws)))].sort();
    const per = (op: string) => median(rs.map((x) => (x.aws[op] ?? 0) / x.n));
    const enrich = rs.map((x) => ((x.aws['DescribeInstances'] ?? 0) + (x.aws['GetMetricData'] ?? 0)) / x.n);
    out(`   ${tag(g)}: enrichment ${summary(enrich, 3)} (goal ≤ 0.02); ${ops.map((op) => `${op} ${fmt(per(op), 3)}`).join(', ')}`);
  }
  out(
    'P4 API writes per remediation, counted until the API server stopped writing, retention delete included (bare 3; + delete 4; goal ≤ 4.5)',
  );
  for (const g of groups) {
    const rs = pick(g);
    const per = (k: keyof Writes) => fmt(median(rs.map((x) => x.writes[k] / x.n)));
    out(
      `   ${tag(g)}: ${summary(rs.map((x) => totalWrites(x.writes) / x.n))} = create ${per('creates')} + finalizer ${per('updates')} + status ${per('status')} + events ${per('events')} + ledger ${per('ledger')} + alertpolicies ${per('alertpolicies')} + delete ${per('deletes')}; 409s ${per('conflicts')}`,
    );
  }
  out('P6 time per remediation at the largest burst against 100 (same repeat; goal ≤ 1.2×), and Events (remediator_events_total)');
  const largest = Math.max(...BURSTS);
  // Storm against storm, and the queue shape against the 100 storm (how much the queue costs).
  for (const instances of BURSTS.includes(100) && largest > 100 ? instancesFor(largest) : []) {
    const ratios = mine
      .filter((x) => x.n === largest && x.targets === 1 && x.instances === instances)
      .map((big) => {
        const small = mine.find((x) => x.n === 100 && x.targets === 1 && x.instances === 100 && x.repeat === big.repeat);
        return small ? big.seconds / big.n / (small.seconds / small.n) : NaN;
      });
    out(`   ${largest} (${shapeLabel(largest, instances)}) vs 100 (storm): ${summary(ratios)}×`);
  }
  for (const g of groups) {
    const rs = pick(g);
    const ev = (k: string) => rs.map((x) => x.events[k] ?? 0).join('/');
    out(
      `   ${tag(g)}: Events written ${ev('written')}, coalesced ${ev('coalesced')}, dropped ${ev('dropped')}, failed ${ev('failed')} (per repeat)`,
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
