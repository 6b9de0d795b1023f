/**
 * Restricted commands (SPEC.md §9.5): the one place where a command's text becomes the argv that
 * runs, and where an admin's command regex is checked and compiled.
 *
 * Design: the regex must see exactly what runs. So there is no shell-words parsing, no quoting
 * and no escaping: a command is words of printable ASCII from a small set, separated by single
 * ASCII spaces, and its argv is `text.split(' ')`. Anything else (quotes, backslashes, `$`,
 * backticks, shell operators, globs, non-ASCII or control characters, Unicode spaces, empty
 * words) is refused before the regex runs, so `argv.join(' ')` is the text the regex matched.
 *
 * The regex is matched as `^(?:re)$` and must be one well-formed expression on its own, so it
 * cannot close the wrapper (`uptime)|(reboot` would otherwise match any text starting with
 * `uptime`). It is compiled for V8's linear-time engine (RegExp flag `l`), so no regex can make a
 * match backtrack exponentially; that engine has no backreferences, lookarounds or counted
 * repetitions above {16}, and such regexes are refused with a message that says so.
 *
 * Pure but for one process-wide switch: the `l` flag exists only once V8's
 * `--enable-experimental-regexp-engine` flag is set, which the first compile does (node:v8).
 */
import { setFlagsFromString } from 'node:v8';
import { ConfigError, PolicyError } from './errors.js';
import { COMMAND_MAX_BYTES } from './limits.js';

/** The characters a command word may contain (SPEC.md §9.5), as error text. */
export const COMMAND_WORD_CHARS = 'A-Z a-z 0-9 _ - . / , : = + @ %';
/** Longest command regex an admin may enroll, in characters. */
export const COMMAND_REGEX_MAX_CHARS = COMMAND_MAX_BYTES;
/**
 * Most positions a command regex may have once its repetitions are unrolled (unrolledPositions):
 * the linear-time engine's match costs up to this many steps per byte of the command. As many as
 * the longest regex without counted repetition can have, so counting cannot make it dearer.
 */
export const COMMAND_REGEX_MAX_POSITIONS = COMMAND_REGEX_MAX_CHARS;

const WORD_CHAR = /[A-Za-z0-9_\-./,:=+@%]/;

function refuse(message: string): PolicyError {
  return new PolicyError('CMD_NO_MATCH', `command: ${message}`, { field: 'command' });
}

function describeChar(c: string): string {
  const cp = c.codePointAt(0) ?? 0;
  const u = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return cp > 0x20 && cp < 0x7f ? `'${c}' (${u})` : u;
}

/**
 * The argv for a command text, or CMD_NO_MATCH: words of COMMAND_WORD_CHARS joined by single
 * spaces, at most COMMAND_MAX_BYTES. For every accepted text, `commandArgv(t).join(' ') === t`.
 */
export function commandArgv(text: string): string[] {
  if (text.length === 0) throw refuse('empty');
  if (text.length > COMMAND_MAX_BYTES) {
    throw refuse(`${text.length} characters, at most ${COMMAND_MAX_BYTES}`);
  }
  let offset = 0;
  for (const c of text) {
    if (c !== ' ' && !WORD_CHAR.test(c)) {
      throw refuse(
        `character ${describeChar(c)} at offset ${offset} is not allowed (words of ${COMMAND_WORD_CHARS}, separated by single spaces)`,
      );
    }
    offset += c.length;
  }
  const argv = text.split(' ');
  let at = 0;
  for (const w of argv) {
    if (w === '') throw refuse(`empty word at offset ${at} (leading, trailing or double space)`);
    at += w.length + 1;
  }
  return argv;
}

/** V8's flag for its linear-time (non-backtracking) engine. */
const LINEAR = 'l';
let linearEngine: boolean | null = null;

/** Turns V8's linear-time regex engine on (once); false when this V8 has none. */
function haveLinearEngine(): boolean {
  if (linearEngine === null) {
    try {
      setFlagsFromString('--enable-experimental-regexp-engine');
      new RegExp('', LINEAR);
      linearEngine = true;
    } catch {
      linearEngine = false;
    }
  }
  return linearEngine;
}

/**
 * An upper bound on the positions of `re`'s automaton as V8's linear-time engine builds it: every
 * atom (a character, an escape, a class, `.`, an anchor) is one, and a quantifier copies what it
 * follows: `x{n,m}` m times, `x{n,}` n + 1, `x+` twice, `x?` and `x*` once. The engine keeps up
 * to one thread per position, so this bounds the work per byte of a command. `re` must already
 * compile (V8 has checked its syntax); escapes are over-counted, never under-counted.
 */
