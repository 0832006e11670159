/**
 * How fresh the instance facts behind a decision are, against moto: the fleet sweep
 * (src/cloud/ec2.ts) serves tags at most its TTL after EC2 answered. A tag changed on
 * the emulator is seen within the bound, and a removed target tag is never served by a
 * describe that starts after it (the TTL plus one call's round trip). The bound is set
 * to 1 s here so the test is short; the controller uses 5 s.
 */
import { CreateTagsCommand, DeleteTagsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { BatchingInstanceDescriber, Ec2InstanceDescriber } from '../../src/cloud/ec2.js';
import { seedClientConfig, seedInstances } from '../testbed/aws.js';
import { testbedFromEnv } from './harness.js';

const REGION = 'eu-south-2';
const TTL_MS = 1_000;

describe('enrichment freshness with the fleet sweep (moto)', () => {
  const tb = testbedFromEnv();

  test('a tag change is seen within the bound; a removed target tag is never served after it', async () => {
    const scope = { 'bench.remediator.dev/fleet': `fresh-${Date.now()}` };
    const ids = await seedInstances(tb.motoEndpoint, { region: REGION, count: 5, tags: scope });
    const ec2 = new EC2Client(seedClientConfig(tb.motoEndpoint, REGION));
    const calls: string[] = [];
    // With a 1 s bound, a sweep slower than 0.5 s (moto on a loaded machine) would pause
    // sweeping and a look-up would stop waiting for it (the product's rules, ec2.test.ts):
    // here sweeps go on and are waited for, so what is checked is the sweep's freshness.
    const sweep = { tags: scope, pauseMs: 0, waitMs: 5_000, sweepWhenQuiet: true };
    const d = new BatchingInstanceDescriber(new Ec2InstanceDescriber(ec2, (op) => calls.push(op)), 0, TTL_MS, undefined, sweep);
    try {
      // One sweep answers for the whole fleet.
      for (const id of ids) expect((await d.describe([id])).found[0]!.tags).toMatchObject(scope);
      expect(calls).toEqual(['DescribeInstances']);
      expect([...d.fleet()].sort()).toEqual([...ids].sort());

      // An opt-out tag set on EC2 is seen within the bound.
      const [target] = ids;
      await ec2.send(new CreateTagsCommand({ Resources: [target!], Tags: [{ Key: 'remediator.dev/opt-out', Value: 'true' }] }));
      const setAt = Date.now();
      let seenAt: number | undefined;
      while (seenAt === undefined && Date.now() - setAt < 5 * TTL_MS) {
        const started = Date.now();
        const facts = (await d.describe([target!])).found[0]!;
        if (facts.tags['remediator.dev/opt-out'] === 'true') seenAt = started;
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(seenAt).toBeDefined();
      expect(seenAt! - setAt).toBeLessThanOrEqual(TTL_MS + 500);

      // The target-scope tag removed: never served by a describe started after the bound.
      await ec2.send(new DeleteTagsCommand({ Resources: [target!], Tags: Object.keys(scope).map((Key) => ({ Key })) }));
      const removedAt = Date.now();
      const stale: number[] = [];
      while (Date.now() - removedAt < 3 * TTL_MS) {
        const started = Date.now();
        const facts = (await d.describe([target!, ids[1]!])).found.find((f) => f.instanceId === target)!;
        const scoped = Object.keys(scope).every((k) => k in facts.tags);
        if (scoped && started - removedAt > TTL_MS) stale.push(started - removedAt);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(stale).toEqual([]);
      // It left the fleet: the sweep no longer lists it, and the others still are. fleet()
      // is the last sweep while it is within the bound (counted from when it was sent), so
      // look right after a describe that swept: on a loaded machine the loop's last sweep
      // may already be more than 1 s old.
      let fleet: readonly string[] = [];
      for (const until = Date.now() + 10 * TTL_MS; Date.now() < until && !fleet.includes(ids[1]!); ) {
        await d.describe([target!, ids[1]!]);
        fleet = d.fleet();
        if (!fleet.includes(ids[1]!)) await new Promise((r) => setTimeout(r, 50));
      }
      expect(fleet).not.toContain(target);
      expect(fleet).toContain(ids[1]);
    } finally {
      ec2.destroy();
    }
  });
});
