// The workspace packages, read from disk: which are browser-safe libraries and which are backends.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface WorkspacePackage {
  dir: string;
  name: string;
  json: Record<string, any>;
  /** Built entry (dist/index.js). */
  entry: string;
}

/** Every package under packages/ with a package.json. */
export function workspacePackages(): WorkspacePackage[] {
  const base = join(ROOT, 'packages');
  return readdirSync(base)
    .filter((d) => existsSync(join(base, d, 'package.json')))
    .map((d) => {
      const json = JSON.parse(readFileSync(join(base, d, 'package.json'), 'utf8'));
      return { dir: join(base, d), name: json.name as string, json, entry: join(base, d, 'dist', 'index.js') };
    });
}

// Node-only or test-only packages: conformance drives vitest, repo-checks reads the disk.
const NOT_FOR_BROWSERS = new Set(['@iodesc/conformance', '@iodesc/repo-checks']);

/** Published library packages that must run in a browser: core and every backend. */
export function browserPackages(): WorkspacePackage[] {
  return workspacePackages().filter((p) => !p.json.private && !NOT_FOR_BROWSERS.has(p.name));
}

/** Backend packages: those that depend on core and register a backend. */
export function backendPackages(): WorkspacePackage[] {
  return workspacePackages().filter((p) => ['@iodesc/sglist', '@iodesc/bvec', '@iodesc/frag'].includes(p.name) || p.json.iodesc?.backend);
}
