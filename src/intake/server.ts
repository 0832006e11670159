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
 * address; listener.ts). Each request then passes, in order (`handle` below): route and
 * method; on the authenticated routes the in-flight bound (beyond it 429); readiness
 * (policy cache synced, own identity known); the namespace asked for; then the route:
 * authentication, content type and size, JSON, schema, matching and request creation
 * (routes.ts). The SNS route is open to anyone, so it reads the body under a short
 * timeout and verifies the signature *before* it takes one of its own slots
 * (sns-route.ts). Every refusal is a JSON `{ "error": ... }` that says what to fix.
 * Plain node:http: a handful of routes need no framework, and owning the server lets us
 * bound bodies and connections exactly.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AlertPolicy } from '../api/v1alpha1/index.js';
import { BearerAuthenticator, type SecretRef } from './auth.js';
import { IntakeError, type Outcome } from './errors.js';
import { drainRequest, sendJson } from './http.js';
import type { IntakeKubeApi } from './kube.js';
import { IntakeListener, snsInflightBudget, type Slot } from './listener.js';
import { IntakeMetrics } from './metrics.js';
import { AlertProcessor } from './processor.js';
import { describeError, withRetry } from './retry.js';
import { answerOther, namespaceOf, ROUTES, sendError, TokenRoutes } from './routes.js';
import { LIMITS } from './schemas.js';
import {
  HttpsCertificateSource,
  SnsVerifier,
  strictConfirmUrlPolicy,
  type CertificateSource,
  type ConfirmUrlPolicy,
  type Fetch,
} from './sns.js';
import { SnsRoute } from './sns-route.js';

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

const DEFAULTS = {
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

export class IntakeServer {
  private readonly listener: IntakeListener;
  private readonly metrics: IntakeMetrics;
  private readonly tokenRoutes: TokenRoutes;
  private readonly snsRoute: SnsRoute;
  private readonly log: Logger;
  private identityValue: string | undefined;
  private stopping = false;

  constructor(private readonly opts: IntakeServerOptions) {
    this.log = opts.logger.child({ component: 'intake' });
    this.metrics = new IntakeMetrics(opts.registry);
    this.identityValue = opts.identity;
    const processor = new AlertProcessor({
      kube: opts.kube,
      policies: opts.policies,
      identity: () => this.identityValue ?? '',
      metrics: this.metrics,
      logger: this.log,
      retryBudgetMs: opts.retryBudgetMs ?? DEFAULTS.retryBudgetMs,
      watchNamespaces: opts.watchNamespaces,
    });
    this.tokenRoutes = new TokenRoutes({
      auth: new BearerAuthenticator({
        kube: opts.kube,
        secret: opts.tokenSecret,
        logger: this.log,
        ttlMs: opts.tokenTtlMs ?? DEFAULTS.tokenTtlMs,
      }),
      processor,
      log: this.log,
      bodyTimeoutMs: opts.bodyTimeoutMs ?? DEFAULTS.bodyTimeoutMs,
      maxAlerts: opts.maxAlerts ?? DEFAULTS.maxAlerts,
      dedupWindowMs: opts.dedupWindowMs ?? DEFAULTS.dedupWindowMs,
      now: opts.now ?? Date.now,
    });
    this.snsRoute = new SnsRoute({
      verifier: new SnsVerifier({
        certificates: opts.certificates ?? new HttpsCertificateSource(),
        allowedTopics: opts.snsTopicAllowlist ?? new Set(),
        now: opts.now,
      }),
      processor,
      log: this.log,
      bodyTimeoutMs: opts.snsBodyTimeoutMs ?? DEFAULTS.snsBodyTimeoutMs,
      confirmUrlPolicy: opts.confirmUrlPolicy ?? strictConfirmUrlPolicy,
      fetch: opts.fetch ?? ((u, init) => fetch(u, init)),
    });
    const maxInflight = opts.maxInflight ?? DEFAULTS.maxInflight;
    this.listener = new IntakeListener({
      handler: (req, res) => void this.handle(req, res),
      log: this.log,
      metrics: this.metrics,
      headersTimeoutMs: opts.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs,
      maxConnections: opts.maxConnections ?? DEFAULTS.maxConnections,
      maxConnectionsPerSource: opts.maxConnectionsPerSource ?? DEFAULTS.maxConnectionsPerSource,
      maxInflight,
      snsMaxInflight: opts.snsMaxInflight ?? snsInflightBudget(maxInflight),
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
    const a = this.listener.address;
    return a && typeof a === 'object' ? a.port : undefined;
  }

  async start(): Promise<void> {
    await this.listener.listen(this.opts.bindAddress);
    this.log.info(
      { address: this.listener.address, snsTopics: [...(this.opts.snsTopicAllowlist ?? [])], tokenSecret: this.opts.tokenSecret },
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
    await this.listener.close(graceMs);
    this.log.info('intake stopped');
  }

  /** Every request, through the checks in the order the opening paragraph gives. */
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
      answerOther(req, res, url.pathname, this.ready, this.metrics);
      return;
    }
    let outcome: Outcome = 'error';
    const slot: Slot = {};
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
      // (sns-route.ts): a stranger trickling a body must not hold a slot a real delivery needs.
      if (source !== 'sns') this.listener.takeSlot(slot, 'authenticated');
      if (!this.ready) {
        throw new IntakeError(
          503,
          'the intake is starting: the AlertPolicy cache has not synced yet (or the intake has not learnt its own identity); retry shortly',
          'unavailable',
          undefined,
          { 'retry-after': '5' },
        );
      }
      const namespace = namespaceOf(url, this.opts.watchNamespaces ?? []);
      const reply =
        source === 'sns'
          ? await this.snsRoute.handle(req, res, namespace, () => this.listener.takeSlot(slot, 'sns'))
          : await this.tokenRoutes.handle(req, res, source, namespace);
      outcome = reply.outcome;
      sendJson(res, reply.status, reply.body);
    } catch (error) {
      outcome = sendError(this.log, req, res, source, error);
    } finally {
      // Released when the work is done, not when the client hangs up: a sender that
      // disconnects early must not free a slot while its alerts are still being created.
      this.listener.releaseSlot(slot);
      if (!req.complete) drainRequest(req);
    }
  }
}
