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
 *
 * `loadOrExplain` decides where the credentials come from before the library does: left
 * to itself, a KUBECONFIG naming a missing file throws a bare ENOENT, and no credentials
 * at all silently become http://localhost:8080, which the controller then retries
 * forever. Both are a user's mistake, so they become one message saying what to set.
 */
import { existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';

/** No usable kubeconfig: the message says what to set. */
export class KubeconfigError extends Error {
  override readonly name = 'KubeconfigError';
}

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

  /**
   * Loads as kubectl does (KUBECONFIG, else ~/.kube/config, else the pod's ServiceAccount;
   * client-node's loadFromDefault in the same order, with the environment passed in),
   * or throws a KubeconfigError naming what is missing and what to set.
   */
  loadOrExplain(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): void {
    const paths = (env['KUBECONFIG'] ?? '').split(delimiter).filter((p) => p !== '');
    const missing = paths.filter((p) => !existsSync(p));
    if (missing.length > 0)
      throw new KubeconfigError(
        `KUBECONFIG names ${missing.join(', ')}, which does not exist: point KUBECONFIG at a kubeconfig file (in a pod, leave it unset to use the ServiceAccount)`,
      );
    const homeConfig = join(home, '.kube', 'config');
    const files = paths.length > 0 ? paths : existsSync(homeConfig) ? [homeConfig] : [];
    if (files.length === 0 && !env['KUBERNETES_SERVICE_HOST'])
      throw new KubeconfigError(
        'no Kubernetes credentials: KUBECONFIG is unset, there is no ~/.kube/config, and this is not a pod (KUBERNETES_SERVICE_HOST is unset); set KUBECONFIG to a kubeconfig file',
      );
    try {
      if (files.length === 0) this.loadFromCluster();
      // As kubectl: the first file's current context, the others merged in.
      else
        for (const [i, file] of files.entries()) {
          if (i === 0) this.loadFromFile(file);
          else {
            const more = new KubeConfig();
            more.loadFromFile(file);
            this.mergeConfig(more, true);
          }
        }
    } catch (error) {
      const from = files.length > 0 ? files.join(', ') : "the pod's ServiceAccount";
      throw new KubeconfigError(`cannot load Kubernetes credentials from ${from}: ${(error as Error).message}`);
    }
  }

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
