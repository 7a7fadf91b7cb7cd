// The foundation demo: a process maps memory, the CPU writes it, a driver pins it for DMA, and
// the model shows what the kernel's counters, limits and failure modes say at each step.

import {
  AddressSpace, FOLL_LONGTERM, FOLL_WRITE, GUP_PIN_COUNTING_BIAS, IodescError, PAGE_SIZE, PhysicalMemory,
  folioMaybeDmaPinned, folioPinCount, folioRefCount, ibUmemChargePinnedVm, ibUmemUnchargePinnedVm,
  leakReport, listBackends, mmAccountPinnedPages, mmUnaccountPinnedPages, newMmPin, pinUserPagesFast,
  unpinUserPages, unpinUserPagesDirtyLock,
} from '@iodesc/core';

const MiB = 2 ** 20;

/** Physically contiguous runs in `pages[0..n)`: the fewest segments a merging descriptor needs. */
export function contiguousRuns(pages: Uint32Array, n: number): number {
  let runs = n > 0 ? 1 : 0;
  for (let i = 1; i < n; i++) if (pages[i] !== pages[i - 1]! + 1) runs++;
  return runs;
}

/** Distinct folios among `pages[0..n)`. */
function folioCount(memory: PhysicalMemory, pages: Uint32Array, n: number): number {
  let count = 0;
  let last = -1;
  for (let i = 0; i < n; i++) {
    const head = memory.folioHead(pages[i]!);
    if (head !== last) count++;
    last = head;
  }
  return count;
}

