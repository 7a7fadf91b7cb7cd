// @iodesc/sglist: the scatterlist backend (lib/scatterlist.c, lib/sg_split.c,
// drivers/infiniband/core/umem.c). Importing it registers 'sglist' in core's backend registry.

export { sglistBackend } from './backend.js';
export {
  SgTable, SgStore, sgSlabShrink, SG_STRIDE, SG_WORDS, SG_PAGE_LINK, SG_PAGE_LINK_HI, SG_OFFSET, SG_LENGTH, SG_DMA_ADDRESS, SG_F64_WORDS,
  SG_DMA_LENGTH, SG_DMA_FLAGS, SG_CHAIN, SG_END, SG_PAGE_LINK_MASK, SG_MAX_SINGLE_ALLOC, SG_TABLE_BYTES, SG_APPEND_TABLE_BYTES,
  UINT_MAX,
} from './table.js';
export {
  sgNext, sgIsChain, sgIsLast, sgNents, sgNentsForLen, sgLast, sgInitTable, sgMarkEnd, sgUnmarkEnd, sgChain, sgSetPage, sgEntry,
  sgPhys, sgAllocTable, sgFreeTable,
} from './entry.js';
export {
  SgAppendTable, sgAllocAppendTableFromPages, sgAllocTableFromPagesSegment, sgAllocTableFromPages, sgFreeAppendTable,
} from './alloc.js';
export { dmaMapSgtable, dmaUnmapSgtable, dmaMapSg, dmaUnmapSg, deviceSegmentLimit } from './dma.js';
export {
  SgMiter, sgMiterStart, sgMiterNext, sgMiterSkip, sgMiterStop, sgCopyBuffer, sgCopyFromBuffer, sgCopyToBuffer, sgPcopyFromBuffer,
  sgPcopyToBuffer, SG_MITER_ATOMIC, SG_MITER_TO_SG, SG_MITER_FROM_SG, SG_MITER_LOCAL,
} from './copy.js';
export { sgSplit } from './split.js';
export { getUserSg, putUserSg, PAGES_PER_BATCH } from './user.js';

export { IbUmem, ibUmemGet, ibUmemRelease, ibUmemFindBestPgsz, ibUmemNumDmaBlocks, ibUmemOffset } from './umem.js';

export type { UserPin } from './table.js';
export type { GetUserSgOptions, PutUserSgOptions } from './user.js';
export type { SgSplitResult } from './split.js';
export type { IbUmemAccess } from './umem.js';
