/**
 * Summarises V8 heap snapshots (`.heapsnapshot`, as `--heapsnapshot-signal` or
 * `v8.writeHeapSnapshot` write them; bench-e2e --heap-snapshots takes them of the
 * controller) by what holds the memory: shallow size and count per node type and
 * constructor, the same grouping as the DevTools "Summary" view, and strings by length.
 * Given two snapshots it prints the difference, divided by --per N (e.g. the number of
 * requests added to the cache between them), so the cost of one cached object reads
 * directly. Used for docs/bench/heap-profile-*.md; the snapshots themselves are not kept.
 *
 *   node dist/hack/heap-summary.js a.heapsnapshot [b.heapsnapshot --per 10000] [--top 30]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[] }; node_count: number };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Group {
  count: number;
  bytes: number;
}

interface Summary {
  total: Group;
  byType: Map<string, Group>;
  byConstructor: Map<string, Group>;
  stringsByLength: Map<string, Group>;
  /** Strings of 1 KiB or more (mostly module source text) by the package of the script that holds them. */
  sourcesByPackage: Map<string, Group>;
}

const add = (m: Map<string, Group>, key: string, bytes: number) => {
  const g = m.get(key) ?? { count: 0, bytes: 0 };
  g.count++;
  g.bytes += bytes;
  m.set(key, g);
};

function lengthBucket(n: number): string {
  if (n <= 16) return 'string ≤ 16 chars';
  if (n <= 64) return 'string 17–64 chars';
  if (n <= 256) return 'string 65–256 chars';
  if (n <= 4096) return 'string 257–4096 chars';
  return 'string > 4096 chars';
}

function summarise(path: string): Summary {
  const snap = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const iEdges = fields.indexOf('edge_count');
  const edgeWidth = snap.snapshot.meta.edge_fields.length;
  const iTo = snap.snapshot.meta.edge_fields.indexOf('to_node');
  const s: Summary = {
    total: { count: 0, bytes: 0 },
    byType: new Map(),
    byConstructor: new Map(),
    stringsByLength: new Map(),
    sourcesByPackage: new Map(),
  };
  // The first retainer of each large string that is a script (its name is the module URL).
  const scriptOf = new Map<number, string>();
  for (let i = 0, e = 0; i < snap.nodes.length; i += width) {
    const name = snap.strings[snap.nodes[i + iName]!] ?? '';
    const count = snap.nodes[i + iEdges]!;
    // Scripts are code nodes named by their URL (file:// for ES modules, a path for CommonJS).
    if (types[snap.nodes[i + iType]!] === 'code' && /^(file:|node:|\/)/.test(name))
      for (let k = 0; k < count; k++) {
        const to = snap.edges[e + k * edgeWidth + iTo]! as number;
        if (types[snap.nodes[to + iType]!] === 'string' && snap.nodes[to + iSize]! >= 1024 && !scriptOf.has(to)) scriptOf.set(to, name);
      }
    e += count * edgeWidth;
  }
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!]!;
    const name = snap.strings[snap.nodes[i + iName]!] ?? '';
    const size = snap.nodes[i + iSize]!;
    s.total.count++;
    s.total.bytes += size;
    add(s.byType, type, size);
    // Objects group by constructor name, as DevTools does; the rest by type (and a short name for code and hidden).
    const key =
      type === 'object' || type === 'closure' || type === 'native'
        ? `${type} ${name.slice(0, 60)}`
        : type === 'string' || type === 'concatenated string' || type === 'sliced string'
          ? type
          : `(${type}) ${name.slice(0, 40)}`;
    add(s.byConstructor, key, size);
    if (type === 'string') add(s.stringsByLength, lengthBucket(name.length), size);
    if (type === 'string' && size >= 1024) add(s.sourcesByPackage, packageOf(scriptOf.get(i)), size);
  }
  return s;
}

/** `@scope/name` or `name` of a node_modules URL; `node:` for Node's own modules; `app` for the rest. */
function packageOf(url: string | undefined): string {
  if (!url) return '(not a script source)';
  if (url.startsWith('node:')) return 'node: (built-in modules)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  return m ? m[1]! : 'the app, or the bundle (dist/)';
}

const mb = (b: number) => (b / 2 ** 20).toFixed(2);

function print(title: string, groups: Map<string, Group>, top: number, per: number, base?: Map<string, Group>): void {
  const rows = [...new Set([...groups.keys(), ...(base?.keys() ?? [])])].map((k) => {
    const g = groups.get(k) ?? { count: 0, bytes: 0 };
    const b = base?.get(k) ?? { count: 0, bytes: 0 };
    return { k, count: (g.count - b.count) / per, bytes: (g.bytes - b.bytes) / per };
  });
  rows.sort((a, b) => Math.abs(b.bytes) - Math.abs(a.bytes));
  console.log(`\n${title}`);
  for (const r of rows.slice(0, top)) {
    const size = per === 1 ? `${mb(r.bytes).padStart(9)} MB` : `${r.bytes.toFixed(0).padStart(9)} B`;
    console.log(`  ${size}  ${r.count.toFixed(per === 1 ? 0 : 2).padStart(10)} ×  ${r.k}`);
  }
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { per: { type: 'string', default: '1' }, top: { type: 'string', default: '30' } },
  });
  const top = Number(values.top);
  const per = Number(values.per);
  const [first, second] = positionals;
  if (!first) throw new Error('usage: heap-summary a.heapsnapshot [b.heapsnapshot --per N] [--top N]');
  const a = summarise(first);
  if (!second) {
    console.log(`${first}: ${mb(a.total.bytes)} MB in ${a.total.count} nodes (shallow sizes)`);
    print('by node type', a.byType, top, 1);
    print('by constructor', a.byConstructor, top, 1);
    print('strings by length', a.stringsByLength, top, 1);
    print('strings of 1 KiB or more, by the package whose script holds them (module source text)', a.sourcesByPackage, top, 1);
    return;
  }
  const b = summarise(second);
  const unit = per === 1 ? 'MB' : `bytes per 1/${per}`;
  console.log(
    `${second} − ${first}: ${per === 1 ? mb(b.total.bytes - a.total.bytes) : ((b.total.bytes - a.total.bytes) / per).toFixed(0)} ${unit}, ${((b.total.count - a.total.count) / per).toFixed(1)} nodes${per === 1 ? '' : ' each'}`,
  );
  print('by node type', b.byType, top, per, a.byType);
  print('by constructor', b.byConstructor, top, per, a.byConstructor);
  print('strings by length', b.stringsByLength, top, per, a.stringsByLength);
  print('strings of 1 KiB or more, by package', b.sourcesByPackage, top, per, a.sourcesByPackage);
}

main();
