/**
 * `make demo` is the README's first command, so it is a test: run it as a user does
 * (the compiled script, as its own process), check every request ended as it should,
 * and that nothing it started outlives it — also when interrupted with Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../testbed/binaries.js';

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function runDemo(opts: { interruptWhen?: RegExp } = {}): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot(), 'dist', 'hack', 'demo.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let interrupted = false;
    const onData = (b: Buffer) => {
      output += b.toString();
      if (opts.interruptWhen && !interrupted && opts.interruptWhen.test(output)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, output }));
  });
}

/** Processes whose command line mentions the demo's run directory (etcd, kube-apiserver, the controller). */
function leftovers(output: string): string[] {
  const dir = /run directory (\S+)/.exec(output)?.[1];
  if (!dir) throw new Error(`the demo did not print its run directory:\n${output}`);
  try {
    return execFileSync('pgrep', ['-af', dir], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l && !l.includes('pgrep'));
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

describe('make demo', () => {
  test('runs the whole job, prints a timeline, exits 0 and leaves nothing running', async () => {
    const run = await runDemo();
    expect(run.output).toContain('demo finished');
    expect(run.code).toBe(0);
    for (const line of [
      'restart nginx on prod-web-1 (Low risk, auto-approved): Succeeded',
      'the canary carries the opt-out tag: Skipped (OptOut)',
      'page on-call about the disk (SNS action): Succeeded',
      'reboot prod-web-2 (High risk, approved by alice): Succeeded',
      'staging-web-1 fails the Environment=prod guard: Skipped (Guard)',
    ]) {
      expect(run.output).toContain(line);
    }
    expect(run.output).toMatch(/approved by alice/);
    // Runbooks come from the cluster admin; the team editor may not write them.
    expect(run.output).toMatch(/runbook\.remediator\.dev\/restart-service created/);
    expect(run.output).toMatch(/alertpolicy\.remediator\.dev\/restart-nginx created/);
    expect(run.output).toMatch(/kubectl auth can-i create runbooks\.remediator\.dev {3}\(as dana\) → no/);
    // alice saw the plan, and her approval names its digest: the one the timeline shows.
    const planned = /approve reboot-unresponsive-[0-9a-f]{10} [^\n]*\n[\s\S]*?Digest: +(sha256:[0-9a-f]{64})/.exec(run.output)?.[1];
    expect(planned).toBeDefined();
    expect(run.output).toContain(`approval  Approved by alice of plan ${planned}`);
    expect(run.output).toMatch(/SSM command [0-9a-f-]{36} succeeded/);
    expect(run.output).toMatch(/SNS remediator-oncall: [0-9a-f-]{36}/);
    // The timeline has a time on every Event line (events.k8s.io Events have no lastTimestamp).
    expect(run.output).not.toContain('--:--:--');
    expect(run.output).toMatch(/\d\d:\d\d:\d\d\S*\s+CommandSucceeded/);
    expect(leftovers(run.output)).toEqual([]);
  }, 300_000);

  test('Ctrl-C in the middle stops everything it started', async () => {
    const run = await runDemo({ interruptWhen: /controller and intake ready/ });
    expect(run.output).toContain('interrupted');
    expect(run.code).toBe(130);
    expect(leftovers(run.output)).toEqual([]);
  }, 300_000);
});
