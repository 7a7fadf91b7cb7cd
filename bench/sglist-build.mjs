// Issue 14's benchmark: sgAllocTableFromPages(pages, 262144, 0, 1 GiB) over the PFNs a process
// was handed at three physical layouts made with memory.fragment (scattered single pages, runs
// of 16 pages, 2 MiB THP folios), beside the C reference (bench/c/sg-build-ref.c, cc -O2, its
// chunks from a free list as the slab hands them out) built on the very same PFNs; then the
// memory a built table holds per entry (heapUsed + arrayBuffers, over enough tables for about
// 262,144 entries, the slab emptied) against what the kernel allocates (footprint()).
// Each figure: the minimum over RUNS runs after WARMUP untimed ones, then [median, max].
// Run after `npm run build`: node bench/sglist-build.mjs (it re-runs itself with --expose-gc).

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AddressSpace, FOLL_WRITE, PAGE_SIZE, PhysicalMemory, pinUserPagesFast, unpinUserPages } from '@iodesc/core';
import { sgAllocTableFromPages, sgFreeTable, sgSlabShrink } from '@iodesc/sglist';

const self = fileURLToPath(import.meta.url);
if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', self, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const here = dirname(self);
const buildDir = join(here, '.build'); // git-ignored
const GiB = 2 ** 30;
const N = 262144; // 1 GiB of 4 KiB pages
const RUNS = 15;
const WARMUP = 3;
const LAYOUTS = [
  { name: 'scattered', freeRunPages: 1, thp: false },
  { name: 'runs of 16', freeRunPages: 16, thp: false },
  { name: '2 MiB folios', freeRunPages: 512, thp: true },
];

/** Sorted per-page times (ns) → "min [median max]". */
function fmt(ns) {
  return `${ns[0].toFixed(1).padStart(5)} [${ns[ns.length >> 1].toFixed(1)} ${ns[ns.length - 1].toFixed(1)}]`;
}

// The PFNs of 1 GiB faulted in on an 8 GiB memory fragmented as `layout` says.
function layoutPages(layout) {
  const memory = new PhysicalMemory({ bytes: 8 * GiB, seed: 1 });
  memory.fragment({ seed: 1, freeRunPages: layout.freeRunPages });
  const mm = new AddressSpace(memory);
  const addr = mm.mmap(GiB, { thp: layout.thp, populate: true });
  const pages = new Uint32Array(N);
  if (pinUserPagesFast(mm, addr, N, FOLL_WRITE, pages) !== N) throw new Error('short pin');
  unpinUserPages(memory, pages, N);
  return pages;
}

function measure(pages) {
  const ns = [];
  let table = null;
  for (let r = -WARMUP; r < RUNS; r++) {
    const t0 = performance.now();
    table = sgAllocTableFromPages(pages, N, 0, N * PAGE_SIZE);
    const t1 = performance.now();
    if (r >= 0) ns.push(((t1 - t0) * 1e6) / N);
    if (r < RUNS - 1) sgFreeTable(table);
  }
  // what one built table holds: measured around a fresh build, the slab emptied, after full collections
  sgFreeTable(table);
  table = null;
  const entries = table0Entries(pages);
  for (let i = 0; i < 3; i++) globalThis.gc();
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  // enough tables for about N entries, so that small tables are not lost in the heap's noise
  const copies = Math.max(1, Math.floor(N / entries));
  const before = used();
  const tables = [];
  for (let k = 0; k < copies; k++) tables.push(sgAllocTableFromPages(pages, N, 0, N * PAGE_SIZE));
  for (let i = 0; i < 3; i++) globalThis.gc();
  const held = (used() - before) / copies;
  const f = tables[0].footprint();
  const out = { ns: ns.sort((a, b) => a - b), nents: tables[0].origNents, slots: f.entries, kernelBytes: f.bytes, held };
  for (const t of tables) sgFreeTable(t);
  sgSlabShrink();
  return out;
}

// Entries a table over `pages` holds.
function table0Entries(pages) {
  const t = sgAllocTableFromPages(pages, N, 0, N * PAGE_SIZE);
  const n = t.origNents;
  sgFreeTable(t);
  sgSlabShrink();
  return n;
}

function buildC() {
  const exe = join(buildDir, 'sg-build-ref');
  const cc = spawnSync('cc', ['-O2', '-o', exe, join(here, 'c', 'sg-build-ref.c')], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) {
    console.log(`C reference skipped: cc -O2 failed (${cc.error ? cc.error.message : cc.stderr.trim()})`);
    return null;
  }
  return exe;
}

function runC(exe, files) {
  const run = spawnSync(exe, [String(RUNS), ...files], { encoding: 'utf8' });
  if (run.error || run.status !== 0) {
    console.log(`C reference failed: ${run.error ? run.error.message : run.stderr.trim()}`);
    return new Map();
  }
  const out = new Map();
  for (const line of run.stdout.trim().split('\n')) {
    const f = line.split(' ');
    out.set(f[0], { ns: f.slice(2, 5).map(Number), nents: Number(f[6]), slots: Number(f[8]) });
  }
  return out;
}

mkdirSync(buildDir, { recursive: true });
const results = [];
for (const layout of LAYOUTS) {
  const pages = layoutPages(layout);
  const file = join(buildDir, `sg-layout-${layout.freeRunPages}.bin`);
  writeFileSync(file, pages);
  results.push([layout, file, measure(pages)]);
}
const exe = buildC();
const c = exe === null ? new Map() : runC(exe, results.map((r) => r[1]));

console.log(`\nsgAllocTableFromPages(pages, ${N}, 0, 1 GiB): ns/page, minimum of ${RUNS} runs [median max]; C: bench/c/sg-build-ref.c (cc -O2) on the same PFNs`);
console.log(`${'layout'.padEnd(13)}${'entries'.padStart(8)}${'slots'.padStart(8)}  ${'iodesc'.padEnd(20)}${'C'.padEnd(20)}ratio   ${'held/entry'.padStart(10)}${'kernel/entry'.padStart(13)}`);
for (const [layout, file, r] of results) {
  const ref = c.get(file);
  if (ref !== undefined && (ref.nents !== r.nents || ref.slots !== r.slots)) throw new Error(`${layout.name}: C built ${ref.nents} entries in ${ref.slots} slots, iodesc ${r.nents} in ${r.slots}`);
  const cCell = ref === undefined ? `${'-'.padEnd(20)}  -  ` : `${fmt(ref.ns).padEnd(20)}${(r.ns[0] / ref.ns[0]).toFixed(2).padStart(5)}`;
  console.log(
    `${layout.name.padEnd(13)}${String(r.nents).padStart(8)}${String(r.slots).padStart(8)}  ${fmt(r.ns).padEnd(20)}${cCell}   ${`${(r.held / r.nents).toFixed(1)} B`.padStart(10)}${`${(r.kernelBytes / r.nents).toFixed(1)} B`.padStart(13)}`,
  );
}
