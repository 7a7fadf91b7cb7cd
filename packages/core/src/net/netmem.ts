// Network memory references (include/net/netmem.h): a netmem_ref names either a page or a
// net_iov (a chunk of device or io_uring memory with no struct page), told apart by its low bit.

import { checkInt, fail } from '../errors.js';

/** The low bit of a netmem_ref that marks a net_iov rather than a page (`NET_IOV`). */
export const NET_IOV = 1;

/**
 * A netmem_ref: `pfn * 2` for a page, `index * 2 + NET_IOV` for a net_iov, as the kernel
 * overloads the low bit of the pointer. Fits 32 bits for every PFN this model has (< 2^27).
 */
export type NetmemRef = number;

/** Largest page frame or net_iov index a netmem_ref can carry here. */
export const NETMEM_MAX_INDEX = 0x7fffffff;

/** True when `netmem` names a net_iov (`netmem_is_net_iov`). */
export function netmemIsNetIov(netmem: NetmemRef): boolean {
  return (netmem & NET_IOV) !== 0;
}

/** The netmem_ref of page `pfn` (`page_to_netmem`). EINVAL for a negative or oversized PFN. */
export function pageToNetmem(pfn: number): NetmemRef {
  return checkInt('pfn', pfn, 0, NETMEM_MAX_INDEX) * 2;
}

/** The netmem_ref of net_iov `index` (`net_iov_to_netmem`). */
export function netIovToNetmem(index: number): NetmemRef {
  return checkInt('net_iov index', index, 0, NETMEM_MAX_INDEX) * 2 + NET_IOV;
}

/**
 * The page behind `netmem` (`netmem_to_page`). The kernel warns and returns NULL for a net_iov;
 * here that is EINVAL, since no caller can go on with a missing page.
 */
export function netmemToPage(netmem: NetmemRef): number {
  checkInt('netmem', netmem, 0, 0xffffffff);
  if (netmemIsNetIov(netmem)) fail('EINVAL', `netmem ${netmem} is a net_iov (index ${netmem >>> 1}), not a page: netmem_to_page() gives NULL`);
  return netmem >>> 1;
}

/** The net_iov index behind `netmem` (`netmem_to_net_iov`); EINVAL for a page. */
export function netmemToNetIov(netmem: NetmemRef): number {
  checkInt('netmem', netmem, 0, 0xffffffff);
  if (!netmemIsNetIov(netmem)) fail('EINVAL', `netmem ${netmem} is page ${netmem >>> 1}, not a net_iov`);
  return netmem >>> 1;
}

let nextNetIov = 0;

/**
 * An area of net_iovs a memory provider hands the stack (`struct net_iov_area`: a dma-buf
 * bound for devmem TCP, or an io_uring zero-copy receive area). Each net_iov stands for
 * PAGE_SIZE bytes the host cannot read: fragments naming one make their buffer unreadable.
 * Allocates no memory of the `PhysicalMemory`; indices are unique in the program.
 */
export class NetIovArea {
  /** Index of the first net_iov. */
  readonly base: number;
  readonly nrNiovs: number;
  readonly name: string;

  constructor(nrNiovs: number, name = 'dmabuf') {
    this.nrNiovs = checkInt('nrNiovs', nrNiovs, 1, 1 << 20);
    if (typeof name !== 'string') fail('EINVAL', 'name must be a string');
    if (nextNetIov + nrNiovs > NETMEM_MAX_INDEX) fail('ENOMEM', 'net_iov indices exhausted');
    this.base = nextNetIov;
    nextNetIov += nrNiovs;
    this.name = name;
  }

  /** The netmem_ref of this area's net_iov `i` (0 ≤ i < nrNiovs); EINVAL otherwise. */
  netmem(i: number): NetmemRef {
    checkInt('i', i, 0, this.nrNiovs - 1);
    return (this.base + i) * 2 + NET_IOV;
  }

  /** Whether `netmem` is one of this area's net_iovs. */
  owns(netmem: NetmemRef): boolean {
    if (!netmemIsNetIov(netmem)) return false;
    const idx = netmem >>> 1;
    return idx >= this.base && idx < this.base + this.nrNiovs;
  }
}
