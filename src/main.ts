/**
 * The controller process: reads configuration, builds the operator and stops it in
 * order on SIGTERM/SIGINT (30 s grace, as controller-runtime), exiting non-zero on a
 * lost Lease so Kubernetes restarts the pod as a follower.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { createCloud } from './cloud/clients.js';
import { loadConfig, USAGE } from './config.js';
import { createLogger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { Operator } from './operator.js';

const GRACEFUL_STOP_MS = 30_000;

async function main(): Promise<void> {
  let config;
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
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const cloud = createCloud({ region: config.awsRegion, metrics });
  const operator = new Operator({ config, kubeConfig, cloud, logger, metrics });

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
      await operator.stop();
    } finally {
      logger.info('stopped');
      process.exit(code);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  await operator.start(() => void shutdown('lost-leadership', 1));
  logger.info({ leaderElect: config.leaderElect, identity: config.identity, region: config.awsRegion }, 'remediator started');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
