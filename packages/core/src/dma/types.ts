// DMA vocabulary shared by every backend's dmaMap (include/linux/dma-direction.h,
// include/linux/dma-mapping.h): directions and the shape of one mapped segment.

import { fail } from '../errors.js';

/** Direction of a transfer (`enum dma_data_direction`). */
export type DmaDirection = 'to-device' | 'from-device' | 'bidirectional';

/** The device reads memory (`DMA_TO_DEVICE`). */
export const DMA_TO_DEVICE = 'to-device';
/** The device writes memory (`DMA_FROM_DEVICE`). */
export const DMA_FROM_DEVICE = 'from-device';
/** Either (`DMA_BIDIRECTIONAL`). */
export const DMA_BIDIRECTIONAL = 'bidirectional';

/** Checks a direction (`valid_dma_direction`); EINVAL for anything else, DMA_NONE included. */
export function checkDirection(name: string, dir: unknown): DmaDirection {
  if (dir !== DMA_TO_DEVICE && dir !== DMA_FROM_DEVICE && dir !== DMA_BIDIRECTIONAL) {
    fail('EINVAL', `${name} must be 'to-device', 'from-device' or 'bidirectional', got ${String(dir)}`);
  }
  return dir;
}

/** The device may read memory through a mapping made for `dir` (IOMMU_READ). */
export function deviceMayRead(dir: DmaDirection): boolean {
  return dir !== DMA_FROM_DEVICE;
}

/** The device may write memory through a mapping made for `dir` (IOMMU_WRITE). */
export function deviceMayWrite(dir: DmaDirection): boolean {
  return dir !== DMA_TO_DEVICE;
}

/** One mapped run as the device sees it (`sg_dma_address`, `sg_dma_len`). */
export interface DmaSegment {
  dmaAddress: number;
  dmaLength: number;
}
