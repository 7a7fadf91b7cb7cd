// Locked-memory accounting as mainline does it, in three places with three rules:
// RDMA (drivers/infiniband/core/umem.c), zero-copy send (net/core/skbuff.c) and io_uring
// fixed buffers (io_uring/rsrc.c). Counters are in pages.

import { PAGE_SHIFT } from '../constants.js';
import { checkInt, fail } from '../errors.js';
import { AddressSpace, checkMm, type UserStruct } from './mm.js';

/** ib_umem_get() refuses registrations past UINT_MAX pages. */
const UINT_MAX = 0xffffffff;


function checkMmPin(mmp: unknown): asserts mmp is MmPin {
  if (typeof mmp !== 'object' || mmp === null) fail('EINVAL', 'mmp must be an MmPin (see newMmPin)');
}

/**
 * Charges `npages` to `mm.pinnedVm` for an RDMA registration (`ib_umem_get`): EPERM when
 * RLIMIT_MEMLOCK is 0 without CAP_IPC_LOCK (`can_do_mlock`), EINVAL for 0 pages or more than
 * UINT_MAX, ENOMEM when the new total passes the limit, unless the process has CAP_IPC_LOCK
 * (then it is charged all the same). Nothing is charged on failure. Undo with
 * `ibUmemUnchargePinnedVm`.
 */
export function ibUmemChargePinnedVm(mm: AddressSpace, npages: number): void {
  checkMm(mm);
  checkInt('npages', npages);
  if (mm.rlimitMemlock === 0 && !mm.capIpcLock) fail('EPERM', 'RLIMIT_MEMLOCK is 0 and the process lacks CAP_IPC_LOCK');
  if (npages === 0 || npages > UINT_MAX) fail('EINVAL', `an RDMA registration of ${npages} pages`);
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

/** Whom an io_uring instance charges, fixed when the ring is created (`io_uring_create`). */
export interface IoRingAccount {
  /** The user charged against RLIMIT_MEMLOCK: none when the creator had CAP_IPC_LOCK. */
  user: UserStruct | undefined;
  /** The address space whose `pinnedVm` grows (`ctx->mm_account`). */
  mmAccount: AddressSpace;
}

/** The accounting of a ring created now by `mm`'s process. */
export function ioRingAccount(mm: AddressSpace): IoRingAccount {
  checkMm(mm);
  return { user: mm.capIpcLock ? undefined : mm.user, mmAccount: mm };
}

function ringOf(ctx: IoRingAccount | AddressSpace): IoRingAccount {
  if (ctx instanceof AddressSpace) return ioRingAccount(ctx);
  if (typeof ctx !== 'object' || ctx === null || !(ctx.mmAccount instanceof AddressSpace)) fail('EINVAL', 'ctx must be an IoRingAccount or an AddressSpace');
  return ctx;
}

/**
 * Charges `nrPages` for io_uring buffer registration (`io_account_mem`): the ring's user's
 * `lockedVm` against RLIMIT_MEMLOCK (ENOMEM past it; a ring made with CAP_IPC_LOCK has no user
 * and charges none; an unlimited limit still counts), and `pinnedVm`, which has no limit. The
 * caller counts a huge folio once, as io_buffer_account_pin() does. `ctx` may be an
 * AddressSpace, standing for a ring created by it just now.
 */
export function ioAccountMem(ctx: IoRingAccount | AddressSpace, nrPages: number): void {
  const ring = ringOf(ctx);
  checkInt('nrPages', nrPages);
  if (nrPages === 0) return;
  if (ring.user !== undefined) {
    const total = ring.user.lockedVm + nrPages;
    const limit = ring.mmAccount.memlockLimitPages;
    if (total > limit) fail('ENOMEM', `locked_vm would be ${total} pages, over RLIMIT_MEMLOCK (${limit} pages)`);
    ring.user.lockedVm = total;
  }
  ring.mmAccount.pinnedVm += nrPages;
}

/** Undoes `ioAccountMem` (`io_unaccount_mem`). EINVAL if more than is charged. */
export function ioUnaccountMem(ctx: IoRingAccount | AddressSpace, nrPages: number): void {
  const ring = ringOf(ctx);
  checkInt('nrPages', nrPages, 0, ring.mmAccount.pinnedVm);
  if (ring.user !== undefined) {
    if (nrPages > ring.user.lockedVm) fail('EINVAL', `io_unaccount_mem of ${nrPages} pages, only ${ring.user.lockedVm} charged`);
    ring.user.lockedVm -= nrPages;
  }
  ring.mmAccount.pinnedVm -= nrPages;
}
