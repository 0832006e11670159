// A fault-injecting HTTP proxy between the AWS SDK and moto_server, owned by the tests.
// moto never throttles, never loses a response and never fails a command; real AWS does
// all three. The code under test is pointed at the proxy (AWS_ENDPOINT_URL, or a
// client's `endpoint`), and the proxy forwards every request to moto unless a rule
// says otherwise:
//
//  - error:        answer at once with a protocol-correct AWS error; moto never sees it
//  - dropResponse: forward (so the side effect happens in moto), then destroy the
//                  client's connection without answering: the lost response
//  - hold:         forward, then keep moto's answer until the test releases it: the
//                  window in which a test kills the controller between "SendCommand
//                  reached AWS" and "the controller learnt the command id"
//  - rewrite:      forward, then transform moto's (2xx) response body, e.g. turn
//                  GetCommandInvocation's `Success` into `Failed`
//  - delay:        forward, then deliver moto's answer only after `ms`: a slow answer
//                  (the call took effect at once; its caller learns it late)
//
// Every request is recorded (operation, service, status, rule applied) so a test can
// assert e.g. "SendCommand was sent exactly once".
//
// Two optional hooks make the same proxy the test bed's gateway to moto (gateway.ts):
// `check` runs before any rule and may refuse a request with an AWS error (the contract
// layer, contract.ts), and `emulate` answers, in moto's place, what moto cannot (an
// operation it lacks); rules then apply to the emulated answer as to moto's.
//
// Operations are identified per wire protocol, as the SDK in node_modules speaks it:
//  - awsJson1_1 (SSM): `X-Amz-Target: AmazonSSM.SendCommand`
//  - awsJson1_0 (CloudWatch, query-compatible): `X-Amz-Target:
//    GraniteServiceVersion20100801.GetMetricData` plus `x-amzn-query-mode: true`
//  - Smithy RPCv2 CBOR (what CloudWatch may move to): `smithy-protocol: rpc-v2-cbor`,
//    path `/service/GraniteServiceVersion20100801/operation/GetMetricData`
//  - awsQuery (SNS, STS) and ec2Query (EC2): `Action=` in the url-encoded body
// The service comes from the SigV4 credential scope (`.../<region>/<service>/aws4_request`)
// or, for unsigned calls such as STS AssumeRoleWithWebIdentity, from the target prefix
// or the `Version=` field; it is reported as ec2, ssm, cloudwatch, sns or sts (the
// signing name, except CloudWatch's `monitoring`).

import { randomUUID } from 'node:crypto';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';

/** How a request was encoded. `query` is awsQuery (SNS, STS), `ec2-query` is EC2's variant. */
export type WireProtocol = 'json' | 'rpcv2-cbor' | 'query' | 'ec2-query' | 'unknown';

export type RuleKind = 'error' | 'dropResponse' | 'hold' | 'rewrite' | 'delay';

/** What happened to a request, as far as the client is concerned. */
export type CallOutcome =
  /** Still in progress (upstream not answered yet). */
  | 'pending'
  /** Passed through unchanged. */
  | 'forwarded'
  /** Answered by the proxy with an injected error; moto never saw it. */
  | 'error'
  /** Forwarded; moto's answer thrown away and the client's connection destroyed. */
  | 'dropped'
  /** Forwarded; moto's answer is being held by a `hold` rule. */
  | 'held'
  /** Held, then delivered after `release()`. */
  | 'released'
  /** Forwarded; moto's answer delivered late by a `delay` rule. */
  | 'delayed'
  /** Forwarded; the response body was transformed by a `rewrite` rule. */
  | 'rewritten'
  /** The client went away before its answer could be written (e.g. it was killed while held). */
  | 'clientGone'
  /** moto could not be reached or failed mid-response; the client got a 502. */
  | 'upstreamFailed'
  /** A rule's own code (`match` or `transform`) threw; the client's connection was destroyed. See `error`. */
  | 'proxyError'
  /** Refused by the `check` hook (the contract layer) with an AWS error; moto never saw it. */
  | 'refused';

