/**
 * Whether two values are the same JSON document: the test controllers use to skip a
 * status write that changes nothing. `isDeepStrictEqual` is the wrong test for that: it
 * also compares prototypes, so objects built in another realm (under jest, the fakes'
 * `structuredClone` is the host's, the controller runs in jest's vm context) never equal
 * the controller's own, and it tells `{ a: undefined }` from `{}`, which the API server
 * stores alike. Either made the request controller write an unchanged status on every
 * reconcile — and each write's watch event queued the next reconcile, a write loop.
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => sameJson(v, b[i]));
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  // Keys whose value is undefined are not sent (JSON has no undefined).
  const kx = Object.keys(x).filter((k) => x[k] !== undefined);
  const ky = Object.keys(y).filter((k) => y[k] !== undefined);
  return kx.length === ky.length && kx.every((k) => Object.hasOwn(y, k) && sameJson(x[k], y[k]));
}
