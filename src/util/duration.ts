/**
 * Durations for `unusedFor`, `tempGrace` and `--unused-for` / `--grace` (docs/cli.md §5):
 * a number of milliseconds, or `<int>(s|m|h|d)`. Anything else is an InvalidArgumentError naming
 * the argument (a settings file reports it as SettingsError instead, see settings.ts).
 */
import { InvalidArgumentError } from '../errors.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration; returns null when malformed. */
export function tryParseDuration(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = /^\s*(\d+)\s*(s|m|h|d)\s*$/.exec(v);
  if (!m) return null;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function parseDuration(v: unknown, argument: string): number {
  const ms = tryParseDuration(v);
  if (ms === null)
    throw new InvalidArgumentError(
      argument,
      `invalid duration for ${argument}: ${JSON.stringify(v)} (expected milliseconds or <int>(s|m|h|d))`,
    );
  return ms;
}
