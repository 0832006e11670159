/**
 * The intake's routes: which path is which sender, the token-authenticated routes
 * (authenticate, read the body, parse the sender's payload, create the requests), the
 * health and not-found answers, and how an error becomes an answer that says what to
 * fix. The SNS route, open to anyone and verified by signature, is sns-route.ts; the
 * order of the checks every request passes is server.ts's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { IntakeAlert } from './alert.js';
import { parseAlertmanager } from './alertmanager.js';
import type { BearerAuthenticator } from './auth.js';
import { ApiUnavailableError, IntakeError, type Outcome } from './errors.js';
import { parseGeneric } from './generic.js';
import {
  checkContentType,
  closeAfterAnswer,
  drainRequest,
  earlyAnswerHeaders,
  parseJson,
  readBody,
  sendJson,
  untilUploadPauses,
} from './http.js';
import type { IntakeMetrics } from './metrics.js';
import { isDns1123Label } from './naming.js';
import type { AlertProcessor, ProcessResult } from './processor.js';
import { LIMITS } from './schemas.js';
import { parseSender, type Sender } from './senders.js';

export type IntakeSource = 'alertmanager' | 'sns' | 'generic' | Sender;

export const ROUTES: Record<string, IntakeSource> = {
  '/v1/alerts/alertmanager': 'alertmanager',
  '/v1/alerts/sns': 'sns',
  '/v1/alerts': 'generic',
  '/v1/alerts/grafana': 'grafana',
  '/v1/alerts/datadog': 'datadog',
  '/v1/alerts/pagerduty': 'pagerduty',
};

/** What a route answers when it accepted the request. */
export interface Reply {
  status: number;
  body: Record<string, unknown>;
  outcome: Outcome;
}

/** The answer for alerts handed to the processor: what was created, deduplicated, resolved. */
export function accepted(result: ProcessResult): Reply {
  return { status: 200, outcome: 'ok', body: { ...result } };
}

/** The `?namespace=` a sender may narrow matching to: a valid name, and one the controller watches. */
export function namespaceOf(url: URL, watched: readonly string[]): string | undefined {
  const namespace = url.searchParams.get('namespace') ?? undefined;
  if (namespace !== undefined && !isDns1123Label(namespace)) {
    throw new IntakeError(400, `query parameter namespace=${JSON.stringify(namespace.slice(0, 80))} is not a valid namespace name`);
  }
  if (namespace !== undefined && watched.length > 0 && !watched.includes(namespace)) {
    throw new IntakeError(
      400,
      `namespace ${namespace} is not watched by this controller (it watches ${watched.join(', ')}; see --watch-namespace), so none of its policies can match`,
    );
  }
  return namespace;
}

export interface TokenRoutesOptions {
  auth: BearerAuthenticator;
  processor: AlertProcessor;
  log: Logger;
  bodyTimeoutMs: number;
  maxAlerts: number;
  dedupWindowMs: number;
  now: () => number;
}

/** The routes a sender reaches with a bearer token: Alertmanager, the generic JSON alert, Grafana, Datadog, PagerDuty. */
export class TokenRoutes {
  constructor(private readonly opts: TokenRoutesOptions) {}

  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    source: Exclude<IntakeSource, 'sns'>,
    namespace: string | undefined,
  ): Promise<Reply> {
    const { auth, processor, log, maxAlerts, dedupWindowMs } = this.opts;
    await auth.authenticate(req.headers.authorization);
    checkContentType(req, false);
    const body = parseJson(await readBody(req, res, LIMITS.maxBodyBytes, this.opts.bodyTimeoutMs));
    const now = this.opts.now();
    let alerts: IntakeAlert[];
    if (source === 'alertmanager') alerts = parseAlertmanager(body, maxAlerts);
    else if (source === 'generic') alerts = [parseGeneric(body, now, dedupWindowMs)];
    else {
      const parsed = parseSender(source, body, { nowMs: now, dedupWindowMs, maxAlerts });
      if (parsed.kind === 'ignored') {
        log.debug({ source, reason: parsed.reason }, 'alert acknowledged without effect');
        return { status: 200, outcome: 'ok', body: { alerts: 0, ignored: parsed.reason } };
      }
      alerts = parsed.alerts;
    }
    return accepted(await processor.process(alerts, namespace));
  }
}

/** Answers an error and returns its outcome. */
export function sendError(log: Logger, req: IncomingMessage, res: ServerResponse, source: IntakeSource, error: unknown): Outcome {
  if (error instanceof IntakeError) {
    const level = error.status >= 500 ? 'warn' : 'info';
    log[level](
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
    log.warn({ source, err: error.message }, 'Kubernetes API unavailable; answered 503');
    sendJson(
      res,
      503,
      { error: `${error.message}; nothing was lost: send the alert again (re-sending is safe, requests are deduplicated)` },
      { 'retry-after': '5' },
    );
    return 'unavailable';
  }
  log.error({ source, err: error }, 'intake request failed unexpectedly');
  sendJson(res, 500, { error: 'internal error while handling the alert; see the controller log' });
  return 'error';
}

/** A path that is no alert route: /healthz, /readyz (ready or not), or a 404 that lists the routes. */
export function answerOther(req: IncomingMessage, res: ServerResponse, path: string, ready: boolean, metrics: IntakeMetrics): void {
  if ((path === '/healthz' || path === '/readyz') && (req.method === 'GET' || req.method === 'HEAD')) {
    const ok = path === '/healthz' || ready;
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok' : 'not ready');
    return;
  }
  const routes = Object.keys(ROUTES).join(', ');
  const error = `no such endpoint ${JSON.stringify(path.slice(0, 100))}: POST to one of ${routes}`;
  sendJson(res, 404, { error }, earlyAnswerHeaders(req));
  metrics.requests.inc({ source: 'other', outcome: 'not_found' });
  if (!req.complete) drainRequest(req);
}
