// Walking bio_vecs (include/linux/bvec.h): bvec_iter_advance and bvec_iter_advance_single, the
// multi-page view (mp_bvec_iter_*: a whole vector) and the single-page view (bvec_iter_*:
// clipped at the page boundary), for_each_bvec / bio_for_each_bvec and bio_for_each_segment.

import { checkInt, fail, PAGE_SIZE } from '@iodesc/core';
import type { BvecIter } from './bio.js';
import { Bio } from './bio.js';
import { BVEC_STRIDE, bvLen, bvOffset, bvPage, type BvecVector } from './bvec.js';

/** Checks `iter` is a `BvecIter` of whole numbers; EINVAL otherwise. */
export function checkBvecIter(name: string, iter: unknown): asserts iter is BvecIter {
  if (typeof iter !== 'object' || iter === null) fail('EINVAL', `${name} must be a bvec_iter object`);
  const it = iter as Record<string, unknown>;
  checkInt(`${name}.biSize`, it.biSize, 0, 2 ** 32 - 1);
  checkInt(`${name}.biIdx`, it.biIdx, 0, 2 ** 32 - 1);
  checkInt(`${name}.biBvecDone`, it.biBvecDone, 0, 2 ** 32 - 1);
  checkInt(`${name}.biSector`, it.biSector);
}

function checkVector(name: string, v: unknown): asserts v is BvecVector {
  if (typeof v !== 'object' || v === null || !((v as BvecVector).vecs instanceof Uint32Array)) fail('EINVAL', `${name} must be a Bio or a BvecArray`);
}

// The vectors `iter` walks may not index past what the array holds.
function checkWithin(v: BvecVector, iter: BvecIter): void {
  if (iter.biSize > 0 && v.base + (iter.biIdx + 1) * BVEC_STRIDE > v.vecs.length) fail('EINVAL', `iter.biIdx = ${iter.biIdx} lies past the vectors`);
}

/**
 * `bvec_iter_advance`: moves `iter` on by `bytes` over the vectors of `v` (a Bio or a
 * BvecArray), updating the object given. Past the end the kernel WARNs, sets `biSize` to 0 and
 * returns false; so does this. Zero-length vectors are stepped over only while bytes remain.
 * `biSector` is left alone (only the bio wrappers move it). EINVAL for a negative or
 * fractional `bytes` or a malformed iterator. Cost: O(vectors crossed).
 */
export function bvecIterAdvance(v: BvecVector, iter: BvecIter, bytes: number): boolean {
  checkVector('bio', v);
  checkBvecIter('iter', iter);
  checkInt('bytes', bytes, 0, 2 ** 32 - 1);
  checkWithin(v, iter);
  if (bytes > iter.biSize) {
    iter.biSize = 0;
    return false;
  }
  iter.biSize -= bytes;
  let left = bytes + iter.biBvecDone;
  let idx = iter.biIdx;
  const max = (v.vecs.length - v.base) / BVEC_STRIDE;
  while (left > 0 && idx < max && left >= bvLen(v, idx)) {
    left -= bvLen(v, idx);
    idx++;
  }
  iter.biIdx = idx;
  iter.biBvecDone = left;
  return true;
}

/** `bvec_iter_advance_single`: `bytes` never cross the current vector. Unchecked. */
export function bvecIterAdvanceSingle(v: BvecVector, iter: BvecIter, bytes: number): void {
  const done = iter.biBvecDone + bytes;
  if (done === bvLen(v, iter.biIdx)) {
    iter.biBvecDone = 0;
    iter.biIdx++;
  } else {
    iter.biBvecDone = done;
  }
  iter.biSize -= bytes;
}

/** `mp_bvec_iter_page`: the vector's first page. Unchecked (call while `biSize` > 0). */
export function mpBvecIterPage(v: BvecVector, iter: BvecIter): number {
  return bvPage(v, iter.biIdx);
}

