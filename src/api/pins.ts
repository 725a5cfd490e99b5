/** Sandbox and snapshot names (docs/api.md §4). */
import { InvalidArgumentError } from '../errors.js';

/** `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}` */
export const PIN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function checkPinName(name: unknown, what: 'sandbox' | 'snapshot'): string {
  if (typeof name !== 'string' || !PIN_NAME_RE.test(name)) {
    throw new InvalidArgumentError(
      'name',
      `invalid ${what} name ${JSON.stringify(name)}: expected [A-Za-z0-9][A-Za-z0-9_.-]{0,127}`,
    );
  }
  return name;
}
