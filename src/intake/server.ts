/**
 * The intake HTTP server (docs/intake.md), on its own port (`--intake-bind-address`, default
 * `:8090`) in the controller process, on every replica — it needs only the AlertPolicy
 * cache, which every replica keeps, not the leader Lease.
 *
 *   POST /v1/alerts/alertmanager   Alertmanager webhook v4        bearer token
 *   POST /v1/alerts/sns            CloudWatch alarms via SNS      topic allowlist + signature
 *   POST /v1/alerts                one generic JSON alert         bearer token
 *   POST /v1/alerts/grafana        Grafana alerting webhook       bearer token
 *   POST /v1/alerts/datadog        Datadog webhook                bearer token
 *   POST /v1/alerts/pagerduty      PagerDuty v3 webhook           bearer token
 *   GET  /healthz, /readyz
 *
 * A connection must get past the caps on open connections (overall and per source
 * address). Each request then passes, in order: route and method; on the authenticated
 * routes the in-flight bound (beyond it 429); readiness (policy cache synced, own identity
 * known); authentication; content type and size; JSON; schema; then matching and request
 * creation. The SNS route is open to anyone, so it reads the body under a short timeout
 * and verifies the signature *before* it takes one of its own slots (beyond them 503,
 * which SNS retries): a stranger trickling a body holds a connection, never a slot. Every refusal is a JSON `{ "error": ... }` that
 * says what to fix. Plain node:http: a handful of routes need no framework, and owning the
 * server lets us bound bodies and connections exactly.
 * May import: api, runtime, observability.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AlertPolicy } from '../api/v1alpha1/index.js';
import { parseBindAddress } from '../observability/server.js';
import type { IntakeAlert } from './alert.js';
import { parseAlertmanager } from './alertmanager.js';
import { BearerAuthenticator, type SecretRef } from './auth.js';
import { parseCloudWatchAlarm } from './cloudwatch.js';
import { ApiUnavailableError, IntakeError, type Outcome } from './errors.js';
import { parseGeneric } from './generic.js';
import {
  checkContentType,
  CLOSE_GRACE_MS,
  closeAfterAnswer,
  drainRequest,
  earlyAnswerHeaders,
  parseJson,
  readBody,
  sendJson,
  untilUploadPauses,
} from './http.js';
import type { IntakeKubeApi } from './kube.js';
import { IntakeMetrics } from './metrics.js';
import { isDns1123Label } from './naming.js';
import { parseSender, type Sender } from './senders.js';
import { AlertProcessor, type ProcessResult } from './processor.js';
import { describeError, withRetry } from './retry.js';
import { checkers, LIMITS, validate } from './schemas.js';
import {
  checkSubscribeUrl,
  HttpsCertificateSource,
  isSnsMessageType,
  SnsVerifier,
  strictConfirmUrlPolicy,
  type CertificateSource,
  type ConfirmUrlPolicy,
  type Fetch,
} from './sns.js';

export type IntakeSource = 'alertmanager' | 'sns' | 'generic' | Sender;

export interface IntakeServerOptions {
  /** `host:port` or `:port`; port 0 picks a free one (tests). */
  bindAddress: string;
  kube: IntakeKubeApi;
  /** The cached AlertPolicies (the operator's informer). */
  policies: () => readonly AlertPolicy[];
  /** The namespaces the controller watches (`--watch-namespace`); empty or absent for all. */
  watchNamespaces?: readonly string[];
  /** True once the policy cache has synced. */
  cacheSynced: () => boolean;
  logger: Logger;
  registry: Registry;
  tokenSecret?: SecretRef;
  tokenTtlMs?: number;
  /** `spec.requestedBy`; discovered with a SelfSubjectReview when not given. */
  identity?: string;
  snsTopicAllowlist?: ReadonlySet<string>;
  /** Where SNS signing certificates come from (default: HTTPS, cached). */
  certificates?: CertificateSource;
  /** Which SubscribeURLs may be visited (default: https on an SNS host of AWS only). */
  confirmUrlPolicy?: ConfirmUrlPolicy;
  /** Used to visit a SubscribeURL. */
  fetch?: Fetch;
  /** Requests in flight at once on the authenticated routes (`--intake-max-inflight`). */
  maxInflight?: number;
  /** Requests in flight at once on the SNS route; default a quarter of maxInflight, at least 4. */
  snsMaxInflight?: number;
  /** How long the SNS route waits for a request body (default 5 s). */
  snsBodyTimeoutMs?: number;
  /** How long the authenticated routes wait for a request body (default 15 s). */
  bodyTimeoutMs?: number;
  /** How long a connection may take to send its request headers (default 10 s). */
  headersTimeoutMs?: number;
  /** Open connections at once, all sources (`--intake-max-connections`). */
  maxConnections?: number;
  /** Open connections at once from one source address (`--intake-max-connections-per-source`); 0 for no per-source cap. */
  maxConnectionsPerSource?: number;
  maxAlerts?: number;
  retryBudgetMs?: number;
  dedupWindowMs?: number;
  now?: () => number;
}

