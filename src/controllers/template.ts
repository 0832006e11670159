/**
 * Renders `{{ path }}` placeholders in policy-authored text with values from an alert
 * and its enrichment, and enforces the character allowlist on every substituted value.
 *
 * Written by hand on purpose: template libraries (Mustache, Handlebars, Nunjucks) add
 * logic, partials and HTML escaping, while remediator needs the opposite — no logic at
 * all, a hard failure on a missing value, and a check of each value *before* it touches
 * a shell command. The literal text of a template is trusted (a cluster administrator
 * wrote it in a Runbook); substituted values are not (an alert sender, a requester or a
 * policy author chose them).
 *
 * Parameter Store references (`{{ssm:/path}}`, `{{ssm-secure:/path}}`) are not
 * placeholders: they stay in the text verbatim for SSM to resolve on the instance.
 */
import { DEFAULT_ALLOWED_PATTERN, DEFAULT_MAX_VALUE_LENGTH, type ValueRule } from '../api/v1alpha1/index.js';
import { InvalidPatternError, UserPatternCache, type UserPattern } from '../runtime/regex.js';

export interface TemplateContext {
  alert: { name: string; source: string; fingerprint?: string; status?: string };
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Present only when the request has exactly one target. */
  instance?: { id: string; state?: string; type?: string; zone?: string; privateIp?: string };
  /** Tags of the single target, present when `instance` is. */
  tags?: Record<string, string>;
  /** Free-form values computed during enrichment (metric values, target count). */
  enrichment?: Record<string, string>;
  /** The policy's inputs, already checked against the runbook's input rules. */
  inputs?: Record<string, string>;
  /** The request's namespace (`{{ namespace }}`). */
  namespace?: string;
}

export interface ValuePolicy {
  /** Regex each substituted value must match in full. */
  allowedPattern: string;
  maxLength: number;
  /** Default rules lifted for these values (see VALUE_RULES). */
  allow?: readonly ValueRule[];
}

/**
 * The value policy of a parameter or input as a Runbook writes it, with defaults filled in:
 * where a Runbook declares no allowedPattern the default (strict) one applies, so a value
 * is never unchecked.
 */
export function valuePolicy(spec: { allowedPattern?: string; maxLength?: number; allow?: readonly ValueRule[] } = {}): ValuePolicy {
  return {
    allowedPattern: spec.allowedPattern ?? DEFAULT_ALLOWED_PATTERN,
    maxLength: spec.maxLength ?? DEFAULT_MAX_VALUE_LENGTH,
    allow: spec.allow ?? [],
  };
}

/** The defaults: what a templated tag selector or metric dimension must pass. */
export const DEFAULT_VALUE_POLICY: ValuePolicy = valuePolicy();

/**
 * A user's pattern anchored as a whole, the way Alertmanager anchors matchers, in RE2
 * (linear time: no pattern can stall the process on a hostile value). Compiled patterns
 * are cached; an invalid one throws InvalidPatternError saying why.
 */
const patterns = new UserPatternCache();
export function anchoredPattern(pattern: string): UserPattern {
  const compiled = patterns.get(pattern);
  if (compiled instanceof InvalidPatternError) throw compiled;
  return compiled;
}

/** Why `value` breaks the structural rules, or undefined. */
export function structuralProblem(value: string, allow: readonly ValueRule[] = []): string | undefined {
  if (value === '' && !allow.includes('Empty')) return 'is empty';
  if (value.startsWith('-') && !allow.includes('LeadingDash')) return 'starts with "-" (it would be read as an option)';
  if (value.includes('..') && !allow.includes('DotDot')) return 'contains ".." (a path upwards)';
  return undefined;
}

