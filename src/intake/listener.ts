/**
 * The intake's listener: the node:http server under the routes, and what it bounds before
 * any route runs. Open connections are capped overall and per source address; each
 * request that does work holds a processing slot of its budget (the token-authenticated
 * routes share one, the open SNS route has its own); slow senders meet header, body and
 * request timeouts; and a graceful stop lets the work in flight finish before it cuts
 * the connections. What a request is and who may send it is the routes' business
 * (routes.ts, sns-route.ts); the order of the checks is server.ts's.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { parseBindAddress } from '../observability/server.js';
import { IntakeError } from './errors.js';
import { CLOSE_GRACE_MS } from './http.js';
import type { IntakeMetrics } from './metrics.js';

/** Which in-flight budget a request counts against. */
export type Budget = 'authenticated' | 'sns';

/** Whether a request holds a processing slot (released when its work is done, not when the client hangs up). */
export interface Slot {
  taken?: Budget;
}

export interface ListenerOptions {
  /** Every request, and every `Expect: 100-continue` request before its body. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  log: Logger;
  metrics: IntakeMetrics;
  headersTimeoutMs: number;
  maxConnections: number;
  /** 0 for no per-source cap. */
  maxConnectionsPerSource: number;
  maxInflight: number;
  snsMaxInflight: number;
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

/** The address a connection comes from, `::ffff:10.0.0.1` and `10.0.0.1` alike. */
function sourceAddress(socket: Socket): string {
  const a = socket.remoteAddress ?? 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export class IntakeListener {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** Open connections per source address (see acceptConnection). */
  private readonly perSource = new Map<string, number>();
  private readonly inflight: Record<Budget, number> = { authenticated: 0, sns: 0 };
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: ListenerOptions) {
    // Node checks header and request timeouts only every connectionsCheckingInterval
    // (30 s by default), which would let a silent connection live three times its limit.
    this.server = createServer({ connectionsCheckingInterval: 1_000 }, opts.handler);
    // `Expect: 100-continue`: the handler answers 100 only once the checks that need no
    // body have passed (readBody), so a refused sender never uploads it.
    this.server.on('checkContinue', opts.handler);
    // Slow or stalled senders must not hold a connection forever: headers within 10 s,
    // the body within its route's timeout (readBody), the whole request within 30 s.
    this.server.headersTimeout = opts.headersTimeoutMs;
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
    const { maxConnections: total, maxConnectionsPerSource: perSource } = this.opts;
    const fromSource = this.perSource.get(source) ?? 0;
    const overTotal = this.sockets.size >= total;
    if (overTotal || (perSource > 0 && fromSource >= perSource)) {
      const limit = overTotal
        ? `${total} open connections in all (--intake-max-connections)`
        : `${perSource} open connections from ${source} (--intake-max-connections-per-source)`;
      this.opts.log.warn({ remote: source, open: this.sockets.size, fromSource }, `intake connection refused: over ${limit}`);
      this.opts.metrics.requests.inc({ source: 'other', outcome: 'overloaded' });
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

  /** Takes a processing slot of `budget`, or refuses: 429, or 503 for SNS (which drops a 4xx delivery but retries a 5xx). */
  takeSlot(slot: Slot, budget: Budget): void {
    if (budget === 'sns') {
      const max = this.opts.snsMaxInflight;
      if (this.inflight.sns >= max) {
        const message = `too many SNS messages in flight (${max}); SNS will retry the delivery`;
        throw new IntakeError(503, message, 'overloaded', undefined, { 'retry-after': '1' });
      }
    } else if (this.inflight.authenticated >= this.opts.maxInflight) {
      const message = `too many alert requests in flight (${this.opts.maxInflight}); retry after a second`;
      throw new IntakeError(429, message, 'overloaded', undefined, { 'retry-after': '1' });
    }
    this.inflight[budget]++;
    slot.taken = budget;
    this.opts.metrics.inflight.set(this.inFlight);
  }

  /** Gives a slot back (once the work is done); wakes a graceful stop waiting for the last one. */
  releaseSlot(slot: Slot): void {
    if (!slot.taken) return;
    this.inflight[slot.taken]--;
    slot.taken = undefined;
    this.opts.metrics.inflight.set(this.inFlight);
    if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private get inFlight(): number {
    return this.inflight.authenticated + this.inflight.sns;
  }

  async listen(bindAddress: string): Promise<void> {
    const { host, port } = parseBindAddress(bindAddress);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  get address(): ReturnType<Server['address']> {
    return this.server.address();
  }

  /**
   * Stops listening, lets the requests in flight finish for up to `graceMs`, then closes
   * every connection. New requests meanwhile are the server's to refuse.
   */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inFlight > 0) {
      await Promise.race([new Promise<void>((resolve) => this.idleWaiters.push(resolve)), sleep(graceMs, undefined, { ref: false })]);
    }
    // Let the last answers flush and their connections go idle, then cut what is left.
    this.server.closeIdleConnections();
    await Promise.race([closed, sleep(1_000, undefined, { ref: false })]);
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
