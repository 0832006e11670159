/**
 * The execution ledger's storage in memory, with the API server's optimistic concurrency
 * (a stale resourceVersion is a conflict). Karpenter-style fake for unit tests and the
 * reconciler benchmark (hack/bench.ts), where ConfigMap writes are not what is measured.
 */
import type { LedgerDocument, LedgerStorage } from '../api/ledger/v1.js';

class StaleLedgerWrite extends Error {}

export class MemoryLedgerStorage implements LedgerStorage {
  readonly docs = new Map<string, LedgerDocument>();
  private rv = 0;
  /** Writes that went through. */
  saves = 0;
  list = async () => [...this.docs.values()].map((d) => structuredClone(d));
  get = async (ns: string, p: string) => structuredClone(this.docs.get(`${ns}/${p}`));
  async save(doc: LedgerDocument): Promise<string> {
    const k = `${doc.namespace}/${doc.policy}`;
    const current = this.docs.get(k);
    if (current && current.resourceVersion !== doc.resourceVersion) throw new StaleLedgerWrite(`ledger ${k} changed since it was read`);
    this.saves++;
    const resourceVersion = String(++this.rv);
    this.docs.set(k, { ...structuredClone(doc), resourceVersion });
    return resourceVersion;
  }
  async remove(doc: LedgerDocument): Promise<void> {
    this.docs.delete(`${doc.namespace}/${doc.policy}`);
  }
  isConflict = (e: unknown) => e instanceof StaleLedgerWrite;
}
