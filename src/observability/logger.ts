/**
 * Structured JSON logs (pino). Secrets never reach a log: the known secret-bearing keys are redacted.
 *
 * The level is written as a word (`"level":"info"`), not pino's number (30): log pipelines
 * on EKS (Fluent Bit, CloudWatch Logs Insights, Loki) and the people who read zap and
 * klog output from every other controller filter on the word.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export function createLogger(level = process.env.LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { component: 'remediator' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: {
      paths: ['token', 'authorization', '*.authorization', 'headers.authorization', 'secret', '*.token', 'credentials'],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
