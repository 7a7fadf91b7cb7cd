// A regular file as the memory model sees it: its backing store (the blocks on disk), its page
// cache (struct address_space: the i_pages index and the i_mmap set of VMAs mapping it).

import { PAGE_SIZE } from '../constants.js';
import { checkInt, checkOptions, fail } from '../errors.js';
import { checkMemory, type PhysicalMemory } from './memory.js';
import { PG_DIRTY, PG_PAGECACHE } from './page-flags.js';
import { VM_WRITE, type Vma } from './vma.js';

/** Largest file this model creates: 16 GiB (its page index is a typed array). */
export const MAX_FILE_SIZE = 16 * 2 ** 30;

/** Options of `createFile`. */
export interface CreateFileOptions {
  /** Size in bytes (`i_size`), 0 to 16 GiB; the file reads as zeros until written. */
  size: number;
}

/**
 * A file with a backing store and a page cache in `memory`. Built by `createFile`; mapped with
 * `mm.mmap(length, { backing: 'file', file, shared, offset })`.
 *
 * - `cache[index]` is PFN + 1 of the page-cache page holding file page `index` (0: not cached),
 *   the model of the `i_pages` xarray. The cache holds one reference on each of its pages.
 * - `mmaps` is every VMA mapping the file (`i_mmap`), walked by writeback's `folio_mkclean` and
 *   by reclaim's `try_to_unmap`.
 * - The store holds whole pages, materialised on the first byte written (a sparse file).
 */
export class CachedFile {
  readonly memory: PhysicalMemory;
  /** Bytes in the file (`i_size`). Fixed: truncate is not modelled. */
  readonly size: number;
  /** Pages the file spans: a page index at or past this is beyond end of file. */
  readonly nrPages: number;
  readonly cache: Uint32Array;
  readonly mmaps = new Set<Vma>();
  /**
   * Made by `mmap` without a file: nothing else holds it, so its last unmap releases it, page
   * cache and all, as the last `fput` of an unlinked file does.
   */
  temporary = false;
  private readonly blocks = new Map<number, Uint8Array>();

  /** @internal use `createFile`. */
  constructor(memory: PhysicalMemory, size: number) {
    this.memory = memory;
    this.size = size;
    this.nrPages = Math.ceil(size / PAGE_SIZE);
    this.cache = new Uint32Array(this.nrPages);
  }

  /**
   * Reads `length` bytes of the backing store from `offset` into a new array: what the disk
   * holds, not what the page cache holds. EINVAL for a range outside the file.
   */
  readStore(offset: number, length: number): Uint8Array {
    this.checkRange(offset, length);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const index = Math.floor(pos / PAGE_SIZE);
      const off = pos - index * PAGE_SIZE;
      const n = Math.min(length - done, PAGE_SIZE - off);
      const block = this.blocks.get(index);
      if (block !== undefined) out.set(block.subarray(off, off + n), done);
      done += n;
    }
    return out;
  }

  /**
   * Writes `bytes` into the backing store at `offset`, as a write to the disk beneath the file
   * system would: pages already in the page cache keep what they hold (drop them with
   * `dropCaches` to read the new bytes). EINVAL for a range outside the file.
   */
  writeStore(offset: number, bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) fail('EINVAL', 'bytes must be a Uint8Array');
    this.checkRange(offset, bytes.length);
    this.storeIn(offset, bytes, 0, bytes.length);
  }

  /** PFN of the page-cache page holding file page `index`, or -1 when it is not cached (`filemap_get_folio`, no reference taken). */
  cachedPfn(index: number): number {
    checkInt('index', index, 0, this.nrPages - 1);
    return this.cache[index]! - 1;
  }

  /** Unchecked: copies `len` bytes of `src[srcOff..]` to the store at byte `pos`. */
  storeIn(pos: number, src: Uint8Array, srcOff: number, len: number): void {
    let done = 0;
    while (done < len) {
      const index = Math.floor((pos + done) / PAGE_SIZE);
      const off = pos + done - index * PAGE_SIZE;
      const n = Math.min(len - done, PAGE_SIZE - off);
      let block = this.blocks.get(index);
      if (block === undefined) this.blocks.set(index, (block = new Uint8Array(PAGE_SIZE)));
      block.set(src.subarray(srcOff + done, srcOff + done + n), off);
      done += n;
    }
  }

  /** Unchecked: the stored page `index`, or undefined where nothing was ever stored (it reads as zeros). */
  storeBlock(index: number): Uint8Array | undefined {
    return this.blocks.get(index);
  }

  private checkRange(offset: number, length: number): void {
    checkInt('offset', offset, 0, this.size);
    checkInt('length', length, 0, this.size - offset);
  }
}

