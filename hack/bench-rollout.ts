/**
 * What a 500-instance rollout through the controller costs over the bare commands
 * (docs/rollouts.md, "What a rollout costs").
 *
 * It starts the test bed the e2e suite uses (etcd + kube-apiserver with the CRDs, moto
 * behind the contract gateway with SSM simulated over time: each invocation runs
 * `--run-ms`) and, per repeat, interleaved (the order alternates between repeats):
 *
 *  - bare: a careful script making the same calls the controller makes for the same
 *    rollout — the fleet-wide rule (`nextSend`) decides each SendCommand, and the
 *    invocations not ended are polled with GetCommandInvocation 8 at a time every
 *    `--poll-interval` — over one SSM client (connection reuse), no Kubernetes;
 *  - controller: the real controller process (`dist/controller/main.js`, with the same
 *    `--poll-interval`) executing a RemediationRequest of a policy whose runbook selects the same
 *    500 instances at the same maxConcurrency: from the request's creation until the
 *    test sees it Succeeded.
 *
 * Both are timed end to end (wall) and in the emulator's view (first SendCommand to the
 * last invocation's end), with the peak concurrency the emulator saw. Reported: each
 * repeat, medians and spread (min–max), the controller's overhead over bare (median of
 * the per-repeat differences), and the load average around each run. Leaves nothing
 * running. A benchmark, not a test: nothing here asserts a goal.
 *
 * `npm run build && node dist/hack/bench-rollout.js [--run-ms 1000] [--limit 50] [--repeats 3] [--poll-interval 200]`
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { SsmCommand } from '../src/api/v1alpha1/index.js';
import { SsmCommandRunner } from '../src/cloud/ssm.js';
import { TERMINAL_INVOCATION_STATUSES } from '../src/cloud/types.js';
import { nextSend, plannedRolloutCommands, waveEnded } from '../src/controllers/rollout.js';
import { Resources, restartRunbook, startController } from '../test/e2e/harness.js';
import { seedClientConfig, seedInstances } from '../test/testbed/aws.js';
import { testbedFromEnv } from '../test/testbed/env.js';
import { setSsmSimulation, ssmTimeline, type SsmTimeline } from '../test/testbed/gateway.js';
import globalSetup from '../test/testbed/global-setup.js';
import globalTeardown from '../test/testbed/global-teardown.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUN_MS = arg('run-ms', 1000);
const LIMIT = arg('limit', 50);
const REPEATS = arg('repeats', 3);
const POLL_MS = arg('poll-interval', 200);
const N = 500;
const REGION = 'eu-central-2';
const NS = 'bench-rollout';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  wallMs: number;
  makespanMs: number;
  maxRunning: number;
  load: [number, number];
}

async function mapLimited<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** The emulator's view of the commands whose comment starts with `prefix`: makespan and peak. */
async function emulatorView(endpoint: string, prefix: string): Promise<{ makespanMs: number; maxRunning: number }> {
  const tl: SsmTimeline = await ssmTimeline(endpoint, REGION);
  const cmds = tl.commands.filter((c) => c.comment?.startsWith(prefix));
  const runs = cmds.flatMap((c) => c.invocations.filter((i) => i.ranFrom !== undefined));
  const events: Array<[number, number]> = runs.flatMap((i) => [
    [i.ranFrom!, 1],
    [i.ranUntil!, -1],
  ]);
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  for (const [, d] of events) {
    now += d;
    max = Math.max(max, now);
  }
  const makespanMs = runs.length === 0 ? 0 : Math.max(...runs.map((i) => i.ranUntil!)) - Math.min(...cmds.map((c) => c.sentAt));
  return { makespanMs, maxRunning: max };
}

/** The bare script: the controller's calls for the same rollout, and nothing else. */
async function bare(runner: SsmCommandRunner, endpoint: string, fleet: readonly string[], label: string): Promise<Run> {
  const load0 = loadavg()[0]!;
  const targets = [...fleet].sort();
  const commands: SsmCommand[] = plannedRolloutCommands(`bench:${label}`, targets, [N], String(LIMIT));
  const statuses = new Map<string, string>();
  const limits = { maxConcurrency: String(LIMIT), maxErrors: '0', targets: N };
  const t0 = performance.now();
  for (;;) {
    const d = nextSend(commands, statuses, 0, limits);
    if (d.kind === 'waveSent' && waveEnded(commands, statuses, 0)) break;
    if (d.kind === 'send') {
      const c = commands[d.index]!;
      const sent = await runner.sendCommand({
        documentName: 'AWS-RunShellScript',
        instanceIds: c.instanceIds,
        parameters: { commands: ['systemctl restart nginx'] },
        comment: c.comment,
        timeoutSeconds: 3600,
        maxConcurrency: d.maxConcurrency,
        maxErrors: d.maxErrors,
      });
      c.commandId = sent.commandId;
      c.maxConcurrency = d.maxConcurrency;
      continue;
    }
    await sleep(POLL_MS);
    const open = commands.flatMap((c) =>
      c.commandId
        ? c.instanceIds.filter((id) => !TERMINAL_INVOCATION_STATUSES.has(statuses.get(id) ?? '')).map((id) => [c.commandId!, id] as const)
        : [],
    );
    await mapLimited(open, 8, async ([cmd, id]) => {
      statuses.set(id, (await runner.getInvocation(cmd, id)).status);
    });
  }
  const wallMs = performance.now() - t0;
  return { wallMs, ...(await emulatorView(endpoint, `bench:${label}`)), load: [load0, loadavg()[0]!] };
}

