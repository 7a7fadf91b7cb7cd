// Locked-memory accounting, mainline's three rules: drivers/infiniband/core/umem.c (ib_umem_get),
// net/core/skbuff.c (mm_account_pinned_pages), io_uring/rsrc.c (io_account_mem).

import { describe, expect, it } from 'vitest';
import {
  AddressSpace, DEFAULT_RLIMIT_MEMLOCK, PAGE_SIZE, PhysicalMemory,
  ibUmemChargePinnedVm, ibUmemUnchargePinnedVm, ioAccountMem, ioUnaccountMem, mmAccountPinnedPages,
  mmUnaccountPinnedPages, newMmPin, type AddressSpaceOptions, type UserStruct,
} from '../src/index.js';
import { expectCode } from './helpers.js';

const LIMIT_PAGES = DEFAULT_RLIMIT_MEMLOCK / PAGE_SIZE; // 2048
const memory = new PhysicalMemory({ bytes: 16 * PAGE_SIZE }); // accounting never touches frames

function mmWith(opts: AddressSpaceOptions = {}): AddressSpace {
  return new AddressSpace(memory, opts);
}

describe('ibUmemChargePinnedVm', () => {
  it.each([
    ['up to the limit', 0, LIMIT_PAGES, true],
    ['one page past the limit', 0, LIMIT_PAGES + 1, false],
    ['onto a charge that reaches the limit', LIMIT_PAGES - 10, 11, false],
    ['onto a charge that stays under', LIMIT_PAGES - 10, 10, true],
  ])('charges pinnedVm %s (have %i, add %i) or throws ENOMEM', (_label, have, add, ok) => {
    const mm = mmWith();
    if (have > 0) ibUmemChargePinnedVm(mm, have);
    if (ok) {
      ibUmemChargePinnedVm(mm, add);
      expect(mm.pinnedVm).toBe(have + add);
    } else {
      expectCode(() => ibUmemChargePinnedVm(mm, add), 'ENOMEM');
      expect(mm.pinnedVm).toBe(have); // nothing charged on failure
    }
    expect(mm.user.lockedVm).toBe(0);
  });

  it('exempts CAP_IPC_LOCK from the limit but still charges', () => {
    const mm = mmWith({ capIpcLock: true });
    ibUmemChargePinnedVm(mm, LIMIT_PAGES * 4);
    expect(mm.pinnedVm).toBe(LIMIT_PAGES * 4);
  });

  it('honours a custom rlimitMemlock (rounded down to pages) and an unlimited one', () => {
    const mm = mmWith({ rlimitMemlock: 10 * PAGE_SIZE + 100 });
    ibUmemChargePinnedVm(mm, 10);
    expectCode(() => ibUmemChargePinnedVm(mm, 1), 'ENOMEM');
    const unl = mmWith({ rlimitMemlock: Infinity });
    ibUmemChargePinnedVm(unl, 2 ** 32 - 1);
    expect(unl.pinnedVm).toBe(2 ** 32 - 1);
  });

  it('throws EINVAL for 0 pages or more than UINT_MAX (ib_umem_get)', () => {
    const mm = mmWith({ rlimitMemlock: Infinity });
    expectCode(() => ibUmemChargePinnedVm(mm, 0), 'EINVAL');
    expectCode(() => ibUmemChargePinnedVm(mm, 2 ** 32), 'EINVAL');
    expect(mm.pinnedVm).toBe(0);
  });

  it('throws EPERM when RLIMIT_MEMLOCK is 0 without CAP_IPC_LOCK (can_do_mlock)', () => {
    expectCode(() => ibUmemChargePinnedVm(mmWith({ rlimitMemlock: 0 }), 1), 'EPERM');
    const cap = mmWith({ rlimitMemlock: 0, capIpcLock: true });
    ibUmemChargePinnedVm(cap, 1);
    expect(cap.pinnedVm).toBe(1);
  });

  it('is undone by ibUmemUnchargePinnedVm, which refuses more than is charged', () => {
    const mm = mmWith();
    ibUmemChargePinnedVm(mm, 100);
    expectCode(() => ibUmemUnchargePinnedVm(mm, 101), 'EINVAL');
    expect(mm.pinnedVm).toBe(100);
    ibUmemUnchargePinnedVm(mm, 100);
    expect(mm.pinnedVm).toBe(0);
  });

  it.each([[-1], [1.5], [NaN]])('throws EINVAL for npages %s', (n) => {
    const mm = mmWith();
    expectCode(() => ibUmemChargePinnedVm(mm, n), 'EINVAL');
    expect(mm.pinnedVm).toBe(0);
  });

  it('throws EINVAL when mm is not an AddressSpace', () => {
    expectCode(() => ibUmemChargePinnedVm({ pinnedVm: 0 } as never, 1), 'EINVAL');
    expectCode(() => ibUmemUnchargePinnedVm(memory as never, 0), 'EINVAL');
  });
});

