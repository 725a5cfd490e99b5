/**
 * Keeps secrets out of what the registry client prints. `redactUrl` (src/errors.ts) is the one
 * rule for URLs (no userinfo, no query); on top of it this scrubber removes every secret the
 * client has learnt — passwords, tokens, refresh tokens, and their base64 forms as they appear
 * in a Basic header — plus anything shaped like an Authorization value.
 */
import { redactUrl } from '../errors.js';

/** Shorter values are not registered: replacing them would mangle ordinary words. */
const MIN_SECRET_LENGTH = 4;
const AUTH_VALUE_RE = /(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;

export class SecretScrubber {
  private readonly secrets = new Set<string>();

  /** Registers secrets (and their base64 forms); empty and very short values are ignored. */
  add(...values: (string | undefined)[]): void {
    for (const v of values) {
      if (!v || v.length < MIN_SECRET_LENGTH) continue;
      this.secrets.add(v);
      this.secrets.add(Buffer.from(v).toString('base64'));
    }
  }

  /** `s` with each known secret replaced by `***`, its URLs redacted, and Authorization values hidden. */
  scrub(s: string): string {
    // Secrets first: redacting a URL may re-encode its path, which would hide a secret from the match.
    let out = s;
    for (const v of this.secrets) if (out.includes(v)) out = out.split(v).join('***');
    return redactUrl(out).replace(AUTH_VALUE_RE, '$1 ***');
  }
}
