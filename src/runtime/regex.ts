/**
 * The one way a user's regular expression (an AlertPolicy matcher, an `allowedPattern`,
 * a runbook allowlist) is compiled and run: RE2 syntax and semantics, anchored at both
 * ends like Alertmanager's matchers (`^(?:pattern)$`), matched in time linear in the
 * input. JavaScript's own RegExp backtracks — `(.*.*)*XYZ` against a 22-character label
 * froze the process for minutes — and accepts a different language (backreferences,
 * lookaround; no `(?i)`), so a pattern that works in Alertmanager or Prometheus would
 * behave differently here. re2js is a pure-JS port of Go's regexp/RE2, so the image
 * needs no native module.
 *
 * Linear is not free: the cost is about (program size × input length), so a program
 * size cap (MAX_PROGRAM_SIZE) bounds one match of a 4 KiB label value to tens of
 * milliseconds even for patterns built to defeat the DFA (docs/intake.md has the numbers).
 */
import { RE2JS } from 're2js';

/** Longest pattern accepted; the CRDs cap matcher values at 1024 and allowlists at 256. */
export const MAX_PATTERN_LENGTH = 1024;
/**
 * Most RE2 instructions a compiled pattern may have. Every realistic matcher is far
 * below (`[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?` is 131); the cap stops a pattern
 * such as `(?:[ab]*a[ab]{200}){4}…` whose every match would cost hundreds of ms.
 */
export const MAX_PROGRAM_SIZE = 256;

/** A compiled user pattern: `test` is true when the whole value matches. */
export interface UserPattern {
  /** The pattern as the user wrote it. */
  readonly source: string;
  test(value: string): boolean;
}

/** The pattern is not a valid RE2 expression (or too large); the message says what to change. */
export class InvalidPatternError extends Error {
  constructor(
    readonly pattern: string,
    readonly reason: string,
  ) {
    super(`invalid regular expression ${JSON.stringify(pattern.length > 120 ? `${pattern.slice(0, 120)}…` : pattern)}: ${reason}`);
    this.name = 'InvalidPatternError';
  }
}

/**
 * Explains, in user terms, why a pattern that JavaScript might accept is not RE2. RE2's
 * own messages ("invalid escape sequence: `\1`") are accurate but do not say that the
 * construct is unsupported by design or what to write instead.
 */
function explain(pattern: string, re2Message: string): string {
  const detail = re2Message.replace(/^error parsing regexp: /, '');
  if (/\\[1-9]/.test(pattern)) return `backreferences (\\1 …) are not supported: RE2 syntax, as in Alertmanager (${detail})`;
  if (/\(\?<[=!]/.test(pattern)) return `lookbehind ((?<= …), (?<! …)) is not supported: RE2 syntax, as in Alertmanager (${detail})`;
  if (/\(\?[=!]/.test(pattern)) return `lookahead ((?= …), (?! …)) is not supported: RE2 syntax, as in Alertmanager (${detail})`;
  if (/\\u/.test(pattern)) return `\\uXXXX escapes are JavaScript syntax; write \\x{XXXX} (RE2) instead (${detail})`;
  if (/\\[ck]/.test(pattern)) return `${detail}; RE2 has no \\c or \\k escapes`;
  if (/expression too large|invalid repeat count/.test(detail))
    return `${detail}: RE2 allows repeat counts up to 1000 and bounded expression size; simplify it`;
  return `${detail} (RE2 syntax, as in Alertmanager and Prometheus)`;
}

function compileRe2(source: string, whole: string): RE2JS {
  try {
    return RE2JS.compile(source);
  } catch (error) {
    throw new InvalidPatternError(whole, explain(whole, (error as Error).message));
  }
}

/**
 * Compiles `pattern` as an anchored RE2 expression. Throws InvalidPatternError for a
 * pattern that is not RE2, longer than MAX_PATTERN_LENGTH, or compiles to more than
 * MAX_PROGRAM_SIZE instructions.
 *
 * The pattern is first compiled on its own: `a)|(b` would otherwise turn
 * `^(?:a)|(b)$` into a regex anchored at one end only (Alertmanager has that quirk; we
 * refuse such a pattern instead of matching more than its author meant).
 */
export function compileUserPattern(pattern: string): UserPattern {
  if (pattern.length > MAX_PATTERN_LENGTH) {
    throw new InvalidPatternError(pattern, `it is ${pattern.length} characters long, over the limit of ${MAX_PATTERN_LENGTH}`);
  }
  compileRe2(pattern, pattern);
  const re = compileRe2(`^(?:${pattern})$`, pattern);
  const size = re.programSize();
  if (size > MAX_PROGRAM_SIZE) {
    throw new InvalidPatternError(
      pattern,
      `it compiles to ${size} RE2 instructions, over the limit of ${MAX_PROGRAM_SIZE} that keeps matching fast; ` +
        'use smaller repeat counts ({n,m}) or fewer alternatives',
    );
  }
  return { source: pattern, test: (value: string) => re.test(value) };
}

/**
 * A bounded cache of compiled patterns (and of refusals, so a broken policy costs one
 * compile, not one per alert). Policies come and go, so it is cleared when full rather
 * than growing; a compile is cheap next to the request that needs it.
 */
export class UserPatternCache {
  private readonly entries = new Map<string, UserPattern | InvalidPatternError>();

  constructor(private readonly maxEntries = 1024) {}

  /** The compiled pattern, or the InvalidPatternError explaining why it has none. */
  get(pattern: string): UserPattern | InvalidPatternError {
    let entry = this.entries.get(pattern);
    if (entry !== undefined) return entry;
    try {
      entry = compileUserPattern(pattern);
    } catch (error) {
      if (!(error instanceof InvalidPatternError)) throw error;
      entry = error;
    }
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(pattern, entry);
    return entry;
  }
}
