/**
 * Holds the code to the reason catalogue (reasons.ts): every reason literal the code
 * writes or compares must be catalogued, and every catalogued reason must be written
 * somewhere. The reasons are found in the TypeScript syntax tree of src/ (not src/api,
 * whose only reason literals are Kubernetes' own CEL error reasons), wherever a value
 * lands in a slot named `reason` (or `…Reason`):
 *  - an argument for a parameter of that name, of any function, method or arrow
 *    function declared in src/ (`t.fail(rr, status, 'X', …)`, `events.record(o, 'Warning', 'X', …)`);
 *  - a property (`{ reason: 'X' }`), an assignment (`status.reason = 'X'`), a variable
 *    (`const reason = … ?? 'X'`), a comparison (`c.reason === 'X'`), a literal type
 *    (`reason: 'X' | 'Y'`);
 * through `?:`, `??`, `||`, `&&`, parentheses, `as`, and names of string constants
 * declared at the top of a module (`HELD_REASON`). A reason is one token (the CRD's reason
 * pattern): a sentence in such a slot (the intake's `ignored` answers) is a message, not a
 * reason, and a template with substitutions but no spaces there fails.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { REASONS } from './reasons.js';

const SRC = fileURLToPath(new URL('../../../../src/', import.meta.url));
const REASON_TOKEN = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const REASON_SLOT = /^reason$|Reason$/;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return sources(path);
    return d.name.endsWith('.ts') && !d.name.endsWith('.test.ts') ? [path] : [];
  });
}

interface Use {
  reason: string;
  at: string;
}

interface Scan {
  uses: Use[];
  /** Reason slots holding a template with substitutions: not a fixed word. */
  dynamic: string[];
}

const nameOf = (name: ts.Node | undefined): string | undefined =>
  name && (ts.isIdentifier(name) || ts.isStringLiteral(name) || ts.isPrivateIdentifier(name)) ? name.text : undefined;
const isReasonName = (name: ts.Node | undefined) => REASON_SLOT.test(nameOf(name) ?? '');
const isReasonAccess = (e: ts.Node) => ts.isPropertyAccessExpression(e) && REASON_SLOT.test(e.name.text);
const addTo = <V>(map: Map<string, Set<V>>, key: string, value: V) => (map.get(key) ?? map.set(key, new Set()).get(key)!).add(value);

const LOGICAL = new Set([ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken, ts.SyntaxKind.AmpersandAmpersandToken]);
const COMPARISON = new Set([
  ts.SyntaxKind.EqualsEqualsEqualsToken,
  ts.SyntaxKind.ExclamationEqualsEqualsToken,
  ts.SyntaxKind.EqualsEqualsToken,
  ts.SyntaxKind.ExclamationEqualsToken,
]);

/** `const X = 'literal'` at the top of a module (a local of the same name elsewhere is another thing). */
function moduleConstant(node: ts.Node): [string, string] | undefined {
  if (!ts.isVariableDeclaration(node) || !ts.isIdentifier(node.name) || !node.initializer) return undefined;
  const list = node.parent;
  const topLevel = (list.flags & ts.NodeFlags.Const) !== 0 && ts.isVariableStatement(list.parent) && ts.isSourceFile(list.parent.parent);
  const init = node.initializer;
  return topLevel && (ts.isStringLiteral(init) || ts.isNoSubstitutionTemplateLiteral(init)) ? [node.name.text, init.text] : undefined;
}

/** A function, method or arrow function with a name: its name and parameters. */
function namedFunction(node: ts.Node): [string | undefined, ts.NodeArray<ts.ParameterDeclaration>] | undefined {
  if (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isMethodSignature(node))
    return [nameOf(node.name), node.parameters];
  if (!(ts.isVariableDeclaration(node) || ts.isPropertyAssignment(node) || ts.isPropertyDeclaration(node))) return undefined;
  const init = node.initializer;
  return init && (ts.isArrowFunction(init) || ts.isFunctionExpression(init)) ? [nameOf(node.name), init.parameters] : undefined;
}

