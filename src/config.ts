/**
 * Controller configuration from flags, each with an environment variable fallback
 * (`--metrics-bind-address` ↔ `METRICS_BIND_ADDRESS`), the way operators are usually
 * configured from a Deployment; a flag on the command line wins. `docs/` lists them all.
 *
 * Boolean flags take every spelling users bring from Go and kubebuilder operators:
 * `--flag`, `--flag=true|false`, `--no-flag`, and the variable `FLAG=true|false` (also
 * `1|0`, `yes|no`). Anything else is an error, never silently false.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parseDuration } from './api/v1alpha1/index.js';
import { AUDIT_SINK_TYPES, type AuditSinkConfig, type AuditSinkType } from './cloud/audit-sink.js';
import type { RetentionDefaults } from './controllers/retention.js';
import { SNS_TOPIC_ARN } from './intake/sns.js';
import { parseBindAddress } from './observability/server.js';

/** Intake settings ; see docs/intake.md. */
export interface IntakeConfig {
  /** `host:port`, or `0` to run no intake. */
  bindAddress: string;
  tokenSecret: { namespace: string; name: string } | undefined;
  /** Overrides the identity learnt from a SelfSubjectReview (`spec.requestedBy`). */
  identity: string | undefined;
  snsTopicAllowlist: Set<string>;
  /** `URL=path` pins of SNS signing certificates (see src/intake/pinned-certificates.ts). */
  snsPinnedCertificates: string[];
  maxInflight: number;
  /** Open intake connections at once, and from one source address (0: no per-source cap). */
  maxConnections: number;
  maxConnectionsPerSource: number;
  maxAlerts: number;
  retryTimeoutMs: number;
  tokenTtlMs: number;
  dedupWindowMs: number;
}

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
  /** Objects per LIST page when an informer (re-)lists. */
  listPageSize: number;
  /** Watch and reconcile only these namespaces; all namespaces when empty. */
  watchNamespaces: string[];
  /** The approval ValidatingAdmissionPolicy whose enforcement manual approvals depend on. */
  admissionPolicyName: string;
  /** Where the execution ledger's ConfigMaps live: the controller's own namespace. */
  ledgerNamespace: string;
  /** Retention of finished requests for policies that set none. */
  retention: RetentionDefaults;
  /** Where ended requests' audit records go before retention deletes them; undefined: nowhere (docs/audit.md). */
  audit: AuditSinkConfig | undefined;
  /** The tag every SendCommand target must carry (what config/iam/policy.json conditions on); undefined: not checked. */
  requiredTargetTag: { key: string; value: string } | undefined;
  /** The tag that opts an instance out of every remediation (`--opt-out-tag`); the cluster admin's, never a policy's. */
  optOutTag: { key: string; value: string };
  intake: IntakeConfig;
}

/** The controller's flags, as node's parseArgs reads them (docs snippets are checked against these names). */
export const OPTIONS = {
  'metrics-bind-address': { type: 'string', default: ':8080' },
  'leader-elect': { type: 'boolean' },
  'leader-election-namespace': { type: 'string' },
  'leader-election-id': { type: 'string', default: 'remediator-leader' },
  'allowed-documents': { type: 'string', default: 'AWS-RunShellScript' },
  concurrency: { type: 'string', default: '16' },
  'log-level': { type: 'string', default: 'info' },
  'poll-interval': { type: 'string', default: '1000' },
  'max-poll-interval': { type: 'string', default: '30000' },
  'watch-namespace': { type: 'string', default: '' },
  'list-page-size': { type: 'string', default: '500' },
  'admission-policy-name': { type: 'string', default: 'remediator-approvals' },
  'ledger-namespace': { type: 'string' },
  'retention-ttl-after-finished': { type: 'string', default: '24h' },
  'retention-history-limit': { type: 'string', default: '100' },
  'required-target-tag': { type: 'string', default: 'remediator.dev/managed=true' },
  'opt-out-tag': { type: 'string', default: 'remediator.dev/opt-out=true' },
  'audit-sink': { type: 'string', default: 'none' },
  'audit-log-group': { type: 'string' },
  'audit-bucket': { type: 'string' },
  'audit-prefix': { type: 'string', default: '' },
  'audit-region': { type: 'string' },
  'intake-bind-address': { type: 'string' },
  'intake-token-secret': { type: 'string' },
  'intake-identity': { type: 'string' },
  'sns-topic-allowlist': { type: 'string' },
  'sns-pinned-certificate': { type: 'string' },
  'intake-max-inflight': { type: 'string', default: '64' },
  'intake-max-connections': { type: 'string', default: '512' },
  'intake-max-connections-per-source': { type: 'string', default: '64' },
  'intake-max-alerts': { type: 'string', default: '500' },
  'intake-retry-timeout': { type: 'string', default: '5s' },
  'intake-token-ttl': { type: 'string', default: '10s' },
  'intake-dedup-window': { type: 'string', default: '1h' },
  help: { type: 'boolean', default: false },
} as const;

