// @iodesc/bvec: the bio_vec backend. Importing this module registers `bvecBackend` as 'bvec'.

export { bvecBackend } from './backend.js';
export { BvecDescriptor } from './descriptor.js';
export {
  BVEC_BYTES, BVEC_STRIDE, BVEC_PAGE, BVEC_PAGE_HI, BVEC_LEN, BVEC_OFFSET, BIO_MAX_VECS, BIO_INLINE_VECS, BVEC_SLAB_SIZES, BvecArray, BvecSlab,
  bvPage, bvLen, bvOffset, bvPhys, bvecSet, bvecPoolInUse,
} from './bvec.js';
export {
  Bio, BIO_BYTES, BIO_ITER_OFFSET, BIO_BACK_PAD, BVEC_ITER_BYTES, bioAddPage, bioAddPageUnchecked, bioAddFolio, bioPut, bioChain, bioFull, bioAllocBytes,
} from './bio.js';
export {
  bvecIterAdvance, bvecIterAdvanceSingle, mpBvecIterPage, mpBvecIterLen, mpBvecIterOffset, mpBvecIterBvec, bvecIterPage,
  bvecIterOffset, bvecIterLen, bvecIterBvec, forEachBvec, forEachSegment,
} from './iter.js';
export {
  IovIter, iovIterBvec, iovIterUbuf, iovIterAdvance, iovIterRevert, copyToIter, copyFromIter, iovIterExtractPages, MAX_RW_COUNT,
} from './iov-iter.js';
export { extractIterToSg, SgEntryTable } from './extract-sg.js';
export { bioIovIterGetPages, bioRelease } from './gup.js';
export { bioSplitToLimits, bioGapBit } from './split.js';
export {
  blkRqMapSg, BlkSgTable, sgTableCost, SG_BYTES, SG_MAX_SINGLE_ALLOC, requestGapBit, blkRqDmaMap, blkRqDmaMapIter, blkRqDmaUnmap, BlkDmaMap,
} from './map.js';
export { BvecRanges } from './ranges.js';

export type { BvecVector } from './bvec.js';
export type { BvecIter, BioOptions } from './bio.js';
export type { BvecVisitor } from './iter.js';
export type { IterDirection, IovIterBvecOptions, ExtractResult, ExtractOptions } from './iov-iter.js';
export type { BioGetPagesOptions } from './gup.js';
export type { SgTableCost } from './map.js';
export type { BvecFromPagesOptions, BvecBackend } from './backend.js';
