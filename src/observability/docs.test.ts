import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crdDirectories } from '../../hack/gen-manifests.js';
import { USAGE } from '../config.js';
import { IntakeMetrics } from '../intake/metrics.js';
import { Metrics } from './metrics.js';

// docs/operations.md is the reference for flags and metrics: it must name every one that exists.
const docs = readFileSync(join(crdDirectories()[0]!, '..', '..', '..', 'docs', 'operations.md'), 'utf8');

describe('docs/operations.md', () => {
  test('documents every flag', () => {
    const flags = [...USAGE.matchAll(/^\s+(--[a-z-]+)/gm)].map((m) => m[1]!);
    expect(flags.length).toBeGreaterThan(10);
    expect(flags.filter((f) => !docs.includes(`\`${f}\``))).toEqual([]);
  });

  test('documents every metric the controller exports', () => {
    const m = new Metrics(false);
    new IntakeMetrics(m.registry);
    const names = m.registry.getMetricsAsArray().map((x) => x.name);
    expect(names.filter((n) => !docs.includes(`\`${n}\``))).toEqual([]);
  });
});
