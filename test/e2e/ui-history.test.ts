/**
 * The page's History view reads the durable audit record: `kubectl remediator ui` given
 * the same sink flags as `history` shows the records the controller's own sink code
 * wrote to a moto CloudWatch Logs group, read with the user's AWS credentials (not the
 * controller's), with approver, plan digest and the chain check. A sink that cannot be
 * read says so on the page. Plain HTTP with the page's token and Host rules; no browser.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { AUDIT_API_VERSION, AUDIT_KIND, sealRecord, serializeRecord, type AuditRecord } from '../../src/api/audit/v1.js';
import { createAuditSink } from '../../src/cloud/audit-sink.js';
import { repoRoot } from '../testbed/binaries.js';
import { suffix } from './install-chart.js';
import { testbedFromEnv } from './harness.js';

const id = suffix();
const NS = `rmd-uih-${id}`;
const LOG_GROUP = `/remediator/ui-history-${id}`;
const REGION = 'eu-west-1';

interface RunningUi {
  url: string;
  process: ChildProcess;
}

/** Starts the compiled `kubectl-remediator ui` (as the package bin runs it) and waits for its URL. */
async function startUi(kubeconfig: string, env: Record<string, string>, args: string[]): Promise<RunningUi> {
  const child = spawn(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'kubectl-remediator.js'), 'ui', '-n', NS, ...args], {
    env: { ...process.env, ...env, KUBECONFIG: kubeconfig },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ui did not print its URL: ${out}${err}`)), 30_000);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = /http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]+\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ui exited (${code}): ${out}${err}`));
    });
  });
  return { url, process: child };
}

function stop(ui: RunningUi | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!ui || ui.process.exitCode !== null) return resolve();
    ui.process.once('exit', () => resolve());
    ui.process.kill('SIGTERM');
  });
}

describe('kubectl remediator ui: the History view reads the audit sink', () => {
  const tb = testbedFromEnv();
  /** The user's own AWS credentials: static keys at moto. */
  const readerEnv = { AWS_ENDPOINT_URL: tb.motoEndpoint, AWS_ACCESS_KEY_ID: 'reader', AWS_SECRET_ACCESS_KEY: 'reader', AWS_REGION: REGION };
  const uis: RunningUi[] = [];
  const records: AuditRecord[] = [];

  beforeAll(async () => {
    // Two ended requests, written as the controller writes them (sealed into the chain, through
    // the sink) with the controller's credentials; the page reads with the user's. The SDK
    // takes the endpoint from the process environment only, so it is set while writing.
    const savedEndpoint = process.env.AWS_ENDPOINT_URL;
    process.env.AWS_ENDPOINT_URL = tb.motoEndpoint;
    const sink = createAuditSink(
      { type: 'cloudwatch-logs', logGroup: LOG_GROUP, region: REGION },
      { credentials: async () => ({ accessKeyId: 'controller', secretAccessKey: 'controller' }) },
    );
    try {
      const ended = [
        {
          name: 'restart-approved',
          decision: 'Approved',
          approver: 'alice',
          digest: `sha256:${'a'.repeat(64)}`,
          at: '2026-12-01T10:00:00Z',
        },
        { name: 'restart-rejected', decision: 'Rejected', approver: 'bob', digest: `sha256:${'b'.repeat(64)}`, at: '2026-12-01T11:00:00Z' },
      ];
      for (const e of ended) {
        const record = sealRecord(
          {
            apiVersion: AUDIT_API_VERSION,
            kind: AUDIT_KIND,
            recordedAt: e.at,
            request: { namespace: NS, name: e.name, uid: `uid-${e.name}-${id}`, policy: 'nginx', requestedBy: 'alertmanager' },
            alert: { source: 'alertmanager', name: 'HighErrorRate' },
            plan: {
              digest: e.digest,
              runbook: 'restart',
              runbookGeneration: 1,
              policyGeneration: 1,
              risk: 'low',
              region: REGION,
              targets: [],
            },
            approval: { decision: e.decision, approver: e.approver, planDigest: e.digest },
            outcome: { phase: e.decision === 'Approved' ? 'Succeeded' : 'Rejected', completionTime: e.at },
          },
          records.at(-1),
        );
        await sink.write(NS, {
          sequence: record.sequence,
          uid: record.request.uid,
          text: serializeRecord(record),
          timestamp: Date.parse(e.at),
        });
        records.push(record);
      }
    } finally {
      sink.destroy();
      if (savedEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL;
      else process.env.AWS_ENDPOINT_URL = savedEndpoint;
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(uis.map(stop));
  });

  test('both requests appear, newest first, with approver, decision, plan digest and an intact chain', async () => {
    const ui = await startUi(tb.cluster.adminKubeconfig, readerEnv, ['--log-group', LOG_GROUP]);
    uis.push(ui);
    // The page answers only with its token and a 127.0.0.1/localhost Host (fetch sends the URL's).
    const res = await fetch(`${ui.url}history`);
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toContain(`From CloudWatch Logs group &quot;${LOG_GROUP}&quot; (${REGION}).`);
    const rows = body.split('<tr>').slice(2);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain(`${NS}/restart-rejected`);
    expect(rows[0]).toContain('Rejected by bob');
    expect(rows[0]).toContain(records[1]!.plan!.digest);
    expect(rows[1]).toContain(`${NS}/restart-approved`);
    expect(rows[1]).toContain('Approved by alice');
    expect(rows[1]).toContain(records[0]!.plan!.digest);
    for (const row of rows) expect(row).toContain('<td>intact</td>');
    // Without the token the history is not served.
    expect((await fetch(ui.url.replace(/\/[^/]+\/$/, '/history'))).status).toBe(404);
  }, 60_000);

  test('a sink that cannot be read says why on the page', async () => {
    const ui = await startUi(tb.cluster.adminKubeconfig, readerEnv, ['--bucket', `no-such-bucket-${id}`, '--prefix', 'audit']);
    uis.push(ui);
    const res = await fetch(`${ui.url}history`);
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toContain(`Could not read the history from S3 s3://no-such-bucket-${id}/audit/ (${REGION})`);
    expect(body).not.toContain('restart-');
  }, 60_000);
});