export function unrolledPositions(re: string): number {
  // per open group: its positions so far, and the size of its last atom (what a quantifier copies)
  const stack: { sum: number; last: number }[] = [{ sum: 0, last: 0 }];
  let top = stack[0] as { sum: number; last: number };
  const atom = (size: number): void => {
    top.sum += size;
    top.last = size;
  };
  const copy = (times: number): void => {
    top.sum += top.last * (Math.max(times, 1) - 1);
    top.last *= Math.max(times, 1);
  };
  for (let i = 0; i < re.length; i++) {
    const c = re[i];
    if (c === '\\') {
      i++;
      atom(1);
    } else if (c === '[') {
      // a class is one position; `]` right after `[` or `[^` closes it in this (non-u) syntax
      i++;
      if (re[i] === '^') i++;
      while (i < re.length && re[i] !== ']') i += re[i] === '\\' ? 2 : 1;
      atom(1);
    } else if (c === '(') {
      if (re[i + 1] === '?') {
        // skip `(?:`, `(?=`, `(?!`, `(?<=`, `(?<!`, `(?<name>` (lookarounds are refused later)
        const named = re[i + 2] === '<' && re[i + 3] !== '=' && re[i + 3] !== '!';
        const close = named ? re.indexOf('>', i) : -1;
        i = close > i ? close : i + (re[i + 2] === '<' ? 3 : 2);
      }
      top = { sum: 0, last: 0 };
      stack.push(top);
    } else if (c === ')') {
      const group = stack.pop() as { sum: number; last: number };
      top = stack[stack.length - 1] as { sum: number; last: number };
      atom(group.sum);
    } else if (c === '|') {
      top.last = 0;
    } else if (c === '*' || c === '?') {
      if (re[i + 1] === '?') i++; // lazy
    } else if (c === '+') {
      copy(2);
      if (re[i + 1] === '?') i++;
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(re.slice(i));
      if (!m) {
        atom(1); // a literal brace
        continue;
      }
      const min = Number(m[1]);
      copy(m[2] === undefined ? min : m[3] ? Number(m[3]) : min + 1);
      i += m[0].length - 1;
      if (re[i + 1] === '?') i++;
    } else {
      atom(1);
    }
  }
  return stack.reduce((n, g) => n + g.sum, 0);
}

/** The compiled `^(?:re)$`, or why `re` cannot be a command regex. */
function compileOrExplain(re: string): RegExp | string {
  if (re.length === 0) return 'empty regex';
  if (re.length > COMMAND_REGEX_MAX_CHARS) return `regex longer than ${COMMAND_REGEX_MAX_CHARS} characters`;
  try {
    new RegExp(re);
  } catch (e) {
    // V8's message names the problem, e.g. "Unmatched ')'" for `uptime)|(reboot`
    return `regex does not compile on its own (it must be one expression, matched as ^(?:re)$): ${(e as Error).message}`;
  }
  const positions = unrolledPositions(re);
  if (positions > COMMAND_REGEX_MAX_POSITIONS) {
    return `regex has ${positions} positions once its repetitions are unrolled, at most ${COMMAND_REGEX_MAX_POSITIONS} (each costs work on every byte of a command): use fewer or smaller counted repetitions`;
  }
  if (!haveLinearEngine()) {
    return 'this Node.js has no linear-time regex engine (V8 --enable-experimental-regexp-engine), so no command regex is accepted';
  }
  try {
    return new RegExp(`^(?:${re})$`, LINEAR);
  } catch {
    return 'regex uses what the linear-time engine cannot run: backreferences (\\1, \\k<name>), lookahead or lookbehind ((?=, (?!, (?<=, (?<!), or a counted repetition above {16} (write + or * instead)';
  }
}

/**
 * Why `re` cannot be a command regex, or null when it can. Checks, in order: not empty, at most
 * COMMAND_REGEX_MAX_CHARS, compiles on its own (so its parentheses balance and it cannot close
 * the `^(?:...)$` wrapper), and compiles for the linear-time engine.
 */
export function commandRegexError(re: string): string | null {
  const r = compileOrExplain(re);
  return typeof r === 'string' ? r : null;
}

/**
 * The admin's regex, compiled to match the whole command: `^(?:re)$`, no `m` flag (so `$` cannot
 * stop at a newline), linear-time engine. Throws CONFIG_INVALID naming `field`.
 */
export function compileCommandRegex(source: string, field = 'cmd_regex'): RegExp {
  const r = compileOrExplain(source);
  if (typeof r === 'string') throw new ConfigError('CONFIG_INVALID', `${field}: ${r}`, { field });
  return r;
}