/** What the files declare: string constants, and which argument positions are reason slots, by function name. */
function declarations(files: Iterable<ts.SourceFile>) {
  const constants = new Map<string, Set<string>>();
  const slots = new Map<string, Set<number>>();
  const visit = (node: ts.Node): void => {
    const constant = moduleConstant(node);
    if (constant) addTo(constants, ...constant);
    const [name, params] = namedFunction(node) ?? [];
    if (name && params) params.forEach((p, i) => isReasonName(p.name) && addTo(slots, name, i));
    ts.forEachChild(node, visit);
  };
  for (const sf of files) visit(sf);
  return { constants, slots };
}

/** The expressions (or literal types) `node` puts into a reason slot, when it is one. */
function slotValues(node: ts.Node, slots: ReadonlyMap<string, Set<number>>): Array<ts.Node | undefined> {
  if (ts.isCallExpression(node) || ts.isNewExpression(node)) {
    const callee = ts.isPropertyAccessExpression(node.expression) ? node.expression.name.text : nameOf(node.expression);
    return [...(slots.get(callee ?? '') ?? [])].map((i) => node.arguments?.[i]);
  }
  if (ts.isPropertyAssignment(node) || ts.isVariableDeclaration(node)) return isReasonName(node.name) ? [node.initializer] : [];
  if (ts.isPropertySignature(node) || ts.isParameter(node) || ts.isPropertyDeclaration(node))
    return isReasonName(node.name) ? [node.type] : [];
  if (!ts.isBinaryExpression(node)) return [];
  const op = node.operatorToken.kind;
  if (op === ts.SyntaxKind.EqualsToken) return isReasonAccess(node.left) ? [node.right] : [];
  if (!COMPARISON.has(op)) return [];
  return [isReasonAccess(node.left) ? node.right : undefined, isReasonAccess(node.right) ? node.left : undefined];
}

/** The literals, templates and names a value can end as, through `?:`, `??`, `||`, `&&`, parentheses, `as` and unions. */
function leaves(e: ts.Node | undefined): ts.Node[] {
  if (!e) return [];
  if (ts.isConditionalExpression(e)) return [...leaves(e.whenTrue), ...leaves(e.whenFalse)];
  if (ts.isBinaryExpression(e)) return LOGICAL.has(e.operatorToken.kind) ? [...leaves(e.left), ...leaves(e.right)] : [];
  if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e)) return leaves(e.expression);
  if (ts.isUnionTypeNode(e)) return e.types.flatMap(leaves);
  if (ts.isLiteralTypeNode(e)) return leaves(e.literal);
  return [e];
}

/** Scans `files` (path → source text); `declaredIn` adds files whose declarations count but whose uses do not. */
function scanReasons(files: ReadonlyMap<string, string>, declaredIn: ReadonlyMap<string, string> = new Map()): Scan {
  const parse = (m: ReadonlyMap<string, string>) =>
    new Map([...m].map(([path, text]) => [path, ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)]));
  const scanned = parse(files);
  const { constants, slots } = declarations([...parse(declaredIn).values(), ...scanned.values()]);
  const scan: Scan = { uses: [], dynamic: [] };
  for (const [path, sf] of scanned) {
    const at = (n: ts.Node) => `${path}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}`;
    const found = (reason: string, where: ts.Node) => REASON_TOKEN.test(reason) && scan.uses.push({ reason, at: at(where) });
    const classify = (e: ts.Node) => {
      if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) found(e.text, e);
      // A constant's value counts where the constant is used.
      else if (ts.isIdentifier(e)) for (const v of constants.get(e.text) ?? []) found(v, e);
      else if (ts.isTemplateExpression(e)) {
        // Words with spaces around the substitutions make a message; anything else would be a computed reason.
        const text = [e.head.text, ...e.templateSpans.map((s) => s.literal.text)].join('');
        if (!/\s/.test(text)) scan.dynamic.push(`${at(e)} ${e.getText(sf)}`);
      }
    };
    const visit = (node: ts.Node): void => {
      for (const value of slotValues(node, slots)) leaves(value).forEach(classify);
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return scan;
}