/** The request as rule predicates see it. */
export interface RequestView {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly operation: string | undefined;
  readonly service: string | undefined;
  readonly protocol: WireProtocol;
  /** The request body as text (decompressed if the SDK compressed it; empty for CBOR). */
  readonly body: string;
  /**
   * The parsed input: the JSON object for JSON protocols; for query protocols the form
   * fields, flattened as on the wire (`InstanceId.1`, `Filter.1.Name`, ...); undefined
   * for CBOR and unknown requests.
   */
  readonly input: unknown;
}

export interface RecordedCall extends RequestView {
  /** 1, 2, 3, ... in arrival order. */
  readonly seq: number;
  /** When the request arrived (its body fully read). */
  readonly at: Date;
  /** The rule that applied to this request, if any. */
  readonly rule: { readonly id: number; readonly kind: RuleKind } | undefined;
  readonly outcome: CallOutcome;
  /** The status sent to the client; undefined while pending and when none was (dropped, client gone). */
  readonly status: number | undefined;
  /** moto's status, when the request was forwarded and moto answered. */
  readonly upstreamStatus: number | undefined;
  /** Milliseconds from arrival to the end of the exchange; undefined while in progress. */
  readonly durationMs: number | undefined;
  /** Why a request ended in `upstreamFailed` or `proxyError`. */
  readonly error: string | undefined;
}

interface RuleBase {
  /** The operation name, e.g. `SendCommand`; several; or `*` for any request. */
  operation: string | readonly string[];
  /** Only requests to this service (ec2, ssm, cloudwatch, sns, sts). */
  service?: string;
  /** How many requests the rule applies to; default: every matching request until removed. */
  times?: number;
  /** Further narrows the requests the rule applies to, e.g. on the request body. A throw counts as no match. */
  match?: (req: RequestView) => boolean;
}

export interface ErrorRule extends RuleBase {
  kind: 'error';
  /** The AWS error code, which the SDK surfaces as the error's `name`, e.g. `ThrottlingException`. */
  code: string;
  message?: string;
  /** HTTP status; default from the code (see `defaultErrorStatus`), else 400. */
  status?: number;
  /** Query protocols' `<Type>` (and the query-compatible header); default Receiver for 5xx, else Sender. */
  type?: 'Sender' | 'Receiver';
}

export interface DropResponseRule extends RuleBase {
  kind: 'dropResponse';
}

export interface HoldRule extends RuleBase {
  kind: 'hold';
}

export interface RewriteRule extends RuleBase {
  kind: 'rewrite';
  /**
   * Gets moto's 2xx response body — parsed JSON for JSON protocols, else the text (XML)
   * — and returns the new one: a string is sent as is, anything else as JSON.
   * Content-Length is recomputed. Non-2xx answers pass through untouched and do not
   * count against `times`.
   */
  transform: (body: any, call: RecordedCall) => unknown;
}

export interface DelayRule extends RuleBase {
  kind: 'delay';
  /** How long moto's answer is kept before it is delivered. */
  ms: number;
}

export type FaultRule = ErrorRule | DropResponseRule | HoldRule | RewriteRule | DelayRule;

export interface RuleHandle {
  readonly id: number;
  readonly kind: RuleKind;
  /** How many requests the rule has applied to so far. */
  readonly hits: number;
  /**
   * Resolves with the first request the rule applied to, once the rule has done its part:
   * the error sent, the response dropped or rewritten — and for `hold`, once moto has
   * answered (the side effect has happened) and the answer is being held.
   */
  readonly reached: Promise<RecordedCall>;
  /** The rule applies to no further request. (For `hold`, held answers stay held until `release()`.) */
  remove(): void;
}

