import { describe, expect, it } from 'vitest';
import { runLostWrite } from '../src/lost-write.js';

describe('runLostWrite', () => {
  it('prints both runs and exits 0 when only the clean release loses the data', () => {
    const lines: string[] = [];
    expect(runLostWrite((l) => lines.push(l))).toBe(0);
    const text = lines.join('\n');
    expect(text).toContain("the device's write is lost.");
    expect(text).toContain("the device's write reached the file.");
    expect(text).toContain('FOLL_WRITE | FOLL_LONGTERM is refused (EFAULT)');
    expect(text).toContain('Summary: released clean, the file holds "old data from the CPU"; released dirty, "NEW DATA FROM THE DEVICE".');
  });
});
