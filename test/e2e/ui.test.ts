/**
 * `kubectl remediator ui` in a real browser (headless Chromium over the DevTools
 * protocol) against the real API server with the chart's admission policy: the page
 * acts as the kubeconfig's user, so alice's approval lands in spec.approval with her
 * name and the digest she saw, mallory is refused by the API server and the page shows
 * its words, and a plan re-rendered behind an open page cannot be approved from it.
 * Alert labels carrying markup are shown as text, and the page refuses other origins,
 * other Host names and requests without its token.
 *
 * Screenshots go to dist/screenshots/; REMEDIATOR_UPDATE_SCREENSHOTS=1 also writes
 * them to docs/images/ (the ones the docs show).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { request as httpRequest, createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import type { Plan } from '../../src/api/v1alpha1/index.js';
import { planDigest } from '../../src/controllers/plan-render.js';
import { repoRoot } from '../testbed/binaries.js';
import { BROWSER_SETUP_TIMEOUT_MS, launchBrowser } from './browser.js';
import {
  grant,
  guardStatus,
  installChart,
  must,
  namespace,
  SCOPE_LABEL,
  serviceAccountKubeconfig,
  suffix,
  waitForAdmissionPolicy,
  writeStatus,
  type InstalledChart,
} from './install-chart.js';
import { Resources, restartRunbook, testbedFromEnv } from './harness.js';

const id = suffix();
const NS = `rmd-ui-${id}`;
const RUNBOOK = `restart-service-ui-${id}`;
const XSS = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`;
const SHOTS = join(repoRoot(), 'dist', 'screenshots');

function plan(risk: Plan['risk'], command = 'systemctl restart nginx', targets = ['i-0123456789abcdef0']): Plan {
  const body: Omit<Plan, 'digest'> = {
    runbook: { name: RUNBOOK, generation: 1 },
    policyGeneration: 1,
    risk,
    targets,
    region: 'eu-west-1',
    ssm: {
      documentName: 'AWS-RunShellScript',
      parameters: { commands: [command] },
      timeoutSeconds: 600,
      maxConcurrency: '50',
      maxErrors: '0',
    },
  };
  return { digest: planDigest(body), ...body };
}

interface RunningUi {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `kubectl-remediator ui` as `user` (the compiled entry, as the package bin runs it). */
async function startUi(kubeconfig: string, args: string[] = []): Promise<RunningUi> {
  const child = spawn(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'kubectl-remediator.js'), 'ui', '-n', NS, ...args], {
    env: { ...process.env, KUBECONFIG: kubeconfig },
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
    child.once('exit', (code) => reject(new Error(`ui exited (${code}): ${out}${err}`)));
  });
  return {
    url,
    process: child,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** A raw HTTP request with headers a browser would not let a script set (Host, Origin). */
function raw(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file as `${string}.png`, fullPage: true });
  if (process.env['REMEDIATOR_UPDATE_SCREENSHOTS'] === '1') {
    mkdirSync(join(repoRoot(), 'docs', 'images'), { recursive: true });
    copyFileSync(file, join(repoRoot(), 'docs', 'images', `${name}.png`));
  }
}

