// A real local Kubernetes control plane, the way controller-runtime's envtest runs one:
// etcd plus kube-apiserver on loopback ports, RBAC on, TLS verified against our own CA,
// an admin with a system:masters client certificate, named token users, and
// ServiceAccount token signing so TokenRequest works. No kube-controller-manager and no
// scheduler: no default ServiceAccounts, no garbage collection, deleted namespaces stay
// Terminating, pods never run. Tests must not rely on those.

import { randomBytes } from 'node:crypto';
import { request as httpGet } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestbedBinaries, type TestbedBinaries } from './binaries.js';
import { Cluster, type TestUser, type UserInfo } from './cluster.js';
import { writeKubeconfig } from './kubeconfig.js';
import { newRunDir } from './layout.js';
import { createPki, type Pki } from './pki.js';
import { freePort, spawnManaged, waitUntil, type ManagedProcess } from './procs.js';

/** Named users authenticated by static token. Nothing is bound to them: tests grant what they need. */
export const DEFAULT_USERS: readonly TestUser[] = [
  { name: 'alice', groups: ['sre'] },
  { name: 'bob', groups: ['sre'] },
  { name: 'carol', groups: ['platform'] },
  { name: 'mallory', groups: [] },
];

export interface ControlPlaneOptions {
  /** Run directory (logs, data, certificates, kubeconfigs); default: a new one under .testbed/. */
  dir?: string;
  users?: readonly TestUser[];
  binaries?: TestbedBinaries;
  /** Appended to kube-apiserver's flags; a later flag wins over ours. */
  apiserverArgs?: string[];
  serviceClusterIpRange?: string;
  serviceAccountIssuer?: string;
  readyTimeoutMs?: number;
}

export interface StartupTimes {
  /** Certificates and keys. */
  pkiMs: number;
  /** etcd spawned until /health answers. */
  etcdMs: number;
  /** kube-apiserver spawned until /readyz answers ok. */
  apiserverMs: number;
  totalMs: number;
}

export interface ControlPlane extends Cluster {
  readonly dir: string;
  readonly logDir: string;
  readonly binaries: TestbedBinaries;
  readonly etcd: ManagedProcess;
  readonly apiserver: ManagedProcess;
  readonly etcdUrl: string;
  readonly startup: StartupTimes;
  /** Stops kube-apiserver then etcd, and removes data, keys and kubeconfigs (logs stay). */
  stop(): Promise<void>;
}

class RunningControlPlane extends Cluster implements ControlPlane {
  private stopped = false;

  constructor(
    info: ConstructorParameters<typeof Cluster>[0],
    readonly dir: string,
    readonly logDir: string,
    readonly binaries: TestbedBinaries,
    readonly etcd: ManagedProcess,
    readonly apiserver: ManagedProcess,
    readonly etcdUrl: string,
    readonly startup: StartupTimes,
    private readonly cleanup: string[],
  ) {
    super(info);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.apiserver.stop();
    await this.etcd.stop();
    for (const path of this.cleanup) rmSync(path, { recursive: true, force: true });
  }
}

