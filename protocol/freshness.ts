/**
 * The freshness window (SPEC.md §7 steps 9 and 12): a knock is judged against the server's clock,
 * passed in as `now`, within `maxSkewSeconds` either way. Used by spa knocks (envelope.ts) and
 * fwknop knocks (fwknop.ts) alike.
 */
import { VerifyError } from './errors.js';

/** Signature creation time within the window, else SIG_TIME (SPEC.md §7 step 9). */
export function checkSignatureTime(
  created: Date | null | undefined,
  now: Date,
  maxSkewSeconds: number,
): void {
  if (Math.abs((created?.getTime() ?? 0) - now.getTime()) > maxSkewSeconds * 1000) {
    throw new VerifyError('SIG_TIME', 'signature: creation time outside the freshness window');
  }
}

/** |now − timestamp| ≤ window, else TS_TOO_OLD / TS_IN_FUTURE (SPEC.md §7 step 12). */
export function checkFreshness(timestampSeconds: number, now: Date, maxSkewSeconds: number): void {
  const delta = timestampSeconds - Math.floor(now.getTime() / 1000);
  if (delta < -maxSkewSeconds) {
    throw new VerifyError('TS_TOO_OLD', `payload timestamp: ${-delta} s old, window is ${maxSkewSeconds} s`, {
      field: 'timestamp',
    });
  }
  if (delta > maxSkewSeconds) {
    throw new VerifyError(
      'TS_IN_FUTURE',
      `payload timestamp: ${delta} s in the future, window is ${maxSkewSeconds} s`,
      {
        field: 'timestamp',
      },
    );
  }
}
