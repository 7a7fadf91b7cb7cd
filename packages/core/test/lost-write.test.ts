// The lost write (mm/gup.c, the comment above writable_file_mapping_allowed): a device writes a
// pinned page-cache page after writeback cleaned it; only a dirty release saves its data.

import { describe, expect, it } from 'vitest';
import {
  FOLL_WRITE, PAGE_SIZE, createFile, dropCaches, folioTestDirty, lostWriteDemo, pinUserPagesFast, reclaimPageCache,
  unpinUserPagesDirtyLock, writeback,
} from '../src/index.js';
import { expectCode, pattern, setup } from './helpers.js';

describe('the lost write', () => {
  it.each([
    ['released clean', false, 'dropCaches'],
    ['released dirty', true, 'dropCaches'],
    ['released clean', false, 'reclaim'],
    ['released dirty', true, 'reclaim'],
  ])('%s, then %s: the file holds the device data only when released dirty', (_label, dirtyOnRelease, drop) => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: 2 * PAGE_SIZE });
    const addr = mm.mmap(2 * PAGE_SIZE, { file, shared: true });
    const cpu = pattern(PAGE_SIZE, 1);
    const device = pattern(PAGE_SIZE, 100);
    mm.write(addr + PAGE_SIZE, cpu);
    const pages = new Uint32Array(1);
    expect(pinUserPagesFast(mm, addr + PAGE_SIZE, 1, FOLL_WRITE, pages)).toBe(1);
    const pfn = pages[0]!;
    expect(writeback(memory)).toBe(1);
    expect(folioTestDirty(memory, pfn)).toBe(false);
    memory.writePhys(pfn * PAGE_SIZE, device); // the DMA write: no page table, no dirty bit
    expect(folioTestDirty(memory, pfn)).toBe(false);
    unpinUserPagesDirtyLock(memory, pages, 1, dirtyOnRelease);
    mm.munmap(addr, 2 * PAGE_SIZE);
    expect(folioTestDirty(memory, pfn)).toBe(dirtyOnRelease);
    expect(writeback(memory)).toBe(dirtyOnRelease ? 1 : 0);
    if (drop === 'dropCaches') expect(dropCaches(memory)).toBe(1);
    else expect(reclaimPageCache(memory).reclaimed).toBe(1);
    expect(file.cachedPfn(1)).toBe(-1);
    const expected = dirtyOnRelease ? device : cpu;
    expect(file.readStore(PAGE_SIZE, PAGE_SIZE)).toEqual(expected);
    const again = mm.mmap(2 * PAGE_SIZE, { file, shared: true });
    expect(mm.read(again + PAGE_SIZE, PAGE_SIZE)).toEqual(expected);
  });

  it('keeps the device data while the page stays cached, so the loss shows only once it is dropped', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    const addr = mm.mmap(PAGE_SIZE, { file, shared: true });
    mm.write(addr, Uint8Array.of(1));
    const pages = new Uint32Array(1);
    pinUserPagesFast(mm, addr, 1, FOLL_WRITE, pages);
    writeback(memory);
    memory.writePhys(pages[0]! * PAGE_SIZE, Uint8Array.of(2));
    unpinUserPagesDirtyLock(memory, pages, 1, false);
    expect(mm.read(addr, 1)).toEqual(Uint8Array.of(2)); // the cache holds it ...
    expect(file.readStore(0, 1)).toEqual(Uint8Array.of(1)); // ... the file does not
  });
});

describe('lostWriteDemo', () => {
  it('loses the device data without the fix and keeps it with it', () => {
    const r = lostWriteDemo();
    expect(r.withoutFix).toMatchObject({
      dirtyOnRelease: false, released: 'unpinUserPages', longTermPinRefused: 'EFAULT', firstWriteback: 1, dirtyAfterRelease: false, secondWriteback: 0,
      dropped: 1, fileHolds: 'old data from the CPU', rereadThroughMapping: 'old data from the CPU', lost: true,
    });
    expect(r.withFix).toMatchObject({
      dirtyOnRelease: true, released: 'unpinUserPagesDirtyLock(…, true)', dirtyAfterRelease: true, secondWriteback: 1, dropped: 1,
      fileHolds: 'NEW DATA FROM THE DEVICE', rereadThroughMapping: 'NEW DATA FROM THE DEVICE', lost: false,
    });
    expect(r.text).toContain("the device's write is lost.");
    expect(r.text).toContain("the device's write reached the file.");
    expect(r.text).toContain('unpinUserPagesDirtyLock(…, true)');
  });

  it('takes its own texts and seed', () => {
    const r = lostWriteDemo({ cpuData: 'aaaa', deviceData: 'bb', seed: 9 });
    expect(r.withoutFix.fileHolds).toBe('aaaa');
    expect(r.withFix.fileHolds).toBe('bbaa');
  });

  it.each([
    ['an empty text', { cpuData: '' }],
    ['a text past a page', { deviceData: 'x'.repeat(PAGE_SIZE + 1) }],
    ['a text that is not ASCII', { cpuData: 'é' }],
    ['a text that is not a string', { deviceData: 5 }],
    ['a bad seed', { seed: -1 }],
    ['options that are not an object', 'fix'],
  ])('throws EINVAL for %s', (_label, opts) => {
    expectCode(() => lostWriteDemo(opts as never), 'EINVAL');
  });
});
