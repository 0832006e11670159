/**
 * The kubectl plugin's commands: each parses into a Command (args.ts) and runs here
 * against the API server through the shared client (client.ts), which also holds the one
 * code path that writes an approval. `ui` serves the page (ui/server.ts).
 */
import { GROUP, REMEDIATION_REQUEST, VERSION } from '../api/v1alpha1/index.js';
import { parseCommand, PLUGIN_VERSION, UsageError, USAGE, type Command } from './args.js';
import { apiMessage, Client, decide, PluginError, statusCode } from './client.js';
import { describeRequest, listTable, planText } from './format.js';
import { historyRequested, runHistory } from './history.js';
import { runMigrate } from './migrate.js';
import { SinkFlagsError, sinkConfigFrom } from './sink-flags.js';
import type { AuditSinkConfig } from '../cloud/audit-sink.js';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  now: () => number;
}

async function execute(cmd: Command, io: Io): Promise<number> {
  switch (cmd.kind) {
    case 'help':
      io.out(USAGE);
      return 0;
    case 'version':
      io.out(`kubectl-remediator ${PLUGIN_VERSION} (${API_LABEL})`);
      return 0;
    case 'whoami': {
      const me = await new Client(cmd.conn).whoami();
      io.out(`${me.username}${me.groups.length > 0 ? ` (groups: ${me.groups.join(', ')})` : ''}`);
      return 0;
    }
    case 'list': {
      const client = new Client(cmd.conn);
      let items = await client.list(cmd.allNamespaces);
      if (cmd.phase) items = items.filter((r) => (r.status?.phase ?? 'Pending') === cmd.phase);
      items.sort((a, b) => `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace}/${b.metadata?.name}`));
      if (cmd.output === 'json') {
        io.out(JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 2));
      } else if (cmd.output === 'name') {
        if (items.length > 0) io.out(items.map((r) => `${REMEDIATION_REQUEST.singular}.${GROUP}/${r.metadata?.name}`).join('\n'));
      } else if (items.length === 0) {
        io.err(cmd.allNamespaces ? 'No remediation requests found.' : `No remediation requests found in ${client.namespace} namespace.`);
      } else {
        io.out(listTable(items, { now: io.now(), allNamespaces: cmd.allNamespaces, wide: cmd.output === 'wide' }));
      }
      return 0;
    }
    case 'describe': {
      const client = new Client(cmd.conn);
      const rr = await client.get(cmd.name);
      io.out(describeRequest(rr, await client.events(rr), io.now()));
      return 0;
    }
    case 'decide': {
      const client = new Client(cmd.conn);
      const { ref, username } = await decide(
        client,
        { namespace: client.namespace, name: cmd.name, decision: cmd.decision, ...(cmd.reason ? { reason: cmd.reason } : {}) },
        // The approver sees the plan they approve; the approval names its digest.
        (plan) => io.out(planText(plan)),
      );
      io.out(`${ref} ${cmd.decision.toLowerCase()} by ${username}${cmd.reason ? ` (${cmd.reason})` : ''}`);
      return 0;
    }
    case 'ui': {
      let sink: AuditSinkConfig | undefined;
      try {
        sink = sinkConfigFrom(cmd.sink, process.env);
      } catch (error) {
        if (error instanceof SinkFlagsError) throw new UsageError(error.message);
        throw error;
      }
      const { serveUi } = await import('./ui/server.js');
      const client = new Client(cmd.conn);
      // The history view reads the audit sink with the user's AWS credentials when one is named.
      const history = sink ? (await import('./ui/history.js')).auditHistorySource(sink) : undefined;
      const ui = await serveUi({ client, allNamespaces: cmd.allNamespaces, port: cmd.port, now: io.now, ...(history && { history }) });
      io.out(
        `Serving the remediator page as your kubeconfig user on 127.0.0.1 only. Open:\n  ${ui.url}\nThe URL holds this session's secret token: do not share it. Ctrl-C stops the page.`,
      );
      await new Promise<void>((resolve) => {
        const stop = () => void ui.close().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      return 0;
    }
    case 'migrate':
      return runMigrate(cmd, io);
    case 'resume': {
      const client = new Client(cmd.conn);
      const policy = await client.resume(cmd.policy, new Date(io.now()));
      const open = policy.status?.circuitBreaker?.open;
      io.out(`alertpolicy ${client.namespace}/${cmd.policy} resumed${open ? ': the controller closes its circuit breaker shortly' : ''}`);
      return 0;
    }
  }
}

const API_LABEL = `${GROUP}/${VERSION}`;

/** Runs the plugin; returns the process exit code (0 ok, 1 failed or refused, 2 usage). */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  if (historyRequested(argv)) return runHistory(argv, io); // its own flags: src/cli/history.ts
  try {
    return await execute(parseCommand(argv), io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`error: ${error.message}\nRun "kubectl remediator --help" for usage.`);
      return 2;
    }
    if (error instanceof PluginError) {
      io.err(`error: ${error.message}`);
      return 1;
    }
    const code = statusCode(error);
    if (code === 401) io.err('error: the API server did not accept your credentials (HTTP 401); check your kubeconfig');
    else if (code !== undefined) io.err(`error: ${apiMessage(error)}`);
    else io.err(`error: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}
