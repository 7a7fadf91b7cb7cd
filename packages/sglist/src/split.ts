// Splitting a list into several (lib/sg_split.c: sg_split, sg_calculate_split, sg_split_phys,
// sg_split_mapped): each piece a fresh flat array of entries; pieces keep their entries'
// original page and grow the offset, as the kernel does.

import { checkInt, fail } from '@iodesc/core';
import {
  checkTable, nextSlot, SG_CHAIN, SG_DMA_ADDRESS, SG_DMA_LENGTH, SG_END, SG_F64_WORDS, SG_LENGTH, SG_OFFSET, SG_PAGE_LINK, SG_WORDS, SgTable,
} from './table.js';

// struct sg_splitter: where a piece starts in the input, how many entries it takes, the bytes
// skipped in its first and kept of its last.
interface Splitter {
  in0: number;
  nents: number;
  skip0: number;
  lengthLast: number;
}

// sg_calculate_split over CPU lengths or (mapped) DMA lengths; null when the sizes do not fit.
function calculateSplit(t: SgTable, nents: number, skip: number, sizes: number[], mapped: boolean): Splitter[] | null {
  const { u32 } = t.store;
  const out: Splitter[] = sizes.map(() => ({ in0: -1, nents: 0, skip0: 0, lengthLast: 0 }));
  let left = sizes.length;
  let k = 0;
  let size = sizes[0]!;
  for (let i = 0, s = t.sgl; i < nents && s >= 0; i++, s = nextSlot(u32, s)) {
    const sglen = u32[s * SG_WORDS + (mapped ? SG_DMA_LENGTH : SG_LENGTH)]!;
    // an entry exactly as long as what is left to skip is not skipped: the piece starts with 0 bytes of it
    if (skip > sglen) {
      skip -= sglen;
      continue;
    }
    let len = Math.min(size, sglen - skip);
    const cur = out[k]!;
    if (cur.in0 < 0) {
      cur.in0 = s;
      cur.skip0 = skip;
    }
    size -= len;
    cur.nents++;
    cur.lengthLast = len;
    // several pieces may start inside this one entry
    while (size === 0 && skip + len < sglen && --left > 0) {
      size = sizes[++k]!;
      skip += len;
      len = Math.min(size, sglen - skip);
      out[k] = { in0: s, skip0: skip, nents: 1, lengthLast: len };
      size -= len;
    }
    skip = 0;
    if (size === 0 && --left > 0) size = sizes[++k]!;
    if (left === 0) break;
  }
  return size !== 0 || out[0]!.in0 < 0 ? null : out;
}

/**
 * The result of `sgSplit`: the pieces, and what the kernel writes to `out_mapped_nents`: the
 * mapped entries of each piece, or its CPU entries when the input was not mapped.
 */
export interface SgSplitResult {
  tables: SgTable[];
  mappedNents: number[];
}

/**
 * Splits `table` into pieces of `splitSizes` bytes after skipping `skip` (`sg_split`): piece i
 * is a fresh flat array (one allocation, no chaining) of copies of the entries it covers, the
 * first advanced by what is skipped (its offset grows past the page if need be: the page stays
 * the original one), the last clipped, ended, DMA fields cleared. With `inMappedNents` (the
 * count dma_map_sg returned) the DMA fields are split the same way over the DMA lengths. Cost:
 * O(entries). Release each piece with `sgFreeTable`. EINVAL when the sizes do not fit the list.
 */
export function sgSplit(table: SgTable, inMappedNents: number, skip: number, splitSizes: number[]): SgSplitResult {
  const t = checkTable('table', table);
  checkInt('inMappedNents', inMappedNents, 0, t.origNents);
  checkInt('skip', skip);
  if (!Array.isArray(splitSizes) || splitSizes.length === 0) fail('EINVAL', 'splitSizes must be a non-empty array of byte counts');
  splitSizes.forEach((v, i) => checkInt(`splitSizes[${i}]`, v));
  // the kernel counts sg_nents(in): the whole list to its end mark
  let all = 0;
  for (let s = t.sgl; s >= 0; s = nextSlot(t.store.u32, s)) all++;
  const phys = calculateSplit(t, all, skip, splitSizes, false);
  if (phys === null) fail('EINVAL', `pieces of ${splitSizes.join(' + ')} bytes after skipping ${skip} do not fit the list`);
  const mapped = inMappedNents > 0 ? calculateSplit(t, inMappedNents, skip, splitSizes, true) : null;
  if (inMappedNents > 0 && mapped === null) fail('EINVAL', `pieces of ${splitSizes.join(' + ')} bytes do not fit the ${inMappedNents} mapped entries`);
  mapped?.forEach((m, i) => {
    if (m.nents > phys[i]!.nents) fail('EINVAL', `piece ${i} would hold ${m.nents} mapped entries in ${phys[i]!.nents} slots`);
  });

  const tables = phys.map((p, i) => {
    const out = new SgTable(0);
    const first = out.allocChunk(p.nents);
    out.sgl = first;
    out.memory = t.memory;
    const src = t.store;
    const dst = out.store;
    // sg_split_phys: copy each entry, DMA fields cleared, the first advanced, the last clipped and ended
    for (let j = 0, s = p.in0; j < p.nents; j++, s = nextSlot(src.u32, s)) {
      const a = s * SG_WORDS;
      const b = (first + j) * SG_WORDS;
      dst.u32[b + SG_PAGE_LINK] = src.u32[a + SG_PAGE_LINK]!;
      dst.u32[b + SG_OFFSET] = src.u32[a + SG_OFFSET]! + (j === 0 ? p.skip0 : 0);
      dst.u32[b + SG_LENGTH] = j === p.nents - 1 ? p.lengthLast : src.u32[a + SG_LENGTH]! - (j === 0 ? p.skip0 : 0);
    }
    const last = (first + p.nents - 1) * SG_WORDS + SG_PAGE_LINK;
    dst.u32[last] = (dst.u32[last]! | SG_END) & ~SG_CHAIN;
    out.origNents = out.nents = p.nents;
    const m = mapped?.[i];
    if (m !== undefined) {
      // sg_split_mapped: the DMA fields over the mapped entries, split the same way
      for (let j = 0, s = m.in0; j < m.nents; j++, s = nextSlot(src.u32, s)) {
        const d = first + j;
        dst.f64[d * SG_F64_WORDS + SG_DMA_ADDRESS] = src.f64[s * SG_F64_WORDS + SG_DMA_ADDRESS]! + (j === 0 ? m.skip0 : 0);
        dst.u32[d * SG_WORDS + SG_DMA_LENGTH] = j === m.nents - 1 ? m.lengthLast : src.u32[s * SG_WORDS + SG_DMA_LENGTH]! - (j === 0 ? m.skip0 : 0);
      }
      out.nents = m.nents;
      out.dmaCount = m.nents;
    }
    return out;
  });
  return { tables, mappedNents: (mapped ?? phys).map((m) => m.nents) };
}
