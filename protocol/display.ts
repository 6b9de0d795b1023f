/**
 * Text that came from a key or a packet (user ids, usernames, commands, command output, key
 * comments) is shown to people: on a terminal by `spa-keys`, `spad status` and `spa -v`, and in
 * the audit log, which a log viewer renders. Such text must not be able to act on the display:
 * ESC sequences move the cursor and erase lines (a user id could overwrite the fingerprint line
 * that the admin is asked to confirm), bidi controls reorder what is read, zero-width characters
 * hide differences between names.
 *
 * `displaySafe` makes every such character visible instead: C0 controls, DEL and C1 controls as
 * `\xNN`, dangerous format characters as `\uNNNN`, and the backslash itself as `\\`, so an escaped
 * string cannot pass for another escaped one. Printable text, other languages included, is left
 * as it is. Pure: no I/O.
 */

/**
 * Code points shown escaped as `\uNNNN`: bidi marks, embeddings, overrides and isolates
 * (U+061C, U+200E/F, U+202A-202E, U+2066-2069), zero-width and invisible format characters
 * (U+200B-200D, U+2060-2064, U+FEFF, U+180E, U+00AD), line and paragraph separators
 * (U+2028/9, which some viewers treat as newlines), the deprecated format controls
 * (U+206A-206F) and interlinear annotation (U+FFF9-FFFB).
 */
const FORMAT = /[\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/u;

/** Lone surrogates (invalid UTF-16, which a terminal may render as anything). */
function isLoneSurrogate(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff) {
    const n = s.charCodeAt(i + 1);
    return !(n >= 0xdc00 && n <= 0xdfff);
  }
  if (c >= 0xdc00 && c <= 0xdfff) {
    const p = s.charCodeAt(i - 1);
    return !(p >= 0xd800 && p <= 0xdbff);
  }
  return false;
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

export interface DisplayOptions {
  /**
   * Escape `\` as `\\` (default true), so `displaySafe(a) === displaySafe(b)` only when a === b.
   * False for text that is already an escaped form (JSON) or quotes a regex in an error message,
   * where doubling every backslash would mislead more than it protects.
   */
  readonly backslash?: boolean;
}

/** `s` with every control, bidi and invisible format character (and `\`) written as an escape. */
export function displaySafe(s: string, opts: DisplayOptions = {}): string {
  // fast path: printable ASCII without a backslash (almost every username and command)
  if (/^[\x20-\x5b\x5d-\x7e]*$/.test(s)) return s;
  const backslash = opts.backslash ?? true;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    const c = s.charCodeAt(i);
    if (ch === '\\') out += backslash ? '\\\\' : ch;
    else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) out += `\\x${hex(c, 2)}`;
    else if (FORMAT.test(ch) || isLoneSurrogate(s, i)) out += `\\u${hex(c, 4)}`;
    else out += ch;
  }
  return out;
}

/** True when `displaySafe(s)` would change nothing. */
export function isDisplaySafe(s: string): boolean {
  return displaySafe(s) === s;
}

const JSON_UNSAFE =
  /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/gu;

/**
 * `JSON.stringify(value, null, space)` with DEL, C1 and the format characters above written as
 * `\uNNNN` JSON escapes (JSON itself escapes only C0): the same JSON value, safe on a terminal.
 */
export function displaySafeJson(value: unknown, space?: number): string {
  const text = JSON.stringify(value, null, space) ?? 'null';
  return text.replace(JSON_UNSAFE, (c) => `\\u${hex(c.charCodeAt(0), 4)}`);
}
