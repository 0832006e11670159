/**
 * Runs a range of the simulation's seeds for the jest tests (simulation-odd/-even.test.ts):
 * SIM_SEEDS seeds per file (default 1000) from SIM_FIRST_SEED, the odd ones in one file
 * and the even ones in the other, so jest's two workers share them.
 */
import { simulate } from './simulation.js';

export interface SeedsReport {
  seeds: number;
  steps: number;
  /** Up to three failures, each with its trace's tail and how to replay it. */
  failures: string[];
}

export async function runSeeds(parity: 0 | 1): Promise<SeedsReport> {
  const count = Number(process.env.SIM_SEEDS ?? 1000);
  const first = Number(process.env.SIM_FIRST_SEED ?? 1);
  const failures: string[] = [];
  let steps = 0;
  for (let i = 0; i < count; i++) {
    const seed = first + 2 * i + (first % 2 === parity ? 0 : 1);
    const r = await simulate({ seed, traceTail: 40 });
    steps += r.steps;
    if (r.violation && failures.length < 3)
      failures.push(`seed ${seed}: ${r.violation}\n  ${r.trace.join('\n  ')}\n  replay: SEED=${seed} npm run simulate`);
  }
  return { seeds: count, steps, failures };
}
