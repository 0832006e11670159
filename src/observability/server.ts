/** The metrics and health server: `/metrics` (Prometheus), `/healthz` (alive), `/readyz` (caches synced). */
import { createServer, type Server } from 'node:http';
import type { Metrics } from './metrics.js';

export interface HealthServerOptions {
  metrics: Metrics;
  ready: () => boolean;
}

export function createHealthServer(opts: HealthServerOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'application/json' }).end('{"error":"method not allowed"}');
      return;
    }
    switch (path) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      case '/readyz': {
        const ready = opts.ready();
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ok' : 'informer caches not synced');
        return;
      }
      case '/metrics':
        opts.metrics.registry
          .metrics()
          .then((body) => res.writeHead(200, { 'content-type': opts.metrics.registry.contentType }).end(body))
          .catch((error: unknown) => res.writeHead(500).end(String(error)));
        return;
      default:
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    }
  });
}

/** Parses `host:port` or `:port` (Go style) into listen arguments. */
export function parseBindAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = i <= 0 ? '0.0.0.0' : address.slice(0, i);
  const port = Number(address.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid bind address "${address}": use host:port or :port`);
  return { host, port };
}
