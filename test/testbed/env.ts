// How a test file finds the test bed that jest's global setup started. Jest runs test
// files in worker processes that inherit the environment of the process that ran the
// global setup, but none of its objects; so the setup writes a manifest
// (`testbed.json` in the run directory) and exports a few environment variables, and
// `testbedFromEnv()` rebuilds a usable handle from them.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import type { TestbedBinaries } from './binaries.js';
import { Cluster, type ClusterInfo } from './cluster.js';
import { awsEnv, type AwsEnvOptions } from './aws.js';
import { motoData, motoReset, type MotoData } from './moto.js';
import { run, toolEnv, type RunOptions, type RunResult } from './tools.js';

/** Environment variables published by global-setup.ts. */
export const ENV = {
  dir: 'REMEDIATOR_TESTBED_DIR',
  kubeconfig: 'REMEDIATOR_TEST_KUBECONFIG',
  server: 'REMEDIATOR_TEST_SERVER',
  motoEndpoint: 'REMEDIATOR_TEST_MOTO_ENDPOINT',
  region: 'REMEDIATOR_TEST_AWS_REGION',
  /** JSON object: user name → kubeconfig path. */
  userKubeconfigs: 'REMEDIATOR_TEST_USER_KUBECONFIGS',
  kubectl: 'REMEDIATOR_TEST_KUBECTL',
  helm: 'REMEDIATOR_TEST_HELM',
} as const;

/** The manifest written by global setup: everything needed to reconnect. */
export interface TestbedManifest {
  dir: string;
  logDir: string;
  cluster: ClusterInfo;
  /** Where tests and the code under test reach AWS: moto behind the contract gateway (gateway.ts). */
  motoEndpoint: string;
  /** moto itself, bypassing the contract layer: for the gateway's own tests only. */
  motoDirectEndpoint: string;
  region: string;
  binaries: TestbedBinaries;
  crds: string[];
  startup: Record<string, number>;
}

export const manifestPath = (dir: string): string => join(dir, 'testbed.json');

export function writeManifest(manifest: TestbedManifest): void {
  writeFileSync(manifestPath(manifest.dir), JSON.stringify(manifest, null, 2), { mode: 0o600 });
}

/** Publishes the manifest's facts as environment variables of this process (and so of jest's workers). */
export function publishToEnv(manifest: TestbedManifest): void {
  const users = Object.fromEntries(Object.values(manifest.cluster.users).map((u) => [u.name, u.kubeconfig]));
  process.env[ENV.dir] = manifest.dir;
  process.env[ENV.kubeconfig] = manifest.cluster.adminKubeconfig;
  process.env[ENV.server] = manifest.cluster.server;
  process.env[ENV.motoEndpoint] = manifest.motoEndpoint;
  process.env[ENV.region] = manifest.region;
  process.env[ENV.userKubeconfigs] = JSON.stringify(users);
  process.env[ENV.kubectl] = manifest.binaries.kubectl;
  process.env[ENV.helm] = manifest.binaries.helm;
}

export interface Testbed {
  readonly manifest: TestbedManifest;
  readonly dir: string;
  readonly cluster: Cluster;
  /** moto behind the contract gateway: every AWS call of a test goes here (see gateway.ts). */
  readonly motoEndpoint: string;
  /** moto itself, bypassing the contract layer. */
  readonly motoDirectEndpoint: string;
  readonly region: string;
  readonly binaries: TestbedBinaries;
  /** Admin KubeConfig (system:masters). */
  admin(): KubeConfig;
  /** KubeConfig of a named token user (alice, bob, carol, mallory by default). */
  as(user: string): KubeConfig;
  /** Environment for a child process on the IRSA path to moto (see aws.ts). */
  awsEnv(opts?: AwsEnvOptions): NodeJS.ProcessEnv;
  resetMoto(): Promise<void>;
  motoData(): Promise<MotoData>;
  /** kubectl as the admin, or as `user` (a named user) / with `kubeconfig`. */
  kubectl(args: string[], opts?: ToolOptions): Promise<RunResult>;
  helm(args: string[], opts?: ToolOptions): Promise<RunResult>;
}

export interface ToolOptions extends RunOptions {
  user?: string;
  kubeconfig?: string;
}

let cached: Testbed | undefined;

/** The test bed started by jest's global setup. Throws with a hint when there is none. */
export function testbedFromEnv(): Testbed {
  if (cached) return cached;
  const dir = process.env[ENV.dir];
  if (!dir) {
    throw new Error(
      `${ENV.dir} is not set: integration tests need the test bed from test/testbed/global-setup ` +
        '(run them through jest --selectProjects integration)',
    );
  }
  const manifest = JSON.parse(readFileSync(manifestPath(dir), 'utf8')) as TestbedManifest;
  const cluster = new Cluster(manifest.cluster);
  const kubeconfigFor = (opts: ToolOptions): string =>
    opts.kubeconfig ?? (opts.user ? cluster.kubeconfigForUser(opts.user) : cluster.adminKubeconfig);
  const tool =
    (bin: string) =>
    (args: string[], opts: ToolOptions = {}) =>
      run(bin, args, { ...opts, env: toolEnv(kubeconfigFor(opts), join(dir, 'tool-state'), opts.env) });
  cached = {
    manifest,
    dir,
    cluster,
    motoEndpoint: manifest.motoEndpoint,
    motoDirectEndpoint: manifest.motoDirectEndpoint,
    region: manifest.region,
    binaries: manifest.binaries,
    admin: () => cluster.adminConfig(),
    as: (user) => cluster.configFor(user),
    awsEnv: (opts) => awsEnv(manifest.motoEndpoint, manifest.region, opts),
    resetMoto: () => motoReset(manifest.motoEndpoint),
    motoData: () => motoData(manifest.motoEndpoint),
    kubectl: tool(manifest.binaries.kubectl),
    helm: tool(manifest.binaries.helm),
  };
  return cached;
}
