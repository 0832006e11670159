/**
 * `kubectl remediator history`: the audit records of ended requests (docs/audit.md), read
 * back from the sink the controller writes them to — with the user's own AWS credentials
 * (the SDK's default chain: profile, SSO, environment), never the controller's, so the
 * sink's IAM policy decides who may read the record. `--verify` checks each namespace's
 * digest chain and exits 1 on a break (a record changed, removed or inserted).
 *
 * `readHistory` is the reusable part (the `ui` page reads the same records); the rest
 * parses flags and prints. The sink is named by flags or REMEDIATOR_AUDIT_* variables,
 * the same values as the chart's `controller.audit`.
 */
import { parseArgs } from 'node:util';
import { parseRecord, verifyChain, type AuditRecord, type ChainVerdict } from '../api/audit/v1.js';
import { createAuditSink, type AuditSinkConfig } from '../cloud/audit-sink.js';
import type { Io } from './plugin.js';
import { SINK_FLAGS_USAGE, SINK_OPTIONS, sinkConfigFrom, sinkDescription, type SinkFlags } from './sink-flags.js';

export const HISTORY_USAGE = `kubectl remediator history: the audit records of ended requests, from the audit sink.

Usage:
  kubectl remediator history [-n NAMESPACE | -A] [--verify] [-o json]
      (--log-group GROUP | --bucket BUCKET [--prefix PREFIX]) [--region REGION]

Reads with your own AWS credentials (the default chain: AWS_PROFILE, SSO, environment).
--verify checks each namespace's digest chain and exits 1 when it is broken.

Flags:
  -n, --namespace NAME   namespace (default: the kubeconfig context's, else "default")
  -A, --all-namespaces   every namespace that has records
      --verify           check the chain; exit 1 on a break
  -o, --output json      the records as JSON
${SINK_FLAGS_USAGE}
      --context NAME, --kubeconfig PATH   where the default namespace comes from`;

/** One namespace's records, in chain order, and what the chain check found. */
export interface NamespaceHistory {
  namespace: string;
  records: AuditRecord[];
  verdict: ChainVerdict;
}

/** Reads and checks the records of `namespaces` (all that have records when undefined). */
export async function readHistory(
  sinkConfig: AuditSinkConfig,
  namespaces: readonly string[] | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<NamespaceHistory[]> {
  const sink = createAuditSink(sinkConfig, { env });
  try {
    const names = namespaces ?? (await sink.namespaces());
    const out: NamespaceHistory[] = [];
    for (const namespace of names) {
      const stored = await sink.read(namespace);
      const records: AuditRecord[] = [];
      for (const s of stored) {
        try {
          records.push(parseRecord(s.text));
        } catch {
          // Reported by verifyChain, which sees every entry.
        }
      }
      records.sort((a, b) => a.sequence - b.sequence);
      out.push({ namespace, records, verdict: verifyChain(stored) });
    }
    return out;
  } finally {
    sink.destroy();
  }
}

/** Whether argv asks for `history` (its flags are its own, so it is parsed here, not in args.ts). */
export function historyRequested(argv: readonly string[]): boolean {
  const valued = new Set([
    '-n',
    '--namespace',
    '-o',
    '--output',
    '--context',
    '--kubeconfig',
    '--log-group',
    '--bucket',
    '--prefix',
    '--region',
  ]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (valued.has(a)) {
      i++;
      continue;
    }
    if (!a.startsWith('-')) return a === 'history';
  }
  return false;
}

const OPTIONS = {
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  verify: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  ...SINK_OPTIONS,
  context: { type: 'string' },
  kubeconfig: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class HistoryUsageError extends Error {}

function sinkFrom(values: SinkFlags, env: NodeJS.ProcessEnv): AuditSinkConfig {
  const sink = sinkConfigFrom(values, env);
  if (sink) return sink;
  throw new HistoryUsageError(
    "say where the records are: --log-group GROUP or --bucket BUCKET [--prefix PREFIX], the values of the chart's controller.audit " +
      '(or set REMEDIATOR_AUDIT_LOG_GROUP / REMEDIATOR_AUDIT_BUCKET)',
  );
}

/** The kubeconfig context's namespace, as kubectl picks it; "default" without one. */
async function defaultNamespace(values: { context?: string; kubeconfig?: string }): Promise<string> {
  try {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
    else kc.loadFromDefault();
    const context = values.context ?? kc.getCurrentContext();
    return kc.getContextObject(context)?.namespace ?? 'default';
  } catch {
    return 'default';
  }
}

function cell(v: string | number | undefined): string {
  return v === undefined || v === '' ? '-' : String(v);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3)))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}

