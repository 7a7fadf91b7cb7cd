// DMA vocabulary shared by every backend's dmaMap. The device, IOMMU and swiotlb models that
// implement it arrive with the DMA layer; backends depend only on these shapes.

/** Direction of a transfer (`enum dma_data_direction`). */
export type DmaDirection = 'to-device' | 'from-device' | 'bidirectional';

/** One mapped run as the device sees it (`sg_dma_address`, `sg_dma_len`). */
export interface DmaSegment {
  dmaAddress: number;
  dmaLength: number;
}

/** What a backend maps for: a device with a name (the DMA layer adds limits and an IOMMU). */
export interface DmaDevice {
  readonly name: string;
}

/** A live DMA mapping of one descriptor for one device. */
export interface DmaMapping {
  readonly device: DmaDevice;
  readonly dir: DmaDirection;
  readonly nrSegments: number;
  segments(): Iterable<DmaSegment>;
}