// Every file created in a memory, so that writeback and reclaim can walk all page caches (the
// super blocks' inode lists).
const filesByMemory = new WeakMap<PhysicalMemory, Set<CachedFile>>();

/** The files whose page caches live in `memory` (no validation: callers have checked it). */
export function filesOf(memory: PhysicalMemory): ReadonlySet<CachedFile> {
  return filesByMemory.get(memory) ?? new Set();
}

/**
 * Creates a file of `size` bytes, zero-filled, whose page cache lives in `memory`. Costs
 * 4 bytes per page of index; the store grows only where written. EINVAL for a bad memory,
 * options object or size (not an integer, negative, over 16 GiB).
 */
export function createFile(memory: PhysicalMemory, options: CreateFileOptions): CachedFile {
  checkMemory(memory);
  if (options === undefined) fail('EINVAL', 'createFile needs options { size }');
  const opts = checkOptions('options', options);
  if (opts.size === undefined) fail('EINVAL', 'createFile needs options { size }');
  const size = checkInt('size', opts.size, 0, MAX_FILE_SIZE);
  for (const key of Object.keys(opts)) if (key !== 'size') fail('EINVAL', `createFile does not take option '${key}'`);
  const file = new CachedFile(memory, size);
  let set = filesByMemory.get(memory);
  if (set === undefined) filesByMemory.set(memory, (set = new Set()));
  set.add(file);
  return file;
}

/**
 * Releases a temporary file once no VMA maps it (`fput` → `iput_final` → `evict` →
 * `truncate_inode_pages_final`): every cached page leaves the cache, dirty ones without being
 * written (`folio_cancel_dirty`), and is freed unless something still holds it (a pinned page
 * goes at its last unpin); the file leaves the memory's list.
 */
export function releaseIfUnused(file: CachedFile): void {
  if (!file.temporary || file.mmaps.size > 0) return;
  const mem = file.memory;
  for (let index = 0; index < file.nrPages; index++) {
    const e = file.cache[index]!;
    if (e === 0) continue;
    const pfn = e - 1;
    file.cache[index] = 0;
    mem.flags[pfn] = mem.flags[pfn]! & ~(PG_PAGECACHE | PG_DIRTY);
    mem.putRefsUnchecked(pfn, 1);
  }
  filesByMemory.get(mem)?.delete(file);
}

/** Checks that `file` is a CachedFile (of `memory`, when given); EINVAL otherwise. */
export function checkFile(file: unknown, memory?: PhysicalMemory): asserts file is CachedFile {
  if (!(file instanceof CachedFile)) fail('EINVAL', 'file must be a file made by createFile');
  if (memory !== undefined && file.memory !== memory) fail('EINVAL', 'file belongs to another PhysicalMemory');
}

/**
 * Whether writes through `vma` must be tracked for the page cache (`vma_needs_dirty_tracking`):
 * a shared, writable mapping of a file whose file system writes back. Shared anonymous memory
 * (shmem) is not tracked; every file here can write back.
 */
export function vmaNeedsDirtyTracking(vma: Vma): boolean {
  return vma.file !== undefined && vma.shared && (vma.vmFlags & VM_WRITE) !== 0;
}
