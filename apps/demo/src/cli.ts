// The `iodesc` command line. This release runs the foundation demo; workloads and backend
// comparisons arrive with their issues.

import { runPinningDemo } from './pinning-demo.js';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: iodesc [demo] [--seed N]\n\nRuns the pinning demo on a 1 GiB model machine.');
} else {
  const at = args.indexOf('--seed');
  const seed = at >= 0 ? Number(args[at + 1]) : 7;
  console.log('iodesc demo: pinning user memory for I/O on a model of the Linux kernel\n');
  const leaks = runPinningDemo((line) => console.log(line), Number.isInteger(seed) && seed >= 0 ? seed : 7);
  process.exitCode = leaks === 0 ? 0 : 1;
}
