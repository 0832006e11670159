/**
 * The shell and YAML snippets of README.md and docs/*.md, checked so they cannot drift
 * from the code: every YAML block parses the same in YAML 1.1 (what kubectl and Helm
 * read) as in 1.2, and every remediator resource in one is accepted by a real API
 * server with the CRDs loaded (`kubectl create --dry-run=server`); every variable an
 * `envsubst` uses is set earlier in the same document; every controller flag named
 * anywhere in the docs exists (src/config.ts); every Helm value set or written
 * (`--set`, values files, Argo CD and Flux values) exists in values.schema.json.
 *
 * A block preceded by `<!-- snippet: fragment -->` is a part of an object on purpose:
 * it must parse, and is not sent to the API server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { OPTIONS } from '../../src/config.js';
import { repoRoot } from '../testbed/binaries.js';
import { testbedFromEnv } from '../testbed/env.js';

const ROOT = repoRoot();
const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

interface Block {
  doc: string;
  line: number;
  lang: 'yaml' | 'sh';
  text: string;
  fragment: boolean;
  /** Everything of the document before this block: what a reader has done by now. */
  before: string;
}

function blocks(doc: string): Block[] {
  const text = readFileSync(join(ROOT, doc), 'utf8');
  return [...text.matchAll(/^```(yaml|sh|bash)\n(.*?)^```$/gms)].map((m) => {
    const before = text.slice(0, m.index);
    return {
      doc,
      line: before.split('\n').length,
      lang: m[1] === 'yaml' ? 'yaml' : 'sh',
      text: m[2]!,
      fragment: /<!-- snippet: fragment -->\s*$/.test(before),
      before: [...before.matchAll(/^```(?:sh|bash)\n(.*?)^```$/gms)].map((b) => b[1]).join('\n'),
    };
  });
}

const ALL = DOCS.flatMap(blocks);
const YAML_BLOCKS = ALL.filter((b) => b.lang === 'yaml');
const SH_BLOCKS = ALL.filter((b) => b.lang === 'sh');
const where = (b: Block) => `${b.doc}:${b.line}`;

function parse(text: string, version: '1.1' | '1.2'): unknown[] {
  return parseAllDocuments(text, { version }).map((d) => {
    if (d.errors.length > 0) throw new Error(d.errors.map((e) => e.message).join('; '));
    return d.toJS() as unknown;
  });
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

// --- Helm values -------------------------------------------------------------

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
}
const VALUES_SCHEMA = JSON.parse(readFileSync(join(ROOT, 'charts', 'remediator', 'values.schema.json'), 'utf8')) as JsonSchema;

/** The schema at `path` below `schema`, or undefined when values.schema.json has no such key. */
function schemaAt(schema: JsonSchema, path: readonly string[]): JsonSchema | undefined {
  let s: JsonSchema | undefined = schema;
  for (const key of path) {
    if (!s) return undefined;
    if (s.items && /^[0-9]+$/.test(key)) s = s.items;
    else if (s.properties?.[key]) s = s.properties[key];
    else if (isObj(s.additionalProperties)) s = s.additionalProperties as JsonSchema;
    else if (s.additionalProperties === true || (!s.properties && !s.items)) return {};
    else return undefined;
  }
  return s;
}

/** Dotted paths of `values` that values.schema.json does not know. */
function unknownValues(values: unknown, path: string[] = []): string[] {
  if (schemaAt(VALUES_SCHEMA, path) === undefined) return [path.join('.')];
  if (isObj(values)) return Object.entries(values).flatMap(([k, v]) => unknownValues(v, [...path, k]));
  if (Array.isArray(values)) return values.flatMap((v, i) => unknownValues(v, [...path, String(i)]));
  return [];
}

/** Shell lines with their `\` continuations joined. */
const commands = (text: string) => text.replace(/\\\n/g, ' ').split('\n');

