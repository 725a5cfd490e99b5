/**
 * VMDK descriptor text and validator (docs/erofs.md §8, docs/storage.md §5; acceptance E11, E12 text, E13).
 * qemu-img reads the descriptors in stitch-image.test.ts; here: exact text and every rejection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MsbError } from '../../src/errors.js';
import {
  cidOf,
  MAX_EXTENT_SECTORS,
  parseVmdk,
  validateVmdk,
  vmdkPathProblem,
  vmdkText,
} from '../../src/stitch/vmdk.js';

const GiB = 1024 ** 3;
const files = [
  { path: '/c/fsmeta/sha256_aa.erofs', sizeBytes: 5 * 4096 },
  { path: '/c/layers/sha256_bb.erofs', sizeBytes: 621 * 4096 },
  { path: '/c/layers/sha256_cc.erofs', sizeBytes: 3 * GiB + 8192 },
];
const expected = { paths: files.map((f) => f.path), sizes: files.map((f) => f.sizeBytes) };

test('exact descriptor text: header, extents split at 2 GiB in sectors, DDB geometry, final newline (E11, E12)', () => {
  const text = vmdkText('0123abcd', files);
  const total = (5 + 621) * 8 + (3 * GiB + 8192) / 512;
  assert.equal(
    text,
    [
      '# Disk DescriptorFile',
      'version=1',
      'CID=0123abcd',
      'parentCID=ffffffff',
      'createType="twoGbMaxExtentFlat"',
      '',
      '# Extent description',
      'RW 40 FLAT "/c/fsmeta/sha256_aa.erofs" 0',
      'RW 4968 FLAT "/c/layers/sha256_bb.erofs" 0',
      'RW 4194304 FLAT "/c/layers/sha256_cc.erofs" 0',
      `RW ${(1 * GiB + 8192) / 512} FLAT "/c/layers/sha256_cc.erofs" 4194304`,
      '',
      '# The Disk Data Base',
      '#DDB',
      'ddb.virtualHWVersion = "4"',
      `ddb.geometry.cylinders = "${Math.ceil(total / 1008)}"`,
      'ddb.geometry.heads = "16"',
      'ddb.geometry.sectors = "63"',
      'ddb.adapterType = "ide"',
      '',
    ].join('\n'),
  );
  assert.equal(validateVmdk(text, expected), null);
  assert.equal(validateVmdk(text, { ...expected, cid: '0123abcd' }), null);
  assert.doesNotMatch(text, /ZERO|RDONLY|NOACCESS/);
});

test('a file of exactly 2 GiB is one line; 4 GiB + 4 KiB is three', () => {
  const t = vmdkText('00000000', [
    { path: '/a', sizeBytes: 2 * GiB },
    { path: '/b', sizeBytes: 4 * GiB + 4096 },
  ]);
  const ext = t.split('\n').filter((l) => l.startsWith('RW '));
  assert.deepEqual(ext, [
    'RW 4194304 FLAT "/a" 0',
    'RW 4194304 FLAT "/b" 0',
    'RW 4194304 FLAT "/b" 4194304',
    'RW 8 FLAT "/b" 8388608',
  ]);
});

test('CID is the first 8 hex of a digest', () => {
  assert.equal(cidOf('sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'), '9f86d081');
  assert.throws(() => cidOf('sha256:XYZ'));
});

test('paths with a quote, a newline, non-UTF-8 or relative are refused with SettingsError', () => {
  for (const p of ['/a"b', '/a\nb', '/a\rb', '/a\uFFFDb', '/a\uD800b', 'rel/x']) {
    assert.ok(vmdkPathProblem(p), p);
    assert.throws(
      () => vmdkText('00000000', [{ path: p, sizeBytes: 4096 }]),
      (e: unknown) => e instanceof MsbError && e.code === 'SETTINGS_INVALID',
      p,
    );
  }
  assert.equal(vmdkPathProblem('/ünïcødé 文件/x y'), null);
});

test('validator rejects every mutation of a good descriptor (E13)', () => {
  const good = vmdkText('0123abcd', files);
  const lines = good.split('\n');
  const mut = (f: (l: string[]) => string[]) => f([...lines]).join('\n');
  const iBig = lines.findIndex((l) => l.includes('sha256_cc') && l.endsWith(' 0'));
  const cases: Record<string, string> = {
    'extent larger than its file': good.replace('RW 4968 FLAT', 'RW 4976 FLAT'),
    'extent smaller than its file': good.replace('RW 4968 FLAT', 'RW 4960 FLAT'),
    'path points elsewhere': good.replace('/c/layers/sha256_bb.erofs', '/old/cache/layers/sha256_bb.erofs'),
    'header line missing': mut((l) => l.slice(1)),
    'header line changed': good.replace('# Disk DescriptorFile', '# Disk Descriptor'),
    'ZERO line present': mut((l) => {
      l.splice(iBig, 0, 'RW 100 ZERO');
      return l;
    }),
    'RDONLY extent': good.replace('RW 40 FLAT', 'RDONLY 40 FLAT'),
    'second piece offset in bytes': good.replace(
      `"/c/layers/sha256_cc.erofs" ${MAX_EXTENT_SECTORS}`,
      `"/c/layers/sha256_cc.erofs" ${2 * GiB}`,
    ),
    'offset not contiguous': good.replace('"/c/layers/sha256_bb.erofs" 0', '"/c/layers/sha256_bb.erofs" 8'),
    'layers swapped': (() => {
      const a = lines.findIndex((l) => l.includes('sha256_bb'));
      return mut((l) => {
        const [x] = l.splice(a, 1);
        l.splice(a + 2, 0, x!);
        return l;
      });
    })(),
    'extra extent': mut((l) => {
      l.splice(iBig + 2, 0, 'RW 8 FLAT "/c/x" 0');
      return l;
    }),
    'missing extent': mut((l) => {
      l.splice(iBig + 1, 1);
      return l;
    }),
    'relative path': good.replace('"/c/fsmeta/sha256_aa.erofs"', '"sha256_aa.erofs"'),
    'no final newline': good.slice(0, -1),
    'CRLF endings': good.replace(/\n/g, '\r\n'),
    monolithicFlat: good.replace('twoGbMaxExtentFlat', 'monolithicFlat'),
    'garbage line': mut((l) => {
      l.splice(3, 0, 'hello world');
      return l;
    }),
    'extent without offset': good.replace('"/c/fsmeta/sha256_aa.erofs" 0', '"/c/fsmeta/sha256_aa.erofs"'),
    empty: '',
  };
  for (const [name, text] of Object.entries(cases)) {
    assert.notEqual(text, good, name);
    const why = validateVmdk(text, expected);
    assert.equal(typeof why, 'string', `${name} must be rejected`);
  }
  assert.match(validateVmdk(good, { ...expected, cid: 'ffffffff' })!, /CID/);
  assert.match(
    validateVmdk(good, { paths: expected.paths.slice(0, 2), sizes: expected.sizes.slice(0, 2) })!,
    /unexpected extent/,
  );
  assert.match(
    validateVmdk(good, {
      paths: expected.paths,
      sizes: [files[0]!.sizeBytes, files[1]!.sizeBytes + 4096, files[2]!.sizeBytes],
    })!,
    /sha256_bb/,
  );
});

test('parser reports the structure', () => {
  const p = parseVmdk(vmdkText('0123abcd', files));
  assert.ok(typeof p !== 'string');
  assert.equal(p.fields.get('CID'), '0123abcd');
  assert.equal(p.ddb.get('ddb.adapterType'), 'ide');
  assert.equal(p.extents.length, 4);
  assert.deepEqual(p.extents[3], {
    access: 'RW',
    sectors: (GiB + 8192) / 512,
    type: 'FLAT',
    path: '/c/layers/sha256_cc.erofs',
    offset: MAX_EXTENT_SECTORS,
  });
});
