// Issue 11's benchmark: pin_user_pages_fast(mm, addr, 262144, FOLL_WRITE, pages) over an
// already-faulted 1 GiB range and unpin_user_pages_dirty_lock(..., true) at three physical
// layouts made with memory.fragment (scattered single pages, runs of 16 pages, 2 MiB THP
// folios), beside the C reference (bench/c/pin-ref.c, built with `cc -O2`) run on the very
// same PFNs; then the RSS of a 64 GiB PhysicalMemory with 1 GiB pinned.
// Each figure: the minimum over RUNS runs after WARMUP untimed ones, then [median, max].
// Run after `npm run build`: node bench/pin-layouts.mjs

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AddressSpace, FOLL_WRITE, PhysicalMemory, pinUserPagesFast, unpinUserPages, unpinUserPagesDirtyLock } from '@iodesc/core';

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = join(here, '.build'); // git-ignored
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const N = 262144; // 1 GiB of 4 KiB pages
const RUNS = 15;
/** Untimed runs first, so that the figures are of optimised code (the C program needs none). */
const WARMUP = 3;

const LAYOUTS = [
  { name: 'scattered', freeRunPages: 1, thp: false, order: 0 },
  { name: 'runs of 16', freeRunPages: 16, thp: false, order: 0 },
  { name: '2 MiB folios', freeRunPages: 512, thp: true, order: 9 },
];

const rss = () => `${(process.memoryUsage().rss / MiB).toFixed(0)} MiB`;

// RSS first, while nothing else has been allocated
{
  const t0 = performance.now();
  const memory = new PhysicalMemory({ bytes: 64 * GiB });
  const built = performance.now() - t0;
  const mm = new AddressSpace(memory);
  const addr = mm.mmap(GiB, { populate: true });
  const pages = new Uint32Array(N);
  pinUserPagesFast(mm, addr, N, FOLL_WRITE, pages);
  console.log(`new PhysicalMemory(64 GiB): ${built.toFixed(1)} ms; with 1 GiB faulted in (never written) and pinned: RSS ${rss()}`);
  unpinUserPages(memory, pages, N);
}

/** Sorted per-page times (ns) → "min [median max]". */
function fmt(ns) {
  return `${ns[0].toFixed(1).padStart(5)} [${ns[ns.length >> 1].toFixed(1)} ${ns[ns.length - 1].toFixed(1)}]`;
}

function measure(layout) {
  const memory = new PhysicalMemory({ bytes: 8 * GiB, seed: 1 });
  memory.fragment({ seed: 1, freeRunPages: layout.freeRunPages });
  const mm = new AddressSpace(memory);
  const addr = mm.mmap(GiB, { thp: layout.thp, populate: true });
  const pages = new Uint32Array(N);
  const pin = [];
  const unpin = [];
  for (let r = 0; r < WARMUP; r++) unpinUserPagesDirtyLock(memory, pages, pinUserPagesFast(mm, addr, N, FOLL_WRITE, pages), true);
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    const got = pinUserPagesFast(mm, addr, N, FOLL_WRITE, pages);
    const t1 = performance.now();
    unpinUserPagesDirtyLock(memory, pages, got, true);
    const t2 = performance.now();
    if (got !== N) throw new Error(`pinned ${got} of ${N} pages`);
    pin.push(((t1 - t0) * 1e6) / N);
    unpin.push(((t2 - t1) * 1e6) / N);
  }
  // the PFNs this layout handed the process, for the C reference
  pinUserPagesFast(mm, addr, N, FOLL_WRITE, pages);
  let runs = 1;
  let lo = pages[0];
  let hi = pages[0];
  for (let i = 1; i < N; i++) {
    if (pages[i] !== pages[i - 1] + 1) runs++;
    lo = Math.min(lo, pages[i]);
    hi = Math.max(hi, pages[i]);
  }
  const file = join(buildDir, `layout-${layout.freeRunPages}.bin`);
  writeFileSync(file, pages);
  unpinUserPages(memory, pages, N);
  const span = hi - lo + 1;
  return { pin: pin.sort((a, b) => a - b), unpin: unpin.sort((a, b) => a - b), file, runs, span };
}

// cc -O2 bench/c/pin-ref.c, or null (with the reason printed) when it cannot be built
function buildC() {
  const exe = join(buildDir, 'pin-ref');
  const cc = spawnSync('cc', ['-O2', '-o', exe, join(here, 'c', 'pin-ref.c')], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) {
    console.log(`C reference skipped: cc -O2 failed (${cc.error ? cc.error.message : cc.stderr.trim()})`);
    return null;
  }
  return exe;
}

function runC(exe, results) {
  const args = [String(RUNS)];
  for (const [layout, res] of results) args.push(res.file, String(layout.order));
  const run = spawnSync(exe, args, { encoding: 'utf8' });
  if (run.error || run.status !== 0) {
    console.log(`C reference failed: ${run.error ? run.error.message : run.stderr.trim()}`);
    return new Map();
  }
  const out = new Map();
  for (const line of run.stdout.trim().split('\n')) {
    const f = line.split(' ');
    out.set(f[0], { pin: f.slice(2, 5).map(Number), unpin: f.slice(6, 9).map(Number) });
  }
  return out;
}

mkdirSync(buildDir, { recursive: true });
const results = [];
for (const layout of LAYOUTS) results.push([layout, measure(layout)]);
const exe = buildC();
const c = exe === null ? new Map() : runC(exe, results);

console.log(`\npin_user_pages_fast(mm, addr, ${N}, FOLL_WRITE) and unpin_user_pages_dirty_lock(..., true) over 1 GiB faulted in,`);
console.log(`ns/page: minimum of ${RUNS} runs [median max]; C: bench/c/pin-ref.c (cc -O2) on the same PFNs`);
console.log(`${'layout'.padEnd(13)}${'PFN runs'.padStart(9)}${'span'.padStart(9)}  ${'pin: iodesc'.padEnd(22)}${'C'.padEnd(20)}ratio   ${'unpin+dirty: iodesc'.padEnd(22)}${'C'.padEnd(20)}ratio`);
for (const [layout, r] of results) {
  const ref = c.get(r.file);
  const cell = (ours, theirs) => (theirs === undefined ? `${fmt(ours).padEnd(22)}${'-'.padEnd(20)}  -  ` : `${fmt(ours).padEnd(22)}${fmt(theirs).padEnd(20)}${(ours[0] / theirs[0]).toFixed(2).padStart(5)}`);
  console.log(`${layout.name.padEnd(13)}${String(r.runs).padStart(9)}${String(r.span).padStart(9)}  ${cell(r.pin, ref?.pin)}   ${cell(r.unpin, ref?.unpin)}`);
}
