// Kubeconfig files for the test bed: one per identity (the admin's client certificate,
// each named user's static token, any ServiceAccount token), so that tests, kubectl,
// helm and the controller under test all authenticate exactly as a real user would.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';

export interface KubeconfigSpec {
  server: string;
  /** PEM of the CA that signed the server's certificate. */
  caPem: string;
  /** The user's name inside the file (not necessarily the identity the server sees). */
  user: string;
  token?: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  /** Default namespace of the context. */
  namespace?: string;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** Writes a single-context kubeconfig (mode 0600) to `path` and returns `path`. */
export function writeKubeconfig(path: string, spec: KubeconfigSpec): string {
  const user: Record<string, string> = {};
  if (spec.token) user['token'] = spec.token;
  if (spec.clientCertPem) user['client-certificate-data'] = b64(spec.clientCertPem);
  if (spec.clientKeyPem) user['client-key-data'] = b64(spec.clientKeyPem);
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'testbed', cluster: { server: spec.server, 'certificate-authority-data': b64(spec.caPem) } }],
    users: [{ name: spec.user, user }],
    contexts: [
      { name: spec.user, context: { cluster: 'testbed', user: spec.user, ...(spec.namespace ? { namespace: spec.namespace } : {}) } },
    ],
    'current-context': spec.user,
  };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, stringify(doc), { mode: 0o600 });
  return path;
}

/** A client-node KubeConfig loaded from a kubeconfig file. */
export function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}
