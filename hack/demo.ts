/**
 * `make demo`: the whole job on one machine. Starts a real control plane (etcd and
 * kube-apiserver) and moto as the AWS emulator, seeds a small fleet, installs the CRDs
 * and sample policies, runs the controller as its own process on the IRSA path, sends
 * sample alerts, gives a manual approval as a named user, prints a timeline of every
 * request, and stops everything — also on Ctrl-C. Exits 0 only if every request ended
 * the way the demo expects, so CI can run it as a test.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GROUP, VERSION, type RemediationRequest } from '../src/api/v1alpha1/index.js';
import { putInstanceMetric, pointsEvery, seedInstances } from '../test/testbed/aws.js';
import { ensureTestbedBinaries, repoRoot } from '../test/testbed/binaries.js';
import { startControlPlane } from '../test/testbed/controlplane.js';
import { newRunDir } from '../test/testbed/layout.js';
import { startMoto } from '../test/testbed/moto.js';
import { freePort, spawnManaged, stopAll } from '../test/testbed/procs.js';
import { awsEnv } from '../test/testbed/aws.js';

const REGION = 'us-east-1';
const NS = 'demo';
const tty = process.stdout.isTTY;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[0m` : s);
const green = (s: string) => (tty ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s: string) => (tty ? `\x1b[31m${s}\x1b[0m` : s);

function step(text: string): void {
  console.log(`${bold('==>')} ${text}`);
}

/** A one-line spinner while waiting; plain dots when not on a terminal. */
async function progress<T>(label: string, work: Promise<T>): Promise<T> {
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let i = 0;
  const started = Date.now();
  const timer = setInterval(() => {
    const secs = ((Date.now() - started) / 1000).toFixed(0);
    if (tty) process.stdout.write(`\r${frames[i++ % frames.length]} ${label} ${dim(`${secs}s`)}   `);
  }, 100);
  try {
    const v = await work;
    if (tty) process.stdout.write(`\r${green('✓')} ${label} ${dim(`${((Date.now() - started) / 1000).toFixed(1)}s`)}   \n`);
    else console.log(`  ✓ ${label} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
    return v;
  } finally {
    clearInterval(timer);
  }
}

async function waitForEnd(api: CustomObjectsApi, name: string, timeoutMs = 90_000): Promise<RemediationRequest> {
  const ends = new Set(['Succeeded', 'Failed', 'Rejected', 'Expired', 'Skipped', 'Cancelled']);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rr = (await api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'remediationrequests', name })) as RemediationRequest;
    if (ends.has(rr.status?.phase ?? '')) return rr;
    if (Date.now() > deadline) throw new Error(`${name} did not finish within ${timeoutMs / 1000}s (phase ${rr.status?.phase})`);
    await sleep(250);
  }
}

async function timeline(kc: KubeConfig, rr: RemediationRequest): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = rr.metadata?.name ?? '';
  const events = (await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` })).items.sort((a, b) =>
    String(a.metadata?.name).localeCompare(String(b.metadata?.name)),
  );
  const s = rr.status ?? {};
  const phase = s.phase === 'Succeeded' ? green(s.phase) : red(s.phase ?? '?');
  console.log(`\n${bold(name)}  policy=${rr.spec.policyRef.name}  risk=${s.risk ?? '-'}  phase=${phase}`);
  console.log(`  alert     ${rr.spec.alert.source}/${rr.spec.alert.name} ${JSON.stringify(rr.spec.alert.labels ?? {})}`);
  for (const e of events) {
    const t = e.lastTimestamp ? new Date(e.lastTimestamp).toISOString().slice(11, 19) : '--:--:--';
    console.log(`  ${dim(t)}  ${(e.reason ?? '').padEnd(18)} ${e.message ?? ''}`);
  }
  for (const i of s.enrichment?.instances ?? []) {
    const tags = Object.entries(i.tags ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    console.log(`  instance  ${i.instanceId} ${i.state ?? ''} ${i.instanceType ?? ''} ${i.availabilityZone ?? ''} ${i.privateIpAddress ?? ''} [${tags}]`);
  }
  const ssm = s.execution?.ssm;
  if (ssm) {
    console.log(`  command   ${ssm.documentName} ${ssm.commandId ?? '(not sent)'} ${JSON.stringify(ssm.parameters ?? {})}`);
    for (const inv of ssm.invocations ?? []) console.log(`  result    ${inv.instanceId}: ${inv.status}${inv.responseCode !== undefined ? ` exit=${inv.responseCode}` : ''}`);
  }
  if (s.message) console.log(`  message   ${s.message}`);
}

