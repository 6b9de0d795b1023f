/**
 * `-B/--save-packet FILE`: every sealed knock of the run is written, each to a new file (mode
 * 0600, never over an existing one): the first to FILE, the second (a `--retries` retry, or
 * `spa connect`'s second knock) to FILE.2, then FILE.3, ... So each packet that went on the wire
 * can be replayed or inspected later, one per file, as fwknop's `-B` keeps the one it sent. A
 * knock is saved before it is sent: if its file cannot be made, nothing more is sent.
 */
import { writeFile } from 'node:fs/promises';
import { ConfigError } from '../protocol/errors.js';

/** The file the `n`th knock (1-based) of a run is saved to. */
export function savedPacketPath(file: string, n: number): string {
  return n === 1 ? file : `${file}.${n}`;
}

/** Returns a saver that numbers the knocks it is given. */
export function packetSaver(file: string): (packet: Uint8Array) => Promise<void> {
  let n = 0;
  return async (packet) => {
    const path = savedPacketPath(file, ++n);
    await writeFile(path, packet, { mode: 0o600, flag: 'wx' }).catch((cause: NodeJS.ErrnoException) => {
      throw new ConfigError('IO', `--save-packet: cannot create ${path} (${cause.code ?? cause.message})`, {
        cause,
        hint: cause.code === 'EEXIST' ? 'the file exists; name a new one' : undefined,
      });
    });
  };
}
