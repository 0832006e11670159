// Jest global teardown of the `integration` project: stops what global-setup.ts
// started (moto, then kube-apiserver, then etcd) and anything else the registry in
// procs.ts still tracks, so a run never leaves processes behind. Logs stay in the run
// directory for debugging.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { stopAll } from './procs.js';

export default async function globalTeardown(): Promise<void> {
  const running = globalThis.__remediatorTestbed;
  globalThis.__remediatorTestbed = undefined;
  try {
    if (running) {
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
}
