// The `iodesc` command line. This release runs the foundation demo; workloads and backend
// comparisons arrive with their issues.

import { runDmaDemo } from './dma-demo.js';
import { runPinningDemo } from './pinning-demo.js';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: iodesc [demo] [--seed N]\n\nRuns the pinning demo on a 1 GiB model machine, then the DMA demo (direct, swiotlb, IOMMU).');
} else {
  const at = args.indexOf('--seed');
  const seed = at >= 0 ? Number(args[at + 1]) : 7;
  console.log('iodesc demo: pinning user memory for I/O on a model of the Linux kernel\n');
  const s = Number.isInteger(seed) && seed >= 0 ? seed : 7;
  const leaks = runPinningDemo((line) => console.log(line), s);
  console.log('');
  const dmaProblems = runDmaDemo((line) => console.log(line), s);
  process.exitCode = leaks === 0 && dmaProblems === 0 ? 0 : 1;
}
