/**
 * Compressed data inside a knock (SPEC.md §3, §7 step 7), read by our own packet class instead
 * of openpgp.js's: ZIP and ZLIB only, inflated here with a hard output cap. openpgp.js would
 * decompress any algorithm it knows, BZip2 included, and count the output only as it streams.
 */
import { inflateRawSync, inflateSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { VerifyError } from './errors.js';
import { MAX_DECOMPRESSED_BYTES, PACKET_MAX_BYTES } from './limits.js';

/**
 * The compression algorithms a knock may use (SPEC.md §3): ZIP and ZLIB, what GnuPG writes by
 * default. Any other (BZip2 above all: its decoder un-sorts a whole 900 kB block, ~10 ms, before
 * the size cap can stop it) is refused by its algorithm octet before anything is decoded.
 */
const INFLATE: ReadonlyMap<number, typeof inflateSync> = new Map([
  [openpgp.enums.compression.zip, inflateRawSync],
  [openpgp.enums.compression.zlib, inflateSync],
]);

/**
 * A Compressed Data packet class that openpgp.js uses instead of its own while it parses the
 * decrypted data of one knock (after the integrity check). It allows one compressed packet per
 * message, refuses every algorithm but ZIP and ZLIB before decoding, and inflates itself with
 * node's zlib, synchronously, stopping as soon as the output passes MAX_DECOMPRESSED_BYTES (the
 * work is bounded by the at most 1400 bytes of input and MAX_DECOMPRESSED_BYTES of output). openpgp.js then parses
 * the inflated packets as its own would, with `config`, which does not allow a compressed packet
 * inside the compressed one.
 */
export function guardedCompressedData(config: openpgp.Config): typeof openpgp.CompressedDataPacket {
  let seen = 0;
  type Internals = {
    algorithm: openpgp.enums.compression;
    compressed: Uint8Array | null;
    decompress(config: openpgp.Config): Promise<void>;
  };
  return class GuardedCompressedData extends openpgp.CompressedDataPacket {
    override async read(bytes: Uint8Array): Promise<void> {
      if (++seen > 1) {
        throw new VerifyError('MSG_STRUCTURE', 'message: more than one compressed data packet');
      }
      const body = await bytesOf(bytes);
      const algorithm = body[0];
      if (algorithm === undefined) throw new VerifyError('MSG_STRUCTURE', 'compressed data: empty packet');
      const inflate = INFLATE.get(algorithm);
      if (!inflate) {
        throw new VerifyError(
          'MSG_COMPRESSION',
          `compressed data: algorithm ${algorithm} is not accepted (ZIP or ZLIB only)`,
          { hint: 'compress with ZLIB or ZIP (gpg: --compress-algo zlib), or not at all' },
        );
      }
      let inflated: Uint8Array;
      try {
        inflated = inflate(body.subarray(1), {
          maxOutputLength: MAX_DECOMPRESSED_BYTES,
          chunkSize: MAX_DECOMPRESSED_BYTES,
        });
      } catch (cause) {
        const over = (cause as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
        throw new VerifyError(
          'MSG_STRUCTURE',
          over
            ? `compressed data: more than ${MAX_DECOMPRESSED_BYTES} bytes once decompressed`
            : 'compressed data: not a valid ZIP or ZLIB stream',
          { cause },
        );
      }
      // typed private in openpgp.js's .d.ts, public at run time: parse the inflated packets
      const self = this as unknown as Internals;
      self.algorithm = openpgp.enums.compression.uncompressed;
      self.compressed = inflated;
      await self.decompress(config);
      self.algorithm = algorithm;
      self.compressed = body.subarray(1);
    }
  };
}

/** A packet body as bytes: openpgp.js hands over a Uint8Array or, for data packets, a stream. */
async function bytesOf(
  input: Uint8Array | { getReader(): ReadableStreamDefaultReader<Uint8Array> },
): Promise<Uint8Array> {
  if (input instanceof Uint8Array) return input;
  const reader = input.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    // a packet inside a datagram cannot be longer than the datagram
    if (n > PACKET_MAX_BYTES) throw new VerifyError('MSG_STRUCTURE', 'compressed data: longer than a knock');
    parts.push(value);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
