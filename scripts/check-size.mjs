#!/usr/bin/env node
// Keeps src/ readable in one sitting: no file over MAX_FILE_LINES lines, no function (declaration,
// method, arrow or function expression) over MAX_FUNCTION_LINES lines unless the line just above it
// (or its doc comment) says why, with a comment containing `long:` — e.g. `// long: one state machine`.
// Usage: node scripts/check-size.mjs [SRC_DIR]   (exit 1 listing every violation)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MAX_FILE_LINES = 500;
export const MAX_FUNCTION_LINES = 80;

const ts = createRequire(import.meta.url)('typescript');

/**
 * Offenders being split by open work (file, or file#function). Reported as warnings, not failures;
 * this list must only shrink.
 */
const PENDING = new Set([]);

function walk(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function nameOf(node, sf) {
  if (node.name) return node.name.getText(sf);
  const p = node.parent;
  if (p && ts.isVariableDeclaration(p)) return p.name.getText(sf);
  if (p && ts.isPropertyAssignment(p)) return p.name.getText(sf);
  return '(anonymous)';
}

/** True when a comment containing `long:` leads the function or any node up to its statement. */
function justified(node, text) {
  for (let n = node; n && !ts.isSourceFile(n); n = n.parent) {
    const ranges = ts.getLeadingCommentRanges(text, n.getFullStart()) ?? [];
    if (ranges.some((r) => /\blong:/.test(text.slice(r.pos, r.end)))) return true;
    if (ts.isStatement(n) || ts.isClassElement(n)) return false;
  }
  return false;
}

export function check(src) {
  const problems = [];
  const pending = [];
  const files = walk(src);
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const rel = relative(src, file);
    const lines = text.split('\n').length;
    const report = (key, msg) => (PENDING.has(key) ? pending : problems).push(msg);
    if (lines > MAX_FILE_LINES) report(rel, `${rel}: ${lines} lines (max ${MAX_FILE_LINES})`);
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node) => {
      if (ts.isFunctionLike(node) && node.body) {
        const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
        const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
        const len = end - start + 1;
        if (len > MAX_FUNCTION_LINES && !justified(node, text)) {
          const name = nameOf(node, sf);
          report(
            `${rel}#${name}`,
            `${rel}:${start + 1}: function ${name} is ${len} lines (max ${MAX_FUNCTION_LINES}; or say why in a 'long:' comment)`,
          );
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return { files: files.length, problems, pending };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const src = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src'));
  const { files, problems, pending } = check(src);
  for (const p of pending) console.error(`  pending: ${p}`);
  if (problems.length) {
    console.error(`check-size: ${problems.length} problem(s):`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log(
    `check-size: ${files} files, none over ${MAX_FILE_LINES} lines, no function over ${MAX_FUNCTION_LINES} lines without a reason`,
  );
}
