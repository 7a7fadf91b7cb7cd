// The lost write that put_user_page() was made for (the comment above mm/gup.c's
// writable_file_mapping_allowed): a device writes a pinned page-cache page after writeback has
// cleaned it; unless the pin is released dirty, the file never receives those bytes.

import { FOLL_LONGTERM, FOLL_WRITE, PAGE_SIZE } from '../constants.js';
import { checkInt, checkOptions, fail, hex, IodescError } from '../errors.js';
import { createFile } from './file.js';
import { folioTestDirty } from './filemap.js';
import { pinUserPagesFast } from './gup.js';
import { PhysicalMemory } from './memory.js';
import { AddressSpace } from './mm.js';
import { dropCaches } from './reclaim.js';
import { unpinUserPages, unpinUserPagesDirtyLock } from './unpin.js';
import { writeback } from './writeback.js';

/** Options of `lostWriteDemo`; all optional. */
export interface LostWriteOptions {
  /** What the process writes through its shared mapping first, printable ASCII (default "old data from the CPU"). */
  cpuData?: string;
  /** What the device writes into the pinned page later (default "NEW DATA FROM THE DEVICE"). */
  deviceData?: string;
  /** Seeds the model memory's free-list shuffle (default 1). */
  seed?: number;
}

/** One run of the scenario. */
export interface LostWriteRun {
  /** Whether the driver released its pin with `unpinUserPagesDirtyLock(…, true)`. */
  dirtyOnRelease: boolean;
  /** The release call the driver made. */
  released: 'unpinUserPages' | 'unpinUserPagesDirtyLock(…, true)';
  /** The page-cache page the device wrote. */
  pfn: number;
  cpuData: string;
  deviceData: string;
  /** The errno a FOLL_LONGTERM | FOLL_WRITE pin of the same page got (mainline refuses it). */
  longTermPinRefused: string;
  /** Pages the writeback before the device's write stored (the CPU's data). */
  firstWriteback: number;
  /** Whether the page was dirty just after the driver released it. */
  dirtyAfterRelease: boolean;
  /** Pages the writeback after the release stored: 0 means the device's bytes were skipped. */
  secondWriteback: number;
  /** Pages `dropCaches` freed afterwards. */
  dropped: number;
  /** What the file's store holds afterwards (as many bytes as `cpuData`). */
  fileHolds: string;
  /** The file read back through a fresh mapping (from the store, the cache having been dropped). */
  rereadThroughMapping: string;
  /** True when the device's data did not reach the file. */
  lost: boolean;
  /** The steps, one line each. */
  steps: string[];
}

/** What `lostWriteDemo` returns. */
export interface LostWriteReport {
  /** Released clean (`unpinUserPages`): the device's data is lost. */
  withoutFix: LostWriteRun;
  /** Released dirty (`unpinUserPagesDirtyLock(…, true)`): the file holds it. */
  withFix: LostWriteRun;
  /** Both runs as printable lines. */
  text: string;
}

// ASCII both ways (core has no TextEncoder in its browser-and-Node lib set); NULs past the
// text are dropped when shown.
const enc = {
  encode(s: string): Uint8Array {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7e || c < 0x20) fail('EINVAL', `demo text must be printable ASCII, got code ${c} at ${i}`);
      out[i] = c;
    }
    return out;
  },
};
const dec = {
  decode(b: Uint8Array): string {
    let end = b.length;
    while (end > 0 && b[end - 1] === 0) end--;
    return String.fromCharCode(...b.subarray(0, end));
  },
};

/**
 * Runs the lost-write scenario twice, releasing the pin clean then dirty, each on a fresh 16 MiB
 * machine: a process writes a shared file mapping; a driver pins the page short-term with
 * FOLL_WRITE (a long-term write pin is refused with EFAULT); writeback stores the CPU's data and
 * write-protects and cleans the page; the device writes the pinned page (`memory.writePhys`);
 * the driver releases it; the process unmaps (a clean entry hands nothing to the page);
 * writeback runs again; `dropCaches` frees the page. Returns both runs and their text.
 * EINVAL for bad options (a string that is empty, longer than a page, or not printable ASCII, a bad seed).
 */
