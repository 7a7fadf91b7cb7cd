// Locked-memory accounting as mainline does it, in three places with three rules:
// RDMA (drivers/infiniband/core/umem.c), zero-copy send (net/core/skbuff.c) and io_uring
// fixed buffers (io_uring/rsrc.c). Counters are in pages.

import { PAGE_SHIFT } from '../constants.js';
import { checkInt, fail } from '../errors.js';
import { AddressSpace, type UserStruct } from './mm.js';

function checkMm(mm: unknown): asserts mm is AddressSpace {
  if (!(mm instanceof AddressSpace)) fail('EINVAL', 'mm must be an AddressSpace');
}

function checkMmPin(mmp: unknown): asserts mmp is MmPin {
  if (typeof mmp !== 'object' || mmp === null) fail('EINVAL', 'mmp must be an MmPin (see newMmPin)');
}

/**
 * Charges `npages` to `mm.pinnedVm` for an RDMA registration (`ib_umem_get`): ENOMEM when the
 * new total passes RLIMIT_MEMLOCK, unless the process has CAP_IPC_LOCK. Nothing is charged on
 * failure. Undo with `ibUmemUnchargePinnedVm`.
 */
export function ibUmemChargePinnedVm(mm: AddressSpace, npages: number): void {
  checkMm(mm);
  checkInt('npages', npages);
  const total = mm.pinnedVm + npages;
  if (total > mm.memlockLimitPages && !mm.capIpcLock) {
    fail('ENOMEM', `pinned_vm would be ${total} pages, over RLIMIT_MEMLOCK (${mm.memlockLimitPages} pages)`);
  }
  mm.pinnedVm = total;
}

/** Returns `npages` to `mm.pinnedVm` (`ib_umem_release`). EINVAL if more than is charged. */
export function ibUmemUnchargePinnedVm(mm: AddressSpace, npages: number): void {
  checkMm(mm);
  checkInt('npages', npages, 0, mm.pinnedVm);
  mm.pinnedVm -= npages;
}

/** What one zero-copy completion record has charged (`struct mmpin`). */
export interface MmPin {
  user: UserStruct | undefined;
  numPg: number;
}

/** A fresh, empty `MmPin`. */
export function newMmPin(): MmPin {
  return { user: undefined, numPg: 0 };
}

/**
 * Charges a zero-copy send of `size` bytes to the user's `lockedVm` (`mm_account_pinned_pages`):
 * (size >> PAGE_SHIFT) + 2 pages, the worst case. Nothing is charged with CAP_IPC_LOCK, an
 * unlimited RLIMIT_MEMLOCK, or size 0. ENOBUFS when the total would pass the limit.
 */
export function mmAccountPinnedPages(mm: AddressSpace, mmp: MmPin, size: number): void {
  checkMm(mm);
  checkMmPin(mmp);
  checkInt('size', size);
  if (mm.capIpcLock || size === 0 || mm.rlimitMemlock === Infinity) return;
  const numPg = Math.floor(size / 2 ** PAGE_SHIFT) + 2;
  const user = mmp.user ?? mm.user;
  const total = user.lockedVm + numPg;
  if (total > mm.memlockLimitPages) fail('ENOBUFS', `locked_vm would be ${total} pages, over RLIMIT_MEMLOCK (${mm.memlockLimitPages} pages)`);
  user.lockedVm = total;
  mmp.user = user;
  mmp.numPg += numPg;
}

/** Returns what `mmp` charged (`mm_unaccount_pinned_pages`), and empties it. */
export function mmUnaccountPinnedPages(mmp: MmPin): void {
  checkMmPin(mmp);
  if (mmp.user !== undefined) mmp.user.lockedVm -= mmp.numPg;
  mmp.user = undefined;
  mmp.numPg = 0;
}

/**
 * Charges `nrPages` for io_uring buffer registration (`io_account_mem`): the user's `lockedVm`
 * against RLIMIT_MEMLOCK (ENOMEM past it; not charged at all with CAP_IPC_LOCK, as the ring
 * then has no user to charge), and `mm.pinnedVm`, which has no limit here.
 */
export function ioAccountMem(mm: AddressSpace, nrPages: number): void {
  checkMm(mm);
  checkInt('nrPages', nrPages);
  if (nrPages === 0) return;
  if (!mm.capIpcLock) {
    const total = mm.user.lockedVm + nrPages;
    if (total > mm.memlockLimitPages) fail('ENOMEM', `locked_vm would be ${total} pages, over RLIMIT_MEMLOCK (${mm.memlockLimitPages} pages)`);
    mm.user.lockedVm = total;
  }
  mm.pinnedVm += nrPages;
}

/** Undoes `ioAccountMem` (`io_unaccount_mem`). EINVAL if more than is charged. */
export function ioUnaccountMem(mm: AddressSpace, nrPages: number): void {
  checkMm(mm);
  checkInt('nrPages', nrPages, 0, mm.pinnedVm);
  if (!mm.capIpcLock) {
    if (nrPages > mm.user.lockedVm) fail('EINVAL', `io_unaccount_mem of ${nrPages} pages, only ${mm.user.lockedVm} charged`);
    mm.user.lockedVm -= nrPages;
  }
  mm.pinnedVm -= nrPages;
}
