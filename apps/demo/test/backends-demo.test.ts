import '@iodesc/sglist';
import '@iodesc/bvec';
import { describe, expect, it } from 'vitest';
import { runBackendsDemo } from '../src/backends-demo.js';

describe('runBackendsDemo', () => {
  it('moves the bytes intact through every registered backend and leaves no leak', () => {
    const lines: string[] = [];
    expect(runBackendsDemo((l) => lines.push(l))).toBe(0);
    const text = lines.join('\n');
    expect(text).toContain('(sglist, bvec)');
    expect(text).not.toMatch(/\sNO$/m);
    // the GUP that fills bio_vecs merges only within a folio (iov_iter_extract_bvecs): one per 4 KiB page
    expect(text).toMatch(/bvec\s+4 KiB pages\s+1024\s/);
    // a THP buffer: a handful of bvecs, one per folio piece
    expect(text).toMatch(/bvec\s+2 MiB THP\s+[1-9]\s/);
    expect(text).toContain('leak report after every backend: empty');
  });

  it('runs only the backends it is given, and says so when there are none', () => {
    const lines: string[] = [];
    expect(runBackendsDemo((l) => lines.push(l), 7, ['bvec'])).toBe(0);
    expect(lines.join('\n')).not.toMatch(/^\s+sglist\s/m);
    const none: string[] = [];
    expect(runBackendsDemo((l) => none.push(l), 7, [])).toBe(0);
    expect(none).toEqual(['Descriptor backends: none registered']);
  });
});
