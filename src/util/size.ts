/**
 * Byte sizes as people write them in a config file: a number of bytes, or `<number><unit>` with a
 * decimal unit (`kB`, `MB`, `GB`, `TB`; also `KB`) or a binary one (`KiB`, `MiB`, `GiB`, `TiB`),
 * optionally separated by a space; `B` or no unit is bytes. Pure.
 */
const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Bytes, or null when `v` is not a size (a non-negative safe integer results, rounded down). */
export function parseSize(v: unknown): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m) return null;
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return null;
  const n = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(n) ? n : null;
}
