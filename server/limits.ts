/**
 * spad's implementation limits: how much it queues, holds and writes under load. protocol/limits.ts
 * is the wire format (SPEC.md §5: what every implementation must accept or refuse, shared with the
 * client); these are this daemon's own resource bounds, which change how spad sheds a flood, never
 * whether a knock is valid. README.md and SECURITY.md state several of them, and
 * scripts/check-docs.ts holds those figures to the values here.
 */

// --- the audit log ---------------------------------------------------------------------------

/** Audit lines per drop reason per second, in the verifier and the monitor; the rest are summarized. */
export const AUDIT_LINES_PER_REASON_PER_SECOND = 20;
/** Lines the verifier asks the monitor to write, per second (a verifier cannot flood the log). */
export const VERIFIER_AUDIT_PER_SECOND = 200;

// --- the verifier's fair queue (fairqueue.ts, SPEC.md §7 step 4) --------------------------------

/** Datagrams that may wait for decryption; beyond this the busiest flow sheds one. */
export const QUEUE_CAPACITY = 1024;
/** How long a source that knocked validly stays in the returning lane, ms. */
export const TRUSTED_SOURCE_MS = 15 * 60_000;
/**
 * pcap mode with nftables: datagrams a second (and burst) that one returning source may send to
 * the SPA port through the kernel's returning lane (firewall/nft-ruleset.ts); more are dropped
 * there, and still seen by libpcap.
 */
export const RETURNING_RATE_PER_SECOND = 10;
/** The returning lane's datagrams the monitor passes to the verifier per second, all sources together. */
export const LANE_PER_SECOND = 500;
/** Sources remembered as returning, at most (least recently trusted forgotten first). */
export const TRUSTED_SOURCES_MAX = 4096;
/** Queue depths at which the pipeline reports a backlog (the capture stops reading) and its end. */
export const BACKLOG_HIGH = 64;
export const BACKLOG_LOW = 16;

// --- the monitor --------------------------------------------------------------------------------

/** Decisions waiting for verification beyond this are refused (a verifier flooding its monitor). */
export const MONITOR_PENDING_MAX = 256;
/** Accepted notices the monitor holds for the verifier while decisions wait (monitor.ts). */
export const ACCEPTED_BATCH = 32;

// --- the pcap capture process (capture/prefilter.ts, capture/pcap-child.ts) -----------------------

/** Junk frames passed on to spad each second (each gets its own audit line); the rest are counted. */
export const JUNK_FORWARD_PER_SECOND = 50;
/**
 * Frames the capture process may have on the way to spad before spad credits them back (one byte
 * on the child's stdin per frame read). spad withholds credits while the pipeline is backlogged
 * (pause()), so at most this many frames wait in the pipe in arrival order; the rest wait in the
 * capture process's fair queue (prefilter.ts FramePump), which decides whose turn is next.
 */
export const CREDIT_WINDOW = 8;
/** Frames the capture process holds while spad is not reading (about 2-6 MB). */
export const PUMP_CAPACITY = 4096;
/** Without key ids (no prefilter): bytes spad may fall behind before frames are dropped. */
export const CAPTURE_QUEUED_BYTES_MAX = 1024 * 1024;
/**
 * Kernel ring size. `cap` fixes snaplen at 65535, and in immediate mode libpcap uses fixed-size
 * ring frames sized by snaplen (~64 KiB each), so 2 MiB held only ~31 datagrams: a burst of 300
 * knocks lost half of them. 32 MiB holds ~500 frames; measured: 300 back-to-back datagrams, 300
 * delivered (2 MiB: 115).
 */
export const DEFAULT_BUFFER_BYTES = 32 * 1024 * 1024;

// --- user commands (commands.ts) ----------------------------------------------------------------

/** Output kept per stream of a command, for the audit log. */
export const OUTPUT_CAP_BYTES = 4096;
/** From SIGTERM at the time limit to SIGKILL; also added to the command's CPU-seconds limit. */
export const KILL_GRACE_MS = 2000;
/** RLIMIT_NPROC: processes the run-as uid may have in all (a fork bomb stops here). */
export const COMMAND_NPROC = 128;
/** RLIMIT_AS per process. */
export const COMMAND_AS_BYTES = 4 * 1024 ** 3;