function etcdHealthy(url: string): Promise<boolean | undefined> {
  return new Promise((resolve, reject) => {
    const req = httpGet(`${url}/health`, { timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"') ? true : undefined));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function apiserverReady(server: string, pki: Pki): Promise<boolean | undefined> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${server}/readyz`,
      { ca: pki.ca.pem, cert: pki.admin.certPem, key: pki.admin.keyPem, timeout: 5_000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? true : undefined);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// kube-apiserver's --token-auth-file: token,user,uid,"group1,group2"
function tokenFile(users: Record<string, UserInfo>): string {
  return (
    Object.values(users)
      .map((u) => `${u.token},${u.name},uid-${u.name},"${u.groups.join(',')}"`)
      .join('\n') + '\n'
  );
}

/**
 * Starts etcd and kube-apiserver and resolves once /readyz says ok. If anything fails
 * on the way, whatever was started is stopped before the error propagates.
 */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = performance.now();
  const binaries = opts.binaries ?? (await ensureTestbedBinaries());
  const dir = opts.dir ?? newRunDir();
  const logDir = join(dir, 'logs');
  const pkiDir = join(dir, 'pki');
  const etcdData = join(dir, 'etcd-data');
  const kubeconfigDir = join(dir, 'kubeconfigs');
  mkdirSync(logDir, { recursive: true });
  mkdirSync(etcdData, { recursive: true, mode: 0o700 });

  const tPki = performance.now();
  const serviceRange = opts.serviceClusterIpRange ?? '10.0.0.0/24';
  const pki = createPki(pkiDir, { serviceIp: serviceRange.replace(/\.0\/\d+$/, '.1') });
  const pkiMs = performance.now() - tPki;

  const users: Record<string, UserInfo> = {};
  for (const u of opts.users ?? DEFAULT_USERS) {
    users[u.name] = {
      name: u.name,
      groups: u.groups ?? [],
      token: u.token ?? randomBytes(24).toString('hex'),
      kubeconfig: join(kubeconfigDir, `user-${u.name}.yaml`),
    };
  }
  const tokensCsv = join(pkiDir, 'tokens.csv');
  writeFileSync(tokensCsv, tokenFile(users), { mode: 0o600 });

  const [clientPort, peerPort, securePort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const server = `https://127.0.0.1:${securePort}`;

  const started: ManagedProcess[] = [];
  try {
    const tEtcd = performance.now();
    const etcd = spawnManaged(
      'etcd',
      binaries.etcd,
      [
        '--name=testbed',
        `--data-dir=${etcdData}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=testbed=${peerUrl}`,
        // A test cluster's data is disposable; fsync would only make it slow.
        '--unsafe-no-fsync',
        // A lone member has no one to lose an election to: elect at once (~70 ms to
        // ready instead of ~350 ms with the 100/1000 ms defaults).
        '--heartbeat-interval=10',
        '--election-timeout=50',
        '--log-level=warn',
      ],
      { logDir },
    );
    started.push(etcd);
    await waitUntil('etcd /health', () => etcdHealthy(etcdUrl), { processes: [etcd], timeoutMs: 30_000, intervalMs: 20 });
    const etcdMs = performance.now() - tEtcd;

    const tApi = performance.now();
    const apiserver = spawnManaged(
      'kube-apiserver',
      binaries.kubeApiserver,
      [
        `--etcd-servers=${etcdUrl}`,
        `--cert-dir=${join(pkiDir, 'apiserver-generated')}`,
        `--tls-cert-file=${pki.serving.cert}`,
        `--tls-private-key-file=${pki.serving.key}`,
        `--secure-port=${securePort}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--service-cluster-ip-range=${serviceRange}`,
        '--authorization-mode=RBAC',
        // No controller-manager creates ServiceAccounts, so this plugin would reject every pod.
        '--disable-admission-plugins=ServiceAccount',
        `--client-ca-file=${pki.ca.cert}`,
        `--token-auth-file=${tokensCsv}`,
        `--service-account-issuer=${opts.serviceAccountIssuer ?? 'https://kubernetes.default.svc.cluster.local'}`,
        `--service-account-key-file=${pki.serviceAccount.publicKey}`,
        `--service-account-signing-key-file=${pki.serviceAccount.privateKey}`,
        '--allow-privileged=true',
        '--profiling=false',
        ...(opts.apiserverArgs ?? []),
      ],
      { logDir },
    );
    started.push(apiserver);
    await waitUntil('kube-apiserver /readyz', () => apiserverReady(server, pki), {
      processes: [etcd, apiserver],
      timeoutMs: opts.readyTimeoutMs ?? 90_000,
    });
    const apiserverMs = performance.now() - tApi;

    const adminKubeconfig = writeKubeconfig(join(kubeconfigDir, 'admin.yaml'), {
      server,
      caPem: pki.ca.pem,
      user: 'testbed-admin',
      clientCertPem: pki.admin.certPem,
      clientKeyPem: pki.admin.keyPem,
    });
    const info = { server, caPem: pki.ca.pem, caFile: pki.ca.cert, adminKubeconfig, kubeconfigDir, users };
    const round = (ms: number): number => Math.round(ms);
    const cp = new RunningControlPlane(
      info,
      dir,
      logDir,
      binaries,
      etcd,
      apiserver,
      etcdUrl,
      {
        pkiMs: round(pkiMs),
        etcdMs: round(etcdMs),
        apiserverMs: round(apiserverMs),
        totalMs: round(performance.now() - t0),
      },
      [etcdData, pkiDir, kubeconfigDir],
    );
    for (const name of Object.keys(users)) cp.kubeconfigForUser(name);
    return cp;
  } catch (err) {
    for (const p of started.reverse()) await p.stop();
    // Keep the logs (they say why); drop data and keys.
    for (const path of [etcdData, pkiDir, kubeconfigDir]) rmSync(path, { recursive: true, force: true });
    throw err;
  }
}
