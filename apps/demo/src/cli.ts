// The `iodesc` command line: the pinning and DMA demos (the default) and the page-cache lost write;
// workloads and backend comparisons arrive with their issues.

import { runDmaDemo } from './dma-demo.js';
import { runLostWrite } from './lost-write.js';
import { runPinningDemo } from './pinning-demo.js';

const args = process.argv.slice(2);
const at = args.indexOf('--seed');
const seedArg = at >= 0 ? Number(args[at + 1]) : 7;
const seed = Number.isInteger(seedArg) && seedArg >= 0 ? seedArg : 7;
if (args.includes('--help') || args.includes('-h')) {
  console.log(
    'usage: iodesc [demo] [--seed N]\n       iodesc lost-write [--seed N]\n\n' +
      'demo (default): the pinning demo on a 1 GiB model machine, then the DMA demo (direct, swiotlb, IOMMU).\n' +
      "lost-write: a device's write into a pinned page-cache page, lost unless the pin is released dirty.",
  );
} else if (args[0] === 'lost-write') {
  console.log('iodesc lost-write: a DMA write the page cache never sees\n');
  process.exitCode = runLostWrite((line) => console.log(line), seed);
} else {
  console.log('iodesc demo: pinning user memory for I/O on a model of the Linux kernel\n');
  const leaks = runPinningDemo((line) => console.log(line), seed);
  console.log('');
  const dmaProblems = runDmaDemo((line) => console.log(line), seed);
  console.log("\nSee also: iodesc lost-write (a device's write into a pinned file page, lost unless released dirty)");
  process.exitCode = leaks === 0 && dmaProblems === 0 ? 0 : 1;
}
