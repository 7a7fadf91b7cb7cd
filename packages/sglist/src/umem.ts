// RDMA memory registration's pinning (drivers/infiniband/core/umem.c: ib_umem_get,
// ib_umem_release, ib_umem_find_best_pgsz; include/rdma/ib_umem.h): a long-term pin charged
// to pinned_vm, held in an append table of whole pages mapped bidirectionally.

import {
  AddressSpace, checkBool, checkInt, checkOptions, Device, dmaFindBestPgsz, fail, FOLL_LONGTERM, FOLL_WRITE, ibUmemChargePinnedVm,
  ibUmemUnchargePinnedVm, PAGE_SIZE,
} from '@iodesc/core';
import type { DmaMapping } from '@iodesc/core';
import type { SgAppendTable } from './alloc.js';
import { mapEntries, unmapTable } from './dma.js';
import type { SgTable } from './table.js';
import { pinIntoTable, unpinEntries } from './user.js';

/** Options of `ibUmemGet`: what the IB access flags would say. */
export interface IbUmemAccess {
  /** IB_ACCESS_LOCAL_WRITE / REMOTE_WRITE / REMOTE_ATOMIC / MW_BIND: pin for write. */
  writable: boolean;
  /** IB_ACCESS_ON_DEMAND: not supported here (EOPNOTSUPP, as for a non-ODP build). */
  onDemand?: boolean;
  /** Tag the leak report names. */
  owner?: string;
}

/** A struct ib_umem: the registered range, its pins in `sgtAppend`, mapped for `device`. */
export class IbUmem {
  /** The IOVA the device will use; `ibUmemFindBestPgsz` sets it. */
  iova: number;
  /** @internal */ released = false;

  /** @internal Use `ibUmemGet`. */
  constructor(
    readonly device: Device,
    readonly mm: AddressSpace,
    readonly address: number,
    readonly length: number,
    readonly writable: boolean,
    readonly sgtAppend: SgAppendTable,
  ) {
    this.iova = address;
  }

  /** The table: whole pages, entries of at most the device's max segment, DMA fields filled. */
  get sgt(): SgTable {
    return this.sgtAppend.sgt;
  }

  /** @internal The table's live mapping (a registration is mapped until released). */
  get mapping(): DmaMapping {
    const m = this.sgtAppend.sgt.mapping;
    if (m === null) fail('EINVAL', 'umem has no live mapping');
    return m;
  }
}

/** Blocks of `pgsz` bytes covering [iova, iova + length) (`ib_umem_num_dma_blocks`). */
export function ibUmemNumDmaBlocks(umem: IbUmem, pgsz: number): number {
  checkUmem(umem);
  checkInt('pgsz', pgsz, 1);
  return (Math.ceil((umem.iova + umem.length) / pgsz) - Math.floor(umem.iova / pgsz));
}

/** Offset of the registration in its first page (`ib_umem_offset`). */
export function ibUmemOffset(umem: IbUmem): number {
  checkUmem(umem);
  return umem.address % PAGE_SIZE;
}

function checkUmem(u: unknown): asserts u is IbUmem {
  if (!(u instanceof IbUmem)) fail('EINVAL', 'umem must be an IbUmem from ibUmemGet');
  if (u.released) fail('EINVAL', 'umem has been released');
}

/**
 * Pins `size` bytes at `addr` for RDMA (`ib_umem_get`): charges the pages to `mm.pinnedVm`
 * (RLIMIT_MEMLOCK unless CAP_IPC_LOCK), pins them long-term (FOLL_LONGTERM, FOLL_WRITE when
 * writable) 512 a call, appends each batch as whole pages in entries of at most the device's
 * max segment size, and maps the table bidirectionally for `device` with DMA_ATTR_REQUIRE_COHERENT
 * (never through swiotlb). Cost: O(pages). Release with `ibUmemRelease`. EINVAL (overflow, 0
 * pages), EPERM (RLIMIT_MEMLOCK 0), EOPNOTSUPP (onDemand), ENOMEM (over the limit, memory,
 * IOVA space), EFAULT, EIO (a page the device could reach only by bouncing); a failure unwinds
 * the pins, the mapping and the charge.
 */
