// A first measurement of @iodesc/core's hot paths until the benchmark harness lands:
// building a 64 GiB memory, and pinning/unpinning 1 GiB of 4 KiB pages and of 2 MiB THPs,
// present or faulted in by the pin.
// Each figure is the minimum of 9 runs. Run after `npm run build`: node bench/pin-smoke.mjs

import {
  AddressSpace, FOLL_WRITE, PhysicalMemory, pinUserPages, pinUserPagesFast, unpinUserPages, unpinUserPagesDirtyLock,
} from '@iodesc/core';

const MiB = 2 ** 20;
const N = 262144; // 1 GiB of 4 KiB pages
const RUNS = 9;

// Minimum over RUNS of how long `op` takes; `before` and `after` run around it, untimed.
function minOf(before, op, after) {
  let best = Infinity;
  for (let r = 0; r < RUNS; r++) {
    before();
    const t0 = performance.now();
    op();
    best = Math.min(best, performance.now() - t0);
    after();
  }
  return best;
}

const t0 = performance.now();
const memory = new PhysicalMemory({ bytes: 64 * 2 ** 30 });
console.log(`new PhysicalMemory(64 GiB): ${(performance.now() - t0).toFixed(1)} ms, RSS ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB`);

const mm = new AddressSpace(memory);
const pages = new Uint32Array(N);
const nothing = () => {};
for (const [name, thp] of [['4 KiB pages', false], ['2 MiB THP', true]]) {
  const addr = mm.mmap(N * 4096, { thp, populate: true });
  const pin = () => pinUserPages(mm, addr, N, FOLL_WRITE, pages);
  const unpin = () => unpinUserPages(memory, pages, N);
  const ns = (ms) => ((ms * 1e6) / N).toFixed(1).padStart(5);
  const fast = minOf(nothing, () => pinUserPagesFast(mm, addr, N, FOLL_WRITE, pages), unpin);
  const slow = minOf(nothing, pin, unpin);
  const release = minOf(pin, () => unpinUserPagesDirtyLock(memory, pages, N, true), nothing);
  // first touch: pin_user_pages_fast over an untouched mapping faults every page in
  let fresh = 0;
  const faulted = minOf(
    () => (fresh = mm.mmap(N * 4096, { thp })),
    () => pinUserPagesFast(mm, fresh, N, FOLL_WRITE, pages),
    () => {
      unpin();
      mm.munmap(fresh, N * 4096);
    },
  );
  console.log(`${name.padEnd(12)} pin_user_pages_fast ${ns(fast)} ns/page, pin_user_pages ${ns(slow)} ns/page, unpin_user_pages_dirty_lock ${ns(release)} ns/page, fault-in + pin ${ns(faulted)} ns/page`);
}
console.log(`2 GiB mapped and populated, 4 GiB faulted in and freed again, all pinned and released many times, never written: RSS ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB`);
