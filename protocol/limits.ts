/**
 * Spec constants (SPEC.md §5). Kept apart from implementation tunables (server/config.ts) so an
 * auditor can compare this file with the spec line by line.
 */

/** Payload format version carried in byte 0. */
export const PAYLOAD_VERSION = 1;

export const MSG_ACCESS = 1;
export const MSG_COMMAND = 2;

/** Extension flags (SPEC.md §4.6), the byte after `command` when present. */
export const EXT_REPLY = 0x01;
export const EXT_FORWARD = 0x02;
export const EXT_RANDOM_PORT = 0x04;
export const EXT_KNOWN = EXT_REPLY | EXT_FORWARD | EXT_RANDOM_PORT;

/**
 * Default range a `--rand-port` external port is drawn from (client) and must fall in (server,
 * `gateway.random_ports`). Below the Linux ephemeral range (32768-60999).
 */
export const DEFAULT_RANDOM_PORTS = { min: 20000, max: 29999 } as const;

/** A signed reply datagram (SPEC.md §12) is never longer than this. */
export const REPLY_MAX_BYTES = 1024;
/** Reply body type octet: distinct from every knock payload type. */
export const MSG_REPLY = 0x81;

/** Nonce bytes: 128 bits, so collisions never matter and replay keys are unique. */
export const NONCE_BYTES = 16;

export const USERNAME_MAX = 32;
/** Usernames: POSIX-portable login names, lowercase, as most admins already use. */
export const USERNAME_RE = /^[a-z_][a-z0-9_.-]{0,31}$/;

export const ACCESS_MAX_ENTRIES = 16;
export const COMMAND_MAX_BYTES = 512;
/** Requested firewall timeout, seconds; 0 means "the server's default for me". */
export const TIMEOUT_MAX_SECONDS = 86_400;

/** v4 fingerprints are 20 bytes (SHA-1), v6 fingerprints 32 bytes (SHA-256). */
export const FINGERPRINT_LENGTHS: readonly number[] = [20, 32];

/** Decrypted payload: no valid payload is longer (header 60 + 16*3 + 512 + slack). */
export const PAYLOAD_MAX_BYTES = 1024;

/**
 * Datagram bounds. The floor is below any real message (PKESK + SEIPD alone exceed it). The
 * ceiling keeps the datagram inside one IPv6 packet on a 1280-byte minimum-MTU path with room for
 * a tunnel header (1280 - 40 IPv6 - 8 UDP - 32 slack = 1200) would be ideal, but RSA-4096 sign +
 * encrypt needs ~1.3 kB; 1400 fits Ethernet with IPv6 and headroom, and pcap sees no reassembly.
 */
export const PACKET_MIN_BYTES = 64;
export const PACKET_MAX_BYTES = 1400;

/** Public-Key Encrypted Session Key packets in one knock. */
export const PKESK_MAX = 4;

/** Default freshness window, seconds either side of the server clock. */
export const DEFAULT_MAX_SKEW_SECONDS = 120;

/** Bound on decompressed size of a compressed data packet inside a knock (bomb guard). */
export const MAX_DECOMPRESSED_BYTES = 4096;

/**
 * RSA keys below this many bits are refused: at enrollment (KEY_WEAK) and when a signature is
 * verified (NIST SP 800-131A; fwknop's docs suggest 2048+).
 */
export const RSA_MIN_BITS = 2048;

/** fwknop knocks (SPEC.md §11): fwknopd ignores shorter candidates (MIN_SPA_DATA_SIZE). */
export const FWKNOP_MIN_CHARS = 140;

/** UDP port, as fwknop's. */
export const DEFAULT_SPA_PORT = 62201;
