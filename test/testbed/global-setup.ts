// Jest global setup of the `integration` project: builds or finds the binaries, starts
// one control plane and one moto_server for the whole run, installs the repo's CRDs,
// and publishes how to reach them (testbed.json plus environment variables, see
// env.ts). Starting once per run, not per file, keeps the suite fast; tests isolate
// themselves by namespace and by moto resource ids instead.
//
// moto is published behind the gateway (gateway.ts): the endpoint every test and every
// controller under test gets is the gateway's, so each AWS call is held to AWS's
// documented limits on its way to moto.

import { join } from 'node:path';
import { ensureTestbedBinaries } from './binaries.js';
import { startControlPlane, type ControlPlane } from './controlplane.js';
import { publishToEnv, writeManifest } from './env.js';
import { newRunDir } from './layout.js';
import { startGateway, type Gateway } from './gateway.js';
import { startMoto, type Moto } from './moto.js';
import { stopAll } from './procs.js';
import { DEFAULT_REGION } from './aws.js';

/** Handed to global-teardown.ts, which runs in this same process. */
export interface RunningTestbed {
  controlPlane: ControlPlane;
  moto: Moto;
  gateway: Gateway;
}

declare global {
  var __remediatorTestbed: RunningTestbed | undefined;
}

export default async function globalSetup(): Promise<void> {
  const t0 = performance.now();
  const binaries = await ensureTestbedBinaries();
  const tBinaries = performance.now() - t0;
  const dir = newRunDir();
  const logDir = join(dir, 'logs');
  try {
    // Settle both before judging: on failure the other one must be stopped, not left mid-start.
    const [cpResult, motoResult] = await Promise.allSettled([startControlPlane({ dir, binaries }), startMoto({ logDir })]);
    if (cpResult.status === 'rejected' || motoResult.status === 'rejected') {
      if (cpResult.status === 'fulfilled') await cpResult.value.stop();
      if (motoResult.status === 'fulfilled') await motoResult.value.stop();
      throw cpResult.status === 'rejected' ? cpResult.reason : (motoResult as PromiseRejectedResult).reason;
    }
    const [controlPlane, moto] = [cpResult.value, motoResult.value];
    const gateway = await startGateway({ upstream: moto.endpoint }).catch(async (err: unknown) => {
      await moto.stop();
      await controlPlane.stop();
      throw err;
    });
    globalThis.__remediatorTestbed = { controlPlane, moto, gateway };
    const crds = await controlPlane.installCRDs();
    const startup = { binariesMs: Math.round(tBinaries), ...controlPlane.startup, totalMs: Math.round(performance.now() - t0) };
    const region = process.env['REMEDIATOR_TEST_AWS_REGION'] ?? DEFAULT_REGION;
    const manifest = {
      dir,
      logDir,
      cluster: controlPlane.info,
      motoEndpoint: gateway.endpoint,
      motoDirectEndpoint: moto.endpoint,
      region,
      binaries,
      crds,
      startup,
    };
    writeManifest(manifest);
    publishToEnv(manifest);
    process.stderr.write(
      `\ntestbed: ${controlPlane.server} (etcd ${startup.etcdMs} ms, kube-apiserver ${startup.apiserverMs} ms), ` +
        `moto ${moto.endpoint} behind the contract gateway ${gateway.endpoint}, ${crds.length} CRDs, ready in ${startup.totalMs} ms; logs in ${logDir}\n`,
    );
  } catch (err) {
    // Jest does not run global teardown when setup throws: clean up here.
    await stopAll();
    globalThis.__remediatorTestbed = undefined;
    throw err;
  }
}
