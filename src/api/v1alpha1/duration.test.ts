import { readFileSync } from 'node:fs';
import { DURATION_GRAMMAR, parseDuration } from './duration.js';

describe('parseDuration', () => {
  test('reads whole numbers with units, summed', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('0s')).toBe(0);
  });

  test.each(['', '5', '1.5h', '5 m', '-5s', '1d', '10us', 'm5'])('refuses %j', (text) => {
    expect(() => parseDuration(text)).toThrow(/invalid duration/);
  });

  test("the chart's values.schema.json uses the same grammar", () => {
    const schema = JSON.parse(readFileSync(new URL('../../../../charts/remediator/values.schema.json', import.meta.url), 'utf8')) as {
      properties: { controller: { properties: { retention: { properties: { ttlAfterFinished: { pattern: string } } } } } };
    };
    expect(schema.properties.controller.properties.retention.properties.ttlAfterFinished.pattern).toBe(`^(0|${DURATION_GRAMMAR})$`);
  });
});
