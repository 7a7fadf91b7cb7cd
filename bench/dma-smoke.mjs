// A first measurement of @iodesc/core's DMA layer until the benchmark harness lands: mapping
// and unmapping 262,144 page entries (1 GiB) directly, through an IOMMU (merged into 64 KiB and
// into 4 GiB-long segments), and a bounced 64 MiB. Minimum of 9 runs, ns per entry.
// Run after `npm run build`: node bench/dma-smoke.mjs

import { Device, Iommu, PhysicalMemory, dmaMapSegments, dmaUnmapSegments, swiotlbInit } from '@iodesc/core';

const N = 262144;
const RUNS = 9;
const memory = new PhysicalMemory({ bytes: 8 * 2 ** 30, seed: 3 });
swiotlbInit(memory);
// scattered pages: every fourth frame from 64 MiB up, so nothing merges physically
const phys = Float64Array.from({ length: N }, (_, i) => (16384 + 4 * i) * 4096);
const lens = new Float64Array(N).fill(4096);

function minOf(op) {
  let best = Infinity;
  let worst = 0;
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    op();
    const t = performance.now() - t0;
    best = Math.min(best, t);
    worst = Math.max(worst, t);
  }
  return [best, worst];
}

const ns = (ms, n) => ((ms * 1e6) / n).toFixed(1).padStart(6);
console.log(`dmaMapSegments + dmaUnmapSegments of ${N} 4 KiB entries, ns/entry: min [max] of ${RUNS} runs`);
const cases = [
  ['direct', new Device(memory), N],
  ['IOMMU, 64 KiB segments', new Device(memory, { iommu: new Iommu() }), N],
  ['IOMMU, max segment 4 GiB - 1', new Device(memory, { iommu: new Iommu(), maxSegmentSize: 0xffffffff }), N],
  ['direct, bounced (32 MiB of entries)', new Device(memory, { forceBounce: true }), 8192],
];
for (const [name, device, n] of cases) {
  let m;
  const [mapBest, mapWorst] = minOf(() => {
    m = dmaMapSegments(device, phys, lens, n, 'bidirectional');
    dmaUnmapSegments(device, m);
  });
  m = dmaMapSegments(device, phys, lens, n, 'bidirectional');
  const segs = m.count;
  dmaUnmapSegments(device, m);
  console.log(`  ${name.padEnd(36)} map+unmap ${ns(mapBest, n)} [${ns(mapWorst, n).trim()}]  segments ${segs}`);
}
