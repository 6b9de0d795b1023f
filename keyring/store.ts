/**
 * A schema-validated JSON file held in a lowdb `Low` object, read and written under our lock.
 *
 * lowdb keeps the data object and the read/modify/write shape; the file I/O is our own adapter
 * instead of lowdb's `JSONFile` because its writer (steno) renames a fixed-name temp file without
 * fsync and creates files with the umask's mode: a crash can leave an empty or torn keyring after
 * a power cut, and a fresh allowlist would be world-readable. Our adapter validates every read
 * (a corrupt file is reported, never silently replaced by defaults) and writes with
 * `writeFileAtomic` (temp + fsync + rename + directory fsync, exact mode). lowdb has no lock:
 * `updateStore` wraps lock + read + modify + write in `withLock`.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Adapter } from 'lowdb';
import { Low } from 'lowdb';
import type { z } from 'zod';
import { ConfigError } from '../protocol/errors.js';
import { type LockOptions, withLock, writeFileAtomic } from './atomic.js';
import { validateFile } from './schema.js';

export class ValidatedJsonFile<T> implements Adapter<T> {
  constructor(
    readonly path: string,
    private readonly schema: z.ZodType<T>,
    private readonly mode: number,
  ) {}

  async read(): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    return parseStoreText(text, this.schema, this.path);
  }

  async write(data: T): Promise<void> {
    // never write what we would refuse to read back
    const valid = validateFile(this.schema, data, `${basename(this.path)} (about to be written)`);
    await writeFileAtomic(this.path, `${JSON.stringify(valid, null, 2)}\n`, this.mode);
  }
}

export function parseStoreText<T>(text: string, schema: z.ZodType<T>, path: string): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError('KEYRING_CORRUPT', `${path}: not valid JSON (${(e as Error).message})`, {
      hint: 'the file was left as it is: fix it by hand or restore a backup',
    });
  }
  return validateFile(schema, json, path);
}

/** Reads and validates; null when the file does not exist. */
export async function readStore<T>(path: string, schema: z.ZodType<T>): Promise<T | null> {
  return new ValidatedJsonFile(path, schema, 0o600).read();
}

export interface UpdateOptions<T> extends LockOptions {
  /** Data for a file that does not exist yet; when absent, a missing file is an error. */
  empty?: () => T;
  /** Error for a missing file when `empty` is absent. */
  missing?: () => Error;
}

/**
 * Lock, read + validate, let `fn` modify the data in place, validate and write atomically,
 * unlock. `fn`'s return value is passed through; if `fn` throws, nothing is written.
 */
export async function updateStore<T, R>(
  path: string,
  schema: z.ZodType<T>,
  mode: number,
  fn: (data: T) => R | Promise<R>,
  opts: UpdateOptions<T> = {},
): Promise<R> {
  return withLock(
    path,
    async () => {
      const adapter = new ValidatedJsonFile(path, schema, mode);
      const current = await adapter.read();
      if (current === null) {
        if (!opts.empty) {
          throw opts.missing?.() ?? new ConfigError('NOT_FOUND', `${path} does not exist`);
        }
      }
      const db = new Low<T>(adapter, current ?? (opts.empty as () => T)());
      const result = await fn(db.data);
      await db.write();
      return result;
    },
    opts,
  );
}
