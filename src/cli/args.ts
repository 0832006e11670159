/**
 * Command-line parsing for the kubectl plugin. kubectl hands a plugin every argument
 * after its name, so the plugin takes the flags users already type for kubectl
 * (`-n`, `-A`, `--context`, `--kubeconfig`, `-o`) and nothing surprising.
 * Pure apart from reading the plugin's version once, so it is unit-tested beside this file.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SINK_FLAGS_USAGE, SINK_OPTIONS, type SinkFlags } from './sink-flags.js';

/** Replaced by the bundler with package.json's version (hack/plugin/bundle.ts), where no package.json travels along. */
declare const __REMEDIATOR_VERSION__: string | undefined;

/**
 * The plugin's version: package.json's, the one place a version is set. Compiled, this
 * file is dist/src/cli/args.js, three levels below package.json (also in an installed
 * npm package); bundled, the bundler has written the version in.
 */
export const PLUGIN_VERSION: string =
  typeof __REMEDIATOR_VERSION__ === 'string'
    ? __REMEDIATOR_VERSION__
    : (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export const USAGE = `kubectl remediator: list, inspect and decide RemediationRequests.

Usage:
  kubectl remediator list [-n NAMESPACE | -A] [--phase PHASE] [-o wide|name|json]
  kubectl remediator describe NAME [-n NAMESPACE]
  kubectl remediator approve NAME [-n NAMESPACE] [--reason TEXT]
  kubectl remediator reject NAME [-n NAMESPACE] [--reason TEXT]
  kubectl remediator resume POLICY [-n NAMESPACE]
  kubectl remediator ui [-n NAMESPACE | -A] [--port PORT] [--log-group G | --bucket B [--prefix P]] [--region R]
  kubectl remediator migrate [POLICY] [-n NAMESPACE | -A] [--dir DIR] [--apply]
  kubectl remediator whoami
  kubectl remediator history [-n NAMESPACE | -A] [--verify] (--log-group G | --bucket B)   (see history --help)

approve and reject act as the current kubeconfig user: the approver recorded in
spec.approval is the user name the API server authenticates you as, and the API
server's admission policy refuses anything else. resume closes an AlertPolicy's open
circuit breaker (failures before now stop counting). ui serves a page on 127.0.0.1
(your inbox, each request's plan, targets and timeline, Approve and Reject) that acts
with your kubeconfig credentials, like kubectl proxy; open the URL it prints. Given
the audit sink (as for history), its History view shows the durable record, read with
your own AWS credentials. migrate turns AlertPolicies with an inline spec.action (the
schema before Runbooks) into a Runbook for a cluster administrator to review and the
policy that uses it: printed as YAML, or written to --dir; --apply creates both, as a
user who may create Runbooks (docs/upgrading.md).

Flags:
  -n, --namespace NAME   namespace (default: the kubeconfig context's, else "default")
  -A, --all-namespaces   list across all namespaces
      --phase PHASE      list only requests in this phase (e.g. AwaitingApproval)
  -o, --output FORMAT    list output: wide, name or json
      --reason TEXT      why you approve or reject (recorded in spec.approval.reason)
      --port PORT        ui: the local port to serve on (default: a free one)
      --dir DIR          migrate: write one file per object into DIR instead of printing
      --apply            migrate: create the Runbooks and replace the policies (cluster admin)
  ui and history: where the audit records are
${SINK_FLAGS_USAGE}
      --context NAME     kubeconfig context to use
      --kubeconfig PATH  kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)
  -h, --help             this help
      --version          plugin version`;

export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'whoami'; conn: Connection }
  | { kind: 'list'; conn: Connection; allNamespaces: boolean; phase?: string; output: 'table' | 'wide' | 'name' | 'json' }
  | { kind: 'describe'; conn: Connection; name: string }
  | { kind: 'decide'; conn: Connection; name: string; decision: 'Approved' | 'Rejected'; reason?: string }
  | { kind: 'resume'; conn: Connection; policy: string }
  | { kind: 'migrate'; conn: Connection; allNamespaces: boolean; name?: string; dir?: string; apply: boolean }
  | { kind: 'ui'; conn: Connection; allNamespaces: boolean; port: number; sink: SinkFlags };

