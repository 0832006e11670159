/**
 * Controller configuration from flags, each with an environment variable fallback
 * (`--metrics-bind-address` ↔ `METRICS_BIND_ADDRESS`), the way operators are usually
 * configured from a Deployment. `docs/` lists them all.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';

export interface ControllerConfig {
  metricsBindAddress: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  identity: string;
  allowedDocuments: Set<string>;
  concurrency: number;
  awsRegion: string | undefined;
  logLevel: string;
  pollIntervalMs: number;
  maxPollIntervalMs: number;
}

const OPTIONS = {
  'metrics-bind-address': { type: 'string', default: ':8080' },
  'leader-elect': { type: 'boolean' },
  'leader-election-namespace': { type: 'string' },
  'leader-election-id': { type: 'string', default: 'remediator-leader' },
  'allowed-documents': { type: 'string', default: 'AWS-RunShellScript' },
  concurrency: { type: 'string', default: '4' },
  'log-level': { type: 'string', default: 'info' },
  'poll-interval': { type: 'string', default: '1000' },
  'max-poll-interval': { type: 'string', default: '30000' },
  help: { type: 'boolean', default: false },
} as const;

export const USAGE = `Usage: remediator [flags]   (each flag also reads the upper-case env var, e.g. METRICS_BIND_ADDRESS)
  --metrics-bind-address   host:port for /metrics, /healthz, /readyz (default :8080)
  --leader-elect           run controllers only while holding the Lease (default true when in a cluster)
  --leader-election-namespace  namespace of the Lease (default: POD_NAMESPACE)
  --leader-election-id     Lease name (default remediator-leader)
  --allowed-documents      comma-separated SSM documents policies may use (default AWS-RunShellScript)
  --concurrency            reconcile workers per controller (default 4)
  --log-level              pino level: debug, info, warn, error (default info)
  --poll-interval          first SSM invocation poll delay in ms (default 1000)
  --max-poll-interval      longest SSM invocation poll delay in ms (default 30000)`;

function envName(flag: string): string {
  return flag.toUpperCase().replace(/-/g, '_');
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): ControllerConfig | 'help' {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  if (values.help) return 'help';
  const str = (flag: keyof typeof OPTIONS): string => {
    const explicit = argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`));
    const v = explicit ? values[flag] : (env[envName(flag)] ?? values[flag]);
    return String(v ?? '');
  };
  const int = (flag: keyof typeof OPTIONS): number => {
    const n = Number(str(flag));
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${flag} must be a positive integer, got "${str(flag)}"`);
    return n;
  };
  const inCluster = env.KUBERNETES_SERVICE_HOST !== undefined;
  const leaderElectEnv = env.LEADER_ELECT;
  const leaderElect = values['leader-elect'] ?? (leaderElectEnv !== undefined ? leaderElectEnv === 'true' : inCluster);
  const namespace = str('leader-election-namespace') || env.POD_NAMESPACE || 'default';
  return {
    metricsBindAddress: str('metrics-bind-address'),
    leaderElect,
    leaderElectionNamespace: namespace,
    leaderElectionId: str('leader-election-id'),
    identity: env.POD_NAME ?? `${hostname()}-${process.pid}`,
    allowedDocuments: new Set(str('allowed-documents').split(',').map((s) => s.trim()).filter(Boolean)),
    concurrency: int('concurrency'),
    awsRegion: env.AWS_REGION ?? env.AWS_DEFAULT_REGION,
    logLevel: str('log-level'),
    pollIntervalMs: int('poll-interval'),
    maxPollIntervalMs: int('max-poll-interval'),
  };
}
