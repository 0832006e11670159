// What a test can do with a running test bed cluster, given only its connection facts:
// get clients and kubeconfigs for the admin, a named user, or any token; mint
// ServiceAccount tokens through TokenRequest; install the repo's CRDs. The process that
// started the control plane and the jest workers that merely connect to it (see env.ts)
// share this one implementation.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  type KubeConfig,
  type KubernetesObject,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './binaries.js';
import { loadKubeConfig, writeKubeconfig } from './kubeconfig.js';
import { waitUntil } from './procs.js';

export interface TestUser {
  name: string;
  groups?: string[];
  /** Static bearer token; generated when absent. */
  token?: string;
}

export interface UserInfo {
  name: string;
  groups: string[];
  token: string;
  kubeconfig: string;
}

/** Plain data, JSON-serialisable: enough to reconnect from another process. */
export interface ClusterInfo {
  server: string;
  caPem: string;
  caFile: string;
  adminKubeconfig: string;
  kubeconfigDir: string;
  users: Record<string, UserInfo>;
}

export interface ServiceAccountTokenOptions {
  /** Defaults to the API server's own audience, so the token works against it. */
  audiences?: string[];
  expirationSeconds?: number;
  /** Create the namespace and ServiceAccount first if missing (default true). */
  create?: boolean;
}

const FIELD_MANAGER = 'remediator-testbed';

export const isStatus = (err: unknown, code: number): boolean => err instanceof ApiException && err.code === code;

export class Cluster {
  constructor(readonly info: ClusterInfo) {}

  get server(): string {
    return this.info.server;
  }

  get adminKubeconfig(): string {
    return this.info.adminKubeconfig;
  }

  /** A KubeConfig for the admin (client certificate, group system:masters). */
  adminConfig(): KubeConfig {
    return loadKubeConfig(this.info.adminKubeconfig);
  }

  /** A KubeConfig for a named token user, e.g. `configFor('alice')`. */
  configFor(user: string): KubeConfig {
    return loadKubeConfig(this.kubeconfigForUser(user));
  }

  /** Path of the token kubeconfig of a user listed when the control plane started. */
  kubeconfigForUser(user: string): string {
    const info = this.info.users[user];
    if (!info) throw new Error(`unknown test user ${user}; known: ${Object.keys(this.info.users).join(', ')}`);
    if (!existsSync(info.kubeconfig)) this.writeTokenKubeconfig(info.kubeconfig, info.token, user);
    return info.kubeconfig;
  }

  /** Writes a kubeconfig that authenticates with `token` and returns its path. */
  kubeconfigForToken(token: string, name: string): string {
    const safe = name.replace(/[^A-Za-z0-9_.-]/g, '_');
    return this.writeTokenKubeconfig(join(this.info.kubeconfigDir, `token-${safe}.yaml`), token, name);
  }

  private writeTokenKubeconfig(path: string, token: string, user: string): string {
    return writeKubeconfig(path, { server: this.info.server, caPem: this.info.caPem, user, token });
  }

