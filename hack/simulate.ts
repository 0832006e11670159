/**
 * `npm run simulate`: the deterministic simulation of the request controller (src/sim).
 * `SEED=<n> npm run simulate` replays one seed and prints its whole trace; without SEED
 * it runs SEEDS seeds (default 2000) from FIRST_SEED (default 1) and prints every failing
 * seed with the tail of its trace. `FAULTS=-crash,-lostResponse` turns fault kinds off.
 */
import { performance } from 'node:perf_hooks';
import { type FaultKind, simulate } from '../src/sim/simulation.js';

const faults = Object.fromEntries(
  (process.env.FAULTS ?? '')
    .split(',')
    .filter((f) => f.startsWith('-'))
    .map((f) => [f.slice(1) as FaultKind, false]),
);
const kinds = process.env.KINDS ? (process.env.KINDS.split(',') as Array<'ssm' | 'fleet' | 'sns' | 'fifo'>) : undefined;
const steps = process.env.STEPS ? Number(process.env.STEPS) : undefined;

if (process.env.SEED) {
  const r = await simulate({
    seed: Number(process.env.SEED),
    traceTail: 1_000_000,
    faults,
    ...(steps && { steps }),
    ...(kinds && { kinds }),
  });
  for (const line of r.trace) console.log(line);
  console.log(JSON.stringify({ seed: r.seed, steps: r.steps, virtualMs: r.virtualMs, stats: r.stats, violation: r.violation ?? null }));
  process.exitCode = r.violation ? 1 : 0;
} else {
  const count = Number(process.env.SEEDS ?? 2000);
  const first = Number(process.env.FIRST_SEED ?? 1);
  const t0 = performance.now();
  const failed: number[] = [];
  let stepsTotal = 0;
  for (let seed = first; seed < first + count; seed++) {
    const r = await simulate({ seed, traceTail: 60, faults, ...(steps && { steps }), ...(kinds && { kinds }) });
    stepsTotal += r.steps;
    if (r.violation) {
      failed.push(seed);
      if (failed.length <= 5) {
        console.log(`seed ${seed}: ${r.violation}\n  ${r.trace.slice(-25).join('\n  ')}\n  replay: SEED=${seed} npm run simulate\n`);
      }
    }
  }
  const ms = Math.round(performance.now() - t0);
  console.log(JSON.stringify({ seeds: count, first, failed: failed.length, failedSeeds: failed.slice(0, 50), steps: stepsTotal, ms }));
  process.exitCode = failed.length > 0 ? 1 : 0;
}
