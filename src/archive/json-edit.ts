/**
 * Byte-level edit of an image config (docs/archives.md §8.3): the value of `rootfs.diff_ids` is
 * replaced by a compact array, and every other byte is kept (JSON.parse + stringify would reorder
 * integer-like keys, lose integers above 2^53 and respell escapes and numbers).
 *
 * A small tokenizer walks the top-level object to the `rootfs` member, then to its `diff_ids`
 * member, and records the byte span of that value. When a key repeats, the last one is edited
 * (JSON.parse semantics: the last one is what readers see).
 */
import { ConfigInvalidError } from '../errors.js';

class Scanner {
  pos = 0;
  constructor(
    readonly b: Buffer,
    readonly digest: string,
  ) {}

  fail(msg: string): never {
    throw new ConfigInvalidError(this.digest, `image config ${this.digest}: ${msg} at byte ${this.pos}`);
  }

  ws(): void {
    while (this.pos < this.b.length) {
      const c = this.b[this.pos]!;
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.pos++;
      else break;
    }
  }

  expect(c: number): void {
    this.ws();
    if (this.b[this.pos] !== c) this.fail(`expected ${JSON.stringify(String.fromCharCode(c))}`);
    this.pos++;
  }

  /** A string token; returns its decoded value. */
  string(): string {
    this.ws();
    const start = this.pos;
    if (this.b[this.pos] !== 0x22) this.fail('expected a string');
    this.pos++;
    while (this.pos < this.b.length) {
      const c = this.b[this.pos]!;
      if (c === 0x5c) {
        this.pos += 2;
        continue;
      }
      this.pos++;
      if (c === 0x22) return JSON.parse(this.b.subarray(start, this.pos).toString('utf8')) as string;
    }
    this.fail('unterminated string');
  }

  /** Skips any value; returns its [start, end) span. */
  value(): [number, number] {
    this.ws();
    const start = this.pos;
    const c = this.b[this.pos];
    if (c === 0x22) {
      this.string();
      return [start, this.pos];
    }
    if (c === 0x7b || c === 0x5b) {
      const close = c === 0x7b ? 0x7d : 0x5d;
      this.pos++;
      this.ws();
      if (this.b[this.pos] === close) {
        this.pos++;
        return [start, this.pos];
      }
      for (;;) {
        if (c === 0x7b) {
          this.string();
          this.expect(0x3a);
        }
        this.value();
        this.ws();
        const d = this.b[this.pos];
        if (d === 0x2c) {
          this.pos++;
          continue;
        }
        if (d === close) {
          this.pos++;
          return [start, this.pos];
        }
        this.fail('expected , or a closing bracket');
      }
    }
    while (this.pos < this.b.length && /[-+.0-9a-zA-Z]/.test(String.fromCharCode(this.b[this.pos]!))) this.pos++;
    if (this.pos === start) this.fail('expected a value');
    return [start, this.pos];
  }

  /** Iterates the members of the object starting here; `fn(key)` may consume the value itself. */
  members(fn: (key: string) => boolean): void {
    this.expect(0x7b);
    this.ws();
    if (this.b[this.pos] === 0x7d) {
      this.pos++;
      return;
    }
    for (;;) {
      const key = this.string();
      this.expect(0x3a);
      if (!fn(key)) this.value();
      this.ws();
      const d = this.b[this.pos];
      if (d === 0x2c) {
        this.pos++;
        continue;
      }
      if (d === 0x7d) {
        this.pos++;
        return;
      }
      this.fail('expected , or }');
    }
  }
}

/** Returns `raw` with `rootfs.diff_ids` replaced by `diffIds` (compact JSON array). */
export function replaceDiffIds(raw: Buffer, diffIds: string[], configDigest: string): Buffer {
  const s = new Scanner(raw, configDigest);
  let span: [number, number] | null = null;
  s.members((key) => {
    if (key !== 'rootfs') return false;
    s.ws();
    if (raw[s.pos] !== 0x7b) return false;
    s.members((k2) => {
      if (k2 !== 'diff_ids') return false;
      span = s.value();
      return true;
    });
    return true;
  });
  if (!span) throw new ConfigInvalidError(configDigest, `image config ${configDigest} has no rootfs.diff_ids`);
  const [a, b] = span as [number, number];
  return Buffer.concat([raw.subarray(0, a), Buffer.from(JSON.stringify(diffIds), 'utf8'), raw.subarray(b)]);
}