export const USAGE = `Usage: remediator [flags]   (each flag also reads the upper-case env var, e.g. METRICS_BIND_ADDRESS)
  --metrics-bind-address   host:port for /metrics, /healthz, /readyz (default :8080)
  --leader-elect           run controllers only while holding the Lease (default true when in a cluster);
                           --leader-elect=false or --no-leader-elect turns it off
  --leader-election-namespace  namespace of the Lease (default: POD_NAMESPACE)
  --leader-election-id     Lease name (default remediator-leader)
  --allowed-documents      comma-separated SSM documents policies may use (default AWS-RunShellScript)
  --concurrency            RemediationRequest reconcile workers (default 16)
  --log-level              pino level: debug, info, warn, error (default info)
  --poll-interval          first SSM invocation poll delay in ms (default 1000)
  --max-poll-interval      longest SSM invocation poll delay in ms (default 30000)
  --watch-namespace        comma-separated namespaces to watch and reconcile (default: all namespaces)
  --list-page-size         objects per page when the caches list (limit/continue; default 500)
  --admission-policy-name  the approval ValidatingAdmissionPolicy manual approvals depend on (default remediator-approvals)
  --ledger-namespace       namespace of the execution ledger's ConfigMaps; only the controller may write there (default: POD_NAMESPACE)
  --retention-ttl-after-finished  delete finished requests this long after they ended, unless their policy says otherwise (default 24h)
  --retention-history-limit  keep at most this many finished requests per policy, unless it says otherwise (default 100; 0 keeps none)
  --required-target-tag    key=value every SSM target must carry, as the IAM policy requires (default remediator.dev/managed=true; empty: no check)
  --opt-out-tag            key=value that keeps an instance out of every remediation, whatever a policy says (default remediator.dev/opt-out=true)
  --audit-sink             where ended requests' audit records go before retention deletes them: none, cloudwatch-logs or s3 (default none)
  --audit-log-group        cloudwatch-logs: the log group (one stream per namespace; created if missing)
  --audit-bucket           s3: the bucket (one object per record)
  --audit-prefix           s3: the key prefix, e.g. remediator/audit/ (default: none)
  --audit-region           the sink's AWS region (default: AWS_REGION)
  --intake-bind-address    host:port of the alert intake, or 0 for none (default :8090 in a cluster, 0 outside one)
  --intake-token-secret    namespace/name of the Secret whose key "token" is the intake's bearer token
  --intake-identity        user name recorded as spec.requestedBy (default: learnt from a SelfSubjectReview)
  --sns-topic-allowlist    comma-separated SNS topic ARNs whose messages the intake accepts (default: none)
  --sns-pinned-certificate comma-separated URL=path pins: verify SNS messages naming URL with the local PEM at path instead of fetching it
  --intake-max-inflight    intake requests handled at once; beyond it 429 (default 64); SNS has its own quarter of it (503 beyond)
  --intake-max-connections open intake connections at once; beyond it 503 and closed (default 512)
  --intake-max-connections-per-source  open intake connections from one address (default 64; 0: no cap; raise it behind a proxy)
  --intake-max-alerts      alerts accepted in one Alertmanager payload; beyond it 413 (default 500)
  --intake-retry-timeout   how long the intake retries an unavailable API server before answering 503 (default 5s)
  --intake-token-ttl       how long the token read from the Secret is trusted before re-reading it (default 10s)
  --intake-dedup-window    dedup window of generic alerts sent without startsAt (default 1h)
Durations are whole numbers each with a unit, ms, s, m or h (e.g. 500ms, 5s, 1h30m).
Booleans: --flag, --flag=true|false, --no-flag, or FLAG=true|false in the environment.`;

type FlagName = keyof typeof OPTIONS;

/** The boolean flags users set (`--help` aside): each has `--no-<flag>`, `--<flag>=<bool>` and an env var. */
export const BOOLEAN_FLAGS = (Object.keys(OPTIONS) as FlagName[]).filter((f) => OPTIONS[f].type === 'boolean' && f !== 'help');

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