/**
 * Characters no substituted value may carry, whatever its pattern allows: every C0 and C1
 * control (LF, CR, TAB, NEL U+0085, CSI U+009B, ...), DEL, the Unicode line and paragraph
 * separators, and the bidirectional and invisible formatting characters (U+061C,
 * U+200B-U+200F, U+202A-U+202E, U+2066-U+2069, U+FEFF) that make text read differently
 * from what it is. A command parameter, an SNS subject, message or attribute never needs
 * one, and each can forge a line ("approved by alice") or hide what a reader approves.
 * Refused rather than escaped: the request fails and names the value, nothing is sent.
 */
export const FORBIDDEN_CHARACTERS =
  /[\u0000-\u001F\u007F-\u009F\u061C\u200B-\u200F\u2028\u2029\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/u;

/** The first forbidden character of `value`, named (`U+000A`), or undefined. */
export function forbiddenCharacter(value: string): string | undefined {
  const m = FORBIDDEN_CHARACTERS.exec(value);
  if (!m) return undefined;
  return `U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The forbidden characters JSON.stringify leaves as they are (it escapes U+0000-U+001F itself). */
const FORBIDDEN_BEYOND_C0 = /[\u007F-\u009F\u061C\u200B-\u200F\u2028\u2029\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/gu;

/**
 * JSON text from JSON.stringify with every forbidden character written as a JSON escape
 * (`\u0085`). For JSON the controller writes itself (a notification), where a value is
 * data inside a string rather than text a reader sees: escaping keeps it exact without
 * letting it act. JSON.stringify already escapes C0 controls inside strings; any left are
 * its own indentation, so only the others are escaped here.
 */
export function escapeJson(json: string): string {
  return json.replace(FORBIDDEN_BEYOND_C0, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}

/** `{{ssm:/path}}` or `{{ssm-secure:/path}}`, optionally with `:version` or `:label` (SSM parameter naming rules). */
const PARAMETER_STORE_REFERENCE =
  /\{\{\s*ssm(?:-secure)?:(\/?[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+){0,14})(?::[A-Za-z0-9_.-]{1,100})?\s*\}\}/g;

/** Parameter Store references in a template (kept verbatim when rendering). */
export function parameterStoreReferences(template: string): string[] {
  return [...template.matchAll(PARAMETER_STORE_REFERENCE)].map((m) => m[0]);
}

export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_./-]+))?\s*\}\}/g;
const ROOTS = new Set(['alert', 'labels', 'annotations', 'instance', 'tags', 'enrichment', 'inputs', 'namespace']);
/** Roots that are a value themselves rather than a map of values. */
const SCALAR_ROOTS = new Set(['namespace']);

/** The placeholders a template uses, as `root.key` strings; throws on malformed ones. */
export function placeholders(template: string): string[] {
  const out: string[] = [];
  const withoutReferences = template.replace(PARAMETER_STORE_REFERENCE, '');
  for (const m of withoutReferences.matchAll(PLACEHOLDER)) {
    const root = m[1] ?? '';
    if (!ROOTS.has(root)) throw new TemplateError(`unknown template root "${root}" in "${m[0]}"; use one of ${[...ROOTS].join(', ')}`);
    if (SCALAR_ROOTS.has(root)) {
      if (m[2]) throw new TemplateError(`"${m[0]}": ${root} has no fields; write {{ ${root} }}`);
      out.push(root);
      continue;
    }
    if (!m[2]) throw new TemplateError(`"${m[0]}" names no field; write e.g. {{ ${root}.name }}`);
    out.push(`${root}.${m[2]}`);
  }
  const stripped = withoutReferences.replace(PLACEHOLDER, '');
  if (stripped.includes('{{') || stripped.includes('}}')) {
    throw new TemplateError(`malformed placeholder in "${template}"; placeholders look like {{ labels.instance_id }}`);
  }
  return out;
}

function lookup(ctx: TemplateContext, root: string, key: string | undefined): string | undefined {
  if (SCALAR_ROOTS.has(root)) {
    const v = (ctx as unknown as Record<string, unknown>)[root];
    return typeof v === 'string' ? v : undefined;
  }
  if (key === undefined) return undefined;
  const scope = (ctx as unknown as Record<string, Record<string, unknown> | undefined>)[root];
  if (scope === undefined) return undefined;
  const v = Object.hasOwn(scope, key) ? scope[key] : undefined;
  return v === undefined || v === null ? undefined : String(v);
}

/**
 * Render one template. Every substituted value must be at most `maxLength` characters,
 * match `allowedPattern` in full and pass the structural rules (no leading `-`, no `..`,
 * not empty, unless lifted), or the whole render fails: a label such as `x; rm -rf /`,
 * `$(curl ...)`, `--help` or `../../etc/shadow` never reaches a command line.
 */
export function render(template: string, ctx: TemplateContext, policy: ValuePolicy): string {
  placeholders(template);
  let allowed: UserPattern;
  try {
    allowed = anchoredPattern(policy.allowedPattern);
  } catch (error) {
    throw new TemplateError(`allowedPattern /${policy.allowedPattern}/ is not a valid regular expression: ${(error as Error).message}`);
  }
  // Parameter Store references are cut out first and put back verbatim afterwards.
  const references = parameterStoreReferences(template);
  const parts = template.split(PARAMETER_STORE_REFERENCE);
  const rendered: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    // split() with a capturing group interleaves the captured path; every other part is text.
    if (i % 2 === 1) continue;
    rendered.push(renderText(parts[i] ?? '', ctx, policy, allowed));
  }
  let out = rendered[0] ?? '';
  for (let i = 0; i < references.length; i++) out += (references[i] ?? '') + (rendered[i + 1] ?? '');
  return out;
}

function renderText(template: string, ctx: TemplateContext, policy: ValuePolicy, allowed: UserPattern): string {
  return template.replace(PLACEHOLDER, (whole, root: string, key: string | undefined) => {
    const value = lookup(ctx, root, key);
    if (value === undefined) {
      if (root === 'instance' || root === 'tags') {
        throw new TemplateError(
          `${whole} needs exactly one target with that value; this request has ${ctx.instance ? 'no such value' : 'several or no targets'}`,
        );
      }
      throw new TemplateError(
        `${whole} has no value: the alert carries no ${root === 'alert' ? 'field' : root.replace(/s$/, '')} "${key}"`,
      );
    }
    checkValue(value, policy, allowed, `value of ${whole}`);
    return value;
  });
}

/**
 * Holds one whole value to a rule: no control or bidirectional character, at most
 * `maxLength`, the pattern in full, and the structural rules unless lifted. `what` names
 * the value in the error ("value of {{ labels.x }}", "input service").
 */
export function checkValue(value: string, policy: ValuePolicy, allowed: UserPattern, what: string): void {
  const control = forbiddenCharacter(value);
  if (control) {
    throw new TemplateError(
      `${what} contains the control or bidirectional character ${control}; refusing to send it (no pattern lifts this rule)`,
    );
  }
  // A value is data, never a template: `{{ssm-secure:/x}}` from a label or a policy would
  // otherwise be resolved by SSM on the instance, a secret the runbook never named.
  if (value.includes('{{'))
    throw new TemplateError(
      `${what} contains "{{" (a Parameter Store reference or a placeholder); refusing to send it (no pattern lifts this rule)`,
    );
  if (value.length > policy.maxLength) {
    throw new TemplateError(`${what} is ${value.length} characters, over the limit of ${policy.maxLength}`);
  }
  if (!allowed.test(value)) {
    throw new TemplateError(
      `${what} does not match the allowlist /${policy.allowedPattern}/ in full (it contains characters outside it); refusing to send it`,
    );
  }
  const problem = structuralProblem(value, policy.allow);
  if (problem) {
    throw new TemplateError(`${what} ${problem}; refusing to send it (a Runbook may lift this rule per parameter with allow:)`);
  }
}
