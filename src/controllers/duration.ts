/** Parses Go-style durations (`90s`, `5m`, `1h30m`, `250ms`), the form Kubernetes APIs use. */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const PART = /([0-9]+)(ms|s|m|h)/g;

export function parseDuration(text: string): number {
  if (!/^([0-9]+(ms|s|m|h))+$/.test(text)) {
    throw new Error(`invalid duration "${text}": use a number with a unit, e.g. 30s, 5m, 1h30m`);
  }
  let total = 0;
  for (const m of text.matchAll(PART)) total += Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 0);
  return total;
}
