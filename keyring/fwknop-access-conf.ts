/**
 * fwknopd's access.conf, read as fwknopd reads it (its access.conf documentation, fwknopd(8)):
 * stanzas that each start at a SOURCE line, `NAME value` directives. Syntax only: what the
 * directives mean for spa is fwknop-stanza.ts, the import plan import-fwknop.ts.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, isSpaError } from '../protocol/errors.js';

const CONF_MAX_BYTES = 1_000_000;

export interface Stanza {
  /** 1-based, in file order. */
  readonly index: number;
  readonly line: number;
  /** Directive name (uppercase) → value and line; a repeated directive keeps the last, as fwknopd. */
  readonly vars: ReadonlyMap<string, { value: string; line: number }>;
  /** Problems found while reading the file that belong to this stanza. */
  readonly notes: readonly string[];
}

export interface ParsedConf {
  readonly stanzas: readonly Stanza[];
  /** File-level notes (%include lines, directives before the first SOURCE). */
  readonly notes: readonly string[];
}

/** access.conf syntax: `NAME<whitespace>value`, an optional trailing `;`, `#` comments. */
export function parseAccessConf(text: string): ParsedConf {
  const stanzas: Array<{
    index: number;
    line: number;
    vars: Map<string, { value: string; line: number }>;
    notes: string[];
  }> = [];
  const notes: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) return;
    const m = /^(%?[A-Za-z_][A-Za-z0-9_]*)\s+(.*?)\s*;?\s*$/.exec(t);
    if (!m) {
      (stanzas.at(-1)?.notes ?? notes).push(`line ${line}: not a directive, ignored`);
      return;
    }
    const name = (m[1] ?? '').toUpperCase();
    const value = m[2] ?? '';
    if (name.startsWith('%')) {
      (stanzas.at(-1)?.notes ?? notes).push(
        `line ${line}: ${name} ${value} is not followed; run import-fwknop on that file too`,
      );
      return;
    }
    if (name === 'SOURCE') {
      stanzas.push({ index: stanzas.length + 1, line, vars: new Map(), notes: [] });
    }
    const cur = stanzas.at(-1);
    if (!cur) {
      notes.push(`line ${line}: ${name} before the first SOURCE (fwknopd ignores it too)`);
      return;
    }
    cur.vars.set(name, { value, line });
  });
  return { stanzas, notes };
}

export async function readAccessConf(path: string): Promise<ParsedConf> {
  let text: string;
  try {
    const buf = await readFile(path);
    if (buf.length > CONF_MAX_BYTES)
      throw new ConfigError('LIMIT_EXCEEDED', `${path}: more than ${CONF_MAX_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (e) {
    if (isSpaError(e)) throw e;
    throw new ConfigError(
      'IO',
      `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return parseAccessConf(text);
}