const read = (paths: string[]) => new Map(paths.map((p) => [relative(SRC, p).split(sep).join('/'), readFileSync(p, 'utf8')]));
const all = sources(SRC);
const isApi = (p: string) => relative(SRC, p).startsWith(`api${sep}`);
const code = scanReasons(read(all.filter((p) => !isApi(p))), read(all.filter(isApi)));

describe('the reason catalogue (src/api/v1alpha1/reasons.ts)', () => {
  test('every reason the code writes or compares is catalogued', () => {
    const missing = code.uses.filter((u) => !Object.hasOwn(REASONS, u.reason)).map((u) => `${u.reason} (${u.at})`);
    expect(missing).toEqual([]);
  });

  test('every catalogued reason is written somewhere', () => {
    const used = new Set(code.uses.map((u) => u.reason));
    expect(Object.keys(REASONS).filter((r) => !used.has(r))).toEqual([]);
  });

  test('no reason is built from a template: users match on fixed words', () => {
    expect(code.dynamic).toEqual([]);
  });

  test('every entry says what it means and what to do', () => {
    for (const [name, entry] of Object.entries(REASONS)) {
      expect({ name, ok: REASON_TOKEN.test(name) && entry.on.length > 0 && entry.meaning.length > 10 && entry.action.length > 3 }).toEqual({
        name,
        ok: true,
      });
    }
  });
});

describe('scanReasons finds a reason in every shape the code writes one', () => {
  const fixture = `
    const HELD = 'HeldByConstant';
    class T { fail(rr: unknown, status: unknown, reason: string, message: string) {} }
    interface Recorder { record(o: unknown, type: string, reason: string, message: string): void }
    const refuse = (reason: string, message: string) => ({ reason, message });
    declare const t: T, events: Recorder, c: { reason: string }, status: { reason?: string }, x: boolean, y: string | undefined;
    t.fail({}, {}, 'ByMethodArg', 'a message, not a reason');
    events.record({}, 'Warning', x ? 'ByTernaryA' : 'ByTernaryB', 'm');
    refuse('ByArrowArg', 'm');
    const o = { reason: 'ByProperty', message: 'Sentence Words Are Messages' };
    status.reason = 'ByAssignment';
    const reason = y ?? 'ByFallback';
    if (c.reason === 'ByComparison') {}
    type R = { reason: 'ByTypeA' | 'ByTypeB' };
    t.fail({}, {}, HELD, 'm');
    const skipReason = 'BySuffixedName';
    t.fail({}, {}, \`Dynamic\${y}\`, 'm');
    t.fail({}, {}, 'with spaces is a message', 'm');
    t.fail({}, {}, \`a \${y} message\`, 'm');
    function local() { const HELD = 'LocalIsNotTheConstant'; return HELD; }
  `;
  const scan = scanReasons(new Map([['fixture.ts', fixture]]));

  test('the literal, ternary, fallback, constant, property, assignment, comparison and type shapes', () => {
    expect(scan.uses.map((u) => u.reason).sort()).toEqual(
      [
        'ByArrowArg',
        'ByAssignment',
        'ByComparison',
        'ByFallback',
        'ByMethodArg',
        'ByProperty',
        'BySuffixedName',
        'ByTernaryA',
        'ByTernaryB',
        'ByTypeA',
        'ByTypeB',
        'HeldByConstant',
      ].sort(),
    );
  });

  test('a template in a reason slot is reported, with where it is', () => {
    expect(scan.dynamic).toEqual(['fixture.ts:17 `Dynamic${y}`']);
  });

  test('a constant counts where it is used, not where it is declared', () => {
    expect(scan.uses.find((u) => u.reason === 'HeldByConstant')?.at).toBe('fixture.ts:15');
  });
});