describe('mmAccountPinnedPages', () => {
  it.each([
    [1, 2],
    [PAGE_SIZE - 1, 2],
    [PAGE_SIZE, 3],
    [64 * 1024, 18],
    [64 * 1024 + 1, 18],
  ])('charges (size >> PAGE_SHIFT) + 2 pages to user.lockedVm (size %i -> %i pages)', (size, pages) => {
    const mm = mmWith();
    const mmp = newMmPin();
    mmAccountPinnedPages(mm, mmp, size);
    expect(mm.user.lockedVm).toBe(pages);
    expect(mmp).toEqual({ user: mm.user, numPg: pages });
    expect(mm.pinnedVm).toBe(0);
  });

  it('accumulates several sends on one completion record and returns them all at once', () => {
    const mm = mmWith();
    const mmp = newMmPin();
    mmAccountPinnedPages(mm, mmp, PAGE_SIZE);
    mmAccountPinnedPages(mm, mmp, 2 * PAGE_SIZE);
    expect(mmp.numPg).toBe(7);
    expect(mm.user.lockedVm).toBe(7);
    mmUnaccountPinnedPages(mmp);
    expect(mm.user.lockedVm).toBe(0);
    expect(mmp).toEqual(newMmPin());
    mmUnaccountPinnedPages(mmp); // empty: a no-op
    expect(mm.user.lockedVm).toBe(0);
  });

  it('throws ENOBUFS past the limit and charges nothing', () => {
    const mm = mmWith();
    const mmp = newMmPin();
    mmAccountPinnedPages(mm, mmp, (LIMIT_PAGES - 2) * PAGE_SIZE); // exactly the limit
    expect(mm.user.lockedVm).toBe(LIMIT_PAGES);
    expectCode(() => mmAccountPinnedPages(mm, mmp, 1), 'ENOBUFS');
    expect(mm.user.lockedVm).toBe(LIMIT_PAGES);
    expect(mmp.numPg).toBe(LIMIT_PAGES);
    const fresh = newMmPin();
    expectCode(() => mmAccountPinnedPages(mm, fresh, 1), 'ENOBUFS');
    expect(fresh).toEqual(newMmPin());
  });

  it.each([
    ['CAP_IPC_LOCK', { capIpcLock: true }, PAGE_SIZE],
    ['an unlimited rlimitMemlock', { rlimitMemlock: Infinity }, PAGE_SIZE],
    ['size 0', {}, 0],
  ])('charges nothing with %s', (_label, opts, size) => {
    const mm = mmWith(opts);
    const mmp = newMmPin();
    mmAccountPinnedPages(mm, mmp, size);
    expect(mm.user.lockedVm).toBe(0);
    expect(mmp).toEqual(newMmPin());
  });

  it('charges the user already on the record', () => {
    const owner: UserStruct = { lockedVm: 0 };
    const mm = mmWith();
    const mmp = { user: owner, numPg: 0 };
    mmAccountPinnedPages(mm, mmp, 1);
    expect(owner.lockedVm).toBe(2);
    expect(mm.user.lockedVm).toBe(0);
  });

  it.each([['undefined', undefined], ['null', null], ['a number', 3]])('throws EINVAL when the completion record is %s', (_label, mmp) => {
    const mm = mmWith();
    expectCode(() => mmAccountPinnedPages(mm, mmp as never, PAGE_SIZE), 'EINVAL');
    expectCode(() => mmUnaccountPinnedPages(mmp as never), 'EINVAL');
    expect(mm.user.lockedVm).toBe(0);
  });

  it.each([[-1], [0.5]])('throws EINVAL for size %s', (size) => {
    expectCode(() => mmAccountPinnedPages(mmWith(), newMmPin(), size), 'EINVAL');
  });
});

