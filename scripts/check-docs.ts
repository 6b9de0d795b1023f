/**
 * Drift check, part of `npm run check`: the documents say what the code does.
 *  - the drop codes of SPEC.md §7 and the local error codes of §8 are the code's
 *    (protocol/errors.ts DROP_CODES, CONFIG_CODES);
 *  - the limits table of SPEC.md §5 holds the values of protocol/limits.ts, and every RSA key
 *    size floor SPEC.md, README.md and SECURITY.md state is RSA_MIN_BITS;
 *  - the figures README.md and SECURITY.md give for spad's implementation limits (rates, queue
 *    and credit sizes, command caps) are those of server/limits.ts;
 *  - every "SPEC.md §N" (or §N.M, or §7 step N) cited anywhere in the repository exists;
 *  - README.md's list of `--config` keys is the config file schema's (server/config.ts);
 *  - the documents a file cites by name (README.md, SPEC.md, ...) are in the repository, and no
 *    file names a path outside it.
 * The checks are pure functions of file texts (test/unit/check-docs.test.ts plants drift in
 * copies); main() reads the tracked files and prints one line per problem.
 * Usage: node dist/scripts/check-docs.js   (exit 1 when something drifted)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CONFIG_CODES, DROP_CODES } from '../protocol/errors.js';
import * as limits from '../protocol/limits.js';
import { CONFIG_FILE_KEYS } from '../server/config.js';
import * as serverLimits from '../server/limits.js';

/** The text of one `## N.` section of SPEC.md (up to the next `## `), or '' if there is none. */
export function specSection(spec: string, n: number): string {
  const start = spec.search(new RegExp(`^## ${n}\\. `, 'm'));
  if (start < 0) return '';
  const rest = spec.slice(start + 3);
  const end = rest.search(/^## /m);
  return end < 0 ? rest : rest.slice(0, end);
}

const codesIn = (text: string): string[] =>
  [...text.matchAll(/`([A-Z][A-Z0-9_]*\*?)`/g)].map((m) => m[1] ?? '');

/** Where the drop codes of SPEC.md §7's table and the code's DROP_CODES differ. */
export function checkDropCodes(spec: string, code: readonly string[] = DROP_CODES): string[] {
  const rows = specSection(spec, 7)
    .split('\n')
    .filter((l) => /^\| *(\d+|—) *\|/.test(l));
  const named = rows.flatMap((l) => codesIn(l.split('|').at(-2) ?? ''));
  const problems: string[] = [];
  const matches = (pattern: string, c: string): boolean =>
    pattern.endsWith('*') ? c.startsWith(pattern.slice(0, -1)) : c === pattern;
  for (const p of named) {
    if (!code.some((c) => matches(p, c)))
      problems.push(`SPEC.md §7 names ${p}, which protocol/errors.ts has not`);
  }
  for (const c of code) {
    if (!named.some((p) => matches(p, c)))
      problems.push(`protocol/errors.ts drop code ${c} is not in SPEC.md §7`);
  }
  return problems;
}

/** Where the local error codes listed in SPEC.md §8 and the code's CONFIG_CODES differ. */
export function checkConfigCodes(spec: string, code: readonly string[] = CONFIG_CODES): string[] {
  const s8 = specSection(spec, 8);
  const from = s8.indexOf('use these codes:');
  const listed = from < 0 ? [] : codesIn(s8.slice(from, s8.indexOf('`protocol/errors.ts`', from)));
  const problems: string[] = [];
  for (const c of listed)
    if (!code.includes(c)) problems.push(`SPEC.md §8 lists ${c}, which protocol/errors.ts has not`);
  for (const c of code)
    if (!listed.includes(c)) problems.push(`protocol/errors.ts code ${c} is not listed in SPEC.md §8`);
  return problems;
}

type Limits = typeof limits;

/** The §5 table rows (first cell) and the numbers the value cell must contain, from limits.ts. */
export function expectedLimits(l: Limits = limits): ReadonlyArray<readonly [string, readonly number[]]> {
  return [
    ['datagram', [l.PACKET_MIN_BYTES, l.PACKET_MAX_BYTES]],
    ['decrypted payload', [l.PAYLOAD_MAX_BYTES]],
    ['decompressed data', [l.MAX_DECOMPRESSED_BYTES]],
    ['username', [1, l.USERNAME_MAX]],
    ['access entries', [1, l.ACCESS_MAX_ENTRIES]],
    ['command', [1, l.COMMAND_MAX_BYTES]],
    ['timeout', [0, l.TIMEOUT_MAX_SECONDS]],
    ['PKESK packets', [1, l.PKESK_MAX]],
    ['freshness window', [l.DEFAULT_MAX_SKEW_SECONDS]],
  ];
}

/** Where SPEC.md §5's limits table and protocol/limits.ts differ. */
export function checkLimits(spec: string, l: Limits = limits): string[] {
  const rows = new Map<string, string>();
  for (const line of specSection(spec, 5).split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length >= 4 && cells[1] && cells[2] !== undefined) rows.set(cells[1], cells[2]);
  }
  const problems: string[] = [];
  for (const [name, want] of expectedLimits(l)) {
    const cell = rows.get(name);
    if (cell === undefined) {
      problems.push(`SPEC.md §5 has no "${name}" row`);
      continue;
    }
    const got = [...cell.matchAll(/\d+/g)].map((m) => Number(m[0]));
    if (got.slice(0, want.length).join(',') !== want.join(',')) {
      problems.push(`SPEC.md §5 "${name}" says ${cell}; protocol/limits.ts says ${want.join('..')}`);
    }
  }
  return problems;
}

