/**
 * The controller process: reads configuration, builds the operator and the alert intake,
 * and stops them in order on SIGTERM/SIGINT (30 s grace, as controller-runtime): the
 * intake first, so no new alert arrives while work is handed back (docs/operations.md), then the
 * operator. It exits non-zero on a lost Lease so Kubernetes restarts the pod as a
 * follower. The intake runs on every replica: it needs the policy cache, not the Lease.
 */
import { KubeconfigError, PooledKubeConfig } from './kube/kubeconfig.js';
import { CloudPool } from './cloud/pool.js';
import { KubeIntakeApi } from './intake/kube.js';
import { IntakeServer } from './intake/server.js';
import { loadConfig, USAGE } from './config.js';
import { createLogger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { Operator } from './operator.js';
import { PinnedCertificateSource } from './intake/pinned-certificates.js';
import { HttpsCertificateSource } from './intake/sns.js';

const GRACEFUL_STOP_MS = 30_000;

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (config === 'help') {
    console.log(USAGE);
    return;
  }
  const logger = createLogger(config.logLevel);
  const metrics = new Metrics();
  const kubeConfig = new PooledKubeConfig();
  try {
    kubeConfig.loadOrExplain();
  } catch (error) {
    if (!(error instanceof KubeconfigError)) throw error;
    // A configuration mistake, like a bad flag: one log line and exit status 2, no stack.
    logger.fatal(error.message);
    logger.flush();
    process.exit(2);
  }
  const cloud = new CloudPool({ homeRegion: config.awsRegion, metrics });
  const operator = new Operator({ config, kubeConfig, cloud, logger, metrics });
  const intake =
    config.intake.bindAddress === '0'
      ? undefined
      : new IntakeServer({
          bindAddress: config.intake.bindAddress,
          kube: new KubeIntakeApi(kubeConfig),
          policies: () => operator.listPolicies(),
          watchNamespaces: config.watchNamespaces,
          cacheSynced: () => operator.ready,
          logger,
          registry: metrics.registry,
          tokenSecret: config.intake.tokenSecret,
          tokenTtlMs: config.intake.tokenTtlMs,
          identity: config.intake.identity,
          snsTopicAllowlist: config.intake.snsTopicAllowlist,
          ...(config.intake.snsPinnedCertificates.length > 0 && {
            certificates: new PinnedCertificateSource(config.intake.snsPinnedCertificates, new HttpsCertificateSource()),
          }),
          maxInflight: config.intake.maxInflight,
          maxConnections: config.intake.maxConnections,
          maxConnectionsPerSource: config.intake.maxConnectionsPerSource,
          maxAlerts: config.intake.maxAlerts,
          retryBudgetMs: config.intake.retryTimeoutMs,
          dedupWindowMs: config.intake.dedupWindowMs,
        });

  let stopping = false;
  const shutdown = async (signal: string, code: number) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error('graceful stop timed out; exiting');
      process.exit(1);
    }, GRACEFUL_STOP_MS);
    force.unref();
    try {
      // Intake first: stop taking alerts, let in-flight ones finish, then the controllers.
      await intake?.stop(10_000).catch((error: unknown) => logger.error({ err: error }, 'intake did not stop cleanly'));
      await operator.stop();
    } finally {
      logger.info('stopped');
      process.exit(code);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  // Listening before the caches sync: a port conflict fails at once, and until the sync
  // the intake answers 503 (not ready) instead of refusing connections.
  await intake?.start();
  await operator.start(() => void shutdown('lost-leadership', 1));
  logger.info(
    {
      leaderElect: config.leaderElect,
      identity: config.identity,
      region: config.awsRegion,
      intake: intake ? config.intake.bindAddress : 'off',
    },
    'remediator started',
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