export interface ReleaseResult {
  /** Held answers written to their clients. */
  delivered: number;
  /** Held answers whose clients had gone away (e.g. the process was killed). */
  clientGone: number;
}

export interface HoldHandle extends RuleHandle {
  /**
   * Lets every held answer go and opens the gate: the rule holds nothing afterwards.
   * Returns the same promise as `released`.
   */
  release(): Promise<ReleaseResult>;
  /** Settles after `release()` once every held answer has been written or found its client gone. */
  readonly released: Promise<ReleaseResult>;
}

/** An AWS error the `check` hook answers a request with. */
export interface Refusal {
  code: string;
  message: string;
  status: number;
}

/** A complete HTTP answer, as moto would give it. */
export interface UpstreamAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface FaultProxyOptions {
  /** moto's endpoint, e.g. http://127.0.0.1:40123. */
  upstream: string;
  /** Runs first, for every request: a refusal is sent as that AWS error (in the request's protocol) and nothing else happens. */
  check?: (req: RequestView) => Promise<Refusal | undefined>;
  /** Answers a request in moto's place (undefined: forward to moto). Rules apply to the answer as to moto's. */
  emulate?: (req: RequestView) => Promise<UpstreamAnswer | undefined>;
}

export interface FaultProxy {
  /** http://127.0.0.1:<port>: the value for AWS_ENDPOINT_URL or a client's `endpoint`. */
  readonly endpoint: string;
  /**
   * Adds a rule. At most one rule applies to a request: the newest active one that
   * matches (so a later rule overrides an earlier one until its `times` are used up).
   */
  addRule(rule: HoldRule): HoldHandle;
  addRule(rule: FaultRule): RuleHandle;
  /** Removes every rule and releases every held answer. */
  clearRules(): void;
  /** Recorded calls in arrival order; only those of `operation` if given. Live objects: pending ones update in place. */
  calls(operation?: string): RecordedCall[];
  /** Forgets the recorded calls. */
  clearCalls(): void;
  /**
   * Resolves with the `count`-th (default first) call of `operation` once it has finished
   * (or is held), counting calls already recorded; rejects after `timeoutMs` (default 10 s).
   */
  waitForCall(operation: string, opts?: { count?: number; timeoutMs?: number }): Promise<RecordedCall>;
  /** Closes the listener and every connection; held answers are never delivered. */
  stop(): Promise<void>;
}

/**
 * The status AWS sends with each well-known code. EC2 sends RequestLimitExceeded with
 * 503, SNS Throttled with 429; JSON services send AccessDeniedException with 400; query
 * services AccessDenied and AuthorizationError, and EC2 UnauthorizedOperation, with 403.
 */
export const DEFAULT_ERROR_STATUS: Readonly<Record<string, number>> = {
  ThrottlingException: 400,
  Throttling: 400,
  Throttled: 429,
  TooManyRequestsException: 400,
  RequestLimitExceeded: 503,
  AccessDeniedException: 400,
  AccessDenied: 403,
  AuthorizationError: 403,
  UnauthorizedOperation: 403,
  InternalServerError: 500,
  InternalFailure: 500,
  InternalError: 500,
  ServiceUnavailable: 503,
  Unavailable: 503,
};

export function defaultErrorStatus(code: string): number {
  return DEFAULT_ERROR_STATUS[code] ?? 400;
}

// ---------------------------------------------------------------------------------------
// Identifying requests

