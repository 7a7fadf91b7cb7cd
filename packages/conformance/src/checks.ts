// The plain checks behind every conformance group: each throws a ConformanceError naming what
// differs, so the groups, a backend's own tests and model-based tests can all call them directly.

import { FragArray, IodescError, leakReport, PAGE_SIZE } from '@iodesc/core';
import type { AddressSpace, BackendCapabilities, Errno, Frag, IoDescriptor, PhysicalMemory, Segment } from '@iodesc/core';

/** A check found a backend breaking the descriptor contract. */
export class ConformanceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConformanceError';
  }
}

function failCheck(message: string): never {
  throw new ConformanceError(message);
}

/** A run of bytes inside one page: the unit two descriptions of the same bytes are compared in. */
export interface PagePiece {
  pfn: number;
  offset: number;
  length: number;
}

const show = (p: PagePiece | undefined): string => (p === undefined ? 'nothing' : `{ pfn ${p.pfn}, offset ${p.offset}, length ${p.length} }`);

// Appends bytes [offset, offset + length) of `pfn`, joining them to the previous piece when they
// continue it inside the same page: the canonical form does not depend on where entries split.
function pushPiece(out: PagePiece[], pfn: number, offset: number, length: number): void {
  const last = out[out.length - 1];
  if (last !== undefined && last.pfn === pfn && last.offset + last.length === offset) last.length += length;
  else out.push({ pfn, offset, length });
}

// Splits a physically contiguous run starting at byte `offset` of `pfn` at page boundaries.
function pushRun(out: PagePiece[], pfn: number, offset: number, length: number): void {
  let p = pfn + Math.floor(offset / PAGE_SIZE);
  let off = offset % PAGE_SIZE;
  while (length > 0) {
    const n = Math.min(length, PAGE_SIZE - off);
    pushPiece(out, p, off, n);
    length -= n;
    p++;
    off = 0;
  }
}

/**
 * The bytes `segments` describe, as page pieces: a segment that spans pages covers `pfn`,
 * `pfn + 1`, ... (it claims they are physically contiguous). Cost: O(pages covered).
 */
export function piecesOfSegments(segments: Iterable<Segment>): PagePiece[] {
  const out: PagePiece[] = [];
  for (const s of segments) pushRun(out, s.pfn, s.offset, s.length);
  return out;
}

/** The bytes `fromPages(memory, pages, offset, length)` must describe, as page pieces. */
export function piecesOfPages(pages: Uint32Array, offset: number, length: number): PagePiece[] {
  const out: PagePiece[] = [];
  let off = offset;
  for (let i = 0; length > 0; i++) {
    const pfn = pages[i];
    if (pfn === undefined) failCheck(`page array of ${pages.length} holds fewer pages than offset ${offset} + length needs`);
    const n = Math.min(length, PAGE_SIZE - off);
    pushPiece(out, pfn, off, n);
    length -= n;
    off = 0;
  }
  return out;
}

/** The bytes at user range [addr, addr + length) as `mm` maps them now (`mm.lookupPfn`); no fault taken. */
export function piecesOfUserRange(mm: AddressSpace, addr: number, length: number): PagePiece[] {
  const out: PagePiece[] = [];
  let a = addr;
  const end = addr + length;
  while (a < end) {
    const pfn = mm.lookupPfn(a);
    if (pfn < 0) failCheck(`user address 0x${a.toString(16)} is not mapped after getUser`);
    const off = a % PAGE_SIZE;
    const n = Math.min(end - a, PAGE_SIZE - off);
    pushPiece(out, pfn, off, n);
    a += n;
  }
  return out;
}

/**
 * The bytes fragments describe, from a FragArray or a list of `Frag`s (`skb.frags()`): a
 * fragment's offset may run past its first page (a large folio's head and an offset from it).
 */
export function piecesOfFrags(frags: FragArray | Iterable<Frag>): PagePiece[] {
  const out: PagePiece[] = [];
  if (frags instanceof FragArray) for (let i = 0; i < frags.count; i++) pushRun(out, frags.pfn(i), frags.offset(i), frags.length(i));
  else for (const f of frags) pushRun(out, f.pfn, f.offset, f.length);
  return out;
}

/** Compares two piece lists; `what` names the left side in the message. */
export function checkPiecesEqual(actual: PagePiece[], expected: PagePiece[], what: string): void {
  const n = Math.max(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a === undefined || e === undefined || a.pfn !== e.pfn || a.offset !== e.offset || a.length !== e.length) {
      failCheck(`${what} differ at page piece ${i}: got ${show(a)}, expected ${show(e)} (${actual.length} vs ${expected.length} pieces)`);
    }
  }
}

