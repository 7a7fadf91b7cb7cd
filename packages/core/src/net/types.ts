// The network-side vocabulary of the descriptor interface: what converting a descriptor to
// fragments cost (`ToFragsResult.cost`; `conversionBytes` in DESIGN.md).

/** What handing a descriptor to the network cost; all zero for a view. */
export interface ConversionCost {
  /** Times memory already described was described again (1 per converting `toFrags`, 0 for a view). */
  conversions: number;
  /** Bytes of descriptor entries written to re-describe it (`SKB_FRAG_SIZE` per fragment). */
  conversionBytes: number;
  /**
   * Allocations the kernel would make to hold the result: fragments live in a network buffer's
   * shared info, so ⌈fragments / MAX_SKB_FRAGS⌉ buffers, each an `sk_buff` and a head (2
   * allocations each, as `SkBuff.footprint` counts them); 0 for a view (`fragConversionCost`).
   */
  allocations: number;
}

/** Options of `toFrags`; a backend may read more of its own. */
export interface ToFragsOptions {
  [key: string]: unknown;
}