const SERVICE_BY_SIGNING_NAME: Record<string, string> = { monitoring: 'cloudwatch' };
const SERVICE_BY_TARGET_PREFIX: Record<string, string> = {
  AmazonSSM: 'ssm',
  GraniteServiceVersion20100801: 'cloudwatch',
};
const SERVICE_BY_QUERY_VERSION: Record<string, string> = {
  '2016-11-15': 'ec2',
  '2010-03-31': 'sns',
  '2011-06-15': 'sts',
  '2010-08-01': 'cloudwatch',
};
const XML_NAMESPACE: Record<string, string> = {
  sns: 'http://sns.amazonaws.com/doc/2010-03-31/',
  sts: 'https://sts.amazonaws.com/doc/2011-06-15/',
  cloudwatch: 'http://monitoring.amazonaws.com/doc/2010-08-01/',
};

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function serviceFromScope(headers: IncomingHttpHeaders, url: URL): string | undefined {
  const credential =
    /Credential=([^,\s]+)/.exec(header(headers, 'authorization') ?? '')?.[1] ?? url.searchParams.get('X-Amz-Credential') ?? undefined;
  const service = credential?.split('/')[3];
  return service ? (SERVICE_BY_SIGNING_NAME[service] ?? service) : undefined;
}

function decodeBody(raw: Buffer, encoding: string | undefined): Buffer {
  switch ((encoding ?? '').trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(raw);
    case 'deflate':
      return inflateSync(raw);
    case 'br':
      return brotliDecompressSync(raw);
    default:
      return raw;
  }
}

interface Identified {
  operation: string | undefined;
  service: string | undefined;
  protocol: WireProtocol;
  body: string;
  input: unknown;
  /** JSON protocol version of the request: `1.0` or `1.1`. */
  jsonVersion: string;
  /** The client asked for query-compatible errors (`x-amzn-query-mode: true`). */
  queryCompatible: boolean;
}

function identify(path: string, headers: IncomingHttpHeaders, raw: Buffer): Identified {
  const url = new URL(path, 'http://proxy.invalid');
  const scopeService = serviceFromScope(headers, url);
  const queryCompatible = header(headers, 'x-amzn-query-mode') === 'true';
  const contentType = header(headers, 'content-type') ?? '';
  let text = '';
  try {
    text = decodeBody(raw, header(headers, 'content-encoding')).toString('utf8');
  } catch {
    text = raw.toString('utf8');
  }

  if (header(headers, 'smithy-protocol') === 'rpc-v2-cbor') {
    const m = /\/service\/([^/]+)\/operation\/([^/?]+)/.exec(url.pathname);
    const prefix = m?.[1]?.split('.').pop();
    return {
      operation: m?.[2],
      service: scopeService ?? (prefix ? SERVICE_BY_TARGET_PREFIX[prefix] : undefined),
      protocol: 'rpcv2-cbor',
      body: '',
      input: undefined,
      jsonVersion: '1.1',
      queryCompatible,
    };
  }

  const target = header(headers, 'x-amz-target');
  if (target) {
    const dot = target.lastIndexOf('.');
    const prefix = dot >= 0 ? target.slice(0, dot) : undefined;
    let input: unknown;
    try {
      input = text ? JSON.parse(text) : {};
    } catch {
      input = undefined;
    }
    return {
      operation: dot >= 0 ? target.slice(dot + 1) : target,
      service: scopeService ?? (prefix ? SERVICE_BY_TARGET_PREFIX[prefix] : undefined),
      protocol: 'json',
      body: text,
      input,
      jsonVersion: /x-amz-json-1\.0/.test(contentType) ? '1.0' : '1.1',
      queryCompatible,
    };
  }

  const form = contentType.includes('application/x-www-form-urlencoded') ? new URLSearchParams(text) : undefined;
  const action = form?.get('Action') ?? url.searchParams.get('Action') ?? undefined;
  if (action) {
    const version = form?.get('Version') ?? url.searchParams.get('Version') ?? undefined;
    const service = scopeService ?? (version ? SERVICE_BY_QUERY_VERSION[version] : undefined);
    const params = form ?? url.searchParams;
    return {
      operation: action,
      service,
      protocol: service === 'ec2' ? 'ec2-query' : 'query',
      body: text,
      input: Object.fromEntries(params.entries()),
      jsonVersion: '1.1',
      queryCompatible,
    };
  }

  return {
    operation: undefined,
    service: scopeService,
    protocol: 'unknown',
    body: text,
    input: undefined,
    jsonVersion: '1.1',
    queryCompatible,
  };
}

