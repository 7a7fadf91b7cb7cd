// Direct mapping (kernel/dma/direct.c): bus address = physical address, one DMA segment per
// entry, no merging; an entry the device cannot reach is bounced through swiotlb.

import type { Device } from './device.js';
import { IO_TLB_SIZE, swiotlbPool, swiotlbPoolIfAny } from './swiotlb.js';
import { deviceMayRead, deviceMayWrite, type DmaDirection } from './types.js';
import { hex } from '../errors.js';

/** Why a direct mapping failed: `dma_direct_map_sg` returns -EIO for every one of them. */
export type DirectMapFailure = { entry: number; reason: string };

/**
 * `dma_direct_map_sg` over `count` entries: writes bus addresses into `outAddr` (lengths are
 * the inputs'), and for each bounced entry its first swiotlb slot into `slots` (-1 otherwise).
 * With `requireCoherent` (DMA_ATTR_REQUIRE_COHERENT) an entry that would bounce fails instead
 * (`dma_direct_map_phys`). On failure everything already mapped is released without copying
 * back (SKIP_CPU_SYNC) and the failure is returned; null on success.
 */
export function directMapSg(
  device: Device, phys: Float64Array, lens: Float64Array, count: number, outAddr: Float64Array, slots: Int32Array, requireCoherent = false,
): DirectMapFailure | null {
  const limit = device.dmaLimit;
  for (let i = 0; i < count; i++) {
    const p = phys[i]!;
    const len = lens[i]!;
    // dma_capable(): the last byte must be within the mask, unless every mapping bounces
    if (!device.forceBounce && p + len - 1 <= limit) {
      outAddr[i] = p;
      slots[i] = -1;
      continue;
    }
    const why = requireCoherent
      ? `DMA_ATTR_REQUIRE_COHERENT forbids bouncing it through swiotlb (${device.forceBounce ? 'every mapping bounces' : `it ends beyond the ${device.dmaMaskBits}-bit DMA mask`})`
      : bounceMap(device, p, len, slots, i);
    if (why !== null) {
      directUnmapSg(device, slots, lens, i, 'to-device', true);
      return { entry: i, reason: why };
    }
    outAddr[i] = swiotlbPoolIfAny(device.memory)!.slotAddr(slots[i]!);
  }
  return null;
}

// swiotlb_map(): take slots, copy the original in (whatever the direction, since the 2022
// info-leak fix), and refuse a bounce buffer the device still cannot reach.
function bounceMap(device: Device, phys: number, len: number, slots: Int32Array, i: number): string | null {
  const pool = swiotlbPool(device.memory);
  if (pool === null) return 'no swiotlb pool could be allocated';
  const slot = pool.take(phys, len, device.segBoundaryMask);
  if (slot < 0) {
    device.warn(`swiotlb buffer is full (sz: ${len} bytes), total ${pool.nslabs} (slots), used ${pool.used} (slots)`, 'swiotlb');
    return `swiotlb buffer is full (sz: ${len} bytes), total ${pool.nslabs} (slots), used ${pool.used} (slots)`;
  }
  const tlb = pool.slotAddr(slot);
  if (tlb + len - 1 > device.dmaLimit) {
    pool.release(slot);
    device.warn(`swiotlb addr ${hex(tlb)}+${len} overflow (mask ${hex(device.dmaLimit)})`, 'swiotlb');
    return `swiotlb addr ${hex(tlb)}+${len} is beyond the device's ${device.dmaMaskBits}-bit DMA mask`;
  }
  pool.bounce(slot, len, true);
  slots[i] = slot;
  return null;
}

/**
 * `dma_direct_unmap_sg` over the first `count` entries: bounced ones are copied back for
 * from-device and bidirectional (unless `skipSync`) and their slots released.
 */
export function directUnmapSg(device: Device, slots: Int32Array, lens: Float64Array, count: number, dir: DmaDirection, skipSync = false): void {
  const pool = swiotlbPoolIfAny(device.memory);
  if (pool === null) return;
  for (let i = 0; i < count; i++) {
    const s = slots[i]!;
    if (s < 0) continue;
    if (!skipSync && deviceMayWrite(dir)) pool.bounce(s, lens[i]!, false);
    pool.release(s);
  }
}

/** `dma_direct_sync_sg_for_cpu` / `_for_device`: copies bounce buffers as `dir` asks. */
export function directSyncSg(device: Device, slots: Int32Array, lens: Float64Array, count: number, dir: DmaDirection, forCpu: boolean): void {
  const pool = swiotlbPoolIfAny(device.memory);
  if (pool === null) return;
  for (let i = 0; i < count; i++) {
    const s = slots[i]!;
    if (s < 0) continue;
    if (forCpu ? deviceMayWrite(dir) : deviceMayRead(dir)) pool.bounce(s, lens[i]!, !forCpu);
  }
}

/** Bytes of bounce slots the entries hold. */
export function bounceSlotBytes(slots: Int32Array, lens: Float64Array, count: number): number {
  let bytes = 0;
  for (let i = 0; i < count; i++) if (slots[i]! >= 0) bytes += Math.ceil(lens[i]! / IO_TLB_SIZE) * IO_TLB_SIZE;
  return bytes;
}