describe('kubectl remediator ui, in a browser', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  let chart: InstalledChart;
  let saKubeconfig: string;
  let unguard: (() => Promise<void>) | undefined;
  let browser: Browser;
  let alice: RunningUi;
  let mallory: RunningUi;
  const dialogs: string[] = [];

  async function request(
    requester: string,
    name: string,
    status: Record<string, unknown>,
    labels: Record<string, string> = {},
    policy = 'restart-nginx',
  ): Promise<void> {
    const doc = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'RemediationRequest',
      metadata: { name, namespace: NS },
      spec: {
        policyRef: { name: policy },
        requestedBy: requester,
        alert: { source: 'alertmanager', name: 'NginxDown', labels: { instance_id: 'i-0123456789abcdef0', service: 'nginx', ...labels } },
      },
    };
    must(await tb.kubectl(['create', '-f', '-'], { user: requester, input: JSON.stringify(doc) }), `create ${name}`);
    await writeStatus(saKubeconfig, NS, name, status);
  }

  const awaiting = (p: Plan, extra: Record<string, unknown> = {}) => ({
    phase: 'AwaitingApproval',
    reason: 'ApprovalRequired',
    risk: p.risk,
    targets: p.targets,
    targetCount: p.targets.length,
    plan: p,
    ...extra,
  });

  async function newPage(): Promise<Page> {
    const page = await browser.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    return page;
  }

  beforeAll(async () => {
    browser = await launchBrowser();
    chart = await installChart(tb, { release: `ui${id}`, namespace: `rmd-ui-system-${id}`, scope: id });
    await namespace(tb, NS, { [SCOPE_LABEL]: id });
    await waitForAdmissionPolicy(tb, NS);
    await res.createRunbook(RUNBOOK, restartRunbook());
    saKubeconfig = await serviceAccountKubeconfig(tb, chart);
    unguard = await guardStatus(tb, id, chart.serviceAccountUser);
    for (const user of ['alice', 'bob', 'carol', 'mallory']) await grant(tb, NS, user, `${chart.fullname}-editor`);
    for (const user of ['alice', 'bob']) await grant(tb, NS, user, `${chart.fullname}-approver`);
    must(await tb.kubectl(['create', 'role', 'event-reader', '--verb=get,list,watch', '--resource=events', '-n', NS]), 'event-reader role');
    must(
      await tb.kubectl(['create', 'rolebinding', 'event-reader-alice', '--role=event-reader', '--user=alice', '-n', NS]),
      'event-reader',
    );

    // The controller's steps a few seconds after creation (the API server dates that),
    // CloudWatch datapoints from the minutes before.
    const now = Date.now();
    const later = (seconds: number) => new Date(now + seconds * 1000).toISOString();
    const minutesAgo = (m: number) => new Date(now - m * 60_000).toISOString();
    const high = plan('High', 'systemctl restart postgresql', ['i-0123456789abcdef0', 'i-0fedcba9876543210']);
    await request(
      'bob',
      'db-reboot',
      awaiting(high, {
        startTime: later(1),
        conditions: [
          {
            type: 'Enriched',
            status: 'True',
            reason: 'Enriched',
            message: '2 instances described',
            lastTransitionTime: later(2),
            observedGeneration: 1,
          },
          {
            type: 'Approved',
            status: 'Unknown',
            reason: 'AwaitingApproval',
            message: 'High risk: waiting for an approver',
            lastTransitionTime: later(4),
            observedGeneration: 1,
          },
        ],
        enrichment: {
          observedAt: later(2),
          instances: [
            {
              instanceId: 'i-0123456789abcdef0',
              state: 'running',
              instanceType: 'm7g.large',
              availabilityZone: 'eu-west-1a',
              privateIpAddress: '10.0.1.12',
              pingStatus: 'Online',
              tags: { Name: 'db-1', team: 'payments', env: 'prod' },
            },
            {
              instanceId: 'i-0fedcba9876543210',
              state: 'running',
              instanceType: 'm7g.large',
              availabilityZone: 'eu-west-1b',
              privateIpAddress: '10.0.2.7',
              pingStatus: 'Online',
              tags: { Name: 'db-2', team: 'payments', env: 'prod' },
            },
          ],
          metrics: ['i-0123456789abcdef0', 'i-0fedcba9876543210'].map((instanceId, k) => ({
            name: 'cpu',
            instanceId,
            statistic: 'Average',
            values: [22, 35, 61, 88, 93].map((v) => v - k * 10),
            timestamps: [20, 15, 10, 5, 1].map(minutesAgo),
            mean: 59.8 - k * 10,
          })),
        },
      }),
      { note: XSS },
    );
    must(
      await tb.kubectl(['create', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name: `db-reboot.${id}`, namespace: NS },
          involvedObject: { apiVersion: 'remediator.dev/v1alpha1', kind: 'RemediationRequest', name: 'db-reboot', namespace: NS },
          type: 'Normal',
          reason: 'ApprovalRequired',
          message: 'AwaitingApproval: High risk: approve with kubectl remediator approve db-reboot',
          firstTimestamp: later(3),
          lastTimestamp: later(3),
          count: 1,
          source: { component: 'remediator' },
        }),
      }),
      'event',
    );
    await request('bob', 'cache-flush', awaiting(plan('Medium', 'redis-cli FLUSHALL')));
    await request('bob', 'web-restart', awaiting(plan('Medium')));
    await request('alice', 'own-critical', awaiting(plan('Critical', 'reboot')));
    // A policy that names its approvers: the controller rejects anyone else's approval.
    const bobOnly = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'AlertPolicy',
      // The admission policy records who last changed a policy; alice writes this one.
      metadata: { name: 'bob-only', namespace: NS, annotations: { 'remediator.dev/changed-by': 'alice' } },
      spec: {
        targets: { fromLabels: ['instance_id'] },
        runbookRef: { name: RUNBOOK },
        inputs: { service: '{{ labels.service }}' },
        approval: { mode: 'Manual', approvers: ['bob'] },
      },
    };
    must(await tb.kubectl(['create', '-f', '-'], { user: 'alice', input: JSON.stringify(bobOnly) }), 'policy bob-only');
    await request('carol', 'bob-decides', awaiting(plan('Low', 'true')), {}, 'bob-only');
    alice = await startUi(tb.cluster.kubeconfigForUser('alice'));
    mallory = await startUi(tb.cluster.kubeconfigForUser('mallory'));
  }, BROWSER_SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await alice?.stop();
    await mallory?.stop();
    await browser?.close();
    await res.deleteRunbook(RUNBOOK);
    await unguard?.();
    await chart?.uninstall();
  });

  test("alice's inbox: what she may approve, and what waits for someone else (four eyes); labels stay text", async () => {
    const page = await newPage();
    await page.goto(alice.url);
    const rows = await page.$$eval('tr[data-request]', (trs) => trs.map((tr) => tr.getAttribute('data-request')));
    expect(rows.slice(0, 3).sort()).toEqual([`${NS}/cache-flush`, `${NS}/db-reboot`, `${NS}/web-restart`]);
    expect(await page.$eval('h2', (h) => h.textContent)).toBe('Waiting for someone else');
    expect(rows.slice(3).sort()).toEqual([`${NS}/bob-decides`, `${NS}/own-critical`]);
    const content = await page.content();
    expect(content).toContain('Critical risk needs four eyes and you requested it');
    expect(content).toContain("policy bob-only allows only bob to approve (the controller rejects anyone else's approval)");
    await shot(page, 'ui-inbox');

    await page.click(`a[href$="/rr/${NS}/db-reboot"]`);
    await page.waitForSelector('#plan-digest');
    // The label that carries markup is shown as text, and none of it ran.
    expect(await page.$eval('#labels', (d) => d.textContent)).toContain(XSS);
    expect(await page.$$('#labels img, #labels script')).toHaveLength(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(dialogs).toEqual([]);
    await page.close();
  });

  test('alice approves db-reboot from its page: her name and the digest she saw land in spec.approval', async () => {
    const page = await newPage();
    await page.goto(`${alice.url}rr/${NS}/db-reboot`);
    const shown = await page.$eval('#plan-digest', (c) => c.textContent);
    expect(shown).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Targets with their tags and metrics, and the timeline with the controller's Event.
    const targets = await page.$eval('#targets', (t) => t.textContent ?? '');
    expect(targets).toContain('i-0fedcba9876543210');
    expect(targets).toContain('team=payments');
    expect(targets).toMatch(/cpu \(Average\): mean 59\.80, last 93/);
    const timeline = await page.$eval('#timeline', (t) => t.textContent ?? '');
    expect(timeline).toContain('Requested by bob');
    expect(timeline).toContain('Event ApprovalRequired');
    expect(timeline.indexOf('Enriched is True')).toBeLessThan(timeline.indexOf('Event ApprovalRequired'));
    await page.type('input[name=reason]', 'replica is in sync');
    await shot(page, 'ui-request');
    await Promise.all([page.waitForNavigation(), page.click('#approve')]);
    expect(await page.$eval('#flash', (f) => f.textContent)).toBe(`remediationrequest ${NS}/db-reboot approved by alice`);
    expect(await page.$eval('#decision', (d) => d.textContent)).toBe('Approved by alice (replica is in sync)');
    const rr = await res.getRequest(NS, 'db-reboot');
    expect(rr.spec.approval).toEqual({ decision: 'Approved', approver: 'alice', reason: 'replica is in sync', planDigest: shown });
    expect(await page.$('#approve')).toBeNull();
    expect(await page.$eval('#timeline', (t) => t.textContent ?? '')).toContain('Approved by alice');
    await page.close();
  });

  test('mallory is refused by the API server, and the page shows its words', async () => {
    const page = await newPage();
    await page.goto(mallory.url);
    expect(await page.$('#inbox-empty')).not.toBeNull();
    expect(await page.content()).toContain(`you lack the "approve" verb on remediationrequests in namespace ${NS}`);
    await page.goto(`${mallory.url}rr/${NS}/cache-flush`);
    await Promise.all([page.waitForNavigation(), page.click('#approve')]);
    const flash = await page.$eval('#flash', (f) => ({ text: f.textContent ?? '', cls: f.className }));
    expect(flash.cls).toBe('flash error');
    expect(flash.text).toContain(`the API server refused to approve remediationrequest ${NS}/cache-flush as mallory`);
    expect(flash.text).toContain(`ValidatingAdmissionPolicy '${chart.fullname}-approvals'`);
    expect(flash.text).toContain('user "mallory" may not approve or reject');
    await shot(page, 'ui-refused');
    expect((await res.getRequest(NS, 'cache-flush')).spec.approval).toBeUndefined();
    await page.close();
  });

  test('a plan re-rendered behind an open page: its Approve is refused by admission, and the page shows what changed', async () => {
    const page = await newPage();
    await page.goto(`${alice.url}rr/${NS}/web-restart`);
    const before = await page.$eval('#plan-digest', (c) => c.textContent);
    expect(before).toBe(plan('Medium').digest);
    expect(await page.$('#plan-unchanged')).not.toBeNull();

    // The controller re-renders the plan (the runbook changed) while the page is open.
    const next = plan('Medium', 'systemctl restart nginx && rm -rf /var/cache/nginx');
    await writeStatus(saKubeconfig, NS, 'web-restart', { plan: next });

    await Promise.all([page.waitForNavigation(), page.click('#approve')]);
    const flash = await page.$eval('#flash', (f) => f.textContent ?? '');
    expect(flash).toContain('the API server refused to approve');
    expect(flash).toContain(`spec.approval.planDigest must be the digest of the plan in status (${next.digest})`);
    expect((await res.getRequest(NS, 'web-restart')).spec.approval).toBeUndefined();

    // The page now shows the new plan and what differs from the one approved in vain.
    expect(await page.$eval('#plan-digest', (c) => c.textContent)).toBe(next.digest);
    const changed = await page.$eval('#plan-changed', (d) => d.textContent ?? '');
    expect(changed).toContain(`${before}`);
    expect(changed).toContain('ssm.parameters.commands');
    expect(changed).toContain('rm -rf /var/cache/nginx');
    await shot(page, 'ui-plan-changed');

    // Approving what is now shown works.
    await Promise.all([page.waitForNavigation(), page.click('#approve')]);
    expect((await res.getRequest(NS, 'web-restart')).spec.approval).toMatchObject({ approver: 'alice', planDigest: next.digest });
    await page.close();
  });

  test('another origin cannot drive the page, even knowing its URL: the browser posts, the page refuses', async () => {
    // An attacker's page on another local port with a form aimed at the page's decide URL.
    const target = `${alice.url}rr/${NS}/own-critical/decide`;
    const evil: Server = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(
        `<form id="f" method="post" action="${target}"><input name="decision" value="Rejected"></form><script>document.getElementById('f').submit()</script>`,
      );
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', () => r()));
    try {
      const page = await newPage();
      const answered = page.waitForResponse((r) => r.url() === target);
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      expect((await answered).status()).toBe(403);
      await page.close();
    } finally {
      evil.close();
    }
    expect((await res.getRequest(NS, 'own-critical')).spec.approval).toBeUndefined();
  });

  test('the token, the Host header and the Origin are checked on every request; headers forbid framing and scripts', async () => {
    const u = new URL(alice.url);
    const origin = `http://${u.host}`;
    expect((await raw(`${origin}/`, {})).status).toBe(404);
    expect((await raw(`${origin}/${'A'.repeat(43)}/`, {})).status).toBe(404);
    // DNS rebinding: a name that resolves to 127.0.0.1 reaches the port, with its own Host.
    expect((await raw(alice.url, { headers: { Host: `rebind.example:${u.port}` } })).status).toBe(421);
    const ok = await raw(alice.url, {});
    expect(ok.status).toBe(200);
    expect(ok.headers['content-security-policy']).toBe(
      "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    expect(ok.headers['x-frame-options']).toBe('DENY');
    expect(ok.headers['referrer-policy']).toBe('same-origin');
    expect(ok.headers['set-cookie']).toBeUndefined();
    const post = (headers: Record<string, string>) =>
      raw(`${alice.url}rr/${NS}/own-critical/decide`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
        body: 'decision=Rejected',
      });
    expect((await post({})).status).toBe(403);
    expect((await post({ Origin: 'http://evil.example' })).status).toBe(403);
    expect((await post({ Origin: origin, 'Sec-Fetch-Site': 'cross-site' })).status).toBe(403);
    expect((await res.getRequest(NS, 'own-critical')).spec.approval).toBeUndefined();
    // Listening on loopback only: the machine's other addresses do not answer.
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal);
    if (external) await expect(raw(`http://${external.address}:${u.port}/`, {})).rejects.toThrow(/ECONNREFUSED/);
  });
});
