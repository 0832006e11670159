/**
 * Renders `{{ path }}` placeholders in policy-authored text with values from an alert
 * and its enrichment, and enforces the character allowlist on every substituted value.
 *
 * Written by hand on purpose: template libraries (Mustache, Handlebars, Nunjucks) add
 * logic, partials and HTML escaping, while remediator needs the opposite — no logic at
 * all, a hard failure on a missing value, and a check of each value *before* it touches
 * a shell command. The literal text of a template is trusted (a policy author wrote it);
 * substituted values are not (an alert sender chose them).
 */

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
}

export interface ValuePolicy {
  /** Regex each substituted value must match in full. */
  allowedPattern: string;
  maxLength: number;
}

export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_./-]+))?\s*\}\}/g;
const ROOTS = new Set(['alert', 'labels', 'annotations', 'instance', 'tags', 'enrichment']);

/** The placeholders a template uses, as `root.key` strings; throws on malformed ones. */
export function placeholders(template: string): string[] {
  const out: string[] = [];
  for (const m of template.matchAll(PLACEHOLDER)) {
    const root = m[1] ?? '';
    if (!ROOTS.has(root)) throw new TemplateError(`unknown template root "${root}" in "${m[0]}"; use one of ${[...ROOTS].join(', ')}`);
    if (!m[2]) throw new TemplateError(`"${m[0]}" names no field; write e.g. {{ ${root}.name }}`);
    out.push(`${root}.${m[2]}`);
  }
  const stripped = template.replace(PLACEHOLDER, '');
  if (stripped.includes('{{') || stripped.includes('}}')) {
    throw new TemplateError(`malformed placeholder in "${template}"; placeholders look like {{ labels.instance_id }}`);
  }
  return out;
}

function lookup(ctx: TemplateContext, root: string, key: string): string | undefined {
  const scope = (ctx as unknown as Record<string, Record<string, unknown> | undefined>)[root];
  if (scope === undefined) return undefined;
  const v = Object.prototype.hasOwnProperty.call(scope, key) ? scope[key] : undefined;
  return v === undefined || v === null ? undefined : String(v);
}

/**
 * Render one template. Every substituted value must be at most `maxLength` characters
 * and match `allowedPattern` in full, or the whole render fails: a label such as
 * `x; rm -rf /` or `$(curl ...)` never reaches a command line.
 */
export function render(template: string, ctx: TemplateContext, policy: ValuePolicy): string {
  placeholders(template);
  let allowed: RegExp;
  try {
    // Anchored as a whole; anchors the author wrote inside stay harmless.
    allowed = new RegExp(`^(?:${policy.allowedPattern})$`, 'u');
  } catch (error) {
    throw new TemplateError(`allowedPattern /${policy.allowedPattern}/ is not a valid regular expression: ${(error as Error).message}`);
  }
  return template.replace(PLACEHOLDER, (whole, root: string, key: string) => {
    const value = lookup(ctx, root, key);
    if (value === undefined) {
      if (root === 'instance' || root === 'tags') {
        throw new TemplateError(`${whole} needs exactly one target with that value; this request has ${ctx.instance ? 'no such value' : 'several or no targets'}`);
      }
      throw new TemplateError(`${whole} has no value: the alert carries no ${root === 'alert' ? 'field' : root.replace(/s$/, '')} "${key}"`);
    }
    if (value.length > policy.maxLength) {
      throw new TemplateError(`value of ${whole} is ${value.length} characters, over the limit of ${policy.maxLength}`);
    }
    if (!allowed.test(value)) {
      throw new TemplateError(`value of ${whole} contains characters outside the allowlist /${policy.allowedPattern}/; refusing to send it`);
    }
    return value;
  });
}
