/**
 * `make demo`: the whole job on one machine, with nothing installed by hand.
 *
 * It starts a real control plane (etcd and kube-apiserver) and moto as the AWS emulator,
 * seeds a fleet of six instances across prod and staging with tags and CPU and memory
 * datapoints, installs what the chart installs (CRDs, RBAC, the approval admission
 * policy bound to the tenant namespaces), then plays the two roles of the trust model
 * (docs/security.md) with kubectl: a cluster administrator applies the sample Runbooks
 * from `config/samples/` (what may run, and where), and `dana`, who may only edit the
 * team's namespace, applies the sample AlertPolicies that use them. It runs the
 * controller as its own process under the chart's ServiceAccount and on the IRSA path,
 * sends alerts through the real HTTP intake (an Alertmanager webhook and CloudWatch
 * alarms delivered by a signed SNS message), approves the one that needs a person as
 * `alice` through the kubectl plugin (which shows her the plan and names its digest), and
 * prints a timeline of every request.
 *
 * It exits 0 only if every request ended as expected, and leaves nothing running — also
 * on Ctrl-C (the process registry in test/testbed/procs.ts stops every child).
 */
import { CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { GROUP, VERSION, type RemediationRequest } from '../src/api/v1alpha1/index.js';
import { parseManifests, renderChart } from './chart/render.js';
import { alertmanagerPayload, cloudWatchAlarm, signSns, snsSigningIdentity } from '../test/e2e/intake-harness.js';
import { awsEnv, pointsEvery, putInstanceMetric, seedClientConfig, seedInstances } from '../test/testbed/aws.js';
import { ensureTestbedBinaries, repoRoot } from '../test/testbed/binaries.js';
import { DEFAULT_USERS, startControlPlane, type ControlPlane } from '../test/testbed/controlplane.js';
import { newRunDir } from '../test/testbed/layout.js';
import { startMoto, type Moto } from '../test/testbed/moto.js';
import { freePort, spawnManaged, stopAll, waitUntil, type ManagedProcess } from '../test/testbed/procs.js';
import { run, toolEnv } from '../test/testbed/tools.js';

const REGION = 'eu-west-1'; // the region the sample policies' topic ARNs name
const ACCOUNT = '123456789012';
const NS = 'demo';
const SYSTEM_NS = 'remediator-system';
/** The chart's release: its fullname names the approval admission policy (<fullname>-approvals). */
const RELEASE = 'remediator';
const ADMISSION_POLICY = `${RELEASE}-approvals`;
/** Namespaces a cluster administrator labels as tenants: the sample runbooks and the admission binding select them. */
const TENANT_LABEL = { 'remediator.dev/tenant': 'true' };
/** The team editor: may write AlertPolicies and requests in the demo namespace, nothing else. */
const EDITOR = 'dana';
/** The tags the sample runbooks' scope requires: the namespace's team, and the tag the IAM policy requires. */
const IN_SCOPE = { team: NS, 'remediator.dev/managed': 'true' };
const SAMPLES = join(repoRoot(), 'config', 'samples');
const ALARM_TOPIC = `arn:aws:sns:${REGION}:${ACCOUNT}:cloudwatch-alarms`;
const CERT_URL = `https://sns.${REGION}.amazonaws.com/SimpleNotificationService-demo.pem`;
const ENDS = new Set(['Succeeded', 'Failed', 'Rejected', 'Expired', 'Skipped', 'Cancelled']);

const tty = process.stdout.isTTY === true;
const paint = (code: string) => (s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const yellow = paint('33');
const red = paint('31');

function step(text: string): void {
  console.log(`\n${bold('==>')} ${text}`);
}

/** A spinner on a terminal, a line per finished step otherwise. */
async function progress<T>(label: string | (() => string), work: Promise<T>): Promise<T> {
  const text = typeof label === 'function' ? label : () => label;
  const frames = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
  const started = Date.now();
  let i = 0;
  const secs = () => ((Date.now() - started) / 1000).toFixed(1);
  const timer = setInterval(() => {
    if (tty) process.stdout.write(`\r${frames[i++ % frames.length]} ${text()} ${dim(`${secs()}s`)}\x1b[K`);
  }, 100);
  try {
    const value = await work;
    if (tty) process.stdout.write(`\r${green('✓')} ${text()} ${dim(`${secs()}s`)}\x1b[K\n`);
    else console.log(`  ✓ ${text()} (${secs()}s)`);
    return value;
  } catch (error) {
    if (tty) process.stdout.write(`\r${red('✗')} ${text()}\x1b[K\n`);
    throw error;
  } finally {
    clearInterval(timer);
  }
}

interface Fleet {
  web1: string;
  web2: string;
  db1: string;
  canary: string;
  stagingWeb: string;
  stagingDb: string;
}

async function seedFleet(moto: Moto): Promise<Fleet> {
  const one = async (tags: Record<string, string>) => (await seedInstances(moto.endpoint, { region: REGION, tags }))[0]!;
  const fleet: Fleet = {
    web1: await one({ Name: 'prod-web-1', Environment: 'prod', Service: 'nginx', ...IN_SCOPE }),
    web2: await one({ Name: 'prod-web-2', Environment: 'prod', Service: 'nginx', ...IN_SCOPE }),
    db1: await one({ Name: 'prod-db-1', Environment: 'prod', Service: 'postgres', ...IN_SCOPE }),
    canary: await one({ Name: 'prod-web-canary', Environment: 'prod', Service: 'nginx', ...IN_SCOPE, 'remediator.dev/opt-out': 'true' }),
    stagingWeb: await one({ Name: 'staging-web-1', Environment: 'staging', Service: 'nginx', ...IN_SCOPE }),
    stagingDb: await one({ Name: 'staging-db-1', Environment: 'staging', Service: 'postgres', ...IN_SCOPE }),
  };
  const cpu: Record<string, number[]> = {
    [fleet.web1]: [35, 41, 38],
    [fleet.web2]: [97, 99, 98],
    [fleet.db1]: [62, 64, 61],
    [fleet.canary]: [30, 28, 33],
    [fleet.stagingWeb]: [96, 98, 97],
    [fleet.stagingDb]: [12, 10, 11],
  };
  for (const [id, values] of Object.entries(cpu)) {
    await putInstanceMetric(moto.endpoint, id, pointsEvery(values), { region: REGION });
    await putInstanceMetric(moto.endpoint, id, pointsEvery(values.map((v) => Math.min(99, v / 2 + 40))), {
      region: REGION,
      namespace: 'CWAgent',
      metricName: 'mem_used_percent',
    });
  }
  return fleet;
}

/** SNS topics the sample policies publish to, each with an SQS queue to read them back. */
async function topics(moto: Moto): Promise<Map<string, string>> {
  const sns = new SNSClient(seedClientConfig(moto.endpoint, REGION));
  const sqs = new SQSClient(seedClientConfig(moto.endpoint, REGION));
  const queues = new Map<string, string>();
  for (const name of ['remediator-oncall', 'remediator-approvals', 'cloudwatch-alarms']) {
    const topic = await sns.send(new CreateTopicCommand({ Name: name }));
    const q = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-inbox` }));
    const arn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: q.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes
      ?.QueueArn;
    await sns.send(new SubscribeCommand({ TopicArn: topic.TopicArn, Protocol: 'sqs', Endpoint: arn }));
    queues.set(topic.TopicArn!, q.QueueUrl!);
  }
  sns.destroy();
  sqs.destroy();
  return queues;
}

/** Kinds of the rendered chart the demo applies: no kubelet runs here, so no Deployment, Service or PDB. */
const CHART_KINDS = new Set([
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
]);

/**
 * What the chart installs besides the Deployment, rendered from charts/remediator with
 * helm: RBAC, the user roles and the approval admission policy, bound (Deny) to the
 * namespaces labelled as tenants — the way docs/security.md says to roll it out. Then
 * the intake Secret, and who may do what in the demo namespace.
 */
async function installLikeTheChart(
  cp: ControlPlane,
  helm: string,
  kubectl: (args: string[]) => Promise<string>,
  dir: string,
  token: string,
): Promise<void> {
  const core = cp.adminConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: SYSTEM_NS } } });
  await core.createNamespace({ body: { metadata: { name: NS, labels: TENANT_LABEL } } });
  const rendered = await renderChart({
    helm,
    release: RELEASE,
    namespace: SYSTEM_NS,
    values: {
      intake: { tokenSecret: { create: false } },
      admissionPolicy: { namespaceSelector: { matchLabels: TENANT_LABEL } },
      // Role aggregation needs kube-controller-manager, which does not run here; the demo binds the roles directly.
      rbac: { aggregateToDefaultRoles: false },
    },
  });
  const file = join(dir, 'chart.yaml');
  writeFileSync(
    file,
    parseManifests(rendered)
      .filter((o) => CHART_KINDS.has(o.kind))
      .map((o) => stringify(o))
      .join('---\n'),
  );
  await kubectl(['apply', '-n', SYSTEM_NS, '-f', file]);
  await core.createNamespacedSecret({
    namespace: SYSTEM_NS,
    body: { metadata: { name: 'remediator-intake-token' }, stringData: { token } },
  });
  const rbac = cp.adminConfig().makeApiClient(RbacAuthorizationV1Api);
  const bind = (name: string, role: string, users: string[]) =>
    rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
        subjects: users.map((u) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: u })),
      },
    });
  // dana writes the team's policies; alice and bob are its on-call approvers.
  await bind('team-editors', `${RELEASE}-editor`, [EDITOR]);
  await bind('oncall-approvers', `${RELEASE}-approver`, ['alice', 'bob']);
}

async function startController(
  cp: ControlPlane,
  moto: Moto,
  dir: string,
  certPem: string,
): Promise<{ proc: ManagedProcess; intake: string }> {
  // The chart's ServiceAccount, with a token from the TokenRequest API, as a pod gets it.
  const saToken = await cp.tokenForServiceAccount(SYSTEM_NS, 'remediator', { create: false });
  const kubeconfig = cp.kubeconfigForToken(saToken, 'remediator-demo');
  const metricsPort = await freePort();
  const intakePort = await freePort();
  const certFile = join(dir, 'sns-signing-cert.pem');
  writeFileSync(certFile, certPem);
  const proc = spawnManaged('controller', process.execPath, [join(repoRoot(), 'dist', 'controller', 'main.js')], {
    logDir: join(dir, 'logs'),
    env: {
      ...awsEnv(moto.endpoint, REGION, { dir: join(dir, 'aws') }),
      KUBECONFIG: kubeconfig,
      POD_NAMESPACE: SYSTEM_NS,
      POD_NAME: 'remediator-demo-0',
      LEADER_ELECT: 'true',
      METRICS_BIND_ADDRESS: `127.0.0.1:${metricsPort}`,
      INTAKE_BIND_ADDRESS: `127.0.0.1:${intakePort}`,
      INTAKE_TOKEN_SECRET: `${SYSTEM_NS}/remediator-intake-token`,
      SNS_TOPIC_ALLOWLIST: ALARM_TOPIC,
      SNS_PINNED_CERTIFICATE: `${CERT_URL}=${certFile}`,
      POLL_INTERVAL: '250',
      // The chart sets this to <fullname>-approvals: manual approvals are honoured only where that policy is verified to Deny.
      ADMISSION_POLICY_NAME: ADMISSION_POLICY,
    },
  });
  const intake = `http://127.0.0.1:${intakePort}`;
  await waitUntil(
    'the controller to be ready',
    async () => {
      const ok = (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).ok && (await fetch(`${intake}/readyz`)).ok;
      return ok ? true : undefined;
    },
    { timeoutMs: 30_000, processes: [proc] },
  );
  return { proc, intake };
}

async function post(url: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

function listRequests(api: CustomObjectsApi): Promise<RemediationRequest[]> {
  return api
    .listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'remediationrequests' })
    .then((l: { items: RemediationRequest[] }) => l.items);
}

function phaseColour(phase: string | undefined): string {
  if (phase === 'Succeeded') return green(phase);
  if (phase === 'Skipped' || phase === 'AwaitingApproval') return yellow(phase);
  return red(phase ?? 'Pending');
}

/**
 * When an Event last happened. The controller writes events.k8s.io/v1 Events, which the
 * core/v1 view read here shows with `eventTime` and `series.lastObservedTime` (a repeat);
 * their `lastTimestamp` is the optional `deprecatedLastTimestamp`, which we never set.
 */
function eventTime(e: CoreV1Event): Date | undefined {
  const t = e.series?.lastObservedTime ?? e.eventTime ?? e.lastTimestamp ?? e.firstTimestamp;
  return t ? new Date(t) : undefined;
}

async function timeline(kc: KubeConfig, rr: RemediationRequest, names: Map<string, string>): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = rr.metadata?.name ?? '';
  const events = (await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` })).items.sort(
    (a, b) => (eventTime(a)?.getTime() ?? 0) - (eventTime(b)?.getTime() ?? 0),
  );
  const s = rr.status ?? {};
  const label = (id: string) => `${id} (${names.get(id) ?? '?'})`;
  console.log(`\n${bold(name)}`);
  console.log(
    `  policy    ${rr.spec.policyRef.name}   risk ${s.risk ?? '-'}   phase ${phaseColour(s.phase)}${s.reason ? ` (${s.reason})` : ''}   requested by ${rr.spec.requestedBy ?? '-'}`,
  );
  console.log(`  alert     ${rr.spec.alert.source}: ${rr.spec.alert.name}`);
  for (const e of events) {
    const at = eventTime(e);
    const t = at ? at.toISOString().slice(11, 19) : '--:--:--';
    console.log(`  ${dim(t)}  ${(e.reason ?? '').padEnd(17)} ${e.message ?? ''}`);
  }
  for (const i of s.enrichment?.instances ?? []) {
    const tags = Object.entries(i.tags ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    console.log(
      `  instance  ${label(i.instanceId)} ${i.state ?? ''} ${i.instanceType ?? ''} ${i.availabilityZone ?? ''} ${i.privateIpAddress ?? ''}  ${dim(tags)}`,
    );
  }
  for (const m of s.enrichment?.metrics ?? []) {
    console.log(
      `  metric    ${m.name}${m.instanceId ? ` on ${m.instanceId}` : ''}: ${m.statistic} ${m.values.map((v) => v.toFixed(0)).join(', ')} → mean ${m.mean ?? 'n/a'}`,
    );
  }
  if (s.plan)
    console.log(
      `  plan      ${s.plan.digest}  (runbook ${s.plan.runbook.name}@${s.plan.runbook.generation}, policy generation ${s.plan.policyGeneration})`,
    );
  if (s.approval) {
    const of = s.approval.planDigest ? ` of plan ${s.approval.planDigest}` : '';
    console.log(`  approval  ${s.approval.decision} by ${s.approval.approver}${of}${s.approval.reason ? `: ${s.approval.reason}` : ''}`);
  }
  const ssm = s.execution?.ssm;
  if (ssm) {
    console.log(`  command   ${ssm.documentName} ${ssm.commandId ?? '(not sent)'}  ${JSON.stringify(ssm.parameters ?? {})}`);
    for (const inv of ssm.invocations ?? [])
      console.log(
        `  result    ${label(inv.instanceId)}: ${inv.status}${inv.responseCode !== undefined ? `, exit ${inv.responseCode}` : ''}`,
      );
  }
  const sns = s.execution?.sns;
  if (sns) console.log(`  sns       ${sns.topicArn} message ${sns.messageId ?? '(not published)'}  "${sns.subject ?? ''}"`);
  for (const n of s.notifications ?? []) console.log(`  notified  ${n.phase}: SNS message ${n.messageId}`);
  console.log(`  message   ${s.message ?? ''}`);
}

interface Expectation {
  what: string;
  policy: string;
  instance: string;
  phase: string;
  reason?: string;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  console.log(bold('remediator demo') + dim(' — a local control plane, an AWS emulator, and the controller, end to end'));

  step('Test bed binaries (built from source once, then cached in ~/.cache/remediator)');
  const binaries = await progress('etcd, kube-apiserver, kubectl and helm', ensureTestbedBinaries());
  const dir = newRunDir('demo');
  const logDir = join(dir, 'logs');
  console.log(dim(`  run directory ${dir}`));

  step('A local control plane (etcd + kube-apiserver, RBAC on) and the AWS emulator (moto)');
  const [cp, moto] = await progress(
    'control plane and moto ready',
    Promise.all([
      startControlPlane({ dir, binaries, users: [...DEFAULT_USERS, { name: EDITOR, groups: ['team-demo'] }] }),
      startMoto({ logDir }),
    ]),
  );
  const kubectlEnv = toolEnv(cp.adminKubeconfig, join(dir, 'tool-state'));
  const kubectl = async (args: string[], env = kubectlEnv) => {
    const r = await run(binaries.kubectl, args, { env });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  const token = randomBytes(24).toString('hex');
  await progress(
    `CRDs, RBAC, approval admission policy (Deny, namespaces labelled remediator.dev/tenant=true) and intake Secret installed`,
    (async () => {
      await cp.installCRDs();
      await installLikeTheChart(cp, binaries.helm, kubectl, dir, token);
    })(),
  );

  step(
    `A fleet of six EC2 instances in ${REGION}, tagged team=${NS} and remediator.dev/managed=true (the runbooks' scope), with CPU and memory datapoints`,
  );
  const fleet = await progress('instances and metrics seeded', seedFleet(moto));
  const names = new Map(Object.entries(fleet).map(([k, id]) => [id as string, k]));
  for (const [k, id] of Object.entries(fleet)) console.log(`  ${dim(k.padEnd(10))} ${id}`);
  const queues = await topics(moto);

  const samples = (kind: string) =>
    readdirSync(SAMPLES)
      .filter((f) => f.startsWith(`remediator_v1alpha1_${kind}_`))
      .sort()
      .flatMap((f) => ['-f', join(SAMPLES, f)]);
  step('A cluster administrator applies the sample Runbooks from config/samples/: what may run, and where');
  console.log(dim(`  $ kubectl apply -f config/samples/remediator_v1alpha1_runbook_*.yaml   (as the cluster admin)`));
  console.log((await kubectl(['apply', ...samples('runbook')])).trimEnd().replace(/^/gm, '  '));

  step(`The team applies the sample AlertPolicies that use them, as ${EDITOR} (editor of namespace ${NS} only)`);
  const editorEnv = toolEnv(cp.kubeconfigForUser(EDITOR), join(dir, `tool-state-${EDITOR}`));
  console.log(dim(`  $ kubectl apply -n ${NS} -f config/samples/remediator_v1alpha1_alertpolicy_*.yaml   (as ${EDITOR})`));
  // Each sample names its writer (YOUR-USER-NAME): the admission policy requires the editor's own name there.
  const policies = samples('alertpolicy')
    .filter((a) => a !== '-f')
    .map((f) => readFileSync(f, 'utf8').replaceAll('YOUR-USER-NAME', EDITOR))
    .join('\n---\n');
  const applied = await run(binaries.kubectl, ['apply', '-n', NS, '-f', '-'], { env: editorEnv, input: policies });
  if (applied.code !== 0) throw new Error(`kubectl apply of the sample policies failed: ${applied.stderr}`);
  console.log(applied.stdout.trimEnd().replace(/^/gm, '  '));
  const denied = await run(binaries.kubectl, ['auth', 'can-i', 'create', 'runbooks.remediator.dev'], { env: editorEnv });
  console.log(
    dim(`  $ kubectl auth can-i create runbooks.remediator.dev   (as ${EDITOR}) → ${denied.stdout.trim() || denied.stderr.trim()}`),
  );
  if (denied.stdout.trim() !== 'no') throw new Error(`${EDITOR} may create Runbooks: the chart's roles grant too much`);

  step("The controller, as the chart's ServiceAccount, with IRSA credentials from the emulated STS");
  const signer = snsSigningIdentity();
  const { proc: controller, intake } = await progress('controller and intake ready', startController(cp, moto, dir, signer.cert));
  const api = cp.adminConfig().makeApiClient(CustomObjectsApi);
  const watching = { processes: [controller] };
  await progress(
    'policies Ready',
    waitUntil(
      'policies Ready',
      async () => {
        const l = (await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'alertpolicies' })) as {
          items: Array<{ status?: { conditions?: Array<{ type: string; status: string }> } }>;
        };
        return l.items.length === 3 && l.items.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
          ? true
          : undefined;
      },
      watching,
    ),
  );

  step('Alerts through the HTTP intake');
  const am = alertmanagerPayload([
    {
      labels: { alertname: 'NginxDown', service: 'nginx', instance_id: fleet.web1, severity: 'critical' },
      annotations: { summary: 'nginx is down on prod-web-1' },
    },
    {
      labels: { alertname: 'NginxDown', service: 'nginx', instance_id: fleet.canary, severity: 'critical' },
      annotations: { summary: 'nginx is down on the canary' },
    },
    { labels: { alertname: 'DiskAlmostFull', instance_id: fleet.db1, mountpoint: '/var/lib/postgresql', severity: 'warning' } },
  ]);
  const amAnswer = await post(`${intake}/v1/alerts/alertmanager?namespace=${NS}`, am, { authorization: `Bearer ${token}` });
  console.log(`  Alertmanager webhook (3 alerts)          → HTTP ${amAnswer.status}`);
  if (amAnswer.status >= 300) throw new Error(`the intake refused the Alertmanager payload: ${JSON.stringify(amAnswer.body)}`);
  for (const [alarm, id] of [
    ['prod-web-2-status-check-failed', fleet.web2],
    ['staging-web-1-status-check-failed', fleet.stagingWeb],
  ] as const) {
    const message = cloudWatchAlarm({
      name: alarm,
      state: 'ALARM',
      instanceId: id,
      changedAt: new Date().toISOString().replace('Z', '+0000'),
      region: REGION,
      account: ACCOUNT,
    });
    const envelope = signSns(
      {
        Type: 'Notification',
        MessageId: randomUUID(),
        TopicArn: ALARM_TOPIC,
        Subject: `ALARM: "${alarm}" in EU (Ireland)`,
        Message: JSON.stringify(message),
        Timestamp: new Date().toISOString(),
        UnsubscribeURL: `https://sns.${REGION}.amazonaws.com/?Action=Unsubscribe`,
      },
      signer.key,
      '2',
      CERT_URL,
    );
    const answer = await post(`${intake}/v1/alerts/sns?namespace=${NS}`, envelope, {
      'x-amz-sns-message-type': 'Notification',
      'x-amz-sns-topic-arn': ALARM_TOPIC,
    });
    console.log(`  CloudWatch alarm via signed SNS message   → HTTP ${answer.status}  (${alarm})`);
    if (answer.status >= 300) throw new Error(`the intake refused the SNS message: ${JSON.stringify(answer.body)}`);
  }

  const expected: Expectation[] = [
    { what: 'restart nginx on prod-web-1 (Low risk, auto-approved)', policy: 'restart-nginx', instance: fleet.web1, phase: 'Succeeded' },
    { what: 'the canary carries the opt-out tag', policy: 'restart-nginx', instance: fleet.canary, phase: 'Skipped', reason: 'OptOut' },
    { what: 'page on-call about the disk (SNS action)', policy: 'page-disk-full', instance: fleet.db1, phase: 'Succeeded' },
    { what: 'reboot prod-web-2 (High risk, approved by alice)', policy: 'reboot-unresponsive', instance: fleet.web2, phase: 'Succeeded' },
    {
      what: 'staging-web-1 fails the Environment=prod guard',
      policy: 'reboot-unresponsive',
      instance: fleet.stagingWeb,
      phase: 'Skipped',
      reason: 'Guard',
    },
  ];
  const find = (rrs: RemediationRequest[], e: Expectation) =>
    rrs.find((r) => r.spec.policyRef.name === e.policy && Object.values(r.spec.alert.labels ?? {}).includes(e.instance));

  step('The controller works; one request waits for a person');
  const waiting = await progress(
    'High-risk reboot awaiting approval',
    waitUntil(
      'the reboot to await approval',
      async () => {
        const rr = find(await listRequests(api), expected[3]!);
        return rr?.status?.phase === 'AwaitingApproval' ? rr : undefined;
      },
      watching,
    ),
  );
  console.log(dim((await kubectl(['get', 'rr', '-n', NS])).trimEnd().replace(/^/gm, '  ')));

  step('alice approves it with the kubectl plugin (as herself: the admission policy checks)');
  const aliceEnv = toolEnv(cp.kubeconfigForUser('alice'), join(dir, 'tool-state-alice'));
  const plugin = await run(
    process.execPath,
    [
      join(repoRoot(), 'dist', 'src', 'cli', 'kubectl-remediator.js'),
      'approve',
      waiting.metadata!.name!,
      '-n',
      NS,
      '--reason',
      'status checks failing for 10 minutes',
    ],
    { env: aliceEnv },
  );
  console.log(`  $ kubectl remediator approve ${waiting.metadata!.name} -n ${NS} --reason "status checks failing for 10 minutes"`);
  console.log((plugin.stdout + plugin.stderr).trimEnd().replace(/^/gm, '  '));
  if (plugin.code !== 0) throw new Error('the approval failed');

  step('Every request to its end');
  const done = await progress(
    () => 'requests finished',
    waitUntil(
      'every request to end',
      async () => {
        const rrs = await listRequests(api);
        return rrs.length >= expected.length && rrs.every((r) => ENDS.has(r.status?.phase ?? '')) ? rrs : undefined;
      },
      { ...watching, timeoutMs: 90_000 },
    ),
  );

  step('Timeline');
  const kc = cp.adminConfig();
  for (const rr of done.sort(
    (a, b) =>
      String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)) ||
      String(a.metadata?.name).localeCompare(String(b.metadata?.name)),
  )) {
    await timeline(kc, rr, names);
  }

  step('What AWS received');
  const sqs = new SQSClient(seedClientConfig(moto.endpoint, REGION));
  for (const [topic, queue] of queues) {
    if (topic === ALARM_TOPIC) continue;
    const msgs = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue, MaxNumberOfMessages: 10 }))).Messages ?? [];
    for (const m of msgs) {
      const body = JSON.parse(m.Body ?? '{}') as { MessageId?: string; Subject?: string };
      console.log(`  SNS ${topic.split(':').pop()}: ${body.MessageId} "${body.Subject ?? ''}"`);
    }
  }
  sqs.destroy();

  step('Outcome');
  let ok = true;
  for (const e of expected) {
    const rr = find(done, e);
    const pass = rr?.status?.phase === e.phase && (e.reason === undefined || rr.status?.reason === e.reason);
    ok &&= pass;
    console.log(
      `  ${pass ? green('✓') : red('✗')} ${e.what}: ${rr?.status?.phase ?? 'no request'}${rr?.status?.reason ? ` (${rr.status.reason})` : ''}`,
    );
  }
  console.log(`\n${ok ? green('demo finished') : red('demo failed')} in ${((Date.now() - t0) / 1000).toFixed(1)}s; logs in ${logDir}`);
  if (!ok) process.exitCode = 1;
}

let interrupted = false;
process.once('SIGINT', () => {
  interrupted = true;
  console.log(`\n${yellow('interrupted')}: stopping everything`);
  void stopAll().finally(() => process.exit(130));
});

main()
  .catch((error: unknown) => {
    if (interrupted) return;
    console.error(red(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`));
    process.exitCode = 1;
  })
  .finally(() => stopAll());
