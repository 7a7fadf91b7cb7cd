import { describe, expect, it } from 'vitest';
import { runDmaDemo } from '../src/dma-demo.js';

describe('runDmaDemo', () => {
  it('moves the bytes intact through every device and ends with an empty leak report', () => {
    const lines: string[] = [];
    expect(runDmaDemo((l) => lines.push(l))).toBe(0);
    const text = lines.join('\n');
    expect(text).not.toContain(' NO');
    expect(text).toMatch(/IOMMU, 64 KiB max segment\s+16\s+256/);
    expect(text).toMatch(/IOMMU, 1 MiB max segment\s+1\s+256/);
    expect(text).toMatch(/26-bit mask.*\s+256\s+-\s+1 MiB\s+yes/);
    expect(text).toContain('longer than device claims to support [len=131072] [max=65536]');
    expect(text).toContain('EFAULT: IOMMU fault');
    expect(text).toContain('after the late unmap: leak report empty');
  });
});