/** The documents that state the RSA floor; SPEC.md must state it. */
const RSA_FLOOR_DOCS = ['SPEC.md', 'README.md', 'SECURITY.md'];
// "RSA keys MUST have at least 2048 bits", "RSA shorter than 2048 bits", "RSA < 2048 bits"
const RSA_FLOOR =
  /\bRSA\b[^.|]{0,60}?(?:\bat least|\bshorter than|\bbelow|\bfewer than|<) *(\d+)[ -]bits?\b/g;

/** Where the RSA floor the documents state differs from protocol/limits.ts RSA_MIN_BITS. */
export function checkRsaFloor(
  files: ReadonlyMap<string, string>,
  bits: number = limits.RSA_MIN_BITS,
): string[] {
  const problems: string[] = [];
  for (const path of RSA_FLOOR_DOCS) {
    const text = files.get(path);
    if (text === undefined) continue;
    const stated = [...text.matchAll(RSA_FLOOR)].map((m) => Number(m[1]));
    if (path === 'SPEC.md' && stated.length === 0) problems.push('SPEC.md does not state the RSA floor');
    for (const n of stated)
      if (n !== bits) problems.push(`${path} says RSA keys need ${n} bits; protocol/limits.ts says ${bits}`);
  }
  return problems;
}

type ServerLimits = typeof serverLimits;

