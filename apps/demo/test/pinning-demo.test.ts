import { describe, expect, it } from 'vitest';
import { contiguousRuns, runPinningDemo } from '../src/pinning-demo.js';

describe('runPinningDemo', () => {
  it('runs to the end with an empty leak report', () => {
    const lines: string[] = [];
    expect(runPinningDemo((l) => lines.push(l))).toBe(0);
    const text = lines.join('\n');
    expect(text).toContain('Leak report: empty');
    expect(text).toMatch(/RDMA registration of both buffers \(4096 pages to pinned_vm\): IodescError ENOMEM/);
    expect(text).toContain('IodescError EINVAL');
    expect(text).toContain('got 3');
    expect(text).toContain('(the zero page: yes), pins taken 0');
    expect(text).toMatch(/the huge zero folio \(pfn \d+\), pinned and counted like any large folio: pin count 1/);
  });
});

describe('contiguousRuns', () => {
  it.each([
    [[], 0],
    [[5], 1],
    [[5, 6, 7], 1],
    [[5, 7, 8, 1], 3],
  ])('counts runs in %j as %i', (pfns, runs) => {
    expect(contiguousRuns(Uint32Array.from(pfns), pfns.length)).toBe(runs);
  });
});
