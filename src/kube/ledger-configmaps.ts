/**
 * The execution ledger's storage (src/controllers/ledger.ts): one ConfigMap per
 * namespace and policy, in the controller's own namespace. Teams cannot write there —
 * the chart grants ConfigMap writes in that namespace to the controller's ServiceAccount
 * alone, and no aggregated namespace role reaches another namespace — so deleting a
 * request or a policy, which teams may do, leaves what ran on record.
 *
 * Names are a hash of namespace and policy (both may be long); labels make them
 * listable, and the data says in full whose ledger it is, for a person reading it.
 */
import { createHash } from 'node:crypto';
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import type { LedgerDocument, LedgerEntry, LedgerRetention, LedgerStorage, RunMark, StoredEntry } from '../api/ledger/v1.js';
import { isConflict, isNotFound } from './resources.js';

export const LEDGER_LABEL = 'remediator.dev/ledger';
const NAMESPACE_LABEL = 'remediator.dev/ledger-namespace';

export function ledgerConfigMapName(namespace: string, policy: string): string {
  return `remediator-ledger-${createHash('sha256').update(`${namespace}/${policy}`).digest('hex').slice(0, 24)}`;
}

export class ConfigMapLedgerStorage implements LedgerStorage {
  private readonly core: CoreV1Api;

  /** `watched`: only the ledgers of these namespaces are loaded (all when empty). */
  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
    private readonly watched: readonly string[] = [],
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async list(): Promise<LedgerDocument[]> {
    const out: LedgerDocument[] = [];
    let token: string | undefined;
    do {
      const page = await this.core.listNamespacedConfigMap({
        namespace: this.namespace,
        labelSelector: `${LEDGER_LABEL}=true`,
        limit: 200,
        _continue: token,
      });
      for (const cm of page.items) {
        const doc = decode(cm);
        if (doc && (this.watched.length === 0 || this.watched.includes(doc.namespace))) out.push(doc);
      }
      token = page.metadata?._continue || undefined;
    } while (token);
    return out;
  }

  async get(namespace: string, policy: string): Promise<LedgerDocument | undefined> {
    try {
      return decode(await this.core.readNamespacedConfigMap({ namespace: this.namespace, name: ledgerConfigMapName(namespace, policy) }));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async save(doc: LedgerDocument): Promise<string> {
    const body = encode(this.namespace, doc);
    if (doc.resourceVersion) {
      try {
        const out = await this.core.replaceNamespacedConfigMap({ namespace: this.namespace, name: body.metadata!.name!, body });
        return out.metadata?.resourceVersion ?? '';
      } catch (error) {
        // Removed meanwhile (emptied, then written again): create it anew.
        if (!isNotFound(error)) throw error;
        delete body.metadata!.resourceVersion;
      }
    }
    const out = await this.core.createNamespacedConfigMap({ namespace: this.namespace, body });
    return out.metadata?.resourceVersion ?? '';
  }

  async remove(doc: LedgerDocument): Promise<void> {
    try {
      await this.core.deleteNamespacedConfigMap({
        namespace: this.namespace,
        name: ledgerConfigMapName(doc.namespace, doc.policy),
        body: { preconditions: { resourceVersion: doc.resourceVersion } },
      });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** A stale replace, or a create that lost a race (409 AlreadyExists): the same remedy. */
  isConflict(error: unknown): boolean {
    return isConflict(error);
  }
}

function encode(namespace: string, doc: LedgerDocument): V1ConfigMap {
  const entries = doc.entries.map(
    ({ at, endedAt, ...rest }): StoredEntry => ({
      ...rest,
      at: new Date(at).toISOString(),
      ...(endedAt !== undefined && { endedAt: new Date(endedAt).toISOString() }),
    }),
  );
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: ledgerConfigMapName(doc.namespace, doc.policy),
      namespace,
      labels: { [LEDGER_LABEL]: 'true', [NAMESPACE_LABEL]: doc.namespace, 'app.kubernetes.io/managed-by': 'remediator' },
      ...(doc.resourceVersion && { resourceVersion: doc.resourceVersion }),
    },
    data: {
      namespace: doc.namespace,
      policy: doc.policy,
      retention: JSON.stringify(doc.retention),
      executions: entries.map((e) => JSON.stringify(e)).join('\n'),
      ...(doc.breakerOpenedAt !== undefined && { breakerOpenedAt: new Date(doc.breakerOpenedAt).toISOString() }),
      // Run keys of pruned executions (controllers/request/rerun.ts), one per line.
      ...(doc.runs?.length && { runs: doc.runs.map((m) => JSON.stringify({ ...m, at: new Date(m.at).toISOString() })).join('\n') }),
    },
  };
}

function decode(cm: V1ConfigMap): LedgerDocument | undefined {
  const d = cm.data;
  if (!d?.namespace || !d.policy) return undefined;
  const entries = (d.executions ?? '')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as StoredEntry)
    .map(
      (e): LedgerEntry =>
        ({ ...e, at: Date.parse(e.at), ...(e.endedAt !== undefined && { endedAt: Date.parse(e.endedAt) }) }) as LedgerEntry,
    );
  return {
    namespace: d.namespace,
    policy: d.policy,
    retention: JSON.parse(d.retention ?? '{"windowMs":0,"lastOutcomes":10}') as LedgerRetention,
    entries,
    ...(d.breakerOpenedAt && Number.isFinite(Date.parse(d.breakerOpenedAt)) && { breakerOpenedAt: Date.parse(d.breakerOpenedAt) }),
    ...(d.runs && { runs: decodeRuns(d.runs) }),
    resourceVersion: cm.metadata?.resourceVersion,
  };
}

/** Run marks as stored: one JSON object per line, `at` as RFC 3339; unreadable lines are dropped. */
function decodeRuns(text: string): RunMark[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Omit<RunMark, 'at'> & { at: string })
    .map((m) => ({ ...m, at: Date.parse(m.at) }))
    .filter((m) => typeof m.key === 'string' && typeof m.uid === 'string' && Number.isFinite(m.at));
}