/** Where the documents state a figure of server/limits.ts: the document, the phrase, the value. */
export function limitStatements(
  l: ServerLimits = serverLimits,
): ReadonlyArray<readonly [string, RegExp, number]> {
  return [
    ['README.md', /Past (\d+) junk\s+datagrams a second/, l.JUNK_FORWARD_PER_SECOND],
    ['README.md', /knocked validly in the last\s+(\d+) minutes/, l.TRUSTED_SOURCE_MS / 60_000],
    ['README.md', /at most (\d+) are on their way/, l.CREDIT_WINDOW],
    ['README.md', /bounded to (\d+)\s+lines per reason per second/, l.AUDIT_LINES_PER_REASON_PER_SECOND],
    ['README.md', /SIGKILL (\d+) s\s+later/, l.KILL_GRACE_MS / 1000],
    ['README.md', /time limit \+ (\d+) s per process/, l.KILL_GRACE_MS / 1000],
    ['README.md', /at most (\d+)\s+processes for the run-as user/, l.COMMAND_NPROC],
    ['README.md', /(\d+) GiB of address space per process/, l.COMMAND_AS_BYTES / 1024 ** 3],
    ['README.md', /Output is kept up to (\d+) KiB per stream/, l.OUTPUT_CAP_BYTES / 1024],
    ['SECURITY.md', /valid knock in the last (\d+) minutes/, l.TRUSTED_SOURCE_MS / 60_000],
    ['SECURITY.md', /`error` only, bounded fields, at most (\d+) a second/, l.VERIFIER_AUDIT_PER_SECOND],
    ['SECURITY.md', /time limit \+ (\d+) per process/, l.KILL_GRACE_MS / 1000],
    ['SECURITY.md', /at most (\d+) processes for\s+the run-as uid/, l.COMMAND_NPROC],
    ['SECURITY.md', /(\d+) GiB address space per process/, l.COMMAND_AS_BYTES / 1024 ** 3],
    ['SECURITY.md', /SIGKILL (\d+) s later/, l.KILL_GRACE_MS / 1000],
  ];
}

/** Where README.md and SECURITY.md state a figure of server/limits.ts other than its value. */
export function checkServerLimits(
  files: ReadonlyMap<string, string>,
  l: ServerLimits = serverLimits,
): string[] {
  const problems: string[] = [];
  for (const [path, phrase, value] of limitStatements(l)) {
    const text = files.get(path);
    if (text === undefined) continue;
    const m = phrase.exec(text);
    if (!m) problems.push(`${path} no longer says ${phrase.source} (server/limits.ts: ${value})`);
    else if (Number(m[1]) !== value)
      problems.push(`${path} says "${m[0].replace(/\s+/g, ' ')}"; server/limits.ts says ${value}`);
  }
  return problems;
}