/**
 * Checks that `desc.segments()` describes exactly `expected`, in order, offsets included; that
 * each entry has integer fields, `0 ≤ offset < PAGE_SIZE` and `length > 0`; and that
 * `desc.length` and `desc.nrSegments` agree with the entries.
 */
export function checkSegmentsCover(desc: IoDescriptor, expected: PagePiece[]): void {
  const segs = [...desc.segments()];
  let total = 0;
  segs.forEach((s, i) => {
    if (!Number.isInteger(s.pfn) || s.pfn < 0) failCheck(`segment ${i}: pfn ${s.pfn} is not a PFN`);
    if (!Number.isInteger(s.offset) || s.offset < 0 || s.offset >= PAGE_SIZE) failCheck(`segment ${i}: offset ${s.offset} is outside [0, ${PAGE_SIZE})`);
    if (!Number.isInteger(s.length) || s.length <= 0) failCheck(`segment ${i}: length ${s.length} is not a positive integer`);
    total += s.length;
  });
  if (segs.length !== desc.nrSegments) failCheck(`nrSegments is ${desc.nrSegments} but segments() yields ${segs.length}`);
  if (total !== desc.length) failCheck(`length is ${desc.length} but segments() cover ${total} bytes`);
  const want = expected.reduce((t, p) => t + p.length, 0);
  if (total !== want) failCheck(`segments() cover ${total} bytes, ${want} expected`);
  checkPiecesEqual(piecesOfSegments(segs), expected, 'segments()');
}

/**
 * Checks the entry limits a backend promises: without `capabilities.multiPage` no entry
 * crosses a page boundary; no entry is longer than `maxSegmentSize` when one was asked for.
 */
export function checkSegmentLimits(desc: IoDescriptor, caps: BackendCapabilities, maxSegmentSize?: number): void {
  let i = 0;
  for (const s of desc.segments()) {
    if (!caps.multiPage && s.offset + s.length > PAGE_SIZE) failCheck(`segment ${i} (${show(s)}) crosses a page boundary, but capabilities.multiPage is false`);
    if (maxSegmentSize !== undefined && s.length > maxSegmentSize) failCheck(`segment ${i} is ${s.length} bytes, over maxSegmentSize ${maxSegmentSize}`);
    i++;
  }
}

/** Checks that two walks of `segments()` agree and hand out fresh objects, and that `desc.backend` is `name`. */
export function checkSegmentsFresh(desc: IoDescriptor, name: string): void {
  if (desc.backend !== name) failCheck(`descriptor says backend '${desc.backend}', made by '${name}'`);
  const a = [...desc.segments()];
  const b = [...desc.segments()];
  if (a.length !== b.length) failCheck(`two walks of segments() yield ${a.length} and ${b.length} entries`);
  a.forEach((s, i) => {
    const t = b[i]!;
    if (s === t) failCheck(`segments() yields the same object for entry ${i} twice (a fresh object per entry is promised)`);
    if (s.pfn !== t.pfn || s.offset !== t.offset || s.length !== t.length) failCheck(`two walks of segments() differ at entry ${i}`);
  });
}

/** Checks `footprint()`: non-negative integers, at least one entry per segment, a breakdown summing to `bytes`. */
export function checkFootprint(desc: IoDescriptor): void {
  const f = desc.footprint();
  for (const k of ['bytes', 'allocations', 'entries'] as const) {
    if (!Number.isInteger(f[k]) || f[k] < 0) failCheck(`footprint().${k} = ${f[k]} is not a non-negative integer`);
  }
  if (f.entries < desc.nrSegments) failCheck(`footprint().entries = ${f.entries}, fewer than the ${desc.nrSegments} segments`);
  if (f.bytes > 0 && f.allocations === 0) failCheck(`footprint() charges ${f.bytes} bytes to no allocation`);
  const sum = Object.values(f.breakdown).reduce((t, v) => t + v, 0);
  if (sum !== f.bytes) failCheck(`footprint().breakdown sums to ${sum}, bytes is ${f.bytes}`);
}

/** Every per-frame counter of a memory, copied (cheap on the suite's 64 MiB memories). */
export interface CountSnapshot {
  refcount: Int32Array;
  pins: Int32Array;
  gets: Int32Array;
  mapcount: Int32Array;
  nrFreePages: number;
}

