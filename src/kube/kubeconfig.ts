/**
 * A KubeConfig whose API calls share connections.
 *
 * `@kubernetes/client-node` 2.x builds a new undici Agent for every API call
 * (`applySecurityAuthentication` → `createDispatcher`), so every call opens its own TLS
 * connection: a handshake, and a new SecureContext built from the CA, certificate and
 * key, on both sides of it. Profiled in a 100-alert burst (make bench-e2e), TLS setup was
 * the largest part of the controller's CPU, and the API server pays the same again.
 * The library offers no option for it, so this subclass keeps the agent it built the
 * first time for as long as the connection settings stay the same, and lets undici pool
 * connections as it does for any other client. Credentials that are headers (bearer
 * tokens, re-read by the library on every call so rotation keeps working) are untouched;
 * TLS material from files is keyed by the files' modification times, so a rotated
 * client certificate or CA gets a new agent (and the old one is closed).
 */
import { statSync } from 'node:fs';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

function fileStamp(path: string | undefined): string | undefined {
  if (!path) return undefined;
  try {
    const s = statSync(path);
    return `${path}@${s.mtimeMs}:${s.size}`;
  } catch {
    return `${path}@missing`;
  }
}

export class PooledKubeConfig extends KubeConfig {
  private pooled: { key: string; dispatcher: Dispatcher } | undefined;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const built = context.getDispatcher();
    if (!built) return; // plain HTTP without a proxy: the global dispatcher pools already
    const key = this.connectionKey();
    if (this.pooled?.key !== key) {
      const previous = this.pooled?.dispatcher;
      this.pooled = { key, dispatcher: built };
      // Calls in flight on the old agent finish first; close() waits for them.
      if (previous) void previous.close().catch(() => undefined);
      return;
    }
    // The agent built for this call never connected: nothing to close.
    context.setDispatcher(this.pooled.dispatcher);
  }

  /** Everything a connection to the API server is built from, files by their version. */
  private connectionKey(): string {
    const c = this.getCurrentCluster();
    const u = this.getCurrentUser();
    return JSON.stringify([
      c?.server,
      c?.skipTLSVerify,
      c?.tlsServerName,
      c?.proxyUrl,
      c?.caData ?? fileStamp(c?.caFile),
      u?.certData ?? fileStamp(u?.certFile),
      u?.keyData ?? fileStamp(u?.keyFile),
    ]);
  }
}
