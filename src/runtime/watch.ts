/**
 * One watch request, streamed line by line: what client-node's `Watch` does, except
 * that a refusal keeps its response. client-node reports a non-200 answer to a watch as
 * a bare status code and drops the headers, and with them `Retry-After`, which the API
 * server sends with 429 (priority and fairness) and 503 (shutting down, not ready):
 * the informer needs it to wait as long as it is asked to (see informer.ts).
 *
 * Like client-node's, it aborts after `inactivityMs` without a byte (a connection that
 * went silent), reported as a `TimeoutError`.
 */
import { request as httpRequest, type IncomingHttpHeaders, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';

/** A watch the API server refused: its status code, headers and `Status` body (when it sent one). */
export class WatchRefusedError extends Error {
  constructor(
    readonly statusCode: number,
    readonly headers: Record<string, string>,
    readonly body: string,
  ) {
    super(`watch refused: HTTP ${statusCode}${body ? `: ${body.slice(0, 300)}` : ''}`);
    this.name = 'WatchRefusedError';
  }
}

export interface WatchRequest {
  kubeConfig: KubeConfig;
  /** API path, e.g. `/apis/remediator.dev/v1alpha1/namespaces/web/remediationrequests`. */
  path: string;
  query: Record<string, string | number | boolean | undefined>;
  /** Each event: `type` is ADDED, MODIFIED, DELETED, BOOKMARK or ERROR. */
  onEvent(type: string, object: unknown): void;
  /** Abort when no byte arrived for this long (client-node's default: 30 s). */
  inactivityMs?: number;
}

/** A running watch: `done` settles when the server ends it (null) or it fails; `abort` ends it early. */
export interface WatchHandle {
  done: Promise<Error | null>;
  abort(): void;
}

function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

export async function startWatch(w: WatchRequest): Promise<WatchHandle> {
  const cluster = w.kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + w.path);
  url.searchParams.set('watch', 'true');
  for (const [k, v] of Object.entries(w.query)) if (v !== undefined) url.searchParams.set(k, String(v));
  const opts: RequestOptions & { headers: Record<string, string> } = { headers: {} };
  // Client certificate, CA, bearer token (refreshed when it is a projected file), as every client-node call.
  await w.kubeConfig.applyToHTTPSOptions(opts);
  const request = url.protocol === 'http:' ? httpRequest : httpsRequest;
  const inactivityMs = w.inactivityMs ?? 30_000;

  let settle!: (err: Error | null) => void;
  const done = new Promise<Error | null>((resolve) => {
    let settled = false;
    settle = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(err);
    };
  });
  let timer: NodeJS.Timeout | undefined;
  const idle = () => {
    clearTimeout(timer);
    timer = setTimeout(() => settle(new DOMException(`no data for ${inactivityMs} ms`, 'TimeoutError')), inactivityMs);
    timer.unref();
  };
  const req = request(url, { ...opts, method: 'GET', headers: { ...opts.headers, accept: 'application/json' } }, (res) => {
    idle();
    if (res.statusCode !== 200) {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        settle(new WatchRefusedError(res.statusCode ?? 0, flatHeaders(res.headers), Buffer.concat(chunks).toString('utf8'))),
      );
      res.on('error', (e) => settle(e));
      return;
    }
    res.on('data', idle);
    res.on('error', (e) => settle(e));
    const lines = createInterface({ input: res, crlfDelay: Number.POSITIVE_INFINITY });
    // readline re-emits its input's errors (a connection reset mid-stream): unhandled, that
    // would end the process instead of this watch.
    lines.on('error', (e) => settle(e));
    lines.on('line', (line) => {
      if (line.trim() === '') return;
      let event: { type?: string; object?: unknown };
      try {
        event = JSON.parse(line) as typeof event;
      } catch {
        return; // a line cut short by an abort; the next watch resumes from the last resourceVersion
      }
      try {
        w.onEvent(event.type ?? '', event.object);
      } catch (e) {
        settle(e as Error);
      }
    });
    lines.on('close', () => settle(null));
  });
  req.on('error', (e) => settle(e));
  idle();
  req.end();
  return { done, abort: () => settle(null) };
}
