// @iodesc/core: the machine (memory, address spaces, pinning, accounting, DMA, the network side)
// and the descriptor interfaces every backend implements.

export {
  PAGE_SIZE, PAGE_SHIFT, MAX_PAGE_ORDER, HPAGE_PMD_ORDER, HPAGE_PMD_NR, GUP_PIN_COUNTING_BIAS, TASK_SIZE_MAX,
  FOLL_WRITE, FOLL_GET, FOLL_FORCE, FOLL_NOFAULT, FOLL_ANON, FOLL_LONGTERM, FOLL_PIN, FOLL_VALID_MASK, FOLL_FAST_MASK, PMD_SIZE, INT32_MAX,
} from './constants.js';
export { IodescError, isIodescError, fail, checkInt, checkBool, checkPageArray, checkErrno, checkOptions, hex } from './errors.js';
export { PhysicalMemory } from './mm/memory.js';
export { Hstate, HUGETLB_ORDER } from './mm/hugetlb.js';
export { PG_HUGETLB, PG_BALLAST } from './mm/page-flags.js';
export {
  PG_DIRTY, PG_LOCKED, PG_HEAD, PG_TAIL, PG_ZERO, PG_BUDDY, PG_ANON, PG_RESERVED, PG_UPTODATE, PG_WRITEBACK, PG_LIVE, PG_ANON_EXCL, PG_HUGE_ZERO, PG_ANY_ZERO,
  PG_PAGECACHE,
} from './mm/page-flags.js';
export { AddressSpace, DEFAULT_RLIMIT_MEMLOCK } from './mm/mm.js';
export { Vma, VM_READ, VM_WRITE, VM_EXEC, PTE_WRITE, PTE_PMD, PTE_DIRTY } from './mm/vma.js';
export { getUserPages, pinUserPages, pinUserPagesFast, getUserPagesFast } from './mm/gup.js';
export {
  putPage, unpinUserPage, unpinUserPages, unpinUserPagesDirtyLock, unpinUserPageRangeDirtyLock,
  folioMaybeDmaPinned, folioPinCount, folioRefCount, pageMapcount,
} from './mm/unpin.js';
export {
  ibUmemChargePinnedVm, ibUmemUnchargePinnedVm, mmAccountPinnedPages, mmUnaccountPinnedPages, newMmPin,
  ioAccountMem, ioUnaccountMem, ioRingAccount,
} from './mm/accounting.js';
export { leakReport } from './mm/leak.js';
export { CachedFile, createFile, MAX_FILE_SIZE } from './mm/file.js';
export { folioTestDirty, folioTestWriteback, folioTestUptodate } from './mm/filemap.js';
export { writeback, filemapWriteAndWait } from './mm/writeback.js';
export { dropCaches, reclaimPageCache } from './mm/reclaim.js';
export { lostWriteDemo } from './mm/lost-write.js';
export { kmallocSize } from './descriptor/kmalloc.js';
export { DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL, checkDirection } from './dma/types.js';
export { Device, NO_SEG_BOUNDARY, MAX_WARNINGS } from './dma/device.js';
export { Iommu, IOMMU_READ, IOMMU_WRITE } from './dma/iommu.js';
export { IovaDomain } from './dma/iova.js';
export { DmaMapping, dmaMapSegments, dmaUnmapSegments, dmaSyncForCpu, dmaSyncForDevice } from './dma/mapping.js';
export { dmaFindBestPgsz } from './dma/best-pgsz.js';
export {
  SwiotlbPool, swiotlbInit, swiotlbPool, swiotlbPoolIfAny, IO_TLB_SIZE, IO_TLB_SEGSIZE, IO_TLB_DEFAULT_SIZE,
} from './dma/swiotlb.js';
export { registerBackend, getBackend, listBackends, unregisterBackend } from './descriptor/registry.js';
export {
  NET_IOV, NETMEM_MAX_INDEX, NetIovArea, netmemIsNetIov, pageToNetmem, netIovToNetmem, netmemToPage, netmemToNetIov,
} from './net/netmem.js';
export {
  FragArray, SKB_FRAG_SIZE, FRAG_STRIDE, FRAG_NETMEM, FRAG_REF, FRAG_LEN, FRAG_OFF, FRAG_REF_NONE, FRAG_REF_PAGE, FRAG_REF_GUP,
  FRAG_REF_PIN, FRAG_FIELD_MAX, skbFragSize, skbFragOff, skbFragPage, skbFragNetmem, skbFragIsNetIov, skbFragPhys,
} from './net/frag.js';
export {
  SkBuff, MAX_SKB_FRAGS, MAX_SKB_FRAGS_MIN, MAX_SKB_FRAGS_MAX, SMP_CACHE_BYTES, SKB_SHINFO_HEADER, SIZEOF_SK_BUFF, GSO_BY_FRAGS,
  GSO_MAX_SEGS, GSO_MAX_SIZE, KMALLOC_MAX_SIZE, SKB_LEN_MAX, skbDataAlign, skbSharedInfoSize, skbFillPageDesc,
  skbFillNetmemDesc, skbAddRxFrag, fragBytes, fragListBytes,
} from './net/skbuff.js';
export { skbPush, skbPull, skbPut, skbResetMacHeader, skbResetNetworkHeader, skbWriteHead, skbReadHead, skbCopyBits, skbStoreBits } from './net/skb-data.js';
export { pskbTrim, kfreeSkb, consumeSkb, kfreeSkbList } from './net/skb-free.js';
export { skbCanCoalesce, skbCanCoalesceNetmem, skbAppendPagefrags } from './net/coalesce.js';
export {
  ZerocopySocket, UbufInfo, msgZerocopyAlloc, msgZerocopyRealloc, netZcopyPut, netZcopyPutAbort, skbZcopySet, skbZerocopyIterStream,
  sendmsgZerocopy, GSO_LEGACY_MAX_SIZE, MAX_TCP_HEADER, TCP_ETH_MSS, TCP_SIZE_GOAL, SO_EE_ORIGIN_ZEROCOPY, SO_EE_CODE_ZEROCOPY_COPIED, ZEROCOPY_BYTE_LIMIT,
} from './net/zerocopy.js';
export { UserIter, zerocopyFillSkbFromIter, zerocopySgFromIter, MAX_RW_COUNT } from './net/datagram.js';
export { skbSegment, SKB_GSO_DODGY, SKB_GSO_PARTIAL } from './net/gso.js';
export { skbToSgvec, SKB_TO_SGVEC_MAX_RECURSION } from './net/sgvec.js';
export { Nic } from './net/nic.js';
export { fragConversionCost, fragsFromSegments, skbsFromFrags } from './net/convert.js';
export {
  DmaIovaState, dmaGetMergeBoundary, dmaIovaTryAlloc, dmaIovaLink, dmaIovaSync, dmaIovaDestroy,
} from './dma/iova-link.js';
export {
  blkValidateLimits, SECTOR_SHIFT, SECTOR_SIZE, BLK_MAX_SEGMENTS, BLK_SAFE_MAX_SECTORS, BLK_MAX_SEGMENT_SIZE, BLK_SEG_BOUNDARY_MASK,
  BLK_MIN_SEGMENT_SIZE, BLK_DEF_MAX_SECTORS_CAP, BLK_MAX_BLOCK_SIZE, BIO_MAX_SIZE,
} from './block/limits.js';
export { getMaxSegmentSize, biovecPhysMergeable, bvecGapToPrev, bvecSegGap, blkCanDmaMapIova, ffs, minNotZero } from './block/merge.js';
export { bioSplitIoAt, bioSplitRwAt, checkLenAlignMask, getMaxIoSize } from './block/split.js';
export { BlkMapIter, blkRqMapSegments } from './block/map-sg.js';
export { BlkDmaIter, blkRqDmaMapIterStart, blkRqDmaMapIterNext, blkRqDmaUnmap } from './block/dma-iter.js';