export const DEFAULTS = {
  bindAddress: ':8090',
  maxInflight: 64,
  maxAlerts: LIMITS.defaultMaxAlerts,
  retryBudgetMs: 5_000,
  dedupWindowMs: 60 * 60_000,
  tokenTtlMs: 10_000,
  // SNS posts a small body at once; a sender still trickling one after this is not SNS.
  snsBodyTimeoutMs: 5_000,
  bodyTimeoutMs: 15_000,
  headersTimeoutMs: 10_000,
  maxConnections: 512,
  maxConnectionsPerSource: 64,
} as const;

/** The address a connection comes from, `::ffff:10.0.0.1` and `10.0.0.1` alike. */
function sourceAddress(socket: Socket): string {
  const a = socket.remoteAddress ?? 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/**
 * The SNS route's own in-flight budget. It is unauthenticated (anyone can reach it; trust
 * comes from the signature, checked only once the body is in), so it must not share a
 * budget with the token-authenticated routes: strangers holding SNS slots would
 * otherwise make Alertmanager's posts 429. A quarter of the authenticated budget, at
 * least 4, is plenty for CloudWatch alarm traffic.
 */
export function snsInflightBudget(maxInflight: number): number {
  return Math.max(4, Math.floor(maxInflight / 4));
}

const ROUTES: Record<string, IntakeSource> = {
  '/v1/alerts/alertmanager': 'alertmanager',
  '/v1/alerts/sns': 'sns',
  '/v1/alerts': 'generic',
  '/v1/alerts/grafana': 'grafana',
  '/v1/alerts/datadog': 'datadog',
  '/v1/alerts/pagerduty': 'pagerduty',
};

/** Whether a request holds a processing slot (released when its work is done). */
interface Slot {
  taken: boolean;
}

/** What a route answers when it accepted the request. */
interface Reply {
  status: number;
  body: Record<string, unknown>;
  outcome: Outcome;
}

export class IntakeServer {
  private readonly server: Server;
  private readonly metrics: IntakeMetrics;
  private readonly auth: BearerAuthenticator;
  private readonly sns: SnsVerifier;
  private readonly processor: AlertProcessor;
  private readonly log: Logger;
  private readonly sockets = new Set<Socket>();
  /** Open connections per source address (see acceptConnection). */
  private readonly perSource = new Map<string, number>();
  private identityValue: string | undefined;
  /** Requests in flight per budget: the authenticated routes share one, SNS has its own. */
  private inflight = 0;
  private snsInflight = 0;
  private stopping = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: IntakeServerOptions) {
    this.log = opts.logger.child({ component: 'intake' });
    this.metrics = new IntakeMetrics(opts.registry);
    this.identityValue = opts.identity;
    this.auth = new BearerAuthenticator({
      kube: opts.kube,
      secret: opts.tokenSecret,
      logger: this.log,
      ttlMs: opts.tokenTtlMs ?? DEFAULTS.tokenTtlMs,
    });
    this.sns = new SnsVerifier({
      certificates: opts.certificates ?? new HttpsCertificateSource(),
      allowedTopics: opts.snsTopicAllowlist ?? new Set(),
      now: opts.now,
    });
    this.processor = new AlertProcessor({
      kube: opts.kube,
      policies: opts.policies,
      identity: () => this.identityValue ?? '',
      metrics: this.metrics,
      logger: this.log,
      retryBudgetMs: opts.retryBudgetMs ?? DEFAULTS.retryBudgetMs,
      watchNamespaces: opts.watchNamespaces,
    });
    // Node checks header and request timeouts only every connectionsCheckingInterval
    // (30 s by default), which would let a silent connection live three times its limit.
    this.server = createServer({ connectionsCheckingInterval: 1_000 }, (req, res) => void this.handle(req, res));
    // `Expect: 100-continue`: the handler answers 100 only once the checks that need no
    // body have passed (readBody), so a refused sender never uploads it.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res));
    // Slow or stalled senders must not hold a connection forever: headers within 10 s,
    // the body within its route's timeout (readBody), the whole request within 30 s.
    this.server.headersTimeout = opts.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs;
    this.server.requestTimeout = 30_000;
    this.server.keepAliveTimeout = 5_000;
    this.server.on('connection', (socket: Socket) => this.acceptConnection(socket));
    this.server.on('clientError', (_err, socket: Socket) => {
      // Malformed HTTP never reaches a handler: answer 400 and close.
      if (socket.writable)
        socket.end(
          'HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"error":"malformed HTTP request"}',
        );
      else socket.destroy();
    });
  }

  /**
   * Caps open connections overall and per source address. Each connection costs memory
   * (up to a body's cap) and a file descriptor whatever its route, and the SNS route is
   * open to anyone: without a cap, one host opening thousands of idle or trickling
   * connections exhausts the process before any timeout fires. Beyond a cap the
   * connection gets a bare 503 (it has sent nothing we could route yet) and is closed.
   */
  private acceptConnection(socket: Socket): void {
    const source = sourceAddress(socket);
    const total = this.opts.maxConnections ?? DEFAULTS.maxConnections;
    const perSource = this.opts.maxConnectionsPerSource ?? DEFAULTS.maxConnectionsPerSource;
    const fromSource = this.perSource.get(source) ?? 0;
    const overTotal = this.sockets.size >= total;
    if (overTotal || (perSource > 0 && fromSource >= perSource)) {
      const limit = overTotal
        ? `${total} open connections in all (--intake-max-connections)`
        : `${perSource} open connections from ${source} (--intake-max-connections-per-source)`;
      this.log.warn({ remote: source, open: this.sockets.size, fromSource }, `intake connection refused: over ${limit}`);
      this.metrics.requests.inc({ source: 'other', outcome: 'overloaded' });
      const body = JSON.stringify({ error: `too many connections: the intake accepts ${limit}; retry later` });
      socket.on('error', () => undefined);
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
          `retry-after: 1\r\nconnection: close\r\n\r\n${body}`,
      );
      setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
      return;
    }
    this.sockets.add(socket);
    this.perSource.set(source, fromSource + 1);
    socket.once('close', () => {
      this.sockets.delete(socket);
      const left = (this.perSource.get(source) ?? 1) - 1;
      if (left <= 0) this.perSource.delete(source);
      else this.perSource.set(source, left);
    });
  }

  /** Ready to accept alerts: policy cache synced, own identity known, not stopping. */
  get ready(): boolean {
    return !this.stopping && this.opts.cacheSynced() && this.identityValue !== undefined;
  }

  get identity(): string | undefined {
    return this.identityValue;
  }

  get port(): number | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  async start(): Promise<void> {
    const { host, port } = parseBindAddress(this.opts.bindAddress);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.log.info(
      { address: this.server.address(), snsTopics: [...(this.opts.snsTopicAllowlist ?? [])], tokenSecret: this.opts.tokenSecret },
      'intake listening',
    );
    if (this.identityValue === undefined) void this.discoverIdentity();
  }

  /**
   * Learns who we are from the API server (SelfSubjectReview), retrying until it answers:
   * until then the intake is not ready, since a request without `requestedBy` would be
   * refused by the admission policy.
   */
  private async discoverIdentity(): Promise<void> {
    for (let attempt = 0; !this.stopping && this.identityValue === undefined; attempt++) {
      try {
        this.identityValue = await withRetry('SelfSubjectReview', () => this.opts.kube.whoAmI(), { budgetMs: 5_000 });
        this.log.info({ identity: this.identityValue }, 'intake identity (spec.requestedBy of the requests it creates)');
      } catch (error) {
        const delay = Math.min(30_000, 1_000 * 2 ** attempt);
        this.log.warn(
          { err: describeError(error), retryInMs: delay },
          'cannot learn own user name with a SelfSubjectReview; set --intake-identity to skip it. Retrying',
        );
        await sleep(delay, undefined, { ref: false });
      }
    }
  }

  /**
   * Graceful stop, first in the controller's shutdown: refuse new requests (503 with
   * `Connection: close`, so load balancers move on), let in-flight ones finish for up
   * to `graceMs`, then close every connection.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inflight + this.snsInflight > 0) {
      await Promise.race([new Promise<void>((resolve) => this.idleWaiters.push(resolve)), sleep(graceMs, undefined, { ref: false })]);
    }
    // Let the last answers flush and their connections go idle, then cut what is left.
    this.server.closeIdleConnections();
    await Promise.race([closed, sleep(1_000, undefined, { ref: false })]);
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
    this.log.info('intake stopped');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://intake');
    } catch {
      sendJson(res, 400, { error: 'the request target is not a valid URL path' }, { connection: 'close' });
      return;
    }
    const source = ROUTES[url.pathname];
    if (!source) {
      this.handleOther(req, res, url.pathname);
      return;
    }
    let outcome: Outcome = 'error';
    const slot: Slot = { taken: false };
    res.once('close', () => {
      this.metrics.requests.inc({ source, outcome });
      this.metrics.duration.observe({ source }, Number(process.hrtime.bigint() - started) / 1e9);
    });
    try {
      if (req.method !== 'POST')
        throw new IntakeError(405, `${req.method} is not allowed here: POST the alert payload`, 'method_not_allowed', undefined, {
          allow: 'POST',
        });
      if (this.stopping)
        throw new IntakeError(503, 'the intake is shutting down; send again (another replica will take it)', 'unavailable', undefined, {
          connection: 'close',
          'retry-after': '1',
        });
      // SNS takes its slot only once the message is read and its signature verified
      // (handleSns): a stranger trickling a body must not hold a slot a real delivery needs.
      if (source !== 'sns') this.takeSlot(slot, source);
      if (!this.ready) {
        throw new IntakeError(
          503,
          'the intake is starting: the AlertPolicy cache has not synced yet (or the intake has not learnt its own identity); retry shortly',
          'unavailable',
          undefined,
          { 'retry-after': '5' },
        );
      }
      const namespace = url.searchParams.get('namespace') ?? undefined;
      if (namespace !== undefined && !isDns1123Label(namespace)) {
        throw new IntakeError(400, `query parameter namespace=${JSON.stringify(namespace.slice(0, 80))} is not a valid namespace name`);
      }
      const watched = this.opts.watchNamespaces ?? [];
      if (namespace !== undefined && watched.length > 0 && !watched.includes(namespace)) {
        throw new IntakeError(
          400,
          `namespace ${namespace} is not watched by this controller (it watches ${watched.join(', ')}; see --watch-namespace), so none of its policies can match`,
        );
      }
      const reply =
        source === 'sns' ? await this.handleSns(req, res, namespace, slot) : await this.handleAuthenticated(req, res, source, namespace);
      outcome = reply.outcome;
      sendJson(res, reply.status, reply.body);
    } catch (error) {
      outcome = this.sendError(req, res, source, error);
    } finally {
      // Released when the work is done, not when the client hangs up: a sender that
      // disconnects early must not free a slot while its alerts are still being created.
      if (slot.taken) {
        if (source === 'sns') this.snsInflight--;
        else this.inflight--;
        this.metrics.inflight.set(this.inflight + this.snsInflight);
        if (this.inflight + this.snsInflight === 0) for (const w of this.idleWaiters.splice(0)) w();
      }
      if (!req.complete) drainRequest(req);
    }
  }

  /** Takes a processing slot of `source`'s budget, or refuses: 429, or 503 for SNS (which drops a 4xx delivery but retries a 5xx). */
  private takeSlot(slot: Slot, source: IntakeSource): void {
    const maxInflight = this.opts.maxInflight ?? DEFAULTS.maxInflight;
    if (source === 'sns') {
      const snsMax = this.opts.snsMaxInflight ?? snsInflightBudget(maxInflight);
      if (this.snsInflight >= snsMax) {
        const message = `too many SNS messages in flight (${snsMax}); SNS will retry the delivery`;
        throw new IntakeError(503, message, 'overloaded', undefined, { 'retry-after': '1' });
      }
      this.snsInflight++;
    } else {
      if (this.inflight >= maxInflight) {
        const message = `too many alert requests in flight (${maxInflight}); retry after a second`;
        throw new IntakeError(429, message, 'overloaded', undefined, { 'retry-after': '1' });
      }
      this.inflight++;
    }
    slot.taken = true;
    this.metrics.inflight.set(this.inflight + this.snsInflight);
  }

  private async handleAuthenticated(
    req: IncomingMessage,
    res: ServerResponse,
    source: Exclude<IntakeSource, 'sns'>,
    namespace: string | undefined,
  ): Promise<Reply> {
    await this.auth.authenticate(req.headers.authorization);
    checkContentType(req, false);
    const body = parseJson(await readBody(req, res, LIMITS.maxBodyBytes, this.opts.bodyTimeoutMs ?? DEFAULTS.bodyTimeoutMs));
    const now = (this.opts.now ?? Date.now)();
    const maxAlerts = this.opts.maxAlerts ?? DEFAULTS.maxAlerts;
    const dedupWindowMs = this.opts.dedupWindowMs ?? DEFAULTS.dedupWindowMs;
    let alerts: IntakeAlert[];
    if (source === 'alertmanager') alerts = parseAlertmanager(body, maxAlerts);
    else if (source === 'generic') alerts = [parseGeneric(body, now, dedupWindowMs)];
    else {
      const parsed = parseSender(source, body, { nowMs: now, dedupWindowMs, maxAlerts });
      if (parsed.kind === 'ignored') {
        this.log.debug({ source, reason: parsed.reason }, 'alert acknowledged without effect');
        return { status: 200, outcome: 'ok', body: { alerts: 0, ignored: parsed.reason } };
      }
      alerts = parsed.alerts;
    }
    return this.accepted(await this.processor.process(alerts, namespace));
  }

  private async handleSns(req: IncomingMessage, res: ServerResponse, namespace: string | undefined, slot: Slot): Promise<Reply> {
    checkContentType(req, true);
    // A short body timeout: this route is open to anyone, and a slot held by a sender
    // trickling its body is a slot SNS cannot use.
    const body = parseJson(await readBody(req, res, LIMITS.maxBodyBytes, this.opts.snsBodyTimeoutMs ?? DEFAULTS.snsBodyTimeoutMs));
    const env = validate(checkers.sns, body, 'SNS message');
    if (!isSnsMessageType(env.Type)) {
      throw new IntakeError(
        400,
        `unknown SNS message Type ${JSON.stringify(env.Type)}: expected Notification, SubscriptionConfirmation or UnsubscribeConfirmation`,
      );
    }
    const headerType = req.headers['x-amz-sns-message-type'];
    if (headerType !== undefined && headerType !== env.Type)
      throw new IntakeError(
        400,
        `x-amz-sns-message-type header (${headerType.slice(0, 40)}) disagrees with the message Type (${env.Type})`,
      );
    const headerTopic = req.headers['x-amz-sns-topic-arn'];
    if (headerTopic !== undefined && headerTopic !== env.TopicArn)
      throw new IntakeError(400, 'x-amz-sns-topic-arn header disagrees with the message TopicArn');
    await this.sns.verify(env);
    this.takeSlot(slot, 'sns');
    const log = { topic: env.TopicArn, messageId: env.MessageId, type: env.Type };
    switch (env.Type) {
      case 'SubscriptionConfirmation': {
        const confirmUrl = checkSubscribeUrl(env.SubscribeURL, env.TopicArn, this.opts.confirmUrlPolicy ?? strictConfirmUrlPolicy);
        const fetcher = this.opts.fetch ?? ((u, init) => fetch(u, init));
        let res: Response;
        try {
          res = await fetcher(confirmUrl.href, { signal: AbortSignal.timeout(10_000), redirect: 'error' });
          await res.body?.cancel();
        } catch (error) {
          this.log.warn({ ...log, err: (error as Error).message }, 'could not confirm the SNS subscription');
          throw new IntakeError(
            502,
            `confirming the SNS subscription failed: ${(error as Error).message}; confirm it in the SNS console or let SNS resend the confirmation`,
            'error',
          );
        }
        if (!res.ok) {
          this.log.warn({ ...log, status: res.status }, 'SNS refused the subscription confirmation');
          throw new IntakeError(502, `confirming the SNS subscription failed: SNS answered HTTP ${res.status}`, 'error');
        }
        this.log.info(log, 'confirmed SNS subscription');
        return { status: 200, outcome: 'ok', body: { confirmed: env.TopicArn } };
      }
      case 'UnsubscribeConfirmation':
        this.log.warn(log, 'the SNS topic unsubscribed this endpoint; CloudWatch alarms from it will no longer arrive');
        return { status: 200, outcome: 'ok', body: { acknowledged: env.Type } };
      case 'Notification': {
        const parsed = parseCloudWatchAlarm(env.Message, env.TopicArn);
        if (parsed.kind === 'ignored') {
          this.log.debug({ ...log, reason: parsed.reason }, 'SNS notification ignored');
          return { status: 200, outcome: 'ok', body: { alerts: 0, ignored: parsed.reason } };
        }
        return this.accepted(await this.processor.process([parsed.alert], namespace));
      }
    }
    throw new IntakeError(400, 'unknown SNS message Type');
  }

  private accepted(result: ProcessResult): Reply {
    return { status: 200, outcome: 'ok', body: { ...result } };
  }

  /** Answers an error and returns its outcome. */
  private sendError(req: IncomingMessage, res: ServerResponse, source: IntakeSource, error: unknown): Outcome {
    if (error instanceof IntakeError) {
      const level = error.status >= 500 ? 'warn' : 'info';
      this.log[level](
        { source, status: error.status, outcome: error.outcome, remote: req.socket.remoteAddress, error: error.message },
        'intake request refused',
      );
      const headers: Record<string, string> = { ...earlyAnswerHeaders(req), ...error.headers };
      // A body too slow or too large: this connection is not worth keeping.
      if (error.status === 408 || error.status === 413) headers.connection = 'close';
      const answer = () => {
        sendJson(res, error.status, { error: error.message, ...(error.details && { details: error.details }) }, headers);
        if (headers.connection === 'close') closeAfterAnswer(req, res);
      };
      // A client still uploading an oversized body: let its upload pause first (http.ts).
      if (error.status === 413 && !req.complete) void untilUploadPauses(req).then(answer);
      else answer();
      return error.outcome;
    }
    if (error instanceof ApiUnavailableError) {
      this.log.warn({ source, err: error.message }, 'Kubernetes API unavailable; answered 503');
      sendJson(
        res,
        503,
        { error: `${error.message}; nothing was lost: send the alert again (re-sending is safe, requests are deduplicated)` },
        { 'retry-after': '5' },
      );
      return 'unavailable';
    }
    this.log.error({ source, err: error }, 'intake request failed unexpectedly');
    sendJson(res, 500, { error: 'internal error while handling the alert; see the controller log' });
    return 'error';
  }

  private handleOther(req: IncomingMessage, res: ServerResponse, path: string): void {
    const finish = (outcome: Outcome) => this.metrics.requests.inc({ source: 'other', outcome });
    if ((path === '/healthz' || path === '/readyz') && (req.method === 'GET' || req.method === 'HEAD')) {
      const ok = path === '/healthz' || this.ready;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok' : 'not ready');
      return;
    }
    const routes = Object.keys(ROUTES).join(', ');
    const error = `no such endpoint ${JSON.stringify(path.slice(0, 100))}: POST to one of ${routes}`;
    sendJson(res, 404, { error }, earlyAnswerHeaders(req));
    finish('not_found');
    if (!req.complete) drainRequest(req);
  }
}
