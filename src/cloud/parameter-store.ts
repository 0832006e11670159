/**
 * Parameter Store references in SSM command parameters: `{{ssm:/path/name}}` and
 * `{{ssm-secure:/path/name}}`. SSM resolves them on the way to the instance, so the
 * value (a setting, a secret) never passes through the controller, its status or its
 * logs. The controller passes such a value through verbatim; this module only decides
 * whether a value is exactly one well-formed reference, so that the template allowlist
 * can admit it without admitting anything else that contains braces.
 *
 * The name rules are Parameter Store's (PutParameter's naming constraints): letters,
 * digits and `_.-`, `/` between hierarchy levels, no spaces, at most 15 levels, at most
 * 1011 characters; a name may not begin with `aws` or `ssm` (any case) except the public
 * namespaces AWS itself publishes under `/aws/service/` and `/aws/reference/` (the latter
 * is how a Secrets Manager secret is referenced through Parameter Store). A reference
 * may pin a version (`:3`) or a label (`:prod`).
 */

/** The longest parameter name Parameter Store accepts (a full ARN may be 2048). */
export const MAX_PARAMETER_NAME_LENGTH = 1011;
/** "Parameter hierarchies are limited to a maximum depth of fifteen levels." */
export const MAX_PARAMETER_HIERARCHY_DEPTH = 15;

const REFERENCE = /^\{\{(ssm|ssm-secure):([^{}\s:]+)(?::([^{}\s:]+))?\}\}$/;
const NAME_CHARS = /^[a-zA-Z0-9_.\-/]+$/;
const SEGMENT = /^[a-zA-Z0-9_.-]+$/;
/** Parameter labels: up to 100 characters of letters, digits, `.`, `-`, `_`; not starting with a digit, `aws` or `ssm`. */
const LABEL = /^[a-zA-Z_.-][a-zA-Z0-9_.-]{0,99}$/;
const VERSION = /^[1-9][0-9]{0,18}$/;
const RESERVED = /^(aws|ssm)/i;
const PUBLIC_NAMESPACES = ['/aws/service/', '/aws/reference/'];

export interface ParameterStoreReference {
  /** `ssm-secure` for SecureString parameters. */
  kind: 'ssm' | 'ssm-secure';
  name: string;
  /** A version number or a label, if the reference pins one. */
  selector?: string;
}

/** The reference `value` is, or undefined when it is not exactly one well-formed reference. */
export function parseParameterStoreReference(value: string): ParameterStoreReference | undefined {
  const m = REFERENCE.exec(value);
  if (!m) return undefined;
  const kind = m[1] as 'ssm' | 'ssm-secure';
  const name = m[2]!;
  const selector = m[3];
  if (!isParameterName(name)) return undefined;
  if (selector !== undefined && !(VERSION.test(selector) || (LABEL.test(selector) && !RESERVED.test(selector)))) return undefined;
  return { kind, name, ...(selector !== undefined && { selector }) };
}

/** Whether `value` is exactly one Parameter Store reference that SSM can resolve: `{{ssm:/a/b}}`, `{{ssm-secure:/a/b:2}}`. */
export function isParameterStoreReference(value: string): boolean {
  return parseParameterStoreReference(value) !== undefined;
}

function isParameterName(name: string): boolean {
  if (name.length > MAX_PARAMETER_NAME_LENGTH || !NAME_CHARS.test(name)) return false;
  // A hierarchical name starts with `/`; a flat one has no `/` at all.
  const hierarchical = name.startsWith('/');
  if (!hierarchical && name.includes('/')) return false;
  const segments = hierarchical ? name.slice(1).split('/') : [name];
  if (segments.length > MAX_PARAMETER_HIERARCHY_DEPTH) return false;
  // No empty level (`//`, a trailing `/`), and no `.`/`..` levels that would read as paths.
  if (segments.some((s) => !SEGMENT.test(s) || s === '.' || s === '..')) return false;
  if (RESERVED.test(segments[0]!)) return hierarchical && PUBLIC_NAMESPACES.some((p) => name.startsWith(p));
  return true;
}
