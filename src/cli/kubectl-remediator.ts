#!/usr/bin/env node
/**
 * Entry point of the kubectl plugin (`kubectl remediator ...`), the package's bin. kubectl
 * finds any executable named kubectl-<name> on PATH and passes it the remaining
 * arguments and the environment (KUBECONFIG included).
 *
 * This file stays small: it checks the Node version (the Kubernetes client needs 22.19
 * or later, and a static import would fail on an older Node with an error that says
 * nothing useful), answers --help and --version without loading that client, and turns
 * on Node's compile cache, which makes every later start markedly faster.
 * The plugin ships alone (one bundled file inside a standalone executable per platform,
 * hack/plugin/bundle.ts), so it uses no controller code; `history` reads the audit sink
 * through the cloud layer (the only importer of the AWS SDK).
 */
import module from 'node:module';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(`kubectl-remediator needs Node.js 22.19 or later (24 recommended); this is ${process.version}.`);
  process.exit(1);
}
module.enableCompileCache?.();

const argv = process.argv.slice(2);
const { parseCommand, USAGE } = await import('./args.js');
let quick: string | undefined;
try {
  const cmd = parseCommand(argv);
  if (cmd.kind === 'help') quick = USAGE;
} catch {
  // Usage errors are reported by run() below, with the right exit code.
}
if (quick !== undefined) {
  console.log(quick);
} else {
  const { run } = await import('./plugin.js');
  process.exitCode = await run(argv, {
    out: (text) => console.log(text),
    err: (text) => console.error(text),
    now: () => Date.now(),
  });
}
