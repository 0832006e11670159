// A real GitOps engine for the test bed: Flux's source-controller and kustomize-controller
// (built once by hack/testbed/build-flux.sh into the cache), run as processes against
// the test bed's kube-apiserver, and a Git repository served over smart HTTP by
// `git http-backend` (Debian's git, as a CGI program behind a small Node server), which
// is what source-controller clones. Tests commit to the repository and let Flux apply it.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import { repoRoot } from './binaries.js';
import type { Testbed } from './env.js';
import { freePort, spawnManaged, waitUntil, type ManagedProcess } from './procs.js';

export interface FluxBinaries {
  sourceController: string;
  kustomizeController: string;
  /** Directories of CRD YAML (config/crd/bases of each module). */
  crdDirs: string[];
}

/** A cold build on a loaded 2-core machine: minutes per controller on a warm module cache, far more on a cold one. */
export const FLUX_BUILD_TIMEOUT_MS = 60 * 60_000;

let pending: Promise<FluxBinaries> | undefined;

/** Builds (first time) or finds (every other time) the Flux controllers. */
export function ensureFlux(): Promise<FluxBinaries> {
  pending ??= buildFlux().catch((err: unknown) => {
    pending = undefined;
    throw err;
  });
  return pending;
}

/** hack/kstatus, built once: prints the kstatus verdict of each object of a JSON array on stdin. */
export async function ensureKstatus(): Promise<string> {
  const path = (await runScript(['kstatus'])).get('kstatus');
  if (!path || !existsSync(path)) throw new Error(`build-flux.sh did not report a usable kstatus (got ${path ?? 'nothing'})`);
  return path;
}

async function buildFlux(): Promise<FluxBinaries> {
  const paths = await runScript([]);
  const get = (key: string): string => {
    const path = paths.get(key);
    if (!path || !existsSync(path)) throw new Error(`build-flux.sh did not report a usable ${key} (got ${path ?? 'nothing'})`);
    return path;
  };
  return {
    sourceController: get('source-controller'),
    kustomizeController: get('kustomize-controller'),
    crdDirs: [get('source-controller-crds'), get('kustomize-controller-crds')],
  };
}

async function runScript(args: string[]): Promise<Map<string, string>> {
  const script = join(repoRoot(), 'hack', 'testbed', 'build-flux.sh');
  const env = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/local/go/bin` };
  const child = spawn('bash', [script, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  const code = await new Promise<number | null>((res, rej) => {
    child.once('error', rej);
    child.once('close', res);
  });
  if (code !== 0) throw new Error(`${script} failed with exit code ${code}`);
  return new Map(
    stdout
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).trim()] as const),
  );
}

/** A bare repository served over HTTP, and a work tree to commit to it from. */
export interface GitServer {
  /** The clone URL source-controller uses. */
  url: string;
  /** Writes (or, with null, deletes) files, commits and pushes; returns the commit SHA. */
  commit(files: Record<string, string | null>, message: string): string;
  stop(): Promise<void>;
}

function git(cwd: string, args: string[]): string {
  const out = spawnSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'test',
      GIT_AUTHOR_EMAIL: 'test@example.com',
      GIT_COMMITTER_NAME: 'test',
      GIT_COMMITTER_EMAIL: 'test@example.com',
    },
  });
  if (out.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${out.stderr}`);
  return out.stdout.trim();
}

/**
 * `git http-backend` as CGI: the smart HTTP protocol (info/refs, git-upload-pack) exactly
 * as git serves it, so source-controller's clone is the real one.
 */
