/** Freezing API results (docs/api.md §3): what a caller receives cannot be changed behind its back. */

/**
 * Freezes `v` and every plain object and array reachable from it, in place, and returns it. Dates
 * and class instances other than plain objects are frozen as objects (their fields), not walked
 * into; an already frozen object is not walked again.
 */
export function deepFreeze<T>(v: T): T {
  if (v === null || typeof v !== 'object' || Object.isFrozen(v)) return v;
  Object.freeze(v);
  if (v instanceof Date) return v;
  for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  return v;
}