// ---------------------------------------------------------------------------------------
// Error responses

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

// Just enough CBOR (RFC 8949) for an error body: a map of text strings.
function cborHead(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(n, 1);
    return b;
  }
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

function cborTextMap(obj: Record<string, string>): Buffer {
  const text = (s: string): Buffer[] => {
    const bytes = Buffer.from(s, 'utf8');
    return [cborHead(3, bytes.length), bytes];
  };
  const entries = Object.entries(obj);
  return Buffer.concat([cborHead(5, entries.length), ...entries.flatMap(([k, v]) => [...text(k), ...text(v)])]);
}

interface ErrorResponse {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer;
}

/** The error `rule` as the service of `id` would send it, in the request's own protocol. */
export function errorResponse(
  id: Pick<Identified, 'protocol' | 'service' | 'jsonVersion' | 'queryCompatible'>,
  rule: Pick<ErrorRule, 'code' | 'message' | 'status' | 'type'>,
): ErrorResponse {
  const status = rule.status ?? defaultErrorStatus(rule.code);
  const type = rule.type ?? (status >= 500 ? 'Receiver' : 'Sender');
  const message = rule.message ?? `${rule.code} (injected by the test fault proxy)`;
  const requestId = randomUUID();
  const headers: OutgoingHttpHeaders = { 'x-amzn-requestid': requestId };
  // Query-compatible services (CloudWatch) carry the query error code in a header, and
  // the SDK prefers it to the body's __type.
  if (id.queryCompatible) headers['x-amzn-query-error'] = `${rule.code};${type}`;
  switch (id.protocol) {
    case 'json':
      return {
        status,
        headers: { ...headers, 'content-type': `application/x-amz-json-${id.jsonVersion}`, 'x-amzn-errortype': rule.code },
        body: Buffer.from(JSON.stringify({ __type: rule.code, message })),
      };
    case 'rpcv2-cbor':
      return {
        status,
        headers: { ...headers, 'content-type': 'application/cbor', 'smithy-protocol': 'rpc-v2-cbor' },
        body: cborTextMap({ __type: rule.code, message }),
      };
    case 'ec2-query':
      return {
        status,
        headers: { ...headers, 'content-type': 'text/xml;charset=UTF-8' },
        body: Buffer.from(
          '<?xml version="1.0" encoding="UTF-8"?>\n' +
            `<Response><Errors><Error><Code>${xmlEscape(rule.code)}</Code><Message>${xmlEscape(message)}</Message></Error></Errors>` +
            `<RequestID>${requestId}</RequestID></Response>`,
        ),
      };
    default: {
      const ns = XML_NAMESPACE[id.service ?? ''];
      return {
        status,
        headers: { ...headers, 'content-type': 'text/xml' },
        body: Buffer.from(
          `<ErrorResponse${ns ? ` xmlns="${ns}"` : ''}><Error><Type>${type}</Type><Code>${xmlEscape(rule.code)}</Code>` +
            `<Message>${xmlEscape(message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
        ),
      };
    }
  }
}

// ---------------------------------------------------------------------------------------
// The proxy

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);
const MAX_BODY_BYTES = 64 * 1024 * 1024;

interface CallState {
  seq: number;
  at: Date;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  operation: string | undefined;
  service: string | undefined;
  protocol: WireProtocol;
  body: string;
  input: unknown;
  rule: { id: number; kind: RuleKind } | undefined;
  outcome: CallOutcome;
  status: number | undefined;
  upstreamStatus: number | undefined;
  durationMs: number | undefined;
  error: string | undefined;
}

type Upstream = UpstreamAnswer;

interface RuleState {
  id: number;
  rule: FaultRule;
  remaining: number;
  hits: number;
  active: boolean;
  resolveReached: (call: RecordedCall) => void;
  // hold only
  gateOpen?: boolean;
  openGate?: () => void;
  gate?: Promise<void>;
  holding?: Set<Promise<'delivered' | 'clientGone' | 'other'>>;
  release?: () => Promise<ReleaseResult>;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`request body over ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function responseHeaders(headers: IncomingHttpHeaders, bodyLength: number, drop: readonly string[] = []): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || drop.includes(k) || k === 'content-length') continue;
    out[k] = v;
  }
  out['content-length'] = bodyLength;
  return out;
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = new URL(opts.upstream);
  if (upstream.protocol !== 'http:') throw new Error(`fault proxy: upstream must be http://, got ${opts.upstream}`);
  // moto's werkzeug answers HTTP/1.0-style and closes each connection; don't pool.
  const agent = new Agent({ keepAlive: false });
  const rules: RuleState[] = [];
  const calls: CallState[] = [];
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();
  let nextRuleId = 1;
  let nextSeq = 1;
  let stopped = false;

  const notify = (): void => {
    for (const w of [...waiters]) w();
  };

  const finish = (call: CallState, outcome: CallOutcome, status: number | undefined, error?: string): void => {
    call.outcome = outcome;
    call.status = status;
    call.durationMs = Date.now() - call.at.getTime();
    if (error !== undefined) call.error = error;
    notify();
  };

  const operationMatches = (want: string | readonly string[], op: string | undefined): boolean => {
    const list = typeof want === 'string' ? [want] : want;
    return list.includes('*') || (op !== undefined && list.includes(op));
  };

  /** The newest active rule that matches, with one use taken. */
  const pickRule = (view: RequestView): RuleState | undefined => {
    for (let i = rules.length - 1; i >= 0; i--) {
      const r = rules[i]!;
      if (!r.active || r.remaining <= 0) continue;
      if (r.rule.kind === 'hold' && r.gateOpen) continue;
      if (!operationMatches(r.rule.operation, view.operation)) continue;
      if (r.rule.service !== undefined && r.rule.service !== view.service) continue;
      if (r.rule.match) {
        let ok = false;
        try {
          ok = r.rule.match(view);
        } catch (err) {
          process.stderr.write(`fault proxy: rule ${r.id} match() threw: ${String(err)}\n`);
        }
        if (!ok) continue;
      }
      r.remaining--;
      r.hits++;
      return r;
    }
    return undefined;
  };

  const forward = (req: IncomingMessage, raw: Buffer): Promise<Upstream> =>
    new Promise((resolve, reject) => {
      const headers: OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined || HOP_BY_HOP.has(k) || k === 'content-length') continue;
        headers[k] = v;
      }
      // SigV4 signed the proxy's host; moto does not check signatures, and answers by
      // the Authorization scope / X-Amz-Target / Action, not by Host.
      headers['host'] = upstream.host;
      headers['content-length'] = raw.length;
      const up = httpRequest(
        { agent, host: upstream.hostname, port: upstream.port || 80, method: req.method, path: req.url, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.once('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
          res.once('error', reject);
          res.once('aborted', () => reject(new Error('upstream aborted the response')));
        },
      );
      up.once('error', reject);
      up.end(raw);
    });

  const send = (res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Buffer): void => {
    res.writeHead(status, headers);
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let clientGone = false;
    res.once('close', () => {
      if (!res.writableFinished) clientGone = true;
    });
    const raw = await readBody(req);
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const id = identify(path, req.headers, raw);
    const call: CallState = {
      seq: nextSeq++,
      at: new Date(),
      method,
      path,
      headers: req.headers,
      operation: id.operation,
      service: id.service,
      protocol: id.protocol,
      body: id.body,
      input: id.input,
      rule: undefined,
      outcome: 'pending',
      status: undefined,
      upstreamStatus: undefined,
      durationMs: undefined,
      error: undefined,
    };
    calls.push(call);
    if (opts.check) {
      let refusal: Refusal | undefined;
      try {
        refusal = await opts.check(call);
      } catch (err) {
        req.socket.destroy();
        finish(call, 'proxyError', undefined, `check: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      if (refusal) {
        const e = errorResponse(id, { ...refusal, type: refusal.status >= 500 ? 'Receiver' : 'Sender' });
        if (!clientGone) send(res, e.status, e.headers, e.body);
        finish(call, 'refused', clientGone ? undefined : e.status, refusal.message);
        return;
      }
    }
    const rs = pickRule(call);
    if (rs) call.rule = { id: rs.id, kind: rs.rule.kind };
    const rule = rs?.rule;

    if (rule?.kind === 'error') {
      const e = errorResponse(id, rule);
      send(res, e.status, e.headers, e.body);
      finish(call, 'error', e.status);
      rs!.resolveReached(call);
      return;
    }

    let up: Upstream;
    try {
      up = (await opts.emulate?.(call)) ?? (await forward(req, raw));
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (!clientGone) send(res, 502, { 'content-type': 'text/plain' }, Buffer.from(`fault proxy: upstream ${opts.upstream}: ${msg}\n`));
      finish(call, 'upstreamFailed', clientGone ? undefined : 502, msg);
      return;
    }
    call.upstreamStatus = up.status;

    if (rule?.kind === 'dropResponse') {
      req.socket.destroy();
      finish(call, 'dropped', undefined);
      rs!.resolveReached(call);
      return;
    }

    if (rule?.kind === 'hold') {
      const settle = (async (): Promise<'delivered' | 'clientGone' | 'other'> => {
        call.outcome = 'held';
        notify();
        // A client that goes away while held (say, a killed controller) shows at once.
        const onClose = (): void => {
          if (call.outcome === 'held') finish(call, 'clientGone', undefined);
        };
        res.once('close', onClose);
        if (clientGone) onClose();
        rs!.resolveReached(call);
        await rs!.gate;
        res.off('close', onClose);
        if (stopped) return 'other';
        // (Read through a function: TypeScript would keep call.outcome narrowed to 'held'.)
        const outcome = (): CallOutcome => call.outcome;
        if (outcome() === 'clientGone' || clientGone || req.socket.destroyed) {
          if (outcome() !== 'clientGone') finish(call, 'clientGone', undefined);
          return 'clientGone';
        }
        send(res, up.status, responseHeaders(up.headers, up.body.length), up.body);
        finish(call, 'released', up.status);
        return 'delivered';
      })();
      rs!.holding!.add(settle);
      await settle;
      return;
    }

    if (rule?.kind === 'delay') {
      rs!.resolveReached(call);
      await new Promise((r) => setTimeout(r, rule.ms));
      if (clientGone || req.socket.destroyed) {
        finish(call, 'clientGone', undefined);
        return;
      }
      send(res, up.status, responseHeaders(up.headers, up.body.length), up.body);
      finish(call, 'delayed', up.status);
      return;
    }

    if (rule?.kind === 'rewrite') {
      if (up.status < 200 || up.status > 299) {
        // Not what the rule is about: give the use back.
        rs!.remaining++;
        rs!.hits--;
        call.rule = undefined;
      } else {
        let out: Buffer;
        try {
          const decoded = decodeBody(up.body, header(up.headers, 'content-encoding')).toString('utf8');
          const isJson = /json/.test(header(up.headers, 'content-type') ?? '');
          const input: unknown = isJson && decoded ? JSON.parse(decoded) : decoded;
          const result = rule.transform(input, call);
          out = Buffer.from(typeof result === 'string' ? result : JSON.stringify(result));
        } catch (err) {
          req.socket.destroy();
          finish(call, 'proxyError', undefined, `rule ${rs!.id} transform: ${err instanceof Error ? err.message : String(err)}`);
          return;
        }
        if (clientGone) {
          finish(call, 'clientGone', undefined);
        } else {
          send(res, up.status, responseHeaders(up.headers, out.length, ['content-encoding', 'x-amz-crc32', 'content-md5']), out);
          finish(call, 'rewritten', up.status);
        }
        rs!.resolveReached(call);
        return;
      }
    }

    if (clientGone) {
      finish(call, 'clientGone', undefined);
      return;
    }
    send(res, up.status, responseHeaders(up.headers, up.body.length), up.body);
    finish(call, 'forwarded', up.status);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // A client that hangs up mid-request is not news; anything else is a proxy bug.
      const code = (err as NodeJS.ErrnoException).code;
      if (!req.destroyed && code !== 'ECONNRESET' && code !== 'ERR_STREAM_PREMATURE_CLOSE') {
        process.stderr.write(`fault proxy: ${err instanceof Error ? err.stack : String(err)}\n`);
      }
      req.socket.destroy();
    });
  });
  // The SDK keeps connections alive; don't let a short server timeout race its reuse.
  server.keepAliveTimeout = 65_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  const addRule = (rule: FaultRule): RuleHandle | HoldHandle => {
    if (rule.times !== undefined && !(Number.isInteger(rule.times) && rule.times >= 0)) {
      throw new Error(`fault proxy: times must be a non-negative integer, got ${rule.times}`);
    }
    let resolveReached!: (call: RecordedCall) => void;
    const reached = new Promise<RecordedCall>((r) => (resolveReached = r));
    const state: RuleState = {
      id: nextRuleId++,
      rule,
      remaining: rule.times ?? Number.POSITIVE_INFINITY,
      hits: 0,
      active: true,
      resolveReached,
    };
    rules.push(state);
    const handle: { -readonly [K in keyof HoldHandle]?: HoldHandle[K] } & RuleHandle = {
      id: state.id,
      kind: rule.kind,
      get hits() {
        return state.hits;
      },
      reached,
      remove() {
        state.active = false;
      },
    };
    if (rule.kind !== 'hold') return handle;

    state.gateOpen = false;
    state.gate = new Promise<void>((r) => (state.openGate = r));
    state.holding = new Set();
    let resolveReleased!: (r: ReleaseResult) => void;
    const released = new Promise<ReleaseResult>((r) => (resolveReleased = r));
    state.release = () => {
      if (!state.gateOpen) {
        state.gateOpen = true;
        state.openGate!();
        void Promise.all(state.holding!).then((outcomes) =>
          resolveReleased({
            delivered: outcomes.filter((o) => o === 'delivered').length,
            clientGone: outcomes.filter((o) => o === 'clientGone').length,
          }),
        );
      }
      return released;
    };
    handle.release = state.release;
    handle.released = released;
    return handle as HoldHandle;
  };

  const proxy: FaultProxy = {
    endpoint: `http://127.0.0.1:${port}`,
    addRule: addRule as FaultProxy['addRule'],
    clearRules() {
      for (const r of rules.splice(0)) {
        r.active = false;
        r.release?.();
      }
    },
    calls(operation) {
      return operation === undefined ? [...calls] : calls.filter((c) => c.operation === operation);
    },
    clearCalls() {
      calls.splice(0);
    },
    waitForCall(operation, o = {}) {
      const count = o.count ?? 1;
      const timeoutMs = o.timeoutMs ?? 10_000;
      const found = (): CallState | undefined => calls.filter((c) => c.operation === operation && c.outcome !== 'pending')[count - 1];
      const now = found();
      if (now) return Promise.resolve(now);
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const c = found();
          if (!c) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(c);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const seen = calls.filter((c) => c.operation === operation).map((c) => c.outcome);
          reject(new Error(`fault proxy: no ${count}. finished ${operation} call within ${timeoutMs} ms (seen: [${seen.join(', ')}])`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const r of rules) {
        r.active = false;
        r.openGate?.();
      }
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
  return proxy;
}