/** `true|false|1|0|yes|no|on|off` (any case), or an error naming where the value came from. */
export function parseBoolean(value: string, where: string): boolean {
  const v = value.trim().toLowerCase();
  if (TRUE_WORDS.has(v)) return true;
  if (FALSE_WORDS.has(v)) return false;
  throw new Error(`${where} must be true or false, got "${value}"`);
}

/**
 * Rewrites `--flag=<bool>` of a boolean flag into `--flag` or `--no-flag`, which is all
 * node's parseArgs understands (it refuses a value on a boolean: "does not take an
 * argument"). Other arguments pass unchanged.
 */
function normaliseBooleanArgs(argv: readonly string[]): string[] {
  return argv.map((arg) => {
    const m = /^--([a-z-]+)=(.*)$/s.exec(arg);
    if (!m || !(BOOLEAN_FLAGS as readonly string[]).includes(m[1]!)) return arg;
    return parseBoolean(m[2]!, `--${m[1]}`) ? `--${m[1]}` : `--no-${m[1]}`;
  });
}

function nonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0) throw new Error(`--${flag} must be a whole number (0 or more), got "${value}"`);
  return n;
}

/**
 * A duration flag in the one grammar of src/api/v1alpha1/duration.ts (`500ms`, `5s`,
 * `1h30m`), in milliseconds and above zero; `0` only where `zero` allows it.
 */
export function durationFlag(value: string, flag: string, { zero = false } = {}): number {
  const v = value.trim();
  if (zero && v === '0') return 0;
  if (/^[0-9]+$/.test(v) && v !== '0') throw new Error(`--${flag} needs a unit (ms, s, m or h), e.g. ${v}ms or ${v}s; got "${value}"`);
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch {
    ms = NaN;
  }
  if (!(ms > 0)) throw new Error(`--${flag} must be a positive duration such as 500ms, 5s or 1h30m${zero ? ', or 0' : ''}, got "${value}"`);
  return ms;
}

export function envName(flag: string): string {
  return flag.toUpperCase().replace(/-/g, '_');
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): ControllerConfig | 'help' {
  const args = normaliseBooleanArgs(argv);
  const { values } = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false, allowNegative: true });
  if (values.help) return 'help';
  /** A boolean: the last of `--flag`/`--no-flag` given wins, then the env var, then `fallback`. */
  const bool = (flag: (typeof BOOLEAN_FLAGS)[number], fallback: boolean): boolean => {
    const given: unknown = values[flag];
    if (typeof given === 'boolean') return given;
    const fromEnv = env[envName(flag)];
    return fromEnv !== undefined && fromEnv.trim() !== '' ? parseBoolean(fromEnv, envName(flag)) : fallback;
  };
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
  const leaderElect = bool('leader-elect', inCluster);
  const namespace = str('leader-election-namespace') || env.POD_NAMESPACE || 'default';
  return {
    intake: intakeConfig(str, int, env, inCluster),
    metricsBindAddress: str('metrics-bind-address'),
    leaderElect,
    leaderElectionNamespace: namespace,
    leaderElectionId: str('leader-election-id'),
    identity: env.POD_NAME ?? `${hostname()}-${process.pid}`,
    allowedDocuments: new Set(
      str('allowed-documents')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
    concurrency: int('concurrency'),
    awsRegion: env.AWS_REGION ?? env.AWS_DEFAULT_REGION,
    logLevel: str('log-level'),
    pollIntervalMs: int('poll-interval'),
    maxPollIntervalMs: int('max-poll-interval'),
    listPageSize: int('list-page-size'),
    watchNamespaces: str('watch-namespace')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
    admissionPolicyName: str('admission-policy-name'),
    ledgerNamespace: str('ledger-namespace') || env.POD_NAMESPACE || namespace,
    retention: {
      ttlAfterFinishedMs: durationFlag(str('retention-ttl-after-finished'), 'retention-ttl-after-finished', { zero: true }),
      historyLimit: nonNegativeInt(str('retention-history-limit'), 'retention-history-limit'),
    },
    requiredTargetTag: parseTargetTag(str('required-target-tag')),
    optOutTag: parseOptOutTag(str('opt-out-tag')),
    audit: auditConfig(str),
  };
}