export function lostWriteDemo(opts?: LostWriteOptions): LostWriteReport {
  const o = checkOptions('opts', opts);
  const cpuData = o.cpuData ?? 'old data from the CPU';
  const deviceData = o.deviceData ?? 'NEW DATA FROM THE DEVICE';
  if (typeof cpuData !== 'string' || typeof deviceData !== 'string') fail('EINVAL', 'cpuData and deviceData must be strings');
  const cpuBytes = enc.encode(cpuData);
  const devBytes = enc.encode(deviceData);
  checkInt('cpuData length in bytes', cpuBytes.length, 1, PAGE_SIZE);
  checkInt('deviceData length in bytes', devBytes.length, 1, PAGE_SIZE);
  const seed = o.seed === undefined ? 1 : checkInt('seed', o.seed, 0, 0xffffffff);
  const withoutFix = runOnce(false, cpuBytes, devBytes, seed);
  const withFix = runOnce(true, cpuBytes, devBytes, seed);
  const text = [
    'The lost write: a device writes a pinned page-cache page after writeback cleaned it.',
    '',
    'Released with unpinUserPages (no dirtying):',
    ...withoutFix.steps.map((s) => '  ' + s),
    '',
    'Released with unpinUserPagesDirtyLock(…, true):',
    ...withFix.steps.map((s) => '  ' + s),
  ].join('\n');
  return { withoutFix, withFix, text };
}

function runOnce(dirtyOnRelease: boolean, cpuBytes: Uint8Array, devBytes: Uint8Array, seed: number): LostWriteRun {
  const steps: string[] = [];
  const memory = new PhysicalMemory({ bytes: 16 * 2 ** 20, seed });
  const mm = new AddressSpace(memory);
  const file = createFile(memory, { size: PAGE_SIZE });
  const addr = mm.mmap(PAGE_SIZE, { backing: 'file', shared: true, file });
  const show = (b: Uint8Array) => JSON.stringify(dec.decode(b));
  const len = Math.max(cpuBytes.length, devBytes.length);

  mm.write(addr, cpuBytes);
  const pfn = mm.lookupPfn(addr);
  steps.push(`1. the CPU writes ${show(cpuBytes)} at ${hex(addr)} (a shared file mapping): pfn ${pfn} dirty = ${folioTestDirty(memory, pfn)}`);

  const pages = new Uint32Array(1);
  let refused = 'none';
  try {
    pinUserPagesFast(mm, addr, 1, FOLL_WRITE | FOLL_LONGTERM, pages);
    unpinUserPages(memory, pages, 1);
  } catch (e) {
    if (!(e instanceof IodescError)) throw e;
    refused = e.code;
  }
  pinUserPagesFast(mm, addr, 1, FOLL_WRITE, pages);
  steps.push(`2. a driver pins it for DMA: FOLL_WRITE | FOLL_LONGTERM is refused (${refused}); a short-term FOLL_WRITE pin gets pfn ${pages[0]}`);

  const firstWriteback = writeback(memory);
  steps.push(`3. writeback stores ${firstWriteback} page: the file holds ${show(file.readStore(0, cpuBytes.length))}; the page is clean (dirty = ${folioTestDirty(memory, pfn)}) and write-protected`);

  memory.writePhys(pfn * PAGE_SIZE, devBytes);
  steps.push(`4. the device writes ${show(devBytes)} into pfn ${pfn} by DMA: no page table sees it, dirty = ${folioTestDirty(memory, pfn)}`);

  const released = dirtyOnRelease ? 'unpinUserPagesDirtyLock(…, true)' : 'unpinUserPages';
  if (dirtyOnRelease) unpinUserPagesDirtyLock(memory, pages, 1, true);
  else unpinUserPages(memory, pages, 1);
  const dirtyAfterRelease = folioTestDirty(memory, pfn);
  steps.push(`5. the driver releases the pin with ${released}${dirtyOnRelease ? '' : ' (the page is not dirtied)'}: dirty = ${dirtyAfterRelease}`);

  mm.munmap(addr, PAGE_SIZE);
  steps.push(`6. the process unmaps: its entry is clean since writeback, so it hands no dirt to the page (dirty = ${folioTestDirty(memory, pfn)})`);

  const secondWriteback = writeback(memory);
  const dropped = dropCaches(memory);
  steps.push(`7. writeback stores ${secondWriteback} page(s); drop_caches frees ${dropped} page(s)`);

  const fileHolds = dec.decode(file.readStore(0, len));
  const again = mm.mmap(PAGE_SIZE, { backing: 'file', shared: true, file });
  const reread = dec.decode(mm.read(again, len));
  mm.munmap(again, PAGE_SIZE);
  const lost = !fileHolds.startsWith(dec.decode(devBytes));
  steps.push(`8. the file holds ${JSON.stringify(fileHolds)}, read back through a new mapping: ${JSON.stringify(reread)}`);
  steps.push(lost ? "   the device's write is lost." : "   the device's write reached the file.");
  return {
    dirtyOnRelease, released, pfn, cpuData: dec.decode(cpuBytes), deviceData: dec.decode(devBytes), longTermPinRefused: refused,
    firstWriteback, dirtyAfterRelease, secondWriteback, dropped, fileHolds, rereadThroughMapping: reread, lost, steps,
  };
}
