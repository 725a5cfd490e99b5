#!/usr/bin/env node
// Writes docs/cli-reference.md from the built CLI's command specs (run `npm run build` first, or
// `npm run docs:cli`, which builds). test/unit/cli-reference.test.ts fails when the file is stale.
import { writeFileSync } from 'node:fs';

const { cliReferenceMarkdown } = await import(new URL('../dist/src/cli/reference-doc.js', import.meta.url).href);
const out = new URL('../docs/cli-reference.md', import.meta.url);
writeFileSync(out, await cliReferenceMarkdown());
console.log(`wrote ${out.pathname}`);
