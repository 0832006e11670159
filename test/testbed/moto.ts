// moto_server as the local stand-in for EC2, CloudWatch, SSM, SNS and STS, spoken to
// over the real wire protocols by the real AWS SDK. One server answers for every
// service on one loopback port. Its state can be cleared between tests (`reset`) and
// inspected whole (`data`, moto's /moto-api/data.json), which is how tests read back
// what the controller sent, e.g. SNS messages or SSM commands. It runs through
// moto_server.py beside this file, which corrects where moto departs from AWS in a way
// no proxy in front of it can repair (a SendCommand by InstanceIds targeting the whole
// region; see that file).

import { join } from 'node:path';
import { repoRoot } from './binaries.js';
import { freePort, spawnManaged, waitUntil, type ManagedProcess } from './procs.js';

export interface MotoOptions {
  /** Directory for moto.log. */
  logDir: string;
  /**
   * A moto_server executable to run instead of the corrected one (default: $MOTO_SERVER;
   * without either, `python3 test/testbed/moto_server.py`, the Python from $MOTO_PYTHON).
   */
  command?: string;
  port?: number;
  readyTimeoutMs?: number;
}

/** moto's dump of its state: service → model → objects. */
export type MotoData = Record<string, Record<string, unknown[]>>;

export interface Moto {
  /** e.g. http://127.0.0.1:40123 — the value for AWS_ENDPOINT_URL. */
  readonly endpoint: string;
  readonly process: ManagedProcess;
  /** Clears every service's state, in every account and region. */
  reset(): Promise<void>;
  data(): Promise<MotoData>;
  stop(): Promise<void>;
}

export async function motoReset(endpoint: string): Promise<void> {
  const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
  if (!res.ok) throw new Error(`moto reset: HTTP ${res.status}`);
}

export async function motoData(endpoint: string): Promise<MotoData> {
  const res = await fetch(`${endpoint}/moto-api/data.json`);
  if (!res.ok) throw new Error(`moto data.json: HTTP ${res.status}`);
  return (await res.json()) as MotoData;
}

export async function startMoto(opts: MotoOptions): Promise<Moto> {
  const port = opts.port ?? (await freePort());
  const endpoint = `http://127.0.0.1:${port}`;
  const args = ['-H', '127.0.0.1', '-p', String(port)];
  const own = opts.command ?? process.env['MOTO_SERVER'];
  const [command, argv] =
    own !== undefined
      ? [own, args]
      : [process.env['MOTO_PYTHON'] ?? 'python3', [join(repoRoot(), 'test', 'testbed', 'moto_server.py'), ...args]];
  const proc = spawnManaged('moto', command, argv, {
    logDir: opts.logDir,
    // Unbuffered, so the log is current when a failing test points at it.
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  try {
    await waitUntil(`moto_server on ${endpoint}`, async () => ((await fetch(`${endpoint}/moto-api/data.json`)).ok ? true : undefined), {
      processes: [proc],
      timeoutMs: opts.readyTimeoutMs ?? 30_000,
      intervalMs: 100,
    });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    endpoint,
    process: proc,
    reset: () => motoReset(endpoint),
    data: () => motoData(endpoint),
    stop: async () => {
      await proc.stop();
    },
  };
}
