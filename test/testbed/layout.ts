// Where the test bed keeps things on disk. Each run gets its own directory under
// `<repo>/.testbed/` (git-ignored): logs, etcd's data, certificates, kubeconfigs. A run
// directory's logs outlive the run, for debugging a failure; the newest few are kept
// and older ones are pruned when a new run starts.

import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './binaries.js';

const KEEP_RUNS = 5;

/** Root of all run directories: REMEDIATOR_TESTBED_ROOT, or `<repo>/.testbed`. */
export function testbedRoot(): string {
  return process.env['REMEDIATOR_TESTBED_ROOT'] ?? join(repoRoot(), '.testbed');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Creates `<root>/run-<UTC time>-<pid>`, after pruning old run directories. A directory
 * whose owner is still running is never pruned: two test runs may share a machine.
 */
export function newRunDir(label = 'run'): string {
  const root = testbedRoot();
  mkdirSync(root, { recursive: true });
  const runs = readdirSync(root)
    .filter((name) => /^[a-z]+-\d{8}T\d{6}Z-\d+(\.\d+)?$/.test(name))
    .sort((a, b) => a.split('-')[1]!.localeCompare(b.split('-')[1]!));
  for (const name of runs.slice(0, Math.max(0, runs.length - (KEEP_RUNS - 1)))) {
    const pid = Number.parseInt(name.split('-')[2]!, 10);
    if (!isAlive(pid)) rmSync(join(root, name), { recursive: true, force: true });
  }
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const base = join(root, `${label}-${stamp}-${process.pid}`);
  let dir = base;
  for (let i = 2; existsSync(dir); i++) dir = `${base}.${i}`;
  mkdirSync(dir, { recursive: true });
  return dir;
}
