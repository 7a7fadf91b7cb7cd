// Core and the backends do run in a browser, not only bundle for one: the scenario of
// browser/scenario.ts is bundled for the browser, served from 127.0.0.1 and run in headless
// Chromium (the system's, driven by playwright-core; none is ever downloaded), and what it
// returns must equal the same scenario run here in Node: same PFNs, segments, footprints, bytes.
// Skipped, with a notice, when there is no Chromium (IODESC_CHROMIUM overrides the path).

import { build } from 'esbuild';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { BACKENDS, expectedBuffer, fnv1a, runScenario, type ScenarioResult } from './browser/scenario.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.IODESC_CHROMIUM || '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];
const SEED = 7;
const GLOBAL = 'iodescScenario';

/** The scenario as one classic script for the browser, exposing its exports as `window.iodescScenario`. */
async function bundleScenario(): Promise<string> {
  const result = await build({
    entryPoints: [join(HERE, 'browser', 'scenario.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    globalName: GLOBAL,
    platform: 'browser',
    target: 'es2022',
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

/** Serves the page and the bundle on 127.0.0.1 at a free port. */
async function serve(bundle: string): Promise<{ server: Server; url: string }> {
  const html = '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script src="/scenario.js"></script></head><body>iodesc</body></html>';
  const server = createServer((req, res) => {
    if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    else if (req.url === '/scenario.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

/** Runs the bundled scenario in headless Chromium; returns its result and the browser's identity. */
async function runInChromium(seed: number): Promise<{ result: ScenarioResult; userAgent: string; hasProcess: boolean; errors: string[] }> {
  const { server, url } = await serve(await bundleScenario());
  const profile = mkdtempSync(join(tmpdir(), 'iodesc-chromium-'));
  try {
    // a persistent context on a fresh temporary profile: playwright owns --user-data-dir
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: FLAGS, timeout: 30_000 });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      await page.goto(url);
      const out = await page.evaluate(
        ([name, s]) => {
          // runs in the page; no DOM typings here, so the page's globals are read off globalThis
          const g = globalThis as unknown as Record<string, unknown> & { navigator: { userAgent: string } };
          const api = g[name] as { runScenario(seed: number): ScenarioResult };
          return { result: api.runScenario(s), userAgent: g.navigator.userAgent, hasProcess: typeof g.process !== 'undefined' };
        },
        [GLOBAL, seed] as const,
      );
      return { ...out, errors };
    } finally {
      await context.close();
    }
  } finally {
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

describe('browser run', () => {
  if (!HAVE_CHROMIUM) {
    console.warn(`browser run: skipped, no Chromium at ${CHROMIUM} (install Debian's chromium, or set IODESC_CHROMIUM to its path)`);
  }

  it('the Node run is the scenario intended: the device pattern reaches the process, nothing leaks', () => {
    const node = runScenario(SEED);
    expect(node.runs.map((r) => r.backend)).toEqual([...BACKENDS]);
    node.runs.forEach((r, b) => {
      expect(r.checksum).toBe(fnv1a(expectedBuffer(b)));
      expect(r.segments.length).toBeGreaterThan(1);
      expect(r.dma.length).toBeGreaterThan(1);
      expect(r.footprint.bytes).toBeGreaterThan(0);
    });
    expect(node.leaks).toEqual([]);
    expect(runScenario(SEED + 1).runs[0]!.segments).not.toEqual(node.runs[0]!.segments); // the seed does place the pages
  });

  it.skipIf(!HAVE_CHROMIUM)('headless Chromium runs core, sglist and bvec and gets what Node gets', async () => {
    const browser = await runInChromium(SEED);
    expect(browser.errors).toEqual([]);
    expect(browser.userAgent).toMatch(/HeadlessChrome\//);
    expect(browser.hasProcess).toBe(false);
    expect(browser.result).toEqual(runScenario(SEED));
  }, 60_000);
});