export interface Connection {
  namespace?: string;
  context?: string;
  kubeconfig?: string;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const OPTIONS = {
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  phase: { type: 'string' },
  output: { type: 'string', short: 'o' },
  reason: { type: 'string' },
  context: { type: 'string' },
  kubeconfig: { type: 'string' },
  port: { type: 'string' },
  dir: { type: 'string' },
  apply: { type: 'boolean' },
  ...SINK_OPTIONS,
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

const OUTPUTS = new Set(['wide', 'name', 'json']);

export function parseCommand(argv: readonly string[]): Command {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.version) return { kind: 'version' };
  const [verb, ...rest] = positionals;
  if (values.help || verb === undefined || verb === 'help') return { kind: 'help' };
  const conn: Connection = { namespace: values.namespace, context: values.context, kubeconfig: values.kubeconfig };
  const oneName = (): string => {
    if (rest.length !== 1)
      throw new UsageError(
        `${verb} takes exactly one ${verb === 'resume' || verb === 'migrate' ? 'AlertPolicy' : 'RemediationRequest'} name, got ${rest.length}`,
      );
    const name = rest[0]!;
    // Accept kubectl's kind/name form too: rr/foo, remediationrequest/foo.
    const slash = name.indexOf('/');
    return slash >= 0 ? name.slice(slash + 1) : name;
  };
  const noNames = (): void => {
    if (rest.length > 0) throw new UsageError(`${verb} takes no arguments, got: ${rest.join(' ')}`);
  };
  const only = (allowed: Array<keyof typeof values>): void => {
    for (const key of Object.keys(values) as Array<keyof typeof values>) {
      if (values[key] === undefined || ['namespace', 'context', 'kubeconfig'].includes(key)) continue;
      if (!allowed.includes(key)) throw new UsageError(`--${key} does not apply to ${verb}`);
    }
  };
  switch (verb) {
    case 'list':
    case 'ls':
    case 'get': {
      noNames();
      only(['all-namespaces', 'phase', 'output']);
      const output = values.output;
      if (output !== undefined && !OUTPUTS.has(output)) throw new UsageError(`--output must be wide, name or json, got "${output}"`);
      if (values['all-namespaces'] && values.namespace) throw new UsageError('use either --namespace or --all-namespaces');
      return {
        kind: 'list',
        conn,
        allNamespaces: values['all-namespaces'] ?? false,
        phase: values.phase,
        output: (output as 'wide' | 'name' | 'json' | undefined) ?? 'table',
      };
    }
    case 'describe':
      only([]);
      return { kind: 'describe', conn, name: oneName() };
    case 'approve':
    case 'reject': {
      only(['reason']);
      const reason = values.reason?.trim();
      if (reason !== undefined && reason.length > 1024) throw new UsageError('--reason is limited to 1024 characters');
      return {
        kind: 'decide',
        conn,
        name: oneName(),
        decision: verb === 'approve' ? 'Approved' : 'Rejected',
        ...(reason ? { reason } : {}),
      };
    }
    case 'resume':
      only([]);
      return { kind: 'resume', conn, policy: oneName() };
    case 'ui': {
      noNames();
      only(['all-namespaces', 'port', ...(Object.keys(SINK_OPTIONS) as Array<keyof typeof SINK_OPTIONS>)]);
      if (values['all-namespaces'] && values.namespace) throw new UsageError('use either --namespace or --all-namespaces');
      const port = values.port === undefined ? 0 : Number(values.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number, got "${values.port}"`);
      const sink: SinkFlags = {};
      for (const key of Object.keys(SINK_OPTIONS) as Array<keyof typeof SINK_OPTIONS>)
        if (values[key] !== undefined) sink[key] = values[key];
      return { kind: 'ui', conn, allNamespaces: values['all-namespaces'] ?? false, port, sink };
    }
    case 'migrate': {
      only(['all-namespaces', 'dir', 'apply']);
      if (values['all-namespaces'] && (values.namespace || rest.length > 0))
        throw new UsageError('use either a policy name (with --namespace) or --all-namespaces');
      if (values.apply && values.dir) throw new UsageError('use either --dir (to review) or --apply');
      return {
        kind: 'migrate',
        conn,
        allNamespaces: values['all-namespaces'] ?? false,
        ...(rest.length > 0 && { name: oneName() }),
        ...(values.dir !== undefined && { dir: values.dir }),
        apply: values.apply ?? false,
      };
    }
    case 'whoami':
      noNames();
      only([]);
      return { kind: 'whoami', conn };
    default:
      throw new UsageError(`unknown command "${verb}": use list, describe, approve, reject, resume, ui, migrate or whoami`);
  }
}
