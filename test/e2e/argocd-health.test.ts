/**
 * The Argo CD health checks the chart ships (charts/remediator/files/argocd/*.lua), run
 * in gopher-lua — the interpreter Argo CD embeds — with the libraries Argo CD gives a
 * custom check (hack/argocd-lua), on a sample object of every phase; and the argocd-cm
 * snippet in docs/gitops.md is the one generated from those files.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEALTH_DIR, HEALTH_SCRIPTS, renderSnippet, withSnippet } from '../../hack/argocd/gen-snippet.js';
import { PHASES } from '../../src/api/v1alpha1/index.js';
import { repoRoot } from '../testbed/binaries.js';
import { EXTRA_TOOLS_BUILD_TIMEOUT_MS, ensureExtraTools } from '../testbed/extra-tools.js';

interface Health {
  status: string;
  message?: string;
}

let lua = '';

function health(file: string, obj: unknown): Health {
  const out = spawnSync(lua, [join(HEALTH_DIR, file)], { input: JSON.stringify(obj), encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`argocd-lua ${file} exited ${out.status}: ${out.stderr}`);
  return JSON.parse(out.stdout) as Health;
}

const rr = (status?: Record<string, unknown>, generation = 1) => ({
  apiVersion: 'remediator.dev/v1alpha1',
  kind: 'RemediationRequest',
  metadata: { name: 'nginxdown-abc', namespace: 'web', generation },
  spec: { policyRef: { name: 'restart-nginx' } },
  ...(status && { status: { observedGeneration: 1, ...status } }),
});

const policy = (status?: Record<string, unknown>, spec: Record<string, unknown> = {}, generation = 2) => ({
  apiVersion: 'remediator.dev/v1alpha1',
  kind: 'AlertPolicy',
  metadata: { name: 'restart-nginx', namespace: 'web', generation },
  spec,
  ...(status && { status: { observedGeneration: 2, ...status } }),
});

const ready = { type: 'Ready', status: 'True', reason: 'Valid', message: 'policy is valid and active' };

beforeAll(async () => {
  lua = (await ensureExtraTools()).argocdLua;
}, EXTRA_TOOLS_BUILD_TIMEOUT_MS);

describe('the interpreter', () => {
  test('gives scripts what Argo CD gives a custom health check, and no more', () => {
    const dir = join(tmpdir(), `argocd-lua-${process.pid}`);
    const script = (name: string, body: string) => {
      writeFileSync(`${dir}-${name}.lua`, body);
      return spawnSync(lua, [`${dir}-${name}.lua`], { input: '{"a":{"b":[1,2]}}', encoding: 'utf8' });
    };
    expect(JSON.parse(script('ok', 'return { status = "Healthy", message = "n=" .. #obj.a.b }').stdout)).toEqual({
      status: 'Healthy',
      message: 'n=2',
    });
    // No string library: a check that calls string.find fails in Argo CD, so it must fail here.
    expect(script('string', 'return { status = string.lower("Healthy") }').status).toBe(1);
    // An unknown status code becomes Unknown, as in Argo CD.
    expect(JSON.parse(script('bad', 'return { status = "Fine" }').stdout)).toMatchObject({ status: 'Unknown' });
  });
});

describe('RemediationRequest health', () => {
  const file = HEALTH_SCRIPTS.RemediationRequest;
  const expected: Record<(typeof PHASES)[number], string> = {
    Pending: 'Progressing',
    Enriching: 'Progressing',
    AwaitingApproval: 'Suspended',
    Approved: 'Progressing',
    Executing: 'Progressing',
    Succeeded: 'Healthy',
    Failed: 'Degraded',
    Rejected: 'Healthy',
    Expired: 'Degraded',
    Skipped: 'Healthy',
    Cancelled: 'Healthy',
  };

  test.each(PHASES.map((p) => [p, expected[p]]))('%s → %s', (phase, want) => {
    expect(health(file, rr({ phase, reason: 'Because', message: 'details' })).status).toBe(want);
  });

  test('every phase of the API is covered', () => {
    expect(Object.keys(expected).sort()).toEqual([...PHASES].sort());
  });

  test('no status yet, or a status older than the spec: Progressing', () => {
    expect(health(file, rr())).toEqual({ status: 'Progressing', message: 'Waiting for the controller' });
    expect(health(file, rr({ phase: 'Succeeded' }, 2))).toEqual({
      status: 'Progressing',
      message: 'Waiting for the controller to observe generation 2',
    });
  });

  test("messages carry the reason and the controller's message", () => {
    expect(health(file, rr({ phase: 'Skipped', reason: 'Cooldown', message: 'executed 2m ago' }))).toEqual({
      status: 'Healthy',
      message: 'Skipped (Cooldown): executed 2m ago',
    });
    expect(health(file, rr({ phase: 'AwaitingApproval' })).message).toContain('kubectl remediator approve');
  });

  test('an AWS call denied while executing: Degraded, naming the IAM action', () => {
    const denied = { type: 'CloudAccess', status: 'False', reason: 'AccessDenied', message: 'grant ssm:SendCommand' };
    expect(health(file, rr({ phase: 'Executing', conditions: [denied] }))).toEqual({
      status: 'Degraded',
      message: 'AWS access denied: grant ssm:SendCommand',
    });
    expect(health(file, rr({ phase: 'Executing', conditions: [{ ...denied, status: 'True', reason: 'Restored' }] })).status).toBe(
      'Progressing',
    );
  });
});

describe('AlertPolicy health', () => {
  const file = HEALTH_SCRIPTS.AlertPolicy;

  test('Ready=True: Healthy', () => {
    expect(health(file, policy({ conditions: [ready] }))).toEqual({ status: 'Healthy', message: 'policy is valid and active' });
  });

  test('no status, no Ready condition, or a status older than the spec: Progressing', () => {
    expect(health(file, policy()).status).toBe('Progressing');
    expect(health(file, policy({ conditions: [] })).status).toBe('Progressing');
    expect(health(file, policy({ conditions: [ready] }, {}, 3))).toEqual({
      status: 'Progressing',
      message: 'Waiting for the controller to observe generation 3',
    });
  });

  test('Ready=False: Degraded with the reason', () => {
    const invalid = { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'fix the policy: bad regex' };
    expect(health(file, policy({ conditions: [invalid] }))).toEqual({
      status: 'Degraded',
      message: 'Not ready (InvalidSpec): fix the policy: bad regex',
    });
  });

  test('circuit breaker open: Degraded, and how to resume', () => {
    const open = {
      conditions: [ready, { type: 'Suspended', status: 'True', reason: 'CircuitOpen', message: '3 consecutive failures' }],
      circuitBreaker: { open: true, message: '3 consecutive failures' },
    };
    const h = health(file, policy(open));
    expect(h.status).toBe('Degraded');
    expect(h.message).toContain('3 consecutive failures');
    expect(h.message).toContain('kubectl remediator resume');
    const closed = {
      conditions: [ready, { type: 'Suspended', status: 'False', reason: 'CircuitClosed' }],
      circuitBreaker: { open: false },
    };
    expect(health(file, policy(closed)).status).toBe('Healthy');
  });

  test('suspended by its spec: Suspended', () => {
    expect(health(file, policy({ conditions: [ready] }, { safety: { suspend: true } })).status).toBe('Suspended');
  });
});

describe('Runbook health', () => {
  const file = HEALTH_SCRIPTS.Runbook;
  const runbook = (status?: Record<string, unknown>, generation = 2) => ({
    apiVersion: 'remediator.dev/v1alpha1',
    kind: 'Runbook',
    metadata: { name: 'restart-service', generation },
    spec: { action: { ssm: { documentName: 'AWS-RunShellScript' } } },
    ...(status && { status: { observedGeneration: 2, ...status } }),
  });

  test('Ready=True: Healthy', () => {
    const valid = { type: 'Ready', status: 'True', reason: 'Valid', message: 'runbook is valid' };
    expect(health(file, runbook({ conditions: [valid] }))).toEqual({ status: 'Healthy', message: 'runbook is valid' });
  });

  test('Ready=False: Degraded, saying what to fix', () => {
    const invalid = { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'fix the runbook: document not allowed' };
    const stalled = { type: 'Stalled', status: 'True', reason: 'InvalidSpec', message: 'fix the runbook' };
    expect(health(file, runbook({ conditions: [invalid, stalled] }))).toEqual({
      status: 'Degraded',
      message: 'Not ready (InvalidSpec): fix the runbook: document not allowed',
    });
  });

  test('no status, no Ready condition, or a status older than the spec: Progressing', () => {
    expect(health(file, runbook()).status).toBe('Progressing');
    expect(health(file, runbook({ conditions: [] })).status).toBe('Progressing');
    const valid = { type: 'Ready', status: 'True', reason: 'Valid', message: 'runbook is valid' };
    expect(health(file, runbook({ conditions: [valid] }, 3))).toEqual({
      status: 'Progressing',
      message: 'Waiting for the controller to observe generation 3',
    });
  });
});

test('docs/gitops.md holds the argocd-cm snippet generated from the Lua files', () => {
  const doc = readFileSync(join(repoRoot(), 'docs', 'gitops.md'), 'utf8');
  expect(withSnippet(doc, renderSnippet())).toBe(doc);
});