/** `mp_bvec_iter_len`: what is left of the whole vector, within `biSize`. */
export function mpBvecIterLen(v: BvecVector, iter: BvecIter): number {
  return Math.min(iter.biSize, bvLen(v, iter.biIdx) - iter.biBvecDone);
}

/** `mp_bvec_iter_offset`: offset from the vector's first page (may pass PAGE_SIZE, as in the kernel). */
export function mpBvecIterOffset(v: BvecVector, iter: BvecIter): number {
  return bvOffset(v, iter.biIdx) + iter.biBvecDone;
}

/** `bvec_iter_page`: the page holding the next byte. */
export function bvecIterPage(v: BvecVector, iter: BvecIter): number {
  return bvPage(v, iter.biIdx) + Math.floor(mpBvecIterOffset(v, iter) / PAGE_SIZE);
}

/** `bvec_iter_offset`: the next byte's offset in its page. */
export function bvecIterOffset(v: BvecVector, iter: BvecIter): number {
  return mpBvecIterOffset(v, iter) % PAGE_SIZE;
}

/** `bvec_iter_len`: the multi-page length clipped at the page boundary. */
export function bvecIterLen(v: BvecVector, iter: BvecIter): number {
  return Math.min(mpBvecIterLen(v, iter), PAGE_SIZE - bvecIterOffset(v, iter));
}

/** `mp_bvec_iter_bvec`: the current whole vector as `{ pfn, offset, length }` (a fresh object). */
export function mpBvecIterBvec(v: BvecVector, iter: BvecIter): { pfn: number; offset: number; length: number } {
  return { pfn: mpBvecIterPage(v, iter), offset: mpBvecIterOffset(v, iter), length: mpBvecIterLen(v, iter) };
}

/** `bvec_iter_bvec`: the current single-page piece as `{ pfn, offset, length }` (a fresh object). */
export function bvecIterBvec(v: BvecVector, iter: BvecIter): { pfn: number; offset: number; length: number } {
  return { pfn: bvecIterPage(v, iter), offset: bvecIterOffset(v, iter), length: bvecIterLen(v, iter) };
}

/** A visitor of (page, offset, length): the page holds the first byte, offset < PAGE_SIZE. */
export type BvecVisitor = (pfn: number, offset: number, length: number) => void;

function walk(v: BvecVector, start: BvecIter, fn: BvecVisitor, single: boolean): void {
  if (typeof fn !== 'function') fail('EINVAL', 'fn must be a function');
  checkWithin(v, start);
  const it: BvecIter = { biSector: start.biSector, biSize: start.biSize, biIdx: start.biIdx, biBvecDone: start.biBvecDone };
  while (it.biSize > 0) {
    const len = single ? bvecIterLen(v, it) : mpBvecIterLen(v, it);
    fn(bvecIterPage(v, it), bvecIterOffset(v, it), len);
    bvecIterAdvanceSingle(v, it, len);
  }
}

/**
 * `bio_for_each_bvec` / `for_each_mp_bvec`: calls `fn` once per multi-page vector from the
 * bio's iterator (or `iter`), with the page of its first byte and the offset in that page.
 * The bio's own iterator is not moved. Cost: O(vectors), no allocation per vector.
 */
export function forEachBvec(v: Bio | BvecVector, fn: BvecVisitor, iter?: BvecIter): void {
  checkVector('bio', v);
  const start = iter ?? (v instanceof Bio ? v.biIter : fail('EINVAL', 'a BvecArray needs an iter'));
  checkBvecIter('iter', start);
  walk(v, start, fn, false);
}

/**
 * `bio_for_each_segment` / `for_each_bvec`: calls `fn` once per single-page piece (a vector
 * spanning pages is visited page by page). Cost: O(pages).
 */
export function forEachSegment(v: Bio | BvecVector, fn: BvecVisitor, iter?: BvecIter): void {
  checkVector('bio', v);
  const start = iter ?? (v instanceof Bio ? v.biIter : fail('EINVAL', 'a BvecArray needs an iter'));
  checkBvecIter('iter', start);
  walk(v, start, fn, true);
}
