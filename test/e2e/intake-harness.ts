/**
 * What the intake's end-to-end tests share: namespaces with the bearer token Secret and
 * a ServiceAccount the controller runs as (with its RBAC, the token Secret readable by
 * name only), the controller started with its intake on a free port and watching only
 * those namespaces, a raw HTTP client, Alertmanager payloads shaped exactly as
 * Alertmanager v0.27 sends them, SNS signing with a test key and certificate, and a TCP
 * proxy in front of the API server that a test can stop to make it unavailable.
 */
import { randomBytes, sign, X509Certificate } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ApiException, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, VERSION, type RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { selfSignedSnsCertificate } from '../../src/intake/self-signed.js';
import { stringToSign, type CertificateSource } from '../../src/intake/sns.js';
import type { SnsEnvelope } from '../../src/intake/schemas.js';
import { writeKubeconfig } from '../testbed/kubeconfig.js';
import { freePort } from '../testbed/procs.js';
import type { Testbed } from '../testbed/env.js';
import { startController, waitFor, type RunningController } from './harness.js';

export const TOKEN_SECRET = 'intake-token';
export const CONTROLLER_SA = 'remediator';

const ignoreConflict = (e: unknown) => {
  if (!(e instanceof ApiException && e.code === 409)) throw e;
};

export function newToken(): string {
  return randomBytes(24).toString('hex');
}

export interface IntakeNamespaces {
  /** Where the Secret and the ServiceAccount live; the first namespace. */
  home: string;
  namespaces: string[];
  /** `system:serviceaccount:<home>:remediator`. */
  controllerUser: string;
  token: string;
  cleanup(): Promise<void>;
}

