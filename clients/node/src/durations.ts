/** Milliseconds to and from google.protobuf.Duration, the unit the service speaks. */

import type { Duration } from "./generated/google/protobuf/duration.js";

/** A Duration of `ms` milliseconds (whole nanoseconds, never negative zero). */
export function durationFromMs(ms: number): Duration {
  if (!Number.isFinite(ms)) {
    throw new RangeError(`a duration must be a finite number of milliseconds, got ${ms}`);
  }
  const totalNanos = BigInt(Math.round(ms * 1e6));
  const seconds = totalNanos / 1_000_000_000n;
  const nanos = totalNanos % 1_000_000_000n;
  return { seconds: Number(seconds), nanos: Number(nanos) };
}

/** The milliseconds of a Duration; undefined stays undefined. */
export function durationToMs(duration: Duration | undefined): number | undefined {
  if (duration === undefined) return undefined;
  return duration.seconds * 1000 + duration.nanos / 1e6;
}
