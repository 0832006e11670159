// The log line format is an interface: pipelines filter on `"level":"info"`, and a
// secret must never appear whatever level it is logged at.
import { Writable } from 'node:stream';
import { createLogger } from './logger.js';

function capture(level: string): { logger: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger(level, sink);
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('createLogger', () => {
  test('writes the level as a word, one JSON object per line', () => {
    const { logger, lines } = capture('debug');
    logger.debug('d');
    logger.info({ policy: 'restart-nginx' }, 'i');
    logger.warn('w');
    logger.error('e');
    expect(lines().map((l) => [l['level'], l['msg']])).toEqual([
      ['debug', 'd'],
      ['info', 'i'],
      ['warn', 'w'],
      ['error', 'e'],
    ]);
    expect(lines()[1]).toMatchObject({ component: 'remediator', policy: 'restart-nginx' });
    expect(typeof lines()[0]!['time']).toBe('string');
  });

  test('still filters by level', () => {
    const { logger, lines } = capture('warn');
    logger.info('hidden');
    logger.warn('shown');
    expect(lines().map((l) => l['msg'])).toEqual(['shown']);
  });

  test('redacts secret-bearing keys', () => {
    const { logger, lines } = capture('info');
    logger.info({ token: 's3cret', headers: { authorization: 'Bearer s3cret' } }, 'request');
    const line = JSON.stringify(lines()[0]);
    expect(line).not.toContain('s3cret');
    expect(lines()[0]).toMatchObject({ token: '[redacted]', headers: { authorization: '[redacted]' } });
  });
});
