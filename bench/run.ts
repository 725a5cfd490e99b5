/**
 * `npm run bench`: every benchmark, each side by side with its peer tool in the same run where one
 * exists, printing ratios (ours / peer) and absolute figures. Benchmarks never gate a test.
 * Usage: npm run bench [-- convert stitch index pull]
 */
const ALL: Record<string, string> = {
  convert: 'benchConvert', // layer tar.gz → EROFS vs mkfs.erofs --tar=f --ungzip (erofs-utils 1.9.4)
  stitch: 'benchStitch',   // fsmeta + VMDK once the layers exist
  index: 'benchIndex',     // list / inspect / prune / `msb images` over 10,000 refs
  pull: 'benchPull',       // cold pull vs skopeo copy + mkfs.erofs; warm pull vs node -e 0
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const names = wanted.length ? wanted : Object.keys(ALL);
  let failed = 0;
  for (const name of names) {
    const fn = ALL[name];
    if (!fn) { console.error(`unknown benchmark ${name}; known: ${Object.keys(ALL).join(', ')}`); process.exitCode = 2; return; }
    console.log(`\n=== ${name} ===`);
    try {
      const mod = (await import(`./${name}.js`)) as Record<string, (o?: object) => Promise<unknown>>;
      await mod[fn]!({ log: (s: string) => console.log(s) });
    } catch (err) {
      failed++;
      console.error(`benchmark ${name} failed: ${(err as Error)?.stack ?? String(err)}`);
    }
  }
  if (failed) process.exitCode = 1;
}

await main();