/** Creates `namespaces`, and the token Secret and the controller's ServiceAccount and RBAC in the first. */
export async function setUpIntakeNamespaces(kc: KubeConfig, namespaces: string[]): Promise<IntakeNamespaces> {
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const home = namespaces[0]!;
  for (const ns of namespaces) await core.createNamespace({ body: { metadata: { name: ns } } }).catch(ignoreConflict);
  const token = newToken();
  await core
    .createNamespacedSecret({ namespace: home, body: { metadata: { name: TOKEN_SECRET }, stringData: { token } } })
    .catch(ignoreConflict);
  await core.createNamespacedServiceAccount({ namespace: home, body: { metadata: { name: CONTROLLER_SA } } }).catch(ignoreConflict);
  const controllerUser = `system:serviceaccount:${home}:${CONTROLLER_SA}`;
  const roleName = `intake-test-${home}`;
  await rbac
    .createClusterRole({
      body: {
        metadata: { name: roleName },
        rules: [
          {
            apiGroups: [GROUP],
            resources: ['alertpolicies', 'remediationrequests'],
            verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'],
          },
          { apiGroups: [GROUP], resources: ['alertpolicies/status', 'remediationrequests/status'], verbs: ['get', 'update', 'patch'] },
          { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
          { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
          // The execution ledger (the chart grants these in the controller's own namespace only).
          { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
          { apiGroups: [GROUP], resources: ['remediationrequests'], verbs: ['delete'] },
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
          { apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'], verbs: ['create'] },
          // What the chart's <release>-controller-trust ClusterRole grants: runbooks, namespace labels, the approval policy.
          { apiGroups: [GROUP], resources: ['runbooks'], verbs: ['get', 'list', 'watch'] },
          { apiGroups: [GROUP], resources: ['runbooks/status'], verbs: ['update', 'patch'] },
          { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] },
          {
            apiGroups: ['admissionregistration.k8s.io'],
            resources: ['validatingadmissionpolicies', 'validatingadmissionpolicybindings'],
            verbs: ['get', 'list', 'watch'],
          },
        ],
      },
    })
    .catch(ignoreConflict);
  await rbac
    .createClusterRoleBinding({
      body: {
        metadata: { name: roleName },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
        subjects: [{ kind: 'ServiceAccount', name: CONTROLLER_SA, namespace: home }],
      },
    })
    .catch(ignoreConflict);
  // The token Secret, and nothing else: least privilege, as the chart should grant it.
  await rbac
    .createNamespacedRole({
      namespace: home,
      body: {
        metadata: { name: 'intake-token-reader' },
        rules: [{ apiGroups: [''], resources: ['secrets'], resourceNames: [TOKEN_SECRET], verbs: ['get'] }],
      },
    })
    .catch(ignoreConflict);
  await rbac
    .createNamespacedRoleBinding({
      namespace: home,
      body: {
        metadata: { name: 'intake-token-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'intake-token-reader' },
        subjects: [{ kind: 'ServiceAccount', name: CONTROLLER_SA, namespace: home }],
      },
    })
    .catch(ignoreConflict);
  return {
    home,
    namespaces,
    controllerUser,
    token,
    cleanup: async () => {
      await rbac.deleteClusterRoleBinding({ name: roleName }).catch(() => undefined);
      await rbac.deleteClusterRole({ name: roleName }).catch(() => undefined);
    },
  };
}

export interface IntakeController {
  controller: RunningController;
  /** `http://127.0.0.1:<port>` of the intake. */
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts the real controller process (`dist/controller/main.js`) as the namespaces'
 * ServiceAccount, with its intake on a free loopback port, and waits until the intake
 * itself is ready (policy cache synced, identity learnt).
 */
export async function startIntakeController(
  tb: Testbed,
  ns: IntakeNamespaces,
  opts: { region: string; args?: string[]; extraEnv?: Record<string, string>; server?: string; name?: string },
): Promise<IntakeController> {
  const saToken = await tb.cluster.tokenForServiceAccount(ns.home, CONTROLLER_SA, { create: false });
  const kubeconfig = opts.server
    ? writeKubeconfig(join(tb.dir, 'kubeconfigs', `intake-${ns.home}-${randomBytes(3).toString('hex')}.yaml`), {
        server: opts.server,
        caPem: tb.cluster.info.caPem,
        user: ns.controllerUser,
        token: saToken,
      })
    : tb.cluster.kubeconfigForToken(saToken, `intake-${ns.home}`);
  const port = await freePort();
  const controller = await startController(tb, {
    region: opts.region,
    namespace: ns.namespaces,
    name: opts.name ?? `controller-${ns.home}`,
    kubeconfig,
    args: ['--intake-bind-address', `127.0.0.1:${port}`, '--intake-token-secret', `${ns.home}/${TOKEN_SECRET}`, ...(opts.args ?? [])],
    extraEnv: opts.extraEnv,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`intake on ${url} ready`, async () => (await fetch(`${url}/readyz`)).ok || undefined, 30_000);
  return { controller, url, stop: () => controller.stop() };
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The parsed JSON body, or undefined when it was not JSON. */
  json: Record<string, unknown> | undefined;
}

/** A raw HTTP request (no keep-alive, any body, any header), so tests control exactly what is sent. */
export function send(
  url: string,
  opts: { method?: string; path: string; body?: string | Buffer; headers?: Record<string, string | number> },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}${opts.path}`, { method: opts.method ?? 'POST', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> | undefined;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** POSTs `body` as JSON with the bearer token. */
export function postJson(
  url: string,
  path: string,
  body: unknown,
  token: string | undefined,
  headers: Record<string, string> = {},
): Promise<HttpAnswer> {
  return send(url, {
    path,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...(token !== undefined && { authorization: `Bearer ${token}` }), ...headers },
  });
}

export interface AmAlertSpec {
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  status?: 'firing' | 'resolved';
  startsAt?: string;
  endsAt?: string;
  fingerprint?: string;
}

/**
 * A webhook payload exactly as Alertmanager v0.27 sends it (notify/webhook/webhook.go,
 * template.Data plus version, groupKey and truncatedAlerts). Firing alerts carry the
 * zero time as endsAt, as Alertmanager writes it.
 */
export function alertmanagerPayload(alerts: AmAlertSpec[], opts: { receiver?: string; groupBy?: string[] } = {}) {
  const groupBy = opts.groupBy ?? ['alertname'];
  const full = alerts.map((a) => ({
    status: a.status ?? 'firing',
    labels: a.labels,
    annotations: a.annotations ?? {},
    startsAt: a.startsAt ?? '2025-03-01T10:00:00.123456789Z',
    endsAt: a.endsAt ?? (a.status === 'resolved' ? '2025-03-01T10:15:00.123456789Z' : '0001-01-01T00:00:00Z'),
    generatorURL: `http://prometheus-0:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1`,
    fingerprint: a.fingerprint ?? randomBytes(8).toString('hex'),
  }));
  const common = (key: 'labels' | 'annotations') => {
    const [first, ...rest] = full.map((a) => a[key]);
    return Object.fromEntries(Object.entries(first ?? {}).filter(([k, v]) => rest.every((o) => o[k] === v)));
  };
  const groupLabels = Object.fromEntries(groupBy.filter((k) => full[0]?.labels[k] !== undefined).map((k) => [k, full[0]!.labels[k]!]));
  return {
    receiver: opts.receiver ?? 'remediator',
    status: full.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    alerts: full,
    groupLabels,
    commonLabels: common('labels'),
    commonAnnotations: common('annotations'),
    externalURL: 'http://alertmanager-0:9093',
    version: '4',
    groupKey: `{}/{severity=~"critical|warning"}:{${Object.entries(groupLabels)
      .map(([k, v]) => `${k}="${v}"`)
      .join(', ')}}`,
    truncatedAlerts: 0,
  };
}

/** The RemediationRequests in `namespace`. */
export async function listRequests(kc: KubeConfig, namespace: string): Promise<RemediationRequest[]> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const list = (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'remediationrequests' })) as {
    items: RemediationRequest[];
  };
  return list.items;
}