/** Section numbers SPEC.md has: `## N.` and `### N.M` headings, and `N.M` for item M of a numbered list in §N. */
export function specSections(spec: string): Set<string> {
  const have = new Set<string>();
  for (const m of spec.matchAll(/^## (\d+)\. /gm)) {
    const n = Number(m[1]);
    have.add(String(n));
    for (const item of specSection(spec, n).matchAll(/^(\d+)\. /gm)) have.add(`${n}.${item[1]}`);
  }
  for (const m of spec.matchAll(/^### (\d+\.\d+) /gm)) have.add(m[1] ?? '');
  return have;
}

/** The steps of §7's table. */
function specSteps(spec: string): Set<number> {
  const steps = new Set<number>();
  for (const m of specSection(spec, 7).matchAll(/^\| *(\d+) *\|/gm)) steps.add(Number(m[1]));
  return steps;
}

/**
 * Every section and §7 step a file cites: "SPEC.md §3", "SPEC §6.1", "SPEC.md §3, §5",
 * "SPEC.md §7 steps 8-12", and in SPEC.md itself any "§N".
 */
export function checkSpecRefs(spec: string, files: ReadonlyMap<string, string>): string[] {
  const have = specSections(spec);
  const steps = specSteps(spec);
  const problems: string[] = [];
  for (const [path, text] of files) {
    const cites: Array<{ section: string; steps?: string }> = [];
    const lists =
      path === 'SPEC.md'
        ? text.matchAll(/()(§[\d.]*\d)/g)
        : text.matchAll(
            /SPEC(?:\.md)? +(§[\d.]*\d(?:(?:, *| and |\/)§[\d.]*\d)*)( steps? \d+(?:[-–]\d+)?)?/g,
          );
    for (const m of lists) {
      const list = path === 'SPEC.md' ? (m[2] ?? '') : (m[1] ?? '');
      const sections = list.split(/, *| and |\//).map((s) => s.replace('§', ''));
      sections.forEach((section, i) =>
        cites.push(
          i === sections.length - 1 && path !== 'SPEC.md' && m[2] ? { section, steps: m[2] } : { section },
        ),
      );
    }
    for (const c of cites) {
      if (!have.has(c.section)) problems.push(`${path}: cites SPEC.md §${c.section}, which does not exist`);
      else if (c.steps) {
        if (c.section !== '7')
          problems.push(`${path}: cites steps of SPEC.md §${c.section}; only §7 has steps`);
        for (const n of [...c.steps.matchAll(/\d+/g)].map((x) => Number(x[0]))) {
          if (!steps.has(n)) problems.push(`${path}: cites SPEC.md §7 step ${n}, which does not exist`);
        }
      }
    }
  }
  return problems;
}

/** Where README.md's `--config` keys and the config file schema differ. */
export function checkConfigKeys(readme: string, keys: readonly string[] = CONFIG_FILE_KEYS): string[] {
  const row = readme.split('\n').find((l) => l.startsWith('| `--config FILE`'));
  if (!row) return ['README.md: no `--config FILE` row'];
  const at = row.indexOf('Keys:');
  // each key starts an item of the list (what follows it in parentheses is its description)
  const listed =
    at < 0 ? [] : [...row.slice(at).matchAll(/(?:Keys: |, )`([a-z_]+)`/g)].map((m) => m[1] ?? '');
  const problems: string[] = [];
  for (const k of listed)
    if (!keys.includes(k)) problems.push(`README.md lists config key ${k}, which server/config.ts has not`);
  for (const k of keys) if (!listed.includes(k)) problems.push(`README.md does not list config key ${k}`);
  return problems;
}

// spelled in two parts so that this file does not trip its own check
const OUTSIDE = new RegExp(['\\.\\./sha', 'red/|/wo', 'rk/(?:main|shared|wt)\\b'].join(''));
const DOC_NAME = /\b([A-Z][A-Z_]+\.md)\b/g;

/** Documents cited by name that are not in the repository, and paths that point outside it. */
export function checkCitations(
  files: ReadonlyMap<string, string>,
  exists: (path: string) => boolean,
): string[] {
  const problems: string[] = [];
  for (const [path, text] of files) {
    if (OUTSIDE.test(text)) problems.push(`${path}: names a path outside the repository`);
    for (const m of text.matchAll(DOC_NAME)) {
      const doc = m[1] ?? '';
      if (!exists(doc) && !exists(`docs/${doc}`))
        problems.push(`${path}: cites ${doc}, which is not in the repository`);
    }
  }
  return [...new Set(problems)];
}

const TEXT = /\.(ts|js|md|sh|json)$/;
const SELF = new Set(['scripts/check-docs.ts', 'test/unit/check-docs.test.ts']);

function main(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const tracked = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' })
    .split('\n')
    // the checker and its test hold drift on purpose (the examples they look for)
    .filter(
      (f) => TEXT.test(f) && !SELF.has(f) && f !== 'package-lock.json' && !f.startsWith('test/vectors/'),
    );
  const files = new Map<string, string>();
  for (const f of tracked) if (existsSync(`${root}/${f}`)) files.set(f, readFileSync(`${root}/${f}`, 'utf8'));
  const spec = files.get('SPEC.md') ?? '';
  const problems = [
    ...checkDropCodes(spec),
    ...checkConfigCodes(spec),
    ...checkLimits(spec),
    ...checkRsaFloor(files),
    ...checkServerLimits(files),
    ...checkSpecRefs(spec, files),
    ...checkConfigKeys(files.get('README.md') ?? ''),
    ...checkCitations(files, (p) => existsSync(`${root}/${p}`)),
  ];
  for (const p of problems) console.error(`check-docs: ${p}`);
  if (problems.length > 0) process.exit(1);
  console.log(`check-docs: ${files.size} files agree with SPEC.md, README.md and the code`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