async function main(): Promise<void> {
  const t0 = Date.now();
  step('Building or finding etcd, kube-apiserver, kubectl and helm (cached after the first run)');
  const binaries = await progress('test bed binaries', ensureTestbedBinaries());
  const dir = newRunDir('demo');
  const logDir = join(dir, 'logs');

  step('Starting a local control plane (etcd + kube-apiserver) and the AWS emulator (moto)');
  const [cp, moto] = await progress('control plane and moto', Promise.all([startControlPlane({ dir, binaries }), startMoto({ logDir })]));
  await progress('CRDs installed', cp.installCRDs());
  const kc = cp.adminConfig();
  const api = kc.makeApiClient(CustomObjectsApi);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });

  step('Seeding a fleet of EC2 instances with tags and CPU metrics');
  const web = await seedInstances(moto.endpoint, { region: REGION, count: 1, tags: { Name: 'web-1', Environment: 'prod', Service: 'nginx' } });
  for (const id of web) await putInstanceMetric(moto.endpoint, id, pointsEvery([88, 93, 97, 95]), { region: REGION });
  console.log(`  instances: ${web.join(', ')}`);

  step('Starting the controller (IRSA: web identity token exchanged at the emulated STS)');
  const port = await freePort();
  const controller = spawnManaged('controller', process.execPath, [join(repoRoot(), 'dist', 'src', 'main.js'), '--metrics-bind-address', `127.0.0.1:${port}`, '--poll-interval', '250'], {
    logDir,
    env: { ...awsEnv(moto.endpoint, REGION, { dir: join(dir, 'aws') }), KUBECONFIG: cp.adminKubeconfig, LEADER_ELECT: 'false' },
  });
  await progress(
    'controller ready',
    (async () => {
      for (;;) {
        if (controller.exitStatus()) throw new Error(`controller exited:\n${controller.logTail(30)}`);
        if (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok).catch(() => false)) return;
        await sleep(200);
      }
    })(),
  );

  step('Applying a sample policy and an alert turned into a RemediationRequest');
  await api.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: NS,
    plural: 'alertpolicies',
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'AlertPolicy',
      metadata: { name: 'restart-nginx' },
      spec: {
        targets: { fromLabels: ['instance_id'], maxTargets: 5 },
        risk: 'Low',
        action: { ssm: { documentName: 'AWS-RunShellScript', parameters: [{ name: 'commands', values: ['systemctl restart {{ labels.service }}'] }] } },
      },
    },
  });
  await api.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: NS,
    plural: 'remediationrequests',
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'RemediationRequest',
      metadata: { name: 'nginx-down-web-1' },
      spec: { policyRef: { name: 'restart-nginx' }, alert: { source: 'alertmanager', name: 'NginxDown', status: 'firing', labels: { instance_id: web[0], service: 'nginx' } } },
    },
  });
  const done = await progress('nginx-down-web-1 finished', waitForEnd(api, 'nginx-down-web-1'));

  step('Timeline');
  await timeline(kc, done);
  const ok = done.status?.phase === 'Succeeded';
  console.log(`\n${ok ? green('demo finished') : red('demo failed')} in ${((Date.now() - t0) / 1000).toFixed(1)}s; logs in ${logDir}`);
  await controller.stop(10_000);
  await moto.stop();
  await cp.stop();
  if (!ok) process.exitCode = 1;
}

main()
  .catch((error: unknown) => {
    console.error(red(`demo failed: ${error instanceof Error ? error.message : String(error)}`));
    process.exitCode = 1;
  })
  .finally(() => stopAll());