/** Reads one metric sample's value from a Prometheus text exposition. */
export function metricValue(exposition: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

// ---------- SNS ----------

export interface SigningIdentity {
  key: string;
  cert: string;
  x509: X509Certificate;
}

/** A throwaway RSA key and self-signed certificate for signing SNS messages (Node cannot issue certificates; openssl can). */
export function snsSigningIdentity(): SigningIdentity {
  const { key, cert } = selfSignedSnsCertificate();
  return { key, cert, x509: new X509Certificate(cert) };
}

/** Serves one certificate for every URL, and counts the requests (to show caching). */
export class TestCertificateSource implements CertificateSource {
  fetches = 0;
  constructor(private readonly x509: X509Certificate) {}
  async get(): Promise<X509Certificate> {
    this.fetches++;
    return this.x509;
  }
}

export type UnsignedSns = Omit<SnsEnvelope, 'Signature' | 'SignatureVersion' | 'SigningCertURL'>;

export function signSns(
  env: UnsignedSns,
  key: string,
  version: '1' | '2' = '2',
  certUrl = 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem',
): SnsEnvelope {
  const unsigned = { ...env, SignatureVersion: version, SigningCertURL: certUrl };
  const signature = sign(version === '1' ? 'RSA-SHA1' : 'RSA-SHA256', Buffer.from(stringToSign(unsigned), 'utf8'), key).toString('base64');
  return { ...unsigned, Signature: signature };
}

/** A CloudWatch alarm state change as CloudWatch publishes it to SNS. */
export function cloudWatchAlarm(opts: {
  name: string;
  state: 'ALARM' | 'OK' | 'INSUFFICIENT_DATA';
  instanceId: string;
  changedAt: string;
  region?: string;
  account?: string;
}) {
  const region = opts.region ?? 'us-east-1';
  const account = opts.account ?? '123456789012';
  return {
    AlarmName: opts.name,
    AlarmDescription: `CPU high on ${opts.instanceId}`,
    AWSAccountId: account,
    AlarmConfigurationUpdatedTimestamp: '2025-03-01T09:00:00.000+0000',
    NewStateValue: opts.state,
    NewStateReason:
      'Threshold Crossed: 1 out of the last 1 datapoints [97.5 (01/03/25 09:55:00)] was greater than the threshold (90.0) (minimum 1 datapoint for OK -> ALARM transition).',
    StateChangeTime: opts.changedAt,
    Region: 'US East (N. Virginia)',
    AlarmArn: `arn:aws:cloudwatch:${region}:${account}:alarm:${opts.name}`,
    OldStateValue: opts.state === 'ALARM' ? 'OK' : 'ALARM',
    OKActions: [],
    AlarmActions: [`arn:aws:sns:${region}:${account}:alarms`],
    InsufficientDataActions: [],
    Trigger: {
      MetricName: 'CPUUtilization',
      Namespace: 'AWS/EC2',
      StatisticType: 'Statistic',
      Statistic: 'AVERAGE',
      Unit: null,
      Dimensions: [{ value: opts.instanceId, name: 'InstanceId' }],
      Period: 300,
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 90.0,
      TreatMissingData: 'missing',
      EvaluateLowSampleCountPercentile: '',
    },
  };
}

// ---------- a stoppable TCP proxy in front of the API server ----------

/**
 * Forwards TCP to `target` (TLS passes through untouched). `stop()` closes the port and
 * cuts every connection — the API server is unreachable, exactly like an outage;
 * `start()` opens it again on the same port.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  static async create(targetUrl: string): Promise<TcpProxy> {
    const u = new URL(targetUrl);
    const proxy = new TcpProxy(await freePort(), { host: u.hostname, port: Number(u.port) });
    await proxy.start();
    return proxy;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  start(): Promise<void> {
    if (this.server) return Promise.resolve();
    const server = createServer((client) => {
      const upstream = createConnection(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
