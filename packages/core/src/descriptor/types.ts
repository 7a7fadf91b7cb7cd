// The descriptor interface every backend implements (scatterlist, bio_vec, unified fragment),
// and the footprint it reports: what the kernel's structures for it would cost.

import type { Device } from '../dma/device.js';
import type { DmaMapping } from '../dma/mapping.js';
import type { DmaDirection } from '../dma/types.js';
import type { AddressSpace } from '../mm/mm.js';
import type { PhysicalMemory } from '../mm/memory.js';
import type { FragArray } from '../net/frag.js';
import type { ConversionCost, ToFragsOptions } from '../net/types.js';

/** One descriptor entry: `pfn` holds its first byte, `offset < PAGE_SIZE`, `length` may span pages. */
export interface Segment {
  pfn: number;
  offset: number;
  length: number;
}

/** What the kernel would allocate for a descriptor (x86-64 sizes, kmalloc size classes). */
export interface Footprint {
  /** Bytes charged, each allocation rounded up to its kmalloc size class. */
  bytes: number;
  /** Allocations made. */
  allocations: number;
  /** Descriptor entries (scatterlist slots, bio_vecs, fragments), chain slots included. */
  entries: number;
  /** Bytes per structure, e.g. `{ scatterlist: 4096, sg_table: 16 }`. */
  breakdown: Record<string, number>;
}

/** A range of memory described for I/O by one backend. */
export interface IoDescriptor {
  readonly backend: string;
  /** Bytes described. */
  readonly length: number;
  readonly nrSegments: number;
  /** Entries in order, a fresh object each (a convenience API: hot paths read typed arrays). */
  segments(): Iterable<Segment>;
  footprint(): Footprint;
}

/** What a backend supports; the conformance suite picks its groups from this record. */
export interface BackendCapabilities {
  /** Entries carry their DMA address and length inline (scatterlist). */
  dmaInline: boolean;
  /** Descriptors chain into longer ones (sg chaining, bio chains). */
  chaining: boolean;
  /** One entry may span physically contiguous pages. */
  multiPage: boolean;
  /** `dmaMap`/`dmaUnmap` are implemented. */
  dma: boolean;
  /** `toFrags` is implemented. */
  toFrags: boolean;
  /** `toFrags` returns a view, with no conversion. */
  fragView: boolean;
}

/** Options of `fromPages`. */
export interface FromPagesOptions {
  /** Largest segment to build (bytes). */
  maxSegmentSize?: number;
}

/** Options of `getUser`. */
export interface GetUserOptions {
  /** The device will write into the memory (FOLL_WRITE). */
  write: boolean;
  /** The pin may be held indefinitely (FOLL_LONGTERM). */
  longterm?: boolean;
  /** Tag named by the leak report. */
  owner?: string;
}

/** Options of `putUser`. */
export interface PutUserOptions {
  /** Mark the pages dirty before unpinning (the device wrote them). */
  dirty: boolean;
}

/**
 * The result of handing a descriptor to the network: fragments naming exactly the descriptor's
 * bytes in order (spread over buffers with `skbsFromFrags`), and what re-describing them cost.
 */
export interface ToFragsResult {
  frags: FragArray;
  cost: ConversionCost;
}

/** One way of describing memory for I/O. Implemented once per backend package. */
export interface DescriptorBackend<D extends IoDescriptor = IoDescriptor> {
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  /** Describes `length` bytes of `pages` from byte `offset` of the first page; takes no reference. */
  fromPages(memory: PhysicalMemory, pages: Uint32Array, offset: number, length: number, opts?: FromPagesOptions): D;
  /** Pins `length` bytes of user memory at `addr` and describes them; unwinds fully on failure. */
  getUser(mm: AddressSpace, addr: number, length: number, opts: GetUserOptions): D;
  /** Releases what `getUser` pinned, dirtying first when asked. */
  putUser(desc: D, opts: PutUserOptions): void;
  /**
   * Maps the descriptor for `device` in direction `dir`, honouring the device's limits (through
   * core's `dmaMapSegments`, or a backend's own walk that produces the same segments).
   */
  dmaMap(desc: D, device: Device, dir: DmaDirection): DmaMapping;
  /** Unmaps what `dmaMap` mapped (`dmaUnmapSegments` with the mapping's own direction). */
  dmaUnmap(mapping: DmaMapping): void;
  /**
   * Hands the descriptor to the network as `skb_frag_t` entries (`capabilities.toFrags`; else
   * EOPNOTSUPP). A backend whose entries are not fragments converts them and counts it in `cost`;
   * only a view (`capabilities.fragView`) costs nothing. The fragments take no reference.
   */
  toFrags(desc: D, opts?: ToFragsOptions): ToFragsResult;
}
