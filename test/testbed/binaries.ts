// Locates the repository and the test bed's binaries. `ensureTestbedBinaries()` runs
// hack/testbed/build.sh, so whoever needs the binaries first (a test run, the demo)
// pays the one-off build itself instead of failing with "run this script first"; once
// built, the script answers from its cache in milliseconds.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TestbedBinaries {
  etcd: string;
  kubeApiserver: string;
  kubectl: string;
  helm: string;
}

function isRepoRoot(dir: string): boolean {
  return existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'hack', 'testbed', 'build.sh'));
}

function searchUp(start: string): string | undefined {
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    if (isRepoRoot(dir)) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

let cachedRoot: string | undefined;

/**
 * The repository root. Searched upwards from this file (dist/test/testbed/ when
 * compiled, test/testbed/ when run from source), then from the working directory.
 */
export function repoRoot(): string {
  cachedRoot ??= searchUp(dirname(fileURLToPath(import.meta.url))) ?? searchUp(process.cwd());
  if (!cachedRoot) throw new Error('cannot find the repository root (a directory with package.json and hack/testbed/build.sh)');
  return cachedRoot;
}

/** The cache directory build.sh writes to (REMEDIATOR_CACHE_DIR, default ~/.cache/remediator). */
export function cacheDir(): string {
  return join(process.env['REMEDIATOR_CACHE_DIR'] ?? join(process.env['HOME'] ?? '/tmp', '.cache', 'remediator'), 'testbed');
}

let pending: Promise<TestbedBinaries> | undefined;

/**
 * Builds (first time) or finds (every other time) etcd, kube-apiserver, kubectl and
 * helm. build.sh's progress goes to our stderr: a cold build takes minutes and should
 * not look like a hang.
 */
export function ensureTestbedBinaries(): Promise<TestbedBinaries> {
  pending ??= runBuildScript().catch((err: unknown) => {
    pending = undefined; // let a later call retry
    throw err;
  });
  return pending;
}

async function runBuildScript(): Promise<TestbedBinaries> {
  const script = join(repoRoot(), 'hack', 'testbed', 'build.sh');
  const env = { ...process.env };
  // Go lives in /usr/local/go/bin on a fresh machine, often not on PATH.
  env['PATH'] = `${env['PATH'] ?? ''}:/usr/local/go/bin`;
  const child = spawn('bash', [script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (stdout += chunk));
  const code = await new Promise<number | null>((res, rej) => {
    child.once('error', rej);
    child.once('close', res);
  });
  if (code !== 0) throw new Error(`${script} failed with exit code ${code}`);

  const paths = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) paths.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  const get = (key: string): string => {
    const path = paths.get(key);
    if (!path || !existsSync(path)) throw new Error(`${script} did not report a usable ${key} (got ${path ?? 'nothing'})`);
    return path;
  };
  return { etcd: get('etcd'), kubeApiserver: get('kube-apiserver'), kubectl: get('kubectl'), helm: get('helm') };
}
