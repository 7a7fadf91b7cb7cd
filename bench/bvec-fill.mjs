// Issue 15's benchmark: filling bio_vecs from 262,144 pinned pages (1 GiB) at three physical
// layouts made with memory.fragment (scattered single pages, runs of 16 pages, 2 MiB THP
// folios): bvecBackend.fromPages into one flat bvec array (as io_uring's registered buffer)
// and into chained bios of 256 pooled vectors (bvec_slabs), beside the C reference
// (bench/c/bvec-fill-ref.c, built with `cc -O2`) on the very same PFNs; then the GUP that pins
// straight into bio_vecs (getUser + putUser); and the memory each layout costs per bvec.
// Each figure: the minimum over RUNS runs after WARMUP untimed ones, then [median, max].
// Run after `npm run build`: node bench/bvec-fill.mjs

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AddressSpace, FOLL_WRITE, PhysicalMemory, pinUserPagesFast, unpinUserPages, unpinUserPagesDirtyLock } from '@iodesc/core';
import { bvecBackend } from '@iodesc/bvec';

const here = dirname(fileURLToPath(import.meta.url));
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
  return `${ns[0].toFixed(2).padStart(6)} [${ns[ns.length >> 1].toFixed(2)} ${ns[ns.length - 1].toFixed(2)}]`;
}

// Times `body` RUNS times after WARMUP, in ns per page, sorted.
function time(body) {
  for (let r = 0; r < WARMUP; r++) body();
  const out = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    body();
    out.push(((performance.now() - t0) * 1e6) / N);
  }
  return out.sort((a, b) => a - b);
}

function measure(layout) {
  const memory = new PhysicalMemory({ bytes: 8 * GiB, seed: 1 });
  memory.fragment({ seed: 1, freeRunPages: layout.freeRunPages });
  const mm = new AddressSpace(memory);
  const addr = mm.mmap(GiB, { thp: layout.thp, populate: true });
  const pages = new Uint32Array(N);
  if (pinUserPagesFast(mm, addr, N, FOLL_WRITE, pages) !== N) throw new Error('short pin');
  const file = join(buildDir, `bvec-layout-${layout.freeRunPages}.bin`);
  writeFileSync(file, pages);
  let flatDesc = null;
  let bioDesc = null;
  const flat = time(() => {
    flatDesc = bvecBackend.fromPages(memory, pages, 0, GiB, { flat: true });
  });
  const bios = time(() => {
    bioDesc?.put();
    bioDesc = bvecBackend.fromPages(memory, pages, 0, GiB);
  });
  unpinUserPages(memory, pages, N);
  const gup = time(() => bvecBackend.putUser(bvecBackend.getUser(mm, addr, GiB, { write: true }), { dirty: true }));
  // the same pins into a plain page array, for what filling the vectors adds
  const pinOnly = time(() => unpinUserPagesDirtyLock(memory, pages, pinUserPagesFast(mm, addr, N, FOLL_WRITE, pages), true));
  const f = bioDesc.footprint();
  const ff = flatDesc.footprint();
  const res = {
    flat, bios, gup, pinOnly, file, vecs: bioDesc.nrSegments,
    perBvec: f.bytes / bioDesc.nrSegments, perBvecFlat: ff.bytes / flatDesc.nrSegments, bioBytes: f.bytes, flatBytes: ff.bytes,
    nbios: bioDesc.bios().length,
  };
  bioDesc.put();
  return res;
}

// cc -O2 bench/c/bvec-fill-ref.c, or null (with the reason printed) when it cannot be built
function buildC() {
  const exe = join(buildDir, 'bvec-fill-ref');
  const cc = spawnSync('cc', ['-O2', '-o', exe, join(here, 'c', 'bvec-fill-ref.c')], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) {
    console.log(`C reference skipped: cc -O2 failed (${cc.error ? cc.error.message : cc.stderr.trim()})`);
    return null;
  }
  return exe;
}

function runC(exe, results) {
  const run = spawnSync(exe, [String(RUNS), ...results.map(([, r]) => r.file)], { encoding: 'utf8' });
  if (run.error || run.status !== 0) {
    console.log(`C reference failed: ${run.error ? run.error.message : run.stderr.trim()}`);
    return new Map();
  }
  const out = new Map();
  for (const line of run.stdout.trim().split('\n')) {
    const f = line.split(' ');
    out.set(f[0], { flat: f.slice(2, 5).map(Number), bios: f.slice(6, 9).map(Number), vecs: Number(f[10]) });
  }
  return out;
}

mkdirSync(buildDir, { recursive: true });
const results = [];
for (const layout of LAYOUTS) results.push([layout, measure(layout)]);
const exe = buildC();
const c = exe === null ? new Map() : runC(exe, results);

console.log(`\nfilling bio_vecs from ${N} pinned pages (1 GiB), ns/page: minimum of ${RUNS} runs [median max]`);
console.log(`C: bench/c/bvec-fill-ref.c (cc -O2, bio_add_page's merge into 16-byte bio_vecs) on the same PFNs`);
const cell = (ours, theirs) => (theirs === undefined ? `${fmt(ours).padEnd(23)}${'-'.padEnd(22)}   -  ` : `${fmt(ours).padEnd(23)}${fmt(theirs).padEnd(22)}${(ours[0] / theirs[0]).toFixed(2).padStart(6)}`);
console.log(`${'layout'.padEnd(13)}${'bvecs'.padStart(7)}  ${'flat array: iodesc'.padEnd(23)}${'C'.padEnd(22)} ratio  ${'pooled bios: iodesc'.padEnd(23)}${'C'.padEnd(22)} ratio`);
for (const [layout, r] of results) {
  const ref = c.get(r.file);
  if (ref !== undefined && ref.vecs !== r.vecs) console.log(`  (C built ${ref.vecs} vectors, iodesc ${r.vecs})`);
  console.log(`${layout.name.padEnd(13)}${String(r.vecs).padStart(7)}  ${cell(r.flat, ref?.flat)}  ${cell(r.bios, ref?.bios)}`);
}
console.log(`\nthe GUP that pins into bio_vecs (getUser: pin_user_pages_fast into the bio's vector tail, then vectors; putUser: dirty + unpin),`);
console.log(`beside the same pins into a page array (pinUserPagesFast + unpinUserPagesDirtyLock), ns/page:`);
console.log(`${'layout'.padEnd(13)}${'into bio_vecs'.padEnd(26)}page array`);
for (const [layout, r] of results) console.log(`${layout.name.padEnd(13)}${fmt(r.gup).padEnd(26)}${fmt(r.pinOnly)}`);
console.log(`\nmemory (what the kernel would allocate): bytes per bvec, and per 4 KiB page described`);
console.log(`${'layout'.padEnd(13)}${'bios'.padStart(6)}${'pooled bios'.padStart(14)}${'per bvec'.padStart(10)}${'per page'.padStart(10)}${'flat array'.padStart(13)}${'per bvec'.padStart(10)}${'per page'.padStart(10)}`);
for (const [layout, r] of results) {
  console.log(`${layout.name.padEnd(13)}${String(r.nbios).padStart(6)}${String(r.bioBytes).padStart(14)}${r.perBvec.toFixed(2).padStart(10)}${(r.bioBytes / N).toFixed(3).padStart(10)}${String(r.flatBytes).padStart(13)}${r.perBvecFlat.toFixed(2).padStart(10)}${(r.flatBytes / N).toFixed(3).padStart(10)}`);
}
