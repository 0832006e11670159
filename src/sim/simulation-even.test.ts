/**
 * The deterministic simulation in CI (src/sim/simulation.ts), the even seeds: the real
 * request reconciler against the simulated API server and AWS with every fault kind on.
 * A failing seed prints its violation and its trace's tail; `SEED=<n> npm run simulate`
 * replays it whole.
 */
import { runSeeds } from './seeds.js';

test('every even seed keeps the execution invariants', async () => {
  const report = await runSeeds(0);
  expect(report.failures).toEqual([]);
  // Each seed explores: a run that ends at once would prove nothing.
  expect(report.steps).toBeGreaterThan(report.seeds * 20);
}, 600_000);