export function ibUmemGet(device: Device, mm: AddressSpace, addr: number, size: number, access: IbUmemAccess): IbUmem {
  if (!(device instanceof Device)) fail('EINVAL', 'device must be a Device');
  if (!(mm instanceof AddressSpace)) fail('EINVAL', 'mm must be an AddressSpace');
  if (device.memory !== mm.memory) fail('EINVAL', `device ${device.name} is attached to another memory`);
  checkInt('addr', addr);
  checkInt('size', size);
  if (!Number.isSafeInteger(addr + size + PAGE_SIZE)) fail('EINVAL', `addr ${addr} + size ${size} overflows`);
  if (typeof access !== 'object' || access === null) fail('EINVAL', 'access must be an object with writable');
  const o = checkOptions('access', access);
  const writable = checkBool('access.writable', o.writable);
  if (o.owner !== undefined && typeof o.owner !== 'string') fail('EINVAL', `access.owner must be a string, got ${String(o.owner)}`);
  // can_do_mlock() comes before the ODP check, as in ib_umem_get
  if (mm.rlimitMemlock === 0 && !mm.capIpcLock) fail('EPERM', 'RLIMIT_MEMLOCK is 0 and the process lacks CAP_IPC_LOCK');
  if (o.onDemand !== undefined && checkBool('access.onDemand', o.onDemand)) fail('EOPNOTSUPP', 'on-demand paging (IB_ACCESS_ON_DEMAND) is not modelled');
  const first = addr - (addr % PAGE_SIZE);
  const npages = Math.ceil((addr + size) / PAGE_SIZE) - first / PAGE_SIZE;
  ibUmemChargePinnedVm(mm, npages);
  const maxSegment = Math.max(PAGE_SIZE, Math.floor(device.maxSegmentSize / PAGE_SIZE) * PAGE_SIZE);
  let a: SgAppendTable;
  try {
    a = pinIntoTable(mm, first, npages, FOLL_LONGTERM | (writable ? FOLL_WRITE : 0), 0, maxSegment, o.owner);
  } catch (e) {
    ibUmemUnchargePinnedVm(mm, npages);
    throw e;
  }
  const t = a.sgt;
  t.memory = mm.memory;
  try {
    // ib_umem_get maps with DMA_ATTR_REQUIRE_COHERENT: an entry that would bounce fails (EIO)
    t.nents = mapEntries(device, t, t.origNents, 'bidirectional', o.owner, true).count;
  } catch (e) {
    unpinEntries(mm.memory, t, false);
    t.release();
    ibUmemUnchargePinnedVm(mm, npages);
    throw e;
  }
  t.user = { kind: 'umem', mm, write: writable, owner: o.owner };
  return new IbUmem(device, mm, addr, size, writable, a);
}

/**
 * Releases a registration (`ib_umem_release`): unmaps the table, unpins each entry as one
 * contiguous range, dirty when the registration was writable (the device may have written),
 * frees the table and returns the pages to `pinnedVm`. EINVAL for a released umem.
 */
export function ibUmemRelease(umem: IbUmem): void {
  checkUmem(umem);
  const t = umem.sgt;
  const npages = Math.ceil((umem.address + umem.length) / PAGE_SIZE) - Math.floor(umem.address / PAGE_SIZE);
  unmapTable(t);
  unpinEntries(umem.mm.memory, t, umem.writable);
  t.user = null;
  t.release();
  t.freed = true;
  ibUmemUnchargePinnedVm(umem.mm, npages);
  umem.released = true;
}

/**
 * The best device page size of `pgszBitmap` for this registration at IOVA `virt`
 * (`ib_umem_find_best_pgsz`; sets `umem.iova`): core's `dmaFindBestPgsz` over the table's
 * mapped segments, the first moved by `address`'s offset into its page (the table holds whole
 * pages). A registration of size 0 is computed as the kernel computes it. Cost: O(segments).
 * 0 when none fits; EINVAL for a released umem or a bad bitmap or `virt`.
 */
export function ibUmemFindBestPgsz(umem: IbUmem, pgszBitmap: number | bigint, virt: number): number {
  checkUmem(umem);
  const best = dmaFindBestPgsz(umem.mapping, umem.address, umem.length, pgszBitmap, virt);
  umem.iova = virt;
  return best;
}
