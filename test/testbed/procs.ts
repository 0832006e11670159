// Child processes of the test bed (etcd, kube-apiserver, moto_server, the controller
// under test): spawned into a registry so that nothing outlives the process that
// started it, whether the run ends by teardown, by a failed test, by Ctrl-C or by a
// crash. Each child's stdout and stderr go to a log file, kept for debugging. Also:
// free loopback ports, and a readiness poll that fails fast when the process dies.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Directory for `<name>.log`; created if missing. */
  logDir: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Settles when the process has exited, for whatever reason. */
  readonly exited: Promise<ProcessExit>;
  /** The exit status once exited, else undefined. */
  exitStatus(): ProcessExit | undefined;
  /** The last lines of the log file, for error messages. */
  logTail(lines?: number): string;
  /** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<ProcessExit>;
}

const DEFAULT_GRACE_MS = 5_000;
const registry = new Set<ManagedProcessImpl>();
let hooksInstalled = false;

// setpriv --pdeathsig makes the kernel SIGKILL the child when we die, even by SIGKILL,
// where no JavaScript handler can run. Checked once; without it, the handlers below
// still cover every exit that runs JavaScript.
let pdeathsigPrefix: string[] | undefined;
function parentDeathPrefix(): string[] {
  if (pdeathsigPrefix === undefined) {
    const probe = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
    pdeathsigPrefix = probe.status === 0 && probe.stdout.includes('--pdeathsig') ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
  }
  return pdeathsigPrefix;
}

class ManagedProcessImpl implements ManagedProcess {
  readonly exited: Promise<ProcessExit>;
  private status: ProcessExit | undefined;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => {
      const done = (status: ProcessExit): void => {
        if (this.status) return;
        this.status = status;
        registry.delete(this);
        resolve(status);
      };
      child.once('exit', (code, signal) => done({ code, signal }));
      // A failed spawn (ENOENT) emits 'error' and never 'exit'.
      child.once('error', () => done({ code: -1, signal: null }));
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  exitStatus(): ProcessExit | undefined {
    return this.status;
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async stop(graceMs = DEFAULT_GRACE_MS): Promise<ProcessExit> {
    if (this.status) return this.status;
    // The child is unref'd so a forgotten test bed never holds the event loop open;
    // while we wait for it to go, it must, or Node could exit mid-stop.
    this.child.ref();
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Signals the whole process group (the child leads its own), so helpers it forked go too. */
  signal(sig: NodeJS.Signals): void {
    if (this.status || this.pid <= 0) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      try {
        process.kill(this.pid, sig);
      } catch {
        // Already gone.
      }
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // 'exit' handlers must be synchronous: no grace, straight to SIGKILL.
  process.on('exit', () => {
    for (const p of registry) p.signal('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      process.removeListener(sig, onSignal);
      void stopAll(2_000).finally(() => {
        // Let anyone else listening handle the signal; otherwise die of it as we would have.
        if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
      });
    };
    process.on(sig, onSignal);
  }
}

/**
 * Spawns `command args` as a tracked child in its own process group, with stdout and
 * stderr appended to `<logDir>/<name>.log`. Never throws for a missing binary: the
 * returned process has simply exited (check `exited`, or use `waitUntil`).
 */
export function spawnManaged(name: string, command: string, args: string[], opts: SpawnOptions): ManagedProcess {
  installHooks();
  mkdirSync(opts.logDir, { recursive: true });
  const logFile = join(opts.logDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const [cmd, ...rest] = [...parentDeathPrefix(), command, ...args];
  let child: ChildProcess;
  try {
    child = spawn(cmd!, rest, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', fd, fd],
      // Own process group: Ctrl-C in a terminal reaches only us, so we can stop the
      // children in order (kube-apiserver before etcd) instead of all at once.
      detached: true,
    });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
  child.unref();
  const managed = new ManagedProcessImpl(name, child, logFile);
  if (child.pid !== undefined) registry.add(managed);
  return managed;
}

/** Processes started here that have not exited yet. */
export function runningProcesses(): ManagedProcess[] {
  return [...registry];
}

/** Stops every running process, newest first (dependents before what they depend on). */
export async function stopAll(graceMs = DEFAULT_GRACE_MS): Promise<void> {
  for (const p of [...registry].reverse()) await p.stop(graceMs);
}

// Ports handed out by this process: the probe socket is closed before the caller binds,
// so without this list two quick calls could get the same port back.
const handedOut = new Set<number>();

/** A TCP port on `host` that was free a moment ago. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.unref();
      server.once('error', reject);
      server.listen(0, host, () => {
        const address = server.address();
        const p = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port found on ${host}`);
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Give up at once if one of these exits, and show its log tail. */
  processes?: ManagedProcess[];
}

/**
 * Polls `probe` until it returns something other than undefined. Errors thrown by the
 * probe count as "not yet"; the last one is reported on timeout.
 */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, opts: WaitOptions = {}): Promise<T> {
  const { timeoutMs = 60_000, intervalMs = 100 } = opts;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    for (const p of opts.processes ?? []) {
      const status = p.exitStatus();
      if (status) {
        throw new Error(
          `${what}: ${p.name} exited (code ${status.code}, signal ${status.signal}) before it was ready; ` +
            `log ${p.logFile}:\n${p.logTail()}`,
        );
      }
    }
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const reason = lastError instanceof Error ? `: ${lastError.message}` : '';
      const logs = (opts.processes ?? []).map((p) => `\n--- ${p.logFile}\n${p.logTail()}`).join('');
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${reason}${logs}`);
    }
    await sleep(intervalMs);
  }
}
