// Jest global teardown of the `integration` project: stops what global-setup.ts
// started (moto, then kube-apiserver, then etcd) and anything else the registry in
// procs.ts still tracks, so a run never leaves processes behind. Logs stay in the run
// directory for debugging. Last, it fails the run if the contract gateway saw a call
// real AWS would have refused that no test expected (gateway.ts).

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { formatViolations, type ContractViolation } from './gateway.js';
import { stopAll } from './procs.js';

export default async function globalTeardown(): Promise<void> {
  const running = globalThis.__remediatorTestbed;
  globalThis.__remediatorTestbed = undefined;
  let unexpected: ContractViolation[] = [];
  try {
    if (running) {
      unexpected = running.gateway.unexpected();
      await running.gateway.stop();
      await running.moto.stop();
      await running.controlPlane.stop();
      // Token files written by awsEnv(), the manifest with the users' tokens, kubectl's
      // and helm's state: nothing but the logs outlives the run.
      for (const name of ['aws', 'testbed.json', 'tool-state']) {
        rmSync(join(running.controlPlane.dir, name), { recursive: true, force: true });
      }
    }
  } finally {
    await stopAll();
  }
  if (unexpected.length > 0) {
    throw new Error(
      `the AWS contract layer recorded ${unexpected.length} call(s) real AWS would refuse (moto never saw them; ` +
        `the product must not make them, or the test must expectContractViolation()):\n${formatViolations(unexpected)}`,
    );
  }
}