function historyTable(h: NamespaceHistory, allNamespaces: boolean): string {
  const rows = [
    [...(allNamespaces ? ['NAMESPACE'] : []), 'SEQ', 'ENDED', 'REQUEST', 'POLICY', 'PHASE', 'REQUESTED-BY', 'APPROVER', 'TARGETS', 'SENT'],
  ];
  for (const r of h.records) {
    const sent = [
      ...(r.execution?.ssm?.commands ?? []).map((c) => c.commandId).filter((c): c is string => Boolean(c)),
      ...(r.execution?.sns?.messageId ? [`sns:${r.execution.sns.messageId}`] : []),
    ];
    rows.push([
      ...(allNamespaces ? [h.namespace] : []),
      String(r.sequence),
      cell(r.outcome.completionTime),
      r.request.name,
      r.request.policy,
      `${r.outcome.phase}${r.verification ? `/${r.verification.verdict}` : ''}`,
      cell(r.request.requestedBy),
      cell(r.approval ? `${r.approval.approver}${r.approval.decision === 'Rejected' ? ' (rejected)' : ''}` : undefined),
      cell(r.plan?.targets.length),
      cell(sent.join(',')),
    ]);
  }
  return table(rows);
}

/** Runs `history`; returns the exit code (0, 1 on a broken chain or a failure, 2 on usage). */
export async function runHistory(argv: readonly string[], io: Io, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: true; strict: true }>>['values'];
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true }));
    if (values.help) {
      io.out(HISTORY_USAGE);
      return 0;
    }
    if (positionals.length !== 1 || positionals[0] !== 'history')
      throw new HistoryUsageError(`history takes no arguments, got: ${positionals.slice(1).join(' ')}`);
    if (values.output !== undefined && values.output !== 'json')
      throw new HistoryUsageError(`--output must be json, got "${values.output}"`);
    if (values['all-namespaces'] && values.namespace) throw new HistoryUsageError('use either --namespace or --all-namespaces');
  } catch (error) {
    io.err(`error: ${(error as Error).message}\nRun "kubectl remediator history --help" for usage.`);
    return 2;
  }
  let sink: AuditSinkConfig;
  try {
    sink = sinkFrom(values, env);
  } catch (error) {
    io.err(`error: ${(error as Error).message}`);
    return 2;
  }
  const namespaces = values['all-namespaces'] ? undefined : [values.namespace ?? (await defaultNamespace(values))];
  let histories: NamespaceHistory[];
  try {
    histories = await readHistory(sink, namespaces, env);
  } catch (error) {
    const e = error as Error;
    io.err(
      `error: could not read the audit records from ${sinkDescription(sink, env)}: ${e.message}` +
        (e.name === 'AwsAccessDeniedError' ? '' : ' (check your AWS credentials and region: AWS_PROFILE, AWS_REGION)'),
    );
    return 1;
  }
  if (values.output === 'json') {
    io.out(
      JSON.stringify(
        histories.map((h) => ({ namespace: h.namespace, records: h.records, ...(values.verify && { verdict: h.verdict }) })),
        null,
        2,
      ),
    );
  } else {
    for (const h of histories) {
      if (h.records.length === 0 && h.verdict.problems.length === 0) io.err(`No audit records found for namespace ${h.namespace}.`);
      else io.out(historyTable(h, namespaces === undefined));
    }
  }
  if (!values.verify) return 0;
  let broken = false;
  for (const h of histories) {
    const v = h.verdict;
    if (v.intact) {
      io.out(
        `chain ${h.namespace}: intact, ${v.records} record(s)${v.head ? `, head ${v.head.sequence} ${v.head.digest}` : ''}` +
          (v.duplicates.length > 0 ? `; written twice (after a crash): ${v.duplicates.map((d) => d.uid).join(', ')}` : ''),
      );
    } else {
      broken = true;
      io.err(`chain ${h.namespace}: BROKEN (${v.problems.length} problem(s) in ${v.records} record(s))`);
      for (const p of v.problems) io.err(`  ${p.kind}: ${p.message}`);
    }
  }
  return broken ? 1 : 0;
}