describe('docs snippets', () => {
  test('the docs have snippets to check', () => {
    expect(YAML_BLOCKS.length).toBeGreaterThan(10);
    expect(SH_BLOCKS.length).toBeGreaterThan(20);
  });

  test('every YAML block parses, and reads the same in YAML 1.1 as in 1.2 (quote on, yes, no)', () => {
    const problems: string[] = [];
    for (const b of YAML_BLOCKS) {
      try {
        const y11 = JSON.stringify(parse(b.text, '1.1'));
        if (y11 !== JSON.stringify(parse(b.text, '1.2')))
          problems.push(`${where(b)}: YAML 1.1 (kubectl, Helm) reads this differently from 1.2`);
      } catch (error) {
        problems.push(`${where(b)}: ${(error as Error).message}`);
      }
    }
    expect(problems).toEqual([]);
  });

  test('every remediator resource in a YAML block is valid against the CRDs (server-side dry run)', async () => {
    const tb = testbedFromEnv();
    const resources = YAML_BLOCKS.filter((b) => !b.fragment).flatMap((b) =>
      parse(b.text, '1.1')
        .filter((o): o is Obj => isObj(o) && String(o.apiVersion ?? '').startsWith('remediator.dev/'))
        .map((o) => ({ b, o })),
    );
    expect(resources.length).toBeGreaterThan(0);
    const problems: string[] = [];
    for (const { b, o } of resources) {
      const ns = (o.metadata as Obj | undefined)?.namespace;
      if (typeof ns === 'string') await tb.kubectl(['create', 'namespace', ns]);
      const r = await tb.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(o) });
      if (r.code !== 0)
        problems.push(`${where(b)}: ${String(o.kind)} ${String((o.metadata as Obj | undefined)?.name)}: ${r.stderr.trim()}`);
    }
    expect(problems).toEqual([]);
  });

  test('every variable an envsubst uses is set earlier in the same document', () => {
    const problems: string[] = [];
    for (const b of SH_BLOCKS) {
      const lines = commands(b.text);
      lines.forEach((line, i) => {
        const m = /envsubst(?:\s+'([^']*)')?\s*<\s*(\S+)/.exec(line);
        if (!m) return;
        const vars =
          m[1] !== undefined
            ? [...m[1].matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g)].map((v) => v[1]!)
            : [...readFileSync(join(ROOT, m[2]!), 'utf8').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((v) => v[1]!);
        const earlier = `${b.before}\n${lines.slice(0, i).join('\n')}`;
        for (const v of new Set(vars)) {
          if (!new RegExp(`(^|[\\s;&|(])(export\\s+)?([A-Z_][A-Z0-9_]*=\\S*\\s+)*${v}=`, 'm').test(earlier)) {
            problems.push(`${where(b)}: envsubst uses \${${v}}, which no earlier snippet of ${b.doc} sets`);
          }
        }
      });
    }
    expect(problems).toEqual([]);
  });

  test('every controller flag the docs name exists in src/config.ts', () => {
    const flags = new Set(Object.keys(OPTIONS));
    const booleans = Object.entries(OPTIONS)
      .filter(([, o]) => o.type === 'boolean')
      .map(([f]) => f);
    for (const f of booleans) flags.add(`no-${f}`);
    // The words controller flags start with that no other tool's flags in the docs do.
    const families = new Set(
      Object.keys(OPTIONS)
        .map((f) => f.split('-')[0]!)
        .filter((w) => !['help', 'max', 'log', 'concurrency'].includes(w)),
    );
    const problems: string[] = [];
    for (const doc of DOCS) {
      const text = readFileSync(join(ROOT, doc), 'utf8');
      for (const m of text.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)) {
        const name = m[1]!.replace(/^no-/, '');
        if (families.has(name.split('-')[0]!) && !flags.has(m[1]!)) problems.push(`${doc}: --${m[1]} is not a controller flag`);
      }
      // The flag tables (first cell a flag) list only real flags.
      for (const m of text.matchAll(/^\| `--([a-z0-9-]+)` \|/gm)) if (!flags.has(m[1]!)) problems.push(`${doc}: the table lists --${m[1]}`);
    }
    expect([...new Set(problems)]).toEqual([]);
    const table = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
    expect(Object.keys(OPTIONS).filter((f) => f !== 'help' && !table.includes(`| \`--${f}\` |`))).toEqual([]);
  });

  test('every Helm value the docs set or write exists in values.schema.json', () => {
    const problems: string[] = [];
    for (const b of SH_BLOCKS) {
      for (const line of commands(b.text)) {
        if (!/\bhelm\s+(install|upgrade|template)\b/.test(line)) continue;
        for (const m of line.matchAll(/--set(?:-string|-json|-file)?[ =]['"]?([A-Za-z0-9_.[\]-]+)=/g)) {
          const path = m[1]!.replace(/\[(\d+)\]/g, '.$1').split('.');
          if (schemaAt(VALUES_SCHEMA, path) === undefined) problems.push(`${where(b)}: --set ${m[1]} is not in values.schema.json`);
        }
      }
      // Values files written by a heredoc.
      for (const m of b.text.matchAll(/cat > (\S*values\S*\.yaml) <<'?EOF'?\n(.*?)^EOF$/gms)) {
        problems.push(...unknownValues(parse(m[2]!.replace(/\$\{?\w+\}?/g, 'x'), '1.1')[0]).map((p) => `${where(b)}: ${m[1]} sets ${p}`));
      }
    }
    const top = new Set(Object.keys(VALUES_SCHEMA.properties ?? {}));
    for (const b of YAML_BLOCKS) {
      for (const o of parse(b.text, '1.1')) {
        if (!isObj(o)) continue;
        let values: unknown;
        if (o.kind === 'Application')
          values =
            ((o.spec as Obj | undefined)?.source as Obj | undefined)?.helm && (((o.spec as Obj).source as Obj).helm as Obj).valuesObject;
        else if (o.kind === 'HelmRelease') values = (o.spec as Obj | undefined)?.values;
        else if (o.apiVersion === undefined && Object.keys(o).every((k) => top.has(k))) values = o;
        if (values !== undefined) problems.push(...unknownValues(values).map((p) => `${where(b)}: values key ${p}`));
      }
    }
    expect(problems).toEqual([]);
  });
});
