/**
 * The streaming tar reader on its own (docs/erofs.md §6.1–§6.3): raw-byte PAX records, number formats,
 * backpressure from the body sink to the source, and bounded memory for huge bodies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TarReader, type TarEntry } from '../../src/tar/reader.js';
import { parseNumber } from '../../src/tar/header.js';
import { parsePaxRecords } from '../../src/tar/pax.js';
import { resolveLimits } from '../../src/limits.js';
import { writeLayer } from '../../src/erofs/layer-writer.js';
import { MsbError } from '../../src/errors.js';
import * as T from '../helpers/tar-writer.js';

async function entries(buf: Buffer, chunk = 1000): Promise<Array<TarEntry & { body: Buffer }>> {
  const out: Array<TarEntry & { body: Buffer }> = [];
  const r = new TarReader({
    limits: resolveLimits(),
    onEntry: (e) => {
      const rec = { ...e, body: Buffer.alloc(e.kind === 'file' ? e.size : 0) };
      out.push(rec);
      return {
        write: (d, off) => {
          d.copy(rec.body, off);
        },
      };
    },
  });
  for (let i = 0; i < buf.length; i += chunk) await r.write(buf.subarray(i, i + chunk));
  await r.end();
  return out;
}

test('PAX records are raw bytes: every byte value, newlines and "=" in values, last record wins, empty = no override', async () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const es = await entries(
    T.tar(
      T.file('hdr-name', 'x', {
        pax: [
          ['SCHILY.xattr.user.all', all],
          ['SCHILY.xattr.user.nl', 'a=b\nc\n'],
          ['path', 'first'],
          ['path', 'second'],
          ['linkpath', 'ignored-for-files'],
          ['uname', 'nobody'],
          ['SCHILY.xattr.user.empty', ''],
        ],
      }),
      T.file('keep-header-name', 'y', {
        pax: [
          ['path', 'z'],
          ['path', ''],
        ],
      }),
    ),
  );
  assert.equal(es.length, 2);
  assert.deepEqual(es[0]!.xattrs.get('user.all'), all);
  assert.deepEqual(es[0]!.xattrs.get('user.nl'), Buffer.from('a=b\nc\n'));
  assert.deepEqual(es[0]!.xattrs.get('user.empty'), Buffer.alloc(0));
  assert.equal(es[0]!.path.toString(), 'second');
  assert.equal(es[1]!.path.toString(), 'keep-header-name');
  assert.deepEqual(es[1]!.body, Buffer.from('y'));
  for (const bad of ['5 a=b\n', '10 a=b\n', '6 a=b\r', '4 =b\n', 'x a=b\n', '06 ab\n']) {
    assert.throws(
      () => parsePaxRecords(Buffer.from(bad)),
      (e: unknown) => e instanceof MsbError && e.code === 'LAYER_INVALID',
      bad,
    );
  }
  assert.deepEqual(
    parsePaxRecords(Buffer.concat([T.paxRecord('k', 'v'), Buffer.alloc(20)])).map((r) => r.key),
    ['k'],
  );
});

test('numbers: octal with spaces/NUL/space endings, empty fields, base-256 (negative only for mtime), bad digits', () => {
  const f = (s: string | Buffer) => {
    const b = Buffer.alloc(12);
    (typeof s === 'string' ? Buffer.from(s, 'latin1') : s).copy(b);
    return b;
  };
  assert.equal(parseNumber(f('  0000755 \0'), 0, 12, 'x', 0), 0o755n);
  assert.equal(parseNumber(f('0000755\0'), 0, 12, 'x', 0), 0o755n);
  assert.equal(parseNumber(f(''), 0, 12, 'x', 0), 0n);
  assert.equal(parseNumber(f('           '), 0, 12, 'x', 0), 0n);
  const b256 = Buffer.alloc(12);
  b256[0] = 0x80;
  b256.writeBigUInt64BE(5_000_000_000n, 4);
  assert.equal(parseNumber(b256, 0, 12, 'x', 0), 5_000_000_000n);
  const neg = Buffer.alloc(12, 0xff);
  assert.equal(parseNumber(neg, 0, 12, 'mtime', 0, true), -1n);
  assert.throws(() => parseNumber(neg, 0, 12, 'uid', 0), /negative/);
  assert.throws(() => parseNumber(f('0000789\0'), 0, 12, 'x', 0), /octal/);
});

test('backpressure: while the body sink is blocked, the reader pulls nothing more from the source', async () => {
  const body = randomBytes(8 << 20);
  const tarBuf = T.tar(T.file('big', body), T.file('small', 'x'));
  const CHUNK = 64 * 1024;
  let produced = 0;
  let delivered = 0;
  let maxAhead = 0;
  const r = new TarReader({
    limits: resolveLimits(),
    onEntry: () => ({
      write: async (d) => {
        delivered += d.length;
        maxAhead = Math.max(maxAhead, produced - delivered);
        await new Promise((res) => setTimeout(res, 1));
      },
    }),
  });
  async function* source() {
    for (let i = 0; i < tarBuf.length; i += CHUNK) {
      produced = Math.min(tarBuf.length, i + CHUNK);
      yield tarBuf.subarray(i, i + CHUNK);
    }
  }
  for await (const c of source()) await r.write(c);
  await r.end();
  assert.equal(delivered, body.length + 1);
  // At most the chunk being parsed is ahead of the sink (plus header bytes): nothing is buffered.
  assert.ok(maxAhead <= CHUNK + 1024, `reader ran ${maxAhead} bytes ahead of its sink`);
});

test('memory: a 1 GiB file body streams through writeLayer with bounded RSS growth', async (t) => {
  const dir = mkdtempSync('/dev/shm/msb-mem-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const block = randomBytes(1 << 20);
  const size = 1 << 30;
  async function* source() {
    yield T.header({ name: 'huge', size });
    for (let i = 0; i < size; i += block.length) yield block;
    yield T.header({ name: 'after', size: 0 });
    yield T.EOA;
  }
  global.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  try {
    const res = await writeLayer(source(), join(dir, 'huge.erofs'), {
      onProgress: () => {
        peak = Math.max(peak, process.memoryUsage().rss);
      },
    });
    assert.equal(res.entries, 2);
    // Block 0, the data blocks, one metadata block (the root's dirents are inline).
    assert.equal(res.blocks, 1 + size / 4096 + 1);
  } finally {
    clearInterval(timer);
  }
  assert.ok(peak - before < 100 << 20, `RSS grew by ${((peak - before) / 1048576).toFixed(0)} MiB for a 1 GiB body`);
});
