/**
 * The host side of the guest test, without a guest: the report parser detects a console that lost
 * or garbled listing lines, the listing comparison allows only its one documented exception, the
 * tree-manifest.py adapter and the CONTTYPE rewrite are exact. (test/integration/guest-boot.test.ts
 * boots the real guest.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  asTreeManifest,
  assertSameListing,
  contiguousAsRegular,
  parseReport,
  unescapePath,
  type Reference,
} from '../helpers/guest.js';

const LISTING =
  [
    '/ dir mode=0755 uid=0 gid=0 nlink=3 mtime=1700000000.000000000',
    '/a dir mode=0755 uid=0 gid=0 nlink=2 mtime=0.000000000',
    '/a/f file mode=4755 uid=0 gid=0 nlink=2 size=3 sha256=abc link=/a/f mtime=5.000000000 xattr.user.k=00ff',
    '/b file mode=0644 uid=0 gid=0 nlink=2 size=3 sha256=abc link=/a/f mtime=5.000000000',
    '/c\\x20d symlink mode=0777 uid=0 gid=0 nlink=1 target=/\\xc3\\xbc mtime=6.000000000',
  ].join('\n') + '\n';

function report(
  body: string,
  count = body.split('\n').length - 1,
  digest = createHash('sha256').update(body, 'latin1').digest('hex'),
): string {
  return (
    [
      'MSB-GUEST kernel=6.12.1-amd64 uptime=1.0',
      'MSB-MOUNT ok /dev/vda /mnt/root erofs ro,relatime 0 0',
      'MSB-LIST-BEGIN',
    ].join('\r\n') +
    '\r\n' +
    body.replace(/\n/g, '\r\n') +
    `MSB-LIST-END lines=${count} sha256=${digest}\r\n` +
    'MSB-CHROOT rc=0 out=hi \r\nMSB-OVERLAY write=ok del=/b gone=yes whiteout=character_special_file:0:0 lower_sha256=abc\r\nMSB-DONE uptime=2.0\r\n'
  );
}

test('a complete report parses into every fact', () => {
  const r = parseReport(report(LISTING), 'log', 0, 1000);
  assert.equal(r.kernel, '6.12.1-amd64');
  assert.equal(r.mounted, true);
  assert.equal(r.listing, LISTING);
  assert.equal(r.listingProblem, null);
  assert.deepEqual(r.chroot, { rc: 0, out: 'hi' });
  assert.deepEqual(r.overlay, {
    write: 'ok',
    del: '/b',
    gone: 'yes',
    whiteout: 'character_special_file:0:0',
    lower_sha256: 'abc',
  });
  assert.equal(r.done, true);
});

test('a console that lost a line or changed a byte yields no listing', () => {
  const lost = LISTING.split('\n')
    .filter((_, i) => i !== 2)
    .join('\n');
  const full = createHash('sha256').update(LISTING).digest('hex');
  assert.match(parseReport(report(lost, 5, full), '', 0, 0).listingProblem!, /4 lines, the guest wrote 5/);
  assert.equal(parseReport(report(lost, 5, full), '', 0, 0).listing, null);
  const garbled = LISTING.replace('mode=4755', 'mode=0755');
  assert.match(parseReport(report(garbled, 5, full), '', 0, 0).listingProblem!, /sha256 .* != the guest's/);
  const r = parseReport('MSB-GUEST kernel=x\nMSB-MOUNT fail mount: invalid argument\n', '', 0, 0);
  assert.equal(r.mounted, false);
  assert.equal(r.mountDetail, 'mount: invalid argument');
  assert.equal(r.listing, null);
  assert.equal(r.done, false);
});

test('listings: only the mtime of a directory umoci invented may differ', () => {
  const ref = (listing: string): Reference => ({ listing, unpackStartSec: 1_600_000_000, rootfs: '/' });
  assertSameListing(LISTING, ref(LISTING), 'same');
  // umoci gave / the unpack time: allowed.
  assertSameListing(LISTING, ref(LISTING.replace('1700000000.000000000', '1700000001.000000000')), 'root');
  // A directory mtime umoci took from a tar header (before the unpack) must match.
  assert.throws(() =>
    assertSameListing(LISTING, ref(LISTING.replace('nlink=2 mtime=0.0', 'nlink=2 mtime=1.0')), 'dir'),
  );
  for (const [a, b] of [
    ['mtime=5.000000000 x', 'mtime=7.000000000 x'],
    ['sha256=abc link', 'sha256=abd link'],
    ['00ff', '00fe'],
    ['mode=4755', 'mode=0755'],
    ['target=/\\xc3', 'target=/\\xc4'],
    ['link=/a/f mtime=5.000000000\n', 'mtime=5.000000000\n'],
    ['nlink=3', 'nlink=4'],
  ] as const) {
    assert.throws(
      () => assertSameListing(LISTING, ref(LISTING.replace(a, b)), 'x'),
      /differs from umoci/,
      `${a} -> ${b}`,
    );
  }
  assert.throws(() =>
    assertSameListing(LISTING, ref(LISTING + '/z fifo mode=0644 uid=0 gid=0 nlink=1 mtime=1.000000000\n'), 'extra'),
  );
});

test('msb-tree listings convert to tree-manifest.py form: unescaped, no nlink, hardlink groups by smallest path', () => {
  assert.equal(unescapePath('/c\\x20d/\\xc3\\xbc\\x5c'), '/c d/ü\\');
  const py = [
    '/ dir mode=0755 uid=0 gid=0 mtime=1700000000.000000000',
    '/a dir mode=0755 uid=0 gid=0 mtime=0.000000000',
    '/a/f file mode=4755 uid=0 gid=0 size=3 sha256=abc link=/b mtime=5.000000000 xattr.user.k=00ff',
    '/b file mode=0644 uid=0 gid=0 size=3 sha256=abc link=/b mtime=5.000000000',
    '/c d symlink mode=0777 uid=0 gid=0 target=/ü mtime=6.000000000',
  ].join('\n');
  assert.deepEqual(asTreeManifest(LISTING, true), asTreeManifest(py, false));
  assert.notDeepEqual(asTreeManifest(LISTING, true), asTreeManifest(py.replace('00ff', '00fe'), false));
});

test('contiguousAsRegular rewrites typeflag 7 to 0 with a valid header checksum and leaves the rest', () => {
  const h = Buffer.alloc(512);
  h.write('contiguous', 0, 'latin1');
  h.write('0000644\0', 100, 'latin1');
  h.write('00000000027\0', 124, 'latin1');
  h[156] = 0x37;
  h.write('ustar\0' + '00', 257, 'latin1');
  h.fill(0x20, 148, 156);
  h.write(
    `${h
      .reduce((a, x) => a + x, 0)
      .toString(8)
      .padStart(6, '0')}\0 `,
    148,
    'latin1',
  );
  const data = Buffer.alloc(512);
  data.write('contiguous file type 7\n', 0, 'latin1');
  const tar = Buffer.concat([h, data, Buffer.alloc(1024)]);
  const out = contiguousAsRegular(tar);
  assert.equal(out[156], 0x30);
  const sum = Buffer.from(out.subarray(0, 512))
    .fill(0x20, 148, 156)
    .reduce((a, x) => a + x, 0);
  assert.equal(parseInt(out.subarray(148, 154).toString('latin1'), 8), sum);
  const diff = [...out.keys()].filter((i) => out[i] !== tar[i]);
  assert.ok(
    diff.every((i) => i === 156 || (i >= 148 && i < 156)),
    String(diff),
  );
  assert.equal(tar[156], 0x37, 'the input is not modified');
});
