// Locates the tools that test shipped artefacts rather than the controller: promtool (the
// chart's PrometheusRule) and argocd-lua (the Argo CD health scripts), built once by
// hack/testbed/build-tools.sh into the test bed's cache. `make testbed` builds them
// ahead of a test run; a test that finds them missing pays the build itself.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './binaries.js';

export interface ExtraTools {
  promtool: string;
  argocdLua: string;
}

/** Long enough for a cold promtool build on a loaded 2-core machine (about 12 minutes). */
export const EXTRA_TOOLS_BUILD_TIMEOUT_MS = 25 * 60_000;

let pending: Promise<ExtraTools> | undefined;

export function ensureExtraTools(): Promise<ExtraTools> {
  pending ??= build().catch((err: unknown) => {
    pending = undefined;
    throw err;
  });
  return pending;
}

async function build(): Promise<ExtraTools> {
  const script = join(repoRoot(), 'hack', 'testbed', 'build-tools.sh');
  const env = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/local/go/bin` };
  const child = spawn('bash', [script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (stdout += chunk));
  const code = await new Promise<number | null>((res, rej) => {
    child.once('error', rej);
    child.once('close', res);
  });
  if (code !== 0) throw new Error(`${script} failed with exit code ${code}`);
  const paths = new Map(
    stdout
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => {
        const eq = l.indexOf('=');
        return [l.slice(0, eq), l.slice(eq + 1).trim()] as const;
      }),
  );
  const get = (key: string): string => {
    const path = paths.get(key);
    if (!path || !existsSync(path)) throw new Error(`${script} did not report a usable ${key} (got ${path ?? 'nothing'})`);
    return path;
  };
  return { promtool: get('promtool'), argocdLua: get('argocd-lua') };
}
