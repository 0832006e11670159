// Runs the command-line tools of the test bed (kubectl, helm, the kubectl plugin) as a
// user would: a separate process, a kubeconfig file, exit code and output captured.
// Never throws on a non-zero exit; tests assert on the result.

import { spawn } from 'node:child_process';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin (e.g. a manifest for `kubectl apply -f -`). */
  input?: string;
  timeoutMs?: number;
}

export function run(command: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 60_000,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    // A command that reads no input (kubectl auth can-i) may exit before its stdin is
    // closed: the EPIPE is not a failure of the command, whose exit code says how it went.
    child.stdin.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') reject(err);
    });
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * An environment for kubectl/helm that points at `kubeconfig` and keeps them from
 * reading or writing the developer's own ~/.kube and helm state.
 */
export function toolEnv(kubeconfig: string, stateDir: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    KUBECONFIG: kubeconfig,
    HELM_CACHE_HOME: `${stateDir}/helm/cache`,
    HELM_CONFIG_HOME: `${stateDir}/helm/config`,
    HELM_DATA_HOME: `${stateDir}/helm/data`,
    KUBECACHEDIR: `${stateDir}/kube-cache`,
  };
}