function checksum(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

function errorText(e: unknown): string {
  return e instanceof IodescError ? `IodescError ${e.code}` : String(e);
}

// Untouched memory reads as the zero page; what a pin gets there depends on how long it holds.
function zeroPageSection(memory: PhysicalMemory, mm: AddressSpace, out: (line: string) => void): void {
  const buf = mm.mmap(PAGE_SIZE);
  const thp = mm.mmap(2 * MiB, { thp: true });
  const one = new Uint32Array(1);
  out('Pins of memory never written:');
  pinUserPagesFast(mm, buf, 1, 0, one);
  out(`  short-term read-only pin: pfn ${one[0]} (the zero page: ${one[0] === memory.zeroPfn ? 'yes' : 'no'}), pins taken ${memory.stats.nrFollPinAcquired - memory.stats.nrFollPinReleased}`);
  unpinUserPages(memory, one, 1);
  pinUserPagesFast(mm, buf, 1, FOLL_LONGTERM, one);
  out(`  long-term read-only pin:  pfn ${one[0]} (a page of its own: gup_must_unshare), pin count ${folioPinCount(memory, one[0]!)}`);
  unpinUserPages(memory, one, 1);
  pinUserPagesFast(mm, thp, 1, 0, one);
  const hz = memory.folioHead(one[0]!);
  out(`  read-only pin in a THP range: the huge zero folio (pfn ${hz}), pinned and counted like any large folio: pin count ${folioPinCount(memory, hz)}`);
  unpinUserPages(memory, one, 1);
  mm.munmap(buf, PAGE_SIZE);
  mm.munmap(thp, 2 * MiB);
  out('');
}

/** Runs the demo, writing its lines through `out`. Returns the leak report's length (0 when clean). */
export function runPinningDemo(out: (line: string) => void, seed = 7): number {
  const memory = new PhysicalMemory({ bytes: 1024 * MiB, seed });
  const mm = new AddressSpace(memory);
  out(`Physical memory: 1 GiB = ${memory.nrPages} frames of ${PAGE_SIZE} B, free-list shuffle seed ${seed}`);

  const size = 8 * MiB;
  const nr = size / PAGE_SIZE;
  const small = mm.mmap(size);
  const huge = mm.mmap(size, { thp: true });
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >>> 12)) & 0xff;
  mm.write(small, data);
  mm.write(huge, data);
  out(`A process maps two ${size / MiB} MiB anonymous buffers (4 KiB pages at 0x${small.toString(16)}, THP at 0x${huge.toString(16)})`);
  out(`and the CPU fills both: checksum ${checksum(data)}; frames holding bytes: ${memory.store.materialised}`);
  out('');

  out(`pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM) over each buffer (${nr} pages):`);
  out('  buffer      folios  runs  refcount of 1st folio     pincount  maybe_dma_pinned');
  const pages = { small: new Uint32Array(nr), huge: new Uint32Array(nr) };
  for (const [name, addr] of [['small', small], ['huge', huge]] as const) {
    const p = pages[name];
    const got = pinUserPagesFast(mm, addr, nr, FOLL_WRITE | FOLL_LONGTERM, p, { owner: `demo:${name}` });
    const head = memory.folioHead(p[0]!);
    const ref = folioRefCount(memory, head);
    const large = memory.order[head]! > 0;
    const refNote = large ? `${ref} (1 mapping + ${ref - 1} pins)` : `${ref} (1 + ${GUP_PIN_COUNTING_BIAS} bias)`;
    out(`  ${name === 'small' ? '4 KiB pages' : '2 MiB THP  '} ${String(folioCount(memory, p, got)).padStart(6)}  ${String(contiguousRuns(p, got)).padStart(4)}  ${refNote.padEnd(24)}  ${String(large ? folioPinCount(memory, head) : '-').padStart(8)}  ${folioMaybeDmaPinned(memory, head) ? 'yes' : 'no'}`);
  }
  out('  (runs = physically contiguous stretches: the fewest segments a merging descriptor needs)');
  out('');

  out('Locked-memory accounting, RLIMIT_MEMLOCK = 8 MiB (2048 pages):');
  try {
    ibUmemChargePinnedVm(mm, 2 * nr);
    out('  RDMA registration of both buffers: charged');
  } catch (e) {
    out(`  RDMA registration of both buffers (${2 * nr} pages to pinned_vm): ${errorText(e)}`);
  }
  mm.capIpcLock = true;
  ibUmemChargePinnedVm(mm, 2 * nr);
  out(`  ... with CAP_IPC_LOCK: charged, pinned_vm = ${mm.pinnedVm} pages`);
  ibUmemUnchargePinnedVm(mm, 2 * nr);
  mm.capIpcLock = false;
  const mmp = newMmPin();
  mmAccountPinnedPages(mm, mmp, 64 * 1024);
  out(`  MSG_ZEROCOPY send of 64 KiB: locked_vm += (65536 >> 12) + 2 = ${mm.user.lockedVm} pages`);
  mmUnaccountPinnedPages(mmp);
  out('');

  unpinUserPagesDirtyLock(memory, pages.small, nr, true);
  unpinUserPagesDirtyLock(memory, pages.huge, nr, true);
  out(`unpin_user_pages_dirty_lock(..., true): first page dirty = ${memory.isDirty(pages.small[0]!)}; pins released = ${memory.stats.nrFollPinReleased}`);
  try {
    unpinUserPages(memory, pages.small, 1);
  } catch (e) {
    out(`unpinning the first page again: ${errorText(e)} (the kernel would WARN)`);
  }

  out('');
  zeroPageSection(memory, mm, out);

  // 4 pages with the last unmapped again: a hole after 3 pages, whatever lies beyond it
  const tail = mm.mmap(4 * PAGE_SIZE);
  mm.munmap(tail + 3 * PAGE_SIZE, PAGE_SIZE);
  const short = new Uint32Array(8);
  const got = pinUserPagesFast(mm, tail, 8, FOLL_WRITE, short, { owner: 'demo:short' });
  out(`pin of 8 pages over a 3-page mapping followed by a hole: got ${got}; the caller owns exactly those and releases them`);
  unpinUserPages(memory, short, got);

  mm.munmap(small, size);
  mm.munmap(huge, size);
  mm.munmap(tail, 3 * PAGE_SIZE);
  const leaks = leakReport(memory);
  out(`Leak report: ${leaks.length === 0 ? 'empty' : leaks.map((l) => l.detail).join('; ')}`);
  const backends = listBackends();
  out(`Registered descriptor backends: ${backends.length > 0 ? backends.join(', ') : 'none'}`);
  return leaks.length;
}
