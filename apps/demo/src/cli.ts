// The `iodesc` command line: the pinning, DMA and backends demos (the default), `backends` alone
// (optionally one backend, chosen by name at runtime) and the page-cache lost write.

import { getBackend, isIodescError } from '@iodesc/core';
import { loadBackends } from './backends.js';
import { runBackendsDemo } from './backends-demo.js';
import { runDmaDemo } from './dma-demo.js';
import { runLostWrite } from './lost-write.js';
import { runPinningDemo } from './pinning-demo.js';

const args = process.argv.slice(2);
const at = args.indexOf('--seed');
const seedArg = at >= 0 ? Number(args[at + 1]) : 7;
const seed = Number.isInteger(seedArg) && seedArg >= 0 ? seedArg : 7;
const bat = args.indexOf('--backend');
const log = (line: string): void => console.log(line);
await loadBackends();
if (args.includes('--help') || args.includes('-h')) {
  console.log(
    'usage: iodesc [demo] [--seed N]\n       iodesc backends [--backend NAME] [--seed N]\n       iodesc lost-write [--seed N]\n\n' +
      'demo (default): the pinning demo on a 1 GiB model machine, the DMA demo (direct, swiotlb, IOMMU),\n' +
      '  then the same buffers through every registered descriptor backend.\n' +
      'backends: only the last part; --backend picks one backend by its registered name.\n' +
      "lost-write: a device's write into a pinned page-cache page, lost unless the pin is released dirty.",
  );
} else if (args[0] === 'lost-write') {
  console.log('iodesc lost-write: a DMA write the page cache never sees\n');
  process.exitCode = runLostWrite(log, seed);
} else if (args[0] === 'backends') {
  const name = bat >= 0 ? args[bat + 1] : undefined;
  try {
    if (name !== undefined) getBackend(name);
    process.exitCode = runBackendsDemo(log, seed, name === undefined ? undefined : [name]) === 0 ? 0 : 1;
  } catch (e) {
    if (!isIodescError(e)) throw e;
    console.error(`iodesc: ${e.message}`);
    process.exitCode = 2;
  }
} else {
  console.log('iodesc demo: pinning user memory for I/O on a model of the Linux kernel\n');
  const leaks = runPinningDemo(log, seed);
  console.log('');
  const dmaProblems = runDmaDemo(log, seed);
  console.log('');
  const backendProblems = runBackendsDemo(log, seed);
  console.log("\nSee also: iodesc lost-write (a device's write into a pinned file page, lost unless released dirty)");
  process.exitCode = leaks === 0 && dmaProblems === 0 && backendProblems === 0 ? 0 : 1;
}