  async ensureNamespace(name: string): Promise<void> {
    const core = this.adminConfig().makeApiClient(CoreV1Api);
    try {
      await core.createNamespace({ body: { metadata: { name } } });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
  }

  /** No kube-controller-manager runs here, so not even `default` ServiceAccounts exist. */
  async ensureServiceAccount(namespace: string, name: string): Promise<void> {
    await this.ensureNamespace(namespace);
    const core = this.adminConfig().makeApiClient(CoreV1Api);
    try {
      await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name, namespace } } });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
  }

  /**
   * A bound token for ServiceAccount `namespace/name` via the TokenRequest API — the
   * same kind of token a pod's projected volume holds. It authenticates as
   * `system:serviceaccount:<namespace>:<name>`.
   */
  async tokenForServiceAccount(namespace: string, name: string, opts: ServiceAccountTokenOptions = {}): Promise<string> {
    if (opts.create ?? true) await this.ensureServiceAccount(namespace, name);
    const core = this.adminConfig().makeApiClient(CoreV1Api);
    const res = await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { audiences: opts.audiences ?? [], expirationSeconds: opts.expirationSeconds ?? 3600 } },
    });
    const token = res.status?.token;
    if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
    return token;
  }

  /**
   * Server-side applies every object in the YAML files of `dir` (or one file), in file
   * name order, and returns them. Used for CRDs, RBAC, admission policies.
   */
  async applyManifests(path: string): Promise<KubernetesObject[]> {
    const objects = readManifests(path);
    const api = KubernetesObjectApi.makeApiClient(this.adminConfig());
    const applied: KubernetesObject[] = [];
    for (const obj of objects) {
      if (obj.kind === 'CustomResourceDefinition') {
        applied.push(await this.applyCrd(obj));
        continue;
      }
      applied.push(await api.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply));
    }
    return applied;
  }

  /**
   * Applies the CustomResourceDefinitions found in `dir` (default: the repo's
   * config/crd/bases; a missing or empty directory installs nothing) and waits until
   * each is Established and its resource can be listed — Established alone can run a
   * moment ahead of the API server's handlers. Returns the CRD names.
   */
  async installCRDs(dir = join(repoRoot(), 'config', 'crd', 'bases')): Promise<string[]> {
    const crds = readManifests(dir).filter(
      (o) => o.kind === 'CustomResourceDefinition' && o.apiVersion === 'apiextensions.k8s.io/v1',
    ) as V1CustomResourceDefinition[];
    if (crds.length === 0) return [];
    const kc = this.adminConfig();
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    for (const crd of crds) await this.applyCrd(crd);
    for (const crd of crds) {
      const name = crd.metadata!.name!;
      await waitUntil(
        `CRD ${name} Established`,
        async () => {
          const live = await ext.readCustomResourceDefinition({ name });
          const established = live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
          return established ? true : undefined;
        },
        { timeoutMs: 30_000 },
      );
      const version = crd.spec.versions.find((v) => v.served)?.name ?? crd.spec.versions[0]!.name;
      const path = `/apis/${crd.spec.group}/${version}/${crd.spec.names.plural}?limit=1`;
      await waitUntil(`CRD ${name} served`, async () => ((await this.rawGet(kc, path)) === 200 ? true : undefined), {
        timeoutMs: 30_000,
      });
    }
    return crds.map((c) => c.metadata!.name!);
  }

  /**
   * Server-side apply of a CRD with its raw JSON. client-node's typed serializer knows
   * JSONSchemaProps fields only by their TypeScript names, so it silently drops
   * `x-kubernetes-validations` (and every other dashed key) from a CRD read from YAML:
   * the CEL rules would never reach the API server.
   */
  private async applyCrd(crd: KubernetesObject): Promise<KubernetesObject> {
    const kc = this.adminConfig();
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const opts: RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const path = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata!.name}?fieldManager=${FIELD_MANAGER}&force=true`;
    const body = JSON.stringify(crd);
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, cluster.server),
        {
          ...opts,
          method: 'PATCH',
          headers: { ...(opts.headers ?? {}), 'content-type': 'application/apply-patch+yaml', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 500) >= 300) reject(new Error(`applying CRD ${crd.metadata!.name}: HTTP ${res.statusCode}: ${text}`));
            else resolve(JSON.parse(text) as KubernetesObject);
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** GET `path` as the given KubeConfig's user; returns the HTTP status. */
  private async rawGet(kc: KubeConfig, path: string): Promise<number> {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const opts: RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    return new Promise((resolve, reject) => {
      const req = request(new URL(path, cluster.server), { ...opts, method: 'GET' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  }
}

/** Parses the YAML documents of a file, or of every .yaml/.yml file in a directory. */
export function readManifests(path: string): KubernetesObject[] {
  if (!existsSync(path)) return [];
  const files =
    path.endsWith('.yaml') || path.endsWith('.yml')
      ? [path]
      : readdirSync(path)
          .filter((f) => /\.ya?ml$/.test(f))
          .sort()
          .map((f) => join(path, f));
  const objects: KubernetesObject[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as KubernetesObject | null;
      // kustomization.yaml and empty documents have no kind/apiVersion: not API objects.
      if (obj && typeof obj === 'object' && obj.apiVersion && obj.kind) objects.push(obj);
    }
  }
  return objects;
}
