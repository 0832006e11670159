/**
 * What a rollout costs over bare commands, for 500 instances (docs/rollouts.md):
 *
 *  - rules: CPU time of the rollout rules (nextSend, waveEnded, outcome) over a whole
 *    500-instance rollout, polled as the controller polls, in process;
 *  - emulator: moto behind the test bed's gateway with SSM simulated over time
 *    (test/testbed/ssm-simulation.ts; each invocation runs `--run-ms`): the makespan of
 *    the bare commands (ten of 50, sent at once, no fleet limit — today's send), the ideal
 *    at the fleet limit (ceil(500 / limit) × run time), and the rollout's own makespan in
 *    the emulator's view and its peak concurrency.
 *
 * Starts its own moto_server and gateway (no control plane); leaves nothing running.
 * `node dist/hack/bench-rollout.js [--run-ms 1000] [--limit 50]`
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { SsmCommand } from '../src/api/v1alpha1/index.js';
import { SsmCommandRunner } from '../src/cloud/ssm.js';
import { TERMINAL_INVOCATION_STATUSES } from '../src/cloud/types.js';
import { nextSend, outcome, plannedRolloutCommands, waveEnded } from '../src/controllers/rollout.js';
import { seedClientConfig, seedInstances } from '../test/testbed/aws.js';
import { clearSsmSimulation, setSsmSimulation, ssmTimeline, startGateway } from '../test/testbed/gateway.js';
import { startMoto } from '../test/testbed/moto.js';
import { stopAll } from '../test/testbed/procs.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUN_MS = arg('run-ms', 1000);
const LIMIT = arg('limit', 50);
const N = 500;
const REGION = 'eu-central-2';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function mapLimited<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function main(): Promise<void> {
  const moto = await startMoto({ logDir: mkdtempSync(join(tmpdir(), 'bench-rollout-')) });
  const gw = await startGateway({ upstream: moto.endpoint });
  const ssm = new SSMClient({ ...seedClientConfig(gw.endpoint, REGION), maxAttempts: 1 });
  const runner = new SsmCommandRunner(ssm, ssm);
  try {
    const fleet = await seedInstances(gw.endpoint, { count: N, region: REGION });

    // Bare commands: ten of 50, sent back to back, each at MaxConcurrency 50.
    await setSsmSimulation(gw.endpoint, REGION, { runMs: RUN_MS, spreadMs: 0 });
    for (let i = 0; i < N; i += 50) {
      await runner.sendCommand({
        documentName: 'AWS-RunShellScript',
        instanceIds: fleet.slice(i, i + 50),
        parameters: { commands: ['true'] },
        comment: `bench:bare/${i}`,
        timeoutSeconds: 600,
        maxConcurrency: '50',
        maxErrors: '0',
      });
    }
    const bare = await ssmTimeline(gw.endpoint, REGION);
    const bareSpan = span(bare);
    await clearSsmSimulation(gw.endpoint, REGION);

    // The rollout at the fleet limit, polled as the controller polls (8 calls in flight).
    await setSsmSimulation(gw.endpoint, REGION, { runMs: RUN_MS, spreadMs: 0 });
    const commands: SsmCommand[] = plannedRolloutCommands('bench:roll', fleet, [N], String(LIMIT));
    const statuses = new Map<string, string>();
    const fleetLimits = { maxConcurrency: String(LIMIT), maxErrors: '0', targets: N };
    let rulesMs = 0;
    let polls = 0;
    const t0 = performance.now();
    for (;;) {
      const a = performance.now();
      const d = nextSend(commands, statuses, 0, fleetLimits);
      const done = d.kind === 'waveSent' && waveEnded(commands, statuses, 0);
      rulesMs += performance.now() - a;
      if (done) break;
      if (d.kind === 'send') {
        const c = commands[d.index]!;
        c.commandId = (
          await runner.sendCommand({
            documentName: 'AWS-RunShellScript',
            instanceIds: c.instanceIds,
            parameters: { commands: ['true'] },
            comment: c.comment,
            timeoutSeconds: 600,
            maxConcurrency: d.maxConcurrency,
            maxErrors: d.maxErrors,
          })
        ).commandId;
        continue;
      }
      await sleep(Math.min(1000, RUN_MS / 4));
      polls++;
      const open = commands.flatMap((c) =>
        c.commandId
          ? c.instanceIds.filter((id) => !TERMINAL_INVOCATION_STATUSES.has(statuses.get(id) ?? '')).map((id) => [c.commandId!, id] as const)
          : [],
      );
      await mapLimited(open, 8, async ([cmd, id]) => {
        statuses.set(id, (await runner.getInvocation(cmd, id)).status);
      });
    }
    const wall = performance.now() - t0;
    const b = performance.now();
    const o = outcome(commands, statuses, fleetLimits);
    rulesMs += performance.now() - b;
    const roll = await ssmTimeline(gw.endpoint, REGION);
    const ideal = Math.ceil(N / LIMIT) * RUN_MS;
    console.log(
      JSON.stringify(
        {
          instances: N,
          runMs: RUN_MS,
          limit: LIMIT,
          bare: { makespanMs: bareSpan, maxRunning: bare.maxRunning },
          idealAtLimitMs: ideal,
          rollout: {
            makespanMs: span(roll),
            maxRunning: roll.maxRunning,
            overIdealMs: span(roll) - ideal,
            wallMs: Math.round(wall),
            polls,
            rulesCpuMs: Math.round(rulesMs * 100) / 100,
            outcome: o.phase,
          },
        },
        null,
        2,
      ),
    );
  } finally {
    ssm.destroy();
    await gw.stop();
    await moto.stop();
    await stopAll();
  }
}

function span(tl: Awaited<ReturnType<typeof ssmTimeline>>): number {
  const runs = tl.commands.flatMap((c) => c.invocations.filter((i) => i.ranFrom !== undefined));
  if (runs.length === 0) return 0;
  return Math.max(...runs.map((i) => i.ranUntil!)) - Math.min(...tl.commands.map((c) => c.sentAt));
}

await main();
