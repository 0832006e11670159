// The integration files share one moto server and run two at a time, and moto keeps
// state per region: a command sent by InstanceIds gets every instance of its region,
// and the gateway's SSM simulation, timeline and contract record are per region. So a
// file that reads a region-wide view (the SSM timeline, the simulation, the contract
// violations of a region) must own its region outright. Twice a CI run failed because
// two files used the same one (a command of effects.test.ts appeared in the SSM
// timeline of rollout-cloud.test.ts); this test turns that into a failure at once,
// naming both files, instead of a flake that depends on which files ran together.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './binaries.js';

/** The calls that read or change state of a whole region at the gateway. */
const REGION_WIDE = /\b(ssmTimeline|setSsmSimulation|clearSsmSimulation|assertNoContractViolations|ssmCommands)\(/;
/** An AWS region as a whole string literal (not inside an ARN or a host name). */
const REGION_LITERAL =
  /['"`]((?:af|ap|ca|eu|il|me|mx|sa|us)-(?:east|west|north|south|central|northeast|northwest|southeast|southwest)-\d)['"`]/g;
/** A top-level constant naming the file's own region(s): `const REGION = 'eu-central-1'`. */
const OWN_REGION = /^const [A-Z0-9_]+ = ['"`]([a-z]{2}-[a-z]+-\d)['"`];/gm;

interface TestFile {
  path: string;
  text: string;
}

function testFiles(): TestFile[] {
  const root = repoRoot();
  // test/serial runs alone, after the rest: it cannot collide with these.
  return ['test/e2e', 'test/testbed'].flatMap((dir) =>
    readdirSync(join(root, dir))
      // This file's own examples name regions on purpose.
      .filter((f) => f.endsWith('.ts') && f !== 'regions.test.ts')
      .map((f) => ({ path: `${dir}/${f}`, text: readFileSync(join(root, dir, f), 'utf8') })),
  );
}

/** Files whose region-wide reads need a region of their own, with that region. */
function regionClashes(files: readonly TestFile[]): string[] {
  const clashes: string[] = [];
  for (const f of files) {
    if (!f.path.endsWith('.test.ts') || !REGION_WIDE.test(f.text)) continue;
    const own = [...f.text.matchAll(OWN_REGION)].map((m) => m[1]!);
    if (own.length === 0) {
      clashes.push(`${f.path} reads a region-wide view but declares no region of its own (const REGION = '…')`);
      continue;
    }
    for (const region of own) {
      // The default region of test/testbed/aws.ts is every file's that names none.
      const others = files.filter((o) => o.path !== f.path && [...o.text.matchAll(REGION_LITERAL)].some((m) => m[1] === region));
      for (const o of others) clashes.push(`${f.path} and ${o.path} both use ${region}`);
    }
  }
  return clashes;
}

describe('moto regions of the integration files', () => {
  it('a file that reads a region-wide view of the emulator is the only one to use its region', () => {
    expect(regionClashes(testFiles())).toEqual([]);
  });

  it('the check finds a shared region (the clash that failed CI)', () => {
    const files = [
      { path: 'test/e2e/a.test.ts', text: "const REGION = 'eu-central-2';\nawait ssmTimeline(e, REGION);" },
      { path: 'test/e2e/b.test.ts', text: "const REGION = 'eu-central-2';\nawait seedInstances(e, { region: REGION });" },
      { path: 'test/e2e/c.test.ts', text: "const REGION = 'us-west-2'; const arn = 'arn:aws:sns:eu-central-2:1:t';" },
    ];
    expect(regionClashes(files)).toEqual(['test/e2e/a.test.ts and test/e2e/b.test.ts both use eu-central-2']);
  });
});