export async function startGitServer(dir: string, name = 'fleet'): Promise<GitServer> {
  const root = join(dir, 'repos');
  const bare = join(root, `${name}.git`);
  const work = join(dir, 'work');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  git(root, ['init', '--bare', '--initial-branch=main', bare]);
  git(dir, ['clone', bare, work]);
  git(work, ['checkout', '-b', 'main']);
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env['PATH'],
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_ADDR: req.socket.remoteAddress ?? '',
        ...(req.headers['content-encoding'] && { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] }),
        ...(req.headers['git-protocol'] && { GIT_PROTOCOL: String(req.headers['git-protocol']) }),
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        const key = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (key.toLowerCase() === 'status') status = Number.parseInt(value, 10);
        else res.setHeader(key, value);
      }
      res.writeHead(status);
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => {
      if (!headersDone) res.writeHead(502);
      res.end();
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}/${name}.git`,
    commit(files, message) {
      for (const [path, content] of Object.entries(files)) {
        const full = join(work, path);
        if (content === null) rmSync(full, { force: true });
        else {
          mkdirSync(dirname(full), { recursive: true });
          writeFileSync(full, content);
        }
      }
      git(work, ['add', '--all']);
      git(work, ['commit', '--allow-empty', '-m', message]);
      git(work, ['push', 'origin', 'HEAD:main']);
      return git(work, ['rev-parse', 'HEAD']);
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface RunningFlux {
  sourceController: ManagedProcess;
  kustomizeController: ManagedProcess;
  /** The identity kustomize-controller applies as (unless a Kustomization names a ServiceAccount). */
  user: string;
  stop(): Promise<void>;
}

const FLUX_NS = 'flux-system';

/**
 * Installs Flux's CRDs and runs both controllers: source-controller as the admin, with
 * its artifact server on a loopback port; kustomize-controller as the ServiceAccount
 * flux-system/kustomize-controller (cluster-admin, as Flux installs it), so what it
 * applies carries that identity, as in a real cluster.
 */
export async function startFlux(tb: Testbed, bins: FluxBinaries): Promise<RunningFlux> {
  for (const crds of bins.crdDirs) {
    const files = readdirSync(crds).filter((f) => f.endsWith('.yaml'));
    for (const f of files) {
      const out = await tb.kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(crds, f)]);
      if (out.code !== 0) throw new Error(`applying Flux CRD ${f}: ${out.stderr}`);
    }
  }
  await tb.cluster.ensureServiceAccount(FLUX_NS, 'kustomize-controller');
  const binding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'flux-kustomize-controller' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
    subjects: [{ kind: 'ServiceAccount', name: 'kustomize-controller', namespace: FLUX_NS }],
  };
  const bound = await tb.kubectl(['apply', '-f', '-'], { input: JSON.stringify(binding) });
  if (bound.code !== 0) throw new Error(`binding kustomize-controller: ${bound.stderr}`);
  const token = await tb.cluster.tokenForServiceAccount(FLUX_NS, 'kustomize-controller', { expirationSeconds: 24 * 3600 });
  const kustomizeKubeconfig = tb.cluster.kubeconfigForToken(token, 'flux-kustomize-controller');

  const logDir = join(tb.dir, 'logs');
  const storage = join(tb.dir, 'flux-storage');
  mkdirSync(storage, { recursive: true });
  const [artifacts, sourceHealth, sourceMetrics, kustomizeHealth, kustomizeMetrics] = await Promise.all(
    Array.from({ length: 5 }, () => freePort()),
  );
  const common = ['--enable-leader-election=false', '--log-level=info', '--events-addr='];
  const sourceController = spawnManaged(
    'flux-source-controller',
    bins.sourceController,
    [
      ...common,
      `--storage-path=${storage}`,
      `--storage-addr=127.0.0.1:${artifacts}`,
      `--storage-adv-addr=127.0.0.1:${artifacts}`,
      `--health-addr=127.0.0.1:${sourceHealth}`,
      `--metrics-addr=127.0.0.1:${sourceMetrics}`,
    ],
    { logDir, env: { ...process.env, KUBECONFIG: tb.cluster.adminKubeconfig, RUNTIME_NAMESPACE: FLUX_NS } },
  );
  const kustomizeController = spawnManaged(
    'flux-kustomize-controller',
    bins.kustomizeController,
    [...common, '--requeue-dependency=5s', `--health-addr=127.0.0.1:${kustomizeHealth}`, `--metrics-addr=127.0.0.1:${kustomizeMetrics}`],
    { logDir, env: { ...process.env, KUBECONFIG: kustomizeKubeconfig, RUNTIME_NAMESPACE: FLUX_NS } },
  );
  const processes = [sourceController, kustomizeController];
  for (const [name, port] of [
    ['source-controller', sourceHealth],
    ['kustomize-controller', kustomizeHealth],
  ] as const) {
    await waitUntil(
      `Flux ${name} ready`,
      async () => ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok ? true : undefined),
      {
        timeoutMs: 60_000,
        processes,
      },
    );
  }
  return {
    sourceController,
    kustomizeController,
    user: `system:serviceaccount:${FLUX_NS}:kustomize-controller`,
    stop: async () => {
      await Promise.all(processes.map((p) => p.stop(5_000)));
    },
  };
}