/** Copies every refcount, pin count, FOLL_GET count and mapcount of `memory`. Cost: O(frames). */
export function snapshotCounts(memory: PhysicalMemory): CountSnapshot {
  return {
    refcount: memory.refcount.slice(),
    pins: memory.pins.slice(),
    gets: memory.gets.slice(),
    mapcount: memory.mapcount.slice(),
    nrFreePages: memory.nrFreePages,
  };
}

/**
 * `before` as it would read once the address space has faulted in the small anon pages `pfns`
 * (free before, now mapped once with refcount 1): what a failed call may leave behind, as the
 * kernel leaves pages a GUP faulted in before it failed.
 */
export function withFaultedIn(before: CountSnapshot, pfns: Iterable<number>): CountSnapshot {
  const s = { ...before, refcount: before.refcount.slice(), mapcount: before.mapcount.slice() };
  for (const p of pfns) {
    s.refcount[p] = 1;
    s.mapcount[p] = 1;
    s.nrFreePages--;
  }
  return s;
}

/** Checks that every counter of `memory` equals `before`; `when` says after what. */
export function checkCountsRestored(memory: PhysicalMemory, before: CountSnapshot, when: string): void {
  const now = snapshotCounts(memory);
  for (const field of ['pins', 'gets', 'refcount', 'mapcount'] as const) {
    const a = now[field];
    const b = before[field];
    for (let pfn = 0; pfn < a.length; pfn++) {
      if (a[pfn] !== b[pfn]) failCheck(`${when}: ${field} of pfn ${pfn} is ${a[pfn]}, was ${b[pfn]}`);
    }
  }
  if (now.nrFreePages !== before.nrFreePages) failCheck(`${when}: ${now.nrFreePages} free pages, was ${before.nrFreePages}`);
}

/**
 * Checks that, against `before`, exactly the pages `pfns` gained one FOLL_PIN each (a page listed
 * twice, twice) and nothing gained a FOLL_GET reference: counted per folio, as the pin count is
 * kept at the head. The zero page carries no pins and is skipped.
 */
export function checkPinnedOnce(memory: PhysicalMemory, before: CountSnapshot, pfns: Iterable<number>): void {
  const want = new Map<number, number>();
  for (const p of pfns) {
    if (p === memory.zeroPfn) continue;
    const head = memory.folioHead(p);
    want.set(head, (want.get(head) ?? 0) + 1);
  }
  for (let pfn = 0; pfn < memory.nrPages; pfn++) {
    const dPins = memory.pins[pfn]! - before.pins[pfn]!;
    const dGets = memory.gets[pfn]! - before.gets[pfn]!;
    if (dGets !== 0) failCheck(`folio ${pfn} gained ${dGets} FOLL_GET reference(s): getUser must pin (FOLL_PIN)`);
    const w = want.get(pfn) ?? 0;
    if (dPins !== w) failCheck(`folio ${pfn} gained ${dPins} pin(s) while the descriptor is held, ${w} expected`);
  }
}

/** Checks that each page of `pfns` (zero page aside) is dirty when `dirty`, clean otherwise. */
export function checkDirty(memory: PhysicalMemory, pfns: Iterable<number>, dirty: boolean): void {
  for (const p of pfns) {
    if (p === memory.zeroPfn) continue;
    if (memory.isDirty(p) !== dirty) failCheck(`pfn ${p} is ${dirty ? 'clean' : 'dirty'}, expected ${dirty ? 'dirty' : 'clean'}`);
  }
}

/** Checks that `leakReport(memory)` is empty: no pin, reference or mapping left behind. */
export function checkNoLeaks(memory: PhysicalMemory): void {
  const report = leakReport(memory);
  if (report.length === 0) return;
  const lines = report.slice(0, 5).map((e) => `${e.kind} ${e.detail}${e.owner === undefined ? '' : ` (owner ${e.owner})`}`);
  failCheck(`leak report lists ${report.length} entr${report.length === 1 ? 'y' : 'ies'}: ${lines.join('; ')}`);
}

/** Runs `fn` and checks it throws an IodescError with `code`; returns the error. */
export function checkThrowsCode(fn: () => unknown, code: Errno, what: string): IodescError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof IodescError)) failCheck(`${what} threw ${String(e)}, not an IodescError ${code}`);
    if (e.code !== code) failCheck(`${what} threw ${e.code}, expected ${code} (${e.message})`);
    return e;
  }
  return failCheck(`${what} did not throw (expected ${code})`);
}

/** The PFNs `pieces` name, one per piece (a page split across pieces appears once per piece). */
export function pfnsOf(pieces: PagePiece[]): number[] {
  return pieces.map((p) => p.pfn);
}
