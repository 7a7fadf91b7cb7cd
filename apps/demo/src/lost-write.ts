// `iodesc lost-write`: the page-cache lost write, run with and without the dirty-on-release fix.

import { lostWriteDemo } from '@iodesc/core';

/**
 * Prints the lost-write scenario through `out` and returns the exit code: 0 when the model
 * shows what mainline does (the device's data lost when the pin is released clean, kept when it
 * is released dirty), 1 otherwise.
 */
export function runLostWrite(out: (line: string) => void, seed = 7): number {
  const report = lostWriteDemo({ seed });
  for (const line of report.text.split('\n')) out(line);
  out('');
  out(
    `Summary: released clean, the file holds ${JSON.stringify(report.withoutFix.fileHolds)}; ` +
      `released dirty, ${JSON.stringify(report.withFix.fileHolds)}.`,
  );
  return report.withoutFix.lost && !report.withFix.lost ? 0 : 1;
}