/** The same rollout as a RemediationRequest executed by the controller. */
async function viaController(res: Resources, endpoint: string, policy: string, label: string): Promise<Run> {
  const load0 = loadavg()[0]!;
  const t0 = performance.now();
  const rr = await res.createRequest(NS, label, {
    policyRef: { name: policy },
    alert: { source: 'generic', name: 'Bench', status: 'firing' },
  });
  for (;;) {
    await sleep(50);
    const r = await res.getRequest(NS, label);
    const phase = r.status?.phase;
    if (phase === 'Succeeded') break;
    if (phase && ['Failed', 'Cancelled', 'Skipped', 'Expired'].includes(phase)) {
      throw new Error(`${label} ended ${phase}: ${r.status?.message}`);
    }
  }
  const wallMs = performance.now() - t0;
  return { wallMs, ...(await emulatorView(endpoint, `remediator:${rr.metadata!.uid}`)), load: [load0, loadavg()[0]!] };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const summary = (xs: readonly number[]) => ({
  median: Math.round(median(xs)),
  min: Math.round(Math.min(...xs)),
  max: Math.round(Math.max(...xs)),
});

async function main(): Promise<void> {
  await globalSetup();
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  const ssm = new SSMClient({ ...seedClientConfig(tb.motoEndpoint, REGION), maxAttempts: 1 });
  const runner = new SsmCommandRunner(ssm, ssm);
  const controller = await startController(tb, {
    region: REGION,
    namespace: NS,
    name: 'bench-rollout',
    args: ['--poll-interval', String(POLL_MS)],
    extraEnv: { LOG_LEVEL: 'info' },
  });
  try {
    await res.namespace(NS);
    const fleet = await seedInstances(tb.motoEndpoint, { count: N, region: REGION, tags: { Fleet: 'bench' } });
    await setSsmSimulation(tb.motoEndpoint, REGION, { runMs: RUN_MS, spreadMs: 0 });
    const base = restartRunbook();
    await res.createRunbook('bench-rollout', {
      ...base,
      scope: { tagSelector: { Fleet: 'bench' }, maxTargets: N },
      action: { ssm: { ...base.action.ssm!, maxConcurrency: String(LIMIT), maxErrors: '0' } },
    });
    await res.createPolicy(NS, 'bench', {
      runbookRef: { name: 'bench-rollout' },
      inputs: { service: 'nginx' },
      targets: { tagSelector: { Fleet: 'bench' }, maxTargets: N },
      risk: 'Low',
    });
    const bares: Run[] = [];
    const ctrls: Run[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const order = r % 2 === 0 ? (['bare', 'controller'] as const) : (['controller', 'bare'] as const);
      for (const which of order) {
        if (which === 'bare') bares.push(await bare(runner, tb.motoEndpoint, fleet, `bare-${r}`));
        else ctrls.push(await viaController(res, tb.motoEndpoint, 'bench', `roll-${r}`));
        process.stderr.write(`repeat ${r + 1}: ${which} ${Math.round((which === 'bare' ? bares : ctrls).at(-1)!.wallMs)} ms\n`);
      }
    }
    const ideal = Math.ceil(N / LIMIT) * RUN_MS;
    const pick = (runs: Run[], k: 'wallMs' | 'makespanMs') => runs.map((x) => x[k]);
    console.log(
      JSON.stringify(
        {
          instances: N,
          runMs: RUN_MS,
          limit: LIMIT,
          pollMs: POLL_MS,
          repeats: REPEATS,
          idealAtLimitMs: ideal,
          bare: {
            wallMs: summary(pick(bares, 'wallMs')),
            makespanMs: summary(pick(bares, 'makespanMs')),
            maxRunning: bares.map((x) => x.maxRunning),
          },
          controller: {
            wallMs: summary(pick(ctrls, 'wallMs')),
            makespanMs: summary(pick(ctrls, 'makespanMs')),
            maxRunning: ctrls.map((x) => x.maxRunning),
          },
          controllerOverBare: {
            wallMs: summary(ctrls.map((c, i) => c.wallMs - bares[i]!.wallMs)),
            makespanMs: summary(ctrls.map((c, i) => c.makespanMs - bares[i]!.makespanMs)),
          },
          load1: { bare: bares.map((x) => x.load), controller: ctrls.map((x) => x.load) },
        },
        null,
        2,
      ),
    );
  } finally {
    ssm.destroy();
    await controller.stop();
    await globalTeardown();
  }
}

await main();
