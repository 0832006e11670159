import { pino } from 'pino';
import { BearerAuthenticator, bearerToken } from './auth.js';
import { IntakeError } from './errors.js';

const logger = pino({ level: 'silent' });
const TOKEN = 'a'.repeat(32);

class FakeSecrets {
  value: string | undefined = TOKEN;
  reads = 0;
  failing = false;
  async readSecretValue(): Promise<string | undefined> {
    this.reads++;
    if (this.failing) throw Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    return this.value;
  }
}

function setup(over: { ttlMs?: number; staleGraceMs?: number } = {}) {
  let now = 1_000_000;
  const kube = new FakeSecrets();
  const auth = new BearerAuthenticator({
    kube,
    secret: { namespace: 'ns', name: 'intake' },
    logger,
    ttlMs: over.ttlMs ?? 10_000,
    minRefreshMs: 1_000,
    staleGraceMs: over.staleGraceMs,
    readBudgetMs: 50,
    now: () => now,
  });
  return { kube, auth, advance: (ms: number) => (now += ms) };
}

async function status(p: Promise<void>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (error) {
    if (error instanceof IntakeError) return error.status;
    throw error;
  }
}

describe('bearer token authentication', () => {
  test('parses the Authorization header strictly', () => {
    expect(bearerToken(`Bearer ${TOKEN}`)).toBe(TOKEN);
    expect(bearerToken(`bearer  ${TOKEN} `)).toBe(TOKEN);
    for (const bad of [undefined, '', 'Bearer', `Basic ${TOKEN}`, `Bearer ${TOKEN} extra`, TOKEN]) expect(bearerToken(bad)).toBeUndefined();
  });

  test('accepts the token, refuses others with 401, and caches the Secret', async () => {
    const { kube, auth } = setup();
    expect(await status(auth.authenticate(`Bearer ${TOKEN}`))).toBe(200);
    expect(await status(auth.authenticate(`Bearer ${TOKEN}`))).toBe(200);
    expect(kube.reads).toBe(1);
    expect(await status(auth.authenticate(undefined))).toBe(401);
    expect(await status(auth.authenticate(`Bearer ${TOKEN}x`))).toBe(401);
    expect(await status(auth.authenticate('Bearer short'))).toBe(401);
  });

  test('a rotated token works at once; the old one stops after the TTL', async () => {
    const { kube, auth, advance } = setup();
    expect(await status(auth.authenticate(`Bearer ${TOKEN}`))).toBe(200);
    const next = 'b'.repeat(40);
    kube.value = next;
    advance(1_500);
    // The mismatch triggers a re-read (at most once a second).
    expect(await status(auth.authenticate(`Bearer ${next}`))).toBe(200);
    expect(await status(auth.authenticate(`Bearer ${TOKEN}`))).toBe(401);
    advance(11_000);
    expect(await status(auth.authenticate(`Bearer ${TOKEN}`))).toBe(401);
    expect(await status(auth.authenticate(`Bearer ${next}`))).toBe(200);
  });

  test('wrong tokens cannot make it re-read the Secret more than once a second', async () => {
    const { kube, auth } = setup();
    await auth.authenticate(`Bearer ${TOKEN}`);
    for (let i = 0; i < 20; i++) await status(auth.authenticate(`Bearer wrong-token-${i}-xxxxxxxx`));
    expect(kube.reads).toBe(1);
  });

  test('a trailing newline in the Secret is not part of the token', async () => {
    const { kube, auth } = setup();
    kube.value = `${TOKEN}\n`;
    expect(await status(auth.authenticate(`Bearer ${TOKEN}`))).toBe(200);
  });

  test('a missing Secret, missing key or short token fails closed with 503', async () => {
    const { kube, auth, advance } = setup();
    kube.value = undefined;
    expect(await status(auth.authenticate(`Bearer ${TOKEN}`))).toBe(503);
    kube.value = 'short';
    advance(2_000);
    expect(await status(auth.authenticate('Bearer short'))).toBe(503);
  });

  test('while the API server is down the last token keeps working (within the grace), then 503', async () => {
    const { kube, auth, advance } = setup({ ttlMs: 1_000, staleGraceMs: 60_000 });
    expect(await status(auth.authenticate(`Bearer ${TOKEN}`))).toBe(200);
    kube.failing = true;
    advance(5_000);
    expect(await status(auth.authenticate(`Bearer ${TOKEN}`))).toBe(200);
    advance(60_000);
    expect(await status(auth.authenticate(`Bearer ${TOKEN}`))).toBe(503);
  });

  test('without a configured Secret the endpoint says how to configure it', async () => {
    const auth = new BearerAuthenticator({ kube: new FakeSecrets(), secret: undefined, logger });
    await expect(auth.authenticate(`Bearer ${TOKEN}`)).rejects.toThrow(/--intake-token-secret/);
  });
});