/** The audit sink flags; undefined for `none`. */
function auditConfig(str: (flag: keyof typeof OPTIONS) => string): AuditSinkConfig | undefined {
  const type = str('audit-sink').trim() || 'none';
  if (!(AUDIT_SINK_TYPES as readonly string[]).includes(type))
    throw new Error(`--audit-sink must be one of ${AUDIT_SINK_TYPES.join(', ')}, got "${type}"`);
  if ((type as AuditSinkType) === 'none') return undefined;
  const region = str('audit-region').trim() || undefined;
  if (type === 'cloudwatch-logs') {
    const logGroup = str('audit-log-group').trim();
    if (!/^[.\-_/#A-Za-z0-9]{1,512}$/.test(logGroup))
      throw new Error(`--audit-sink=cloudwatch-logs needs --audit-log-group: 1-512 characters of [.-_/#A-Za-z0-9], got "${logGroup}"`);
    return { type: 'cloudwatch-logs', logGroup, ...(region && { region }) };
  }
  const bucket = str('audit-bucket').trim();
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    throw new Error(`--audit-sink=s3 needs --audit-bucket: an S3 bucket name (3-63 characters of [a-z0-9.-]), got "${bucket}"`);
  const prefix = str('audit-prefix').trim();
  if (prefix.length > 512) throw new Error('--audit-prefix is limited to 512 characters');
  // Records go under <prefix><namespace>/: a prefix meant as a folder gets its slash.
  return { type: 's3', bucket, prefix: prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix, ...(region && { region }) };
}

/** `key=value` (the value may be empty, the key may not), or '' for no check. */
export function parseTargetTag(value: string): { key: string; value: string } | undefined {
  const v = value.trim();
  if (v === '') return undefined;
  const eq = v.indexOf('=');
  const key = eq < 0 ? '' : v.slice(0, eq).trim();
  if (key === '' || key.length > 128)
    throw new Error(`--required-target-tag must be key=value (or empty to turn the check off), got "${value}"`);
  return { key, value: v.slice(eq + 1).trim() };
}

/** `key=value` for --opt-out-tag: never empty, since the opt-out cannot be turned off. */
export function parseOptOutTag(value: string): { key: string; value: string } {
  const v = value.trim();
  const eq = v.indexOf('=');
  const key = eq < 0 ? '' : v.slice(0, eq).trim();
  if (key === '' || key.length > 128) throw new Error(`--opt-out-tag must be key=value (the opt-out cannot be turned off), got "${value}"`);
  return { key, value: v.slice(eq + 1).trim() };
}

function intakeConfig(
  str: (flag: keyof typeof OPTIONS) => string,
  int: (flag: keyof typeof OPTIONS) => number,
  env: NodeJS.ProcessEnv,
  inCluster: boolean,
): IntakeConfig {
  const secret = str('intake-token-secret').trim();
  let tokenSecret: IntakeConfig['tokenSecret'];
  if (secret) {
    const parts = secret.split('/');
    if (parts.length > 2 || parts.some((p) => !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(p))) {
      throw new Error(`--intake-token-secret must be <namespace>/<name> (or <name> in POD_NAMESPACE), got "${secret}"`);
    }
    tokenSecret =
      parts.length === 2 ? { namespace: parts[0]!, name: parts[1]! } : { namespace: env.POD_NAMESPACE || 'default', name: parts[0]! };
  }
  const topics = new Set(
    str('sns-topic-allowlist')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const t of topics) {
    if (!SNS_TOPIC_ARN.test(t))
      throw new Error(`--sns-topic-allowlist: "${t}" is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)`);
  }
  // Like --leader-elect: on by default in a cluster (the Deployment's Service points at
  // :8090); outside one (a laptop, tests, several controllers on one machine) only when
  // asked for, so no two processes race for the same fixed port.
  const bindAddress = str('intake-bind-address').trim() || (inCluster ? ':8090' : '0');
  if (bindAddress !== '0') parseBindAddress(bindAddress);
  return {
    bindAddress,
    tokenSecret,
    identity: str('intake-identity').trim() || undefined,
    snsTopicAllowlist: topics,
    snsPinnedCertificates: str('sns-pinned-certificate')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
    maxInflight: int('intake-max-inflight'),
    maxConnections: int('intake-max-connections'),
    maxConnectionsPerSource: nonNegativeInt(str('intake-max-connections-per-source'), 'intake-max-connections-per-source'),
    maxAlerts: int('intake-max-alerts'),
    retryTimeoutMs: durationFlag(str('intake-retry-timeout'), 'intake-retry-timeout'),
    tokenTtlMs: durationFlag(str('intake-token-ttl'), 'intake-token-ttl'),
    dedupWindowMs: durationFlag(str('intake-dedup-window'), 'intake-dedup-window'),
  };
}