export type { Errno } from './errors.js';
export type { PhysicalMemoryOptions, MemoryStats } from './mm/memory.js';
export type { HugePageSize, HugepagesOption } from './mm/hugetlb.js';
export type { FragmentOptions, FragmentResult } from './mm/fragment.js';
export type { LeakEntry } from './mm/leak.js';
export type { CreateFileOptions } from './mm/file.js';
export type { ReclaimResult } from './mm/reclaim.js';
export type { LostWriteOptions, LostWriteRun, LostWriteReport } from './mm/lost-write.js';
export type { MmapOptions, UserStruct, AddressSpaceOptions } from './mm/mm.js';
export type { Prot, Backing } from './mm/vma.js';
export type { GupOptions } from './mm/gup.js';
export type { MmPin, IoRingAccount } from './mm/accounting.js';
export type {
  Segment, Footprint, IoDescriptor, BackendCapabilities, FromPagesOptions, GetUserOptions, PutUserOptions,
  ToFragsResult, DescriptorBackend,
} from './descriptor/types.js';
export type { DmaDirection, DmaSegment } from './dma/types.js';
export type { DeviceOptions } from './dma/device.js';
export type { IommuOptions } from './dma/iommu.js';
export type { DmaMapOptions } from './dma/mapping.js';
export type { ConversionCost, ToFragsOptions } from './net/types.js';
export type { NetmemRef } from './net/netmem.js';
export type { Frag, FragHolder } from './net/frag.js';
export type { SkBuffOptions, FragWindow, ZcopyRef } from './net/skbuff.js';
export type { ZerocopyNotification, ZerocopySocketOptions, SendmsgZerocopyOptions, SendmsgZerocopyResult } from './net/zerocopy.js';
export type { ZerocopyOptions } from './net/datagram.js';
export type { SkbSegmentOptions } from './net/gso.js';
export type { SkbSgvec, SkbToSgvecOptions } from './net/sgvec.js';
export type { Wire, NicOptions, NicStats } from './net/nic.js';
export type { FragsFromSegmentsOptions, SkbsFromFragsOptions } from './net/convert.js';
export type { QueueLimits, QueueLimitsOptions } from './block/limits.js';
export type { PhysRanges, SplitDecision } from './block/split.js';
