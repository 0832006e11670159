/**
 * The one duration grammar of remediator: whole numbers each with a unit, `ms`, `s`, `m`
 * or `h` (`250ms`, `30s`, `5m`, `1h30m`), the subset of Go's durations Kubernetes users
 * write. The CRD schemas (`Duration` in schema.ts), the chart's values.schema.json and
 * the controller's duration flags (src/config.ts) all use this pattern, and
 * `parseDuration` reads exactly what it accepts, so nothing the API server or Helm lets
 * through can fail later in the controller.
 */

/** The grammar without anchors, for embedding (`^(0|${DURATION_GRAMMAR})$`). */
export const DURATION_GRAMMAR = '([0-9]+(ms|s|m|h))+';
export const DURATION_PATTERN = `^${DURATION_GRAMMAR}$`;

const DURATION = new RegExp(DURATION_PATTERN);
const PART = /([0-9]+)(ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Milliseconds of a duration such as `1h30m`; throws on anything else (a bare number included). */
export function parseDuration(text: string): number {
  if (!DURATION.test(text)) {
    throw new Error(`invalid duration "${text}": use whole numbers with a unit (ms, s, m or h), e.g. 500ms, 30s, 5m, 1h30m`);
  }
  let total = 0;
  for (const m of text.matchAll(PART)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}
