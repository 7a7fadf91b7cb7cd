// Each package README's example runs as written: every `ts` block that is a whole program (it
// opens with an import of published packages only) is stripped of its types by esbuild and run
// with node from the repository root, where the workspace links resolve `@iodesc/*`. A line
// `console.log(...)  // 8 2 (why)` promises its output: the printed line must start with `8 2`.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, workspacePackages } from './packages.js';

interface Example {
  file: string;
  line: number;
  code: string;
}

function examples(): Example[] {
  const out: Example[] = [];
  const dirs = [...workspacePackages().map((p) => p.dir), join(ROOT, 'apps', 'demo')];
  for (const dir of dirs) {
    let text: string;
    try {
      text = readFileSync(join(dir, 'README.md'), 'utf8');
    } catch {
      continue;
    }
    for (const m of text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
      const code = m[1]!;
      const imports = [...code.matchAll(/^import .* from '([^']+)';/gm)].map((i) => i[1]!);
      // a whole program: starts with imports, and every import is a published package
      if (!code.startsWith('import ') || imports.some((s) => s.startsWith('.'))) continue;
      out.push({ file: `${dir.slice(ROOT.length + 1)}/README.md`, line: text.slice(0, m.index).split('\n').length, code });
    }
  }
  return out;
}

// The outputs a block promises in `console.log(...); // <output>` comments, in order.
function promised(code: string): string[] {
  const out: string[] = [];
  for (const line of code.split('\n')) {
    const m = /console\.log\(.*\);?\s*\/\/ (.+)$/.exec(line);
    if (m) out.push(m[1]!.replace(/\s*\(.*$/, '').trim());
  }
  return out;
}

const tmp = mkdtempSync(join(ROOT, '.readme-examples-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const found = examples();

describe('package READMEs', () => {
  it('have examples to run (core, sglist, bvec at least)', () => {
    const files = new Set(found.map((e) => e.file));
    for (const f of ['packages/core/README.md', 'packages/sglist/README.md', 'packages/bvec/README.md']) expect(files).toContain(f);
  });

  it.each(found.map((e) => [`${e.file}:${e.line}`, e] as const))('%s runs as written', (_label, e) => {
    const js = transformSync(e.code, { loader: 'ts', format: 'esm' }).code;
    const file = join(tmp, `example-${e.line}-${e.file.replace(/\W/g, '_')}.mjs`);
    writeFileSync(file, js);
    const r = spawnSync(process.execPath, [file], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const printed = r.stdout.trimEnd().split('\n');
    const want = promised(e.code);
    want.forEach((w, i) => expect(printed[i]?.replace(/\s+/g, ' ').startsWith(w.replace(/\s+/g, ' ')), `line ${i + 1}: printed ${JSON.stringify(printed[i])}, README promises ${JSON.stringify(w)}`).toBe(true));
  });
});
