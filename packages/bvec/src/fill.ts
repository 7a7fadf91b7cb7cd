// Filling vectors from an array of pages already held: bio_add_page's merge rule over a page
// array (block/bio.c), into bios of pooled vectors chained as they fill, or into one flat bvec
// array as io_uring's registered buffers hold one (io_uring/rsrc.c). The hot loop over whole
// pages keeps the last vector's end in locals and writes the words directly.

import { BIO_MAX_SIZE, fail, PAGE_SIZE, type PhysicalMemory } from '@iodesc/core';
import { Bio } from './bio.js';
import { BIO_MAX_VECS, BVEC_LEN, BVEC_OFFSET, BVEC_PAGE, BVEC_PAGE_HI, BVEC_STRIDE, BvecArray } from './bvec.js';

// Where a fill stands: the vector array and the word of its last vector, counts, and the
// physical end and length of the last vector (what the next piece must meet to merge).
class FillState {
  vecs: Uint32Array;
  w: number;
  count = 0;
  capacity: number;
  size = 0;
  end = -1;
  curLen = 0;
  constructor(vecs: Uint32Array, base: number, capacity: number) {
    this.vecs = vecs;
    this.w = base - BVEC_STRIDE;
    this.capacity = capacity;
  }
}

// One piece through the rule; false when it needs a new vector and none is free.
function addOne(st: FillState, pfn: number, off: number, len: number, cap: number, bioSized: boolean): boolean {
  const phys = pfn * PAGE_SIZE + off;
  if (bioSized && st.size > BIO_MAX_SIZE - len) return false;
  if (phys === st.end && st.curLen + len <= cap) {
    st.curLen += len;
    st.vecs[st.w + BVEC_LEN] = st.curLen;
  } else {
    if (st.count >= st.capacity) return false;
    st.w += BVEC_STRIDE;
    st.vecs[st.w + BVEC_PAGE] = pfn;
    st.vecs[st.w + BVEC_PAGE_HI] = 0;
    st.vecs[st.w + BVEC_LEN] = len;
    st.vecs[st.w + BVEC_OFFSET] = off;
    st.count++;
    st.curLen = len;
  }
  st.end = phys + len;
  st.size += len;
  return true;
}

// Whole pages [from, to) through the rule until no vector is free; returns the page reached.
function addPages(st: FillState, pages: Uint32Array, from: number, to: number, cap: number): number {
  const vecs = st.vecs;
  const capacity = st.capacity;
  // locals rather than imported bindings and module constants inside the loop
  const page = PAGE_SIZE;
  const fLen = BVEC_LEN;
  const fPage = BVEC_PAGE;
  const fPageHi = BVEC_PAGE_HI;
  const fOff = BVEC_OFFSET;
  const stride = BVEC_STRIDE;
  let w = st.w;
  let count = st.count;
  let end = st.end;
  let curLen = st.curLen;
  let i = from;
  for (; i < to; i++) {
    const pfn = pages[i]!;
    const phys = pfn * page;
    if (phys === end && curLen + page <= cap) {
      curLen += page;
      vecs[w + fLen] = curLen;
    } else {
      if (count >= capacity) break;
      w += stride;
      vecs[w + fPage] = pfn;
      vecs[w + fPageHi] = 0;
      vecs[w + fLen] = page;
      vecs[w + fOff] = 0;
      count++;
      curLen = page;
    }
    end = phys + page;
  }
  st.size += (i - from) * page;
  st.w = w;
  st.count = count;
  st.end = end;
  st.curLen = curLen;
  return i;
}

/**
 * Fills one flat array with `length` bytes of `pages` from byte `offset` of the first,
 * merging as `bio_add_page` does (vectors at most `cap` bytes). Allocates the array only.
 * Trusts its arguments. Cost: O(pages).
 */
export function fillFlat(pages: Uint32Array, offset: number, length: number, cap: number): BvecArray {
  const need = Math.ceil((offset + length) / PAGE_SIZE);
  const arr = new BvecArray(need);
  const st = new FillState(arr.vecs, 0, need);
  forEachPiece(st, pages, offset, length, cap, false, arrayFull);
  arr.count = st.count;
  return arr;
}

/**
 * Fills a chain of bios (each of up to 256 pooled vectors, sized for the pages left) with the
 * bytes, as a submitter calls `bio_add_page` and allocates the next bio when one refuses.
 * Trusts its arguments. Cost: O(pages); one pooled slot per bio, no typed array per bio.
 */
export function fillBios(memory: PhysicalMemory, pages: Uint32Array, offset: number, length: number, cap: number): Bio {
  const need = Math.ceil((offset + length) / PAGE_SIZE);
  const head = new Bio({ maxVecs: Math.min(BIO_MAX_VECS, need), memory });
  let bio = head;
  const st = new FillState(head.vecs, head.base, head.maxVecs);
  forEachPiece(st, pages, offset, length, cap, true, (nextPage) => {
    // the bio refused: close it and chain the next, sized for the pages left
    bio.biVcnt = st.count;
    bio.biIter.biSize = st.size;
    const next = new Bio({ maxVecs: Math.min(BIO_MAX_VECS, need - nextPage), memory });
    bio.biNext = next;
    bio = next;
    st.vecs = next.vecs;
    st.w = next.base - BVEC_STRIDE;
    st.capacity = next.maxVecs;
    st.count = 0;
    st.size = 0;
    st.end = -1;
  });
  bio.biVcnt = st.count;
  bio.biIter.biSize = st.size;
  return head;
}

// fillFlat's array holds a vector per page the bytes touch, so it is never full; should that
// ever break, fail loudly rather than loop.
function arrayFull(): never {
  return fail('ENOSPC', 'fillFlat: the array was sized for every page, yet a piece found it full');
}

// The first piece, the whole pages between, the last piece; `full` opens a new container
// when one refuses (at page index i).
function forEachPiece(st: FillState, pages: Uint32Array, offset: number, length: number, cap: number, bioSized: boolean, full: (i: number) => void): void {
  const firstLen = Math.min(length, PAGE_SIZE - offset);
  // a fresh container (capacity ≥ 1, size 0) always takes a piece of at most a page
  addOne(st, pages[0]!, offset, firstLen, cap, bioSized);
  let left = length - firstLen;
  const whole = Math.floor(left / PAGE_SIZE);
  let i = 1;
  const stop = 1 + whole;
  while (i < stop) {
    // a bio holds at most BIO_MAX_SIZE bytes
    const room = bioSized ? Math.floor((BIO_MAX_SIZE - st.size) / PAGE_SIZE) : stop - i;
    const to = Math.min(stop, i + room);
    i = addPages(st, pages, i, to, cap);
    if (i < stop) full(i);
  }
  left -= whole * PAGE_SIZE;
  if (left > 0 && !addOne(st, pages[stop]!, 0, left, cap, bioSized)) {
    full(stop);
    addOne(st, pages[stop]!, 0, left, cap, bioSized);
  }
}
