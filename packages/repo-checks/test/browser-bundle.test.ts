// Core and the backends run in a browser as well as in Node: bundle each built package for the
// browser and fail on any Node built-in module or Node-only global.

import { build } from 'esbuild';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { browserPackages } from './packages.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const NODE_GLOBALS = ['process', 'Buffer', '__dirname', '__filename', 'require', 'global', 'setImmediate'];

/** What keeps `entry` from running in a browser: Node built-ins it imports, Node globals it uses. */
async function browserProblems(entry: string): Promise<string[]> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    logLevel: 'silent',
    minifyWhitespace: true, // drops comments, so only code is scanned for globals
    plugins: [
      {
        name: 'no-node-builtins',
        setup(b) {
          b.onResolve({ filter: /.*/ }, (args) => {
            const bare = args.path.replace(/^node:/, '');
            if (args.path.startsWith('node:') || builtinModules.includes(bare)) {
              return { errors: [{ text: `imports Node built-in '${args.path}'` }] };
            }
            return undefined;
          });
        },
      },
    ],
  }).catch((e: { errors?: Array<{ text: string }> }) => ({ errors: e.errors ?? [{ text: String(e) }], outputFiles: [] as Array<{ text: string }> }));
  const problems = result.errors.map((e) => e.text);
  const code = result.outputFiles[0]?.text ?? '';
  for (const g of NODE_GLOBALS) {
    // a free reference (not a property, not inside a string) followed by . ( or [
    if (new RegExp(`(?<![\\w$.'"\`])${g}\\s*[.(\\[]`).test(code)) problems.push(`uses the Node global ${g}`);
  }
  return problems;
}

describe('browser bundle', () => {
  it.each(browserPackages().map((p) => [p.name, p.entry] as const))('%s bundles for the browser with no Node built-in or global', async (_name, entry) => {
    expect(await browserProblems(entry)).toEqual([]);
  });

  it('rejects a module that imports node:fs and reads process.env', async () => {
    const problems = await browserProblems(join(HERE, 'fixtures', 'node-only.js'));
    expect(problems).toEqual([expect.stringContaining("'node:fs'")]);
  });

  it('rejects a module that uses process and Buffer without importing them', async () => {
    expect(await browserProblems(join(HERE, 'fixtures', 'node-global.js'))).toEqual([
      'uses the Node global process',
      'uses the Node global Buffer',
    ]);
  });
});