describe('ioAccountMem', () => {
  it('charges user.lockedVm and pinnedVm', () => {
    const mm = mmWith();
    ioAccountMem(mm, 100);
    expect(mm.user.lockedVm).toBe(100);
    expect(mm.pinnedVm).toBe(100);
    ioUnaccountMem(mm, 100);
    expect(mm.user.lockedVm).toBe(0);
    expect(mm.pinnedVm).toBe(0);
  });

  it('throws ENOMEM past the limit and charges nothing', () => {
    const mm = mmWith();
    ioAccountMem(mm, LIMIT_PAGES);
    expectCode(() => ioAccountMem(mm, 1), 'ENOMEM');
    expect(mm.user.lockedVm).toBe(LIMIT_PAGES);
    expect(mm.pinnedVm).toBe(LIMIT_PAGES);
  });

  it('adds to pinnedVm without a limit', () => {
    const mm = mmWith();
    ibUmemChargePinnedVm(mm, LIMIT_PAGES);
    ioAccountMem(mm, 10);
    expect(mm.pinnedVm).toBe(LIMIT_PAGES + 10);
    expect(mm.user.lockedVm).toBe(10);
  });

  it('charges only pinnedVm with CAP_IPC_LOCK', () => {
    const mm = mmWith({ capIpcLock: true });
    ioAccountMem(mm, LIMIT_PAGES * 3);
    expect(mm.user.lockedVm).toBe(0);
    expect(mm.pinnedVm).toBe(LIMIT_PAGES * 3);
    ioUnaccountMem(mm, LIMIT_PAGES * 3);
    expect(mm.pinnedVm).toBe(0);
  });

  it('charges lockedVm without a limit when rlimitMemlock is unlimited', () => {
    const mm = mmWith({ rlimitMemlock: Infinity });
    ioAccountMem(mm, LIMIT_PAGES * 3);
    expect(mm.user.lockedVm).toBe(LIMIT_PAGES * 3);
  });

  it('charges nothing for 0 pages', () => {
    const mm = mmWith({ rlimitMemlock: 0 });
    ioAccountMem(mm, 0);
    expect([mm.user.lockedVm, mm.pinnedVm]).toEqual([0, 0]);
  });

  it('refuses to uncharge more than is charged', () => {
    const mm = mmWith();
    ioAccountMem(mm, 5);
    expectCode(() => ioUnaccountMem(mm, 6), 'EINVAL');
    mm.user.lockedVm = 2; // another path took some back
    expectCode(() => ioUnaccountMem(mm, 5), 'EINVAL');
    expect(mm.pinnedVm).toBe(5);
  });

  it.each([[-1], [0.5]])('throws EINVAL for nrPages %s', (n) => {
    expectCode(() => ioAccountMem(mmWith(), n), 'EINVAL');
  });
});

describe('UserStruct shared between address spaces', () => {
  it('charges one lockedVm across two processes and enforces the limit on the sum', () => {
    const user: UserStruct = { lockedVm: 0 };
    const a = mmWith({ user });
    const b = mmWith({ user });
    ioAccountMem(a, LIMIT_PAGES - 10);
    mmAccountPinnedPages(b, newMmPin(), 4 * PAGE_SIZE); // 6 pages
    expect(user.lockedVm).toBe(LIMIT_PAGES - 4);
    expectCode(() => ioAccountMem(b, 5), 'ENOMEM');
    expectCode(() => mmAccountPinnedPages(a, newMmPin(), 3 * PAGE_SIZE), 'ENOBUFS');
    ioAccountMem(b, 4);
    expect(user.lockedVm).toBe(LIMIT_PAGES);
    // pinnedVm stays per address space
    expect([a.pinnedVm, b.pinnedVm]).toEqual([LIMIT_PAGES - 10, 4]);
    ibUmemChargePinnedVm(b, LIMIT_PAGES - 4);
    expectCode(() => ibUmemChargePinnedVm(b, 1), 'ENOMEM');
  });
});
