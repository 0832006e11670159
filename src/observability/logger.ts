/** Structured JSON logs (pino). Secrets never reach a log: the known secret-bearing keys are redacted. */
import { pino, type Logger } from 'pino';

export function createLogger(level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { component: 'remediator' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['token', 'authorization', '*.authorization', 'headers.authorization', 'secret', '*.token', 'credentials'],
      censor: '[redacted]',
    },
  });
}

export type { Logger };
