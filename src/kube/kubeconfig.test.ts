import { mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpMethod, RequestContext } from '@kubernetes/client-node';
import { KubeconfigError, PooledKubeConfig } from './kubeconfig.js';

function config(certFile: string): PooledKubeConfig {
  const kc = new PooledKubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:6443', skipTLSVerify: false, caData: Buffer.from('ca').toString('base64') }],
    users: [{ name: 'u', certFile, keyData: Buffer.from('key').toString('base64') }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

async function dispatcherOf(kc: PooledKubeConfig): Promise<unknown> {
  const ctx = new RequestContext('https://127.0.0.1:6443/api', HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  return ctx.getDispatcher();
}

describe('PooledKubeConfig', () => {
  test('API calls share one agent (and so their connections) while the TLS material stays the same', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kc-'));
    const cert = join(dir, 'client.crt');
    writeFileSync(cert, 'cert-1');
    const kc = config(cert);
    const first = await dispatcherOf(kc);
    expect(first).toBeDefined();
    expect(await dispatcherOf(kc)).toBe(first);
    expect(await dispatcherOf(kc)).toBe(first);
    // A rotated client certificate: a new agent, kept from then on.
    writeFileSync(cert, 'cert-2, rotated');
    utimesSync(cert, new Date(), new Date(Date.now() + 5_000));
    const rotated = await dispatcherOf(kc);
    expect(rotated).not.toBe(first);
    expect(await dispatcherOf(kc)).toBe(rotated);
  });
});

describe('PooledKubeConfig.loadOrExplain', () => {
  const home = () => mkdtempSync(join(tmpdir(), 'home-'));

  test('a KUBECONFIG naming a missing file is a KubeconfigError that names it and says what to set', () => {
    const kc = new PooledKubeConfig();
    expect(() => kc.loadOrExplain({ KUBECONFIG: '/nowhere/config' }, home())).toThrow(KubeconfigError);
    expect(() => kc.loadOrExplain({ KUBECONFIG: '/nowhere/config' }, home())).toThrow(
      /KUBECONFIG names \/nowhere\/config, which does not exist: point KUBECONFIG at a kubeconfig file/,
    );
  });

  test('no KUBECONFIG, no ~/.kube/config and not in a pod is an error, not http://localhost:8080', () => {
    expect(() => new PooledKubeConfig().loadOrExplain({}, home())).toThrow(/no Kubernetes credentials: .*set KUBECONFIG/);
  });

  test('an unreadable kubeconfig names the file', () => {
    const dir = home();
    writeFileSync(join(dir, 'bad'), ': not yaml : [');
    expect(() => new PooledKubeConfig().loadOrExplain({ KUBECONFIG: join(dir, 'bad') }, dir)).toThrow(
      /cannot load Kubernetes credentials from .*bad/,
    );
  });

  test('a kubeconfig that exists loads', () => {
    const dir = home();
    const file = join(dir, 'config');
    writeFileSync(
      file,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    const kc = new PooledKubeConfig();
    kc.loadOrExplain({ KUBECONFIG: file }, dir);
    expect(kc.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
  });
});
