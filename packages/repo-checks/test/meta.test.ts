// House rules every package follows (STYLE.md "Monorepo hygiene"), checked on the real tree.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backendPackages, ROOT, workspacePackages } from './packages.js';

const libs = workspacePackages().filter((p) => !p.json.private);

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('every published package', () => {
  it.each(libs.map((p) => [p.name, p] as const))('%s is ESM only with an exports map, dist files and a README', (_n, p) => {
    expect(p.json.type).toBe('module');
    expect(p.json.exports?.['.']).toMatchObject({ types: './dist/index.d.ts', import: './dist/index.js' });
    expect(p.json.exports?.['.']?.require).toBeUndefined();
    expect(p.json.files).toEqual(['dist']);
    expect(existsSync(join(p.dir, 'README.md'))).toBe(true);
    expect(readFileSync(join(p.dir, 'tsup.config.ts'), 'utf8')).toContain('...tsupBase');
  });

  it.each(libs.filter((p) => p.name !== '@iodesc/core').map((p) => [p.name, p] as const))(
    '%s takes @iodesc/core as a peer dependency and bundles no copy of it',
    (_n, p) => {
      expect(p.json.peerDependencies?.['@iodesc/core']).toBeDefined();
      expect(p.json.dependencies?.['@iodesc/core']).toBeUndefined();
      const dist = readFileSync(p.entry, 'utf8');
      expect(dist).not.toContain('iodesc.backend-registry');
      expect(dist).toMatch(/from ['"]@iodesc\/core['"]/);
    },
  );

  it('workspace dependency ranges are "*" so npm never looks for them on the registry', () => {
    for (const p of workspacePackages()) {
      for (const field of ['dependencies', 'devDependencies', 'peerDependencies']) {
        for (const [dep, range] of Object.entries<string>(p.json[field] ?? {})) {
          if (dep.startsWith('@iodesc/')) expect(`${p.name} ${field} ${dep}@${range}`).toBe(`${p.name} ${field} ${dep}@*`);
        }
      }
    }
  });
});

describe('every backend package', () => {
  const backends = backendPackages();
  const others = backends.map((b) => b.name);

  it('is listed here once it exists (none may hide from these checks)', () => {
    const dirs = readdirSync(join(ROOT, 'packages'));
    for (const b of ['sglist', 'bvec', 'frag']) {
      if (dirs.includes(b)) expect(others).toContain(`@iodesc/${b}`);
    }
  });

  it.each(backends.map((p) => [p.name, p] as const))('%s registers under its package name and shares core’s registry', async (name, p) => {
    const short = name.replace('@iodesc/', '');
    const mod = await import(pathToFileURL(p.entry).href);
    const core = await import('@iodesc/core');
    const backend = core.getBackend(short);
    expect(backend.name).toBe(short);
    expect(Object.values(mod)).toContain(backend);
  });

  it.each(backends.map((p) => [p.name, p] as const))('%s runs the conformance suite and imports no other backend', (name, p) => {
    const tests = sourceFiles(join(p.dir, 'test')).map((f) => readFileSync(f, 'utf8')).join('\n');
    expect(tests).toMatch(/from ['"]@iodesc\/conformance['"]/);
    expect(tests).toMatch(/conformance\(/);
    for (const f of sourceFiles(join(p.dir, 'src'))) {
      const text = readFileSync(f, 'utf8');
      for (const other of others.filter((o) => o !== name)) {
        expect(text.includes(`'${other}'`) || text.includes(`"${other}"`), `${relative(ROOT, f)} imports ${other}`).toBe(false);
      }
    }
  });
});
