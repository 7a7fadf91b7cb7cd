// Network-side vocabulary every backend converts into (the model of skb_frag_t arrays). The
// FragArray implementation arrives with the network model; backends depend on this shape.

/** Fragments handed to the network stack: `count` entries of (page, offset, length). */
export interface FragArray {
  readonly count: number;
  /** Page frame of fragment `i`. */
  pfn(i: number): number;
  offset(i: number): number;
  length(i: number): number;
}

/** What re-describing memory for the network cost (`conversionBytes` in DESIGN.md). */
export interface ConversionCost {
  /** Bytes of descriptor entries written to describe memory that was already described. */
  conversionBytes: number;
  /** Allocations the kernel would make for it. */
  allocations: number;
}
