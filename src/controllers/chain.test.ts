/**
 * The chain runner stops at the first verdict and runs checks in order, and
 * docs/security.md lists each chain's checks in the order the code runs them.
 */
import { readFileSync } from 'node:fs';
import { renderedSecurityDocs, securityDoc } from '../../hack/gen-manifests.js';
import { runChain, runChainSync, type Check } from './chain.js';

type Ctx = { ran: string[] };
const check = (name: string, verdict?: string): Check<Ctx, string> => ({
  name,
  doc: name,
  run(ctx) {
    ctx.ran.push(name);
    return verdict;
  },
});

describe('a chain of checks', () => {
  test('runs the checks in order and stops at the first verdict, naming its check', async () => {
    const ctx: Ctx = { ran: [] };
    const out = await runChain([check('a'), check('b', 'no'), check('c', 'never')], ctx);
    expect(out).toEqual({ check: 'b', verdict: 'no' });
    expect(ctx.ran).toEqual(['a', 'b']);
  });

  test('passes (undefined) when every check passes', () => {
    expect(runChainSync([check('a'), check('b')], { ran: [] })).toBeUndefined();
  });

  test('a synchronous chain refuses an asynchronous check rather than skipping its verdict', () => {
    const later: Check<Ctx, string> = { name: 'later', doc: '', run: async () => 'no' };
    expect(() => runChainSync([later], { ran: [] })).toThrow(/asynchronous/);
  });
});

test('docs/security.md lists the checks in the order the chains run them (npm run manifests)', () => {
  const doc = readFileSync(securityDoc(), 'utf8');
  expect(doc).toBe(renderedSecurityDocs(doc));
});

test("every reason a check's documentation names is in the reason catalogue", async () => {
  const { REASONS } = await import('../api/v1alpha1/reasons.js');
  const { POLICY_READY_CHAIN } = await import('./alertpolicy.js');
  const { APPROVAL_CHAIN } = await import('./request/approval.js');
  const { INTENT_CHAIN } = await import('./request/intent.js');
  const { PLANNING_CHAIN, RECHECK_CHAIN } = await import('./request/planning.js');
  const named = [POLICY_READY_CHAIN, PLANNING_CHAIN, APPROVAL_CHAIN, RECHECK_CHAIN, INTENT_CHAIN].flatMap((chain) =>
    chain.checks.flatMap((c) => [...c.doc.matchAll(/`([A-Z][A-Za-z]+)`/g)].map((m) => m[1]!)),
  );
  expect(named.length).toBeGreaterThan(20);
  expect(named.filter((r) => !Object.hasOwn(REASONS, r))).toEqual([]);
});
