// Mapping a table for a device (kernel/dma/mapping.c: dma_map_sg_attrs, dma_map_sgtable,
// dma_unmap_sg_attrs, dma_unmap_sgtable) through core's DMA layer, the DMA fields written in place.

import { checkDirection, checkInt, Device, dmaMapSegments, dmaUnmapSegments, fail, IodescError, PAGE_SIZE } from '@iodesc/core';
import type { DmaDirection, DmaMapping } from '@iodesc/core';
import { checkTable, nextSlot, SG_DMA_ADDRESS, SG_DMA_LENGTH, SG_F64_WORDS, SG_LENGTH, SG_OFFSET, SG_PAGE_LINK, SG_WORDS, SgTable } from './table.js';

/**
 * @internal Maps the first `nents` entries of `t` with `dmaMapSegments` and writes the mapping's
 * segments into the entries' DMA fields: segment i into entry i, entries past the mapped count
 * read DMA address 0 and length 0 (dma-iommu's `__finalise_sg`). `requireCoherent` maps with
 * DMA_ATTR_REQUIRE_COHERENT (no bouncing). Throws the layer's code, with nothing changed.
 */
export function mapEntries(device: Device, t: SgTable, nents: number, dir: DmaDirection, owner?: string, requireCoherent = false): DmaMapping {
  const phys = new Float64Array(nents);
  const lens = new Float64Array(nents);
  const { u32, f64 } = t.store;
  let s = t.sgl;
  for (let i = 0; i < nents; i++, s = nextSlot(u32, s)) {
    const b = s * SG_WORDS;
    phys[i] = (u32[b + SG_PAGE_LINK]! >>> 2) * PAGE_SIZE + u32[b + SG_OFFSET]!;
    lens[i] = u32[b + SG_LENGTH]!;
  }
  const m = dmaMapSegments(device, phys, lens, nents, dir, owner === undefined ? { requireCoherent } : { owner, requireCoherent });
  s = t.sgl;
  for (let i = 0; i < nents; i++, s = nextSlot(u32, s)) {
    const mapped = i < m.count;
    f64[s * SG_F64_WORDS + SG_DMA_ADDRESS] = mapped ? m.dmaAddress(i) : 0;
    u32[s * SG_WORDS + SG_DMA_LENGTH] = mapped ? m.dmaLength(i) : 0;
  }
  t.mapping = m;
  t.dmaCount = m.count;
  return m;
}

// What map calls check first: a live table with entries, not mapped already, a device, a direction.
function checkMap(device: unknown, table: unknown, dir: unknown): SgTable {
  if (!(device instanceof Device)) fail('EINVAL', 'device must be a Device');
  const t = checkTable('table', table);
  checkDirection('dir', dir);
  if (t.origNents === 0) fail('EINVAL', 'the table has no entries');
  if (t.mapping !== null) fail('EBUSY', `the table is already mapped (${t.mapping.describe()}); its DMA fields hold one mapping`);
  return t;
}

/**
 * Maps the table's `origNents` entries for `device` (`dma_map_sgtable`): the DMA fields are
 * written in place and `table.nents` becomes the mapped count (fewer when an IOMMU merged
 * entries); entries past it read DMA length 0. An entry longer than the device's max segment is
 * a DMA-debug warning, mapped anyway. Cost: O(entries) plus core's mapping. Release with
 * `dmaUnmapSgtable`. Throws ENOMEM (IOVA space), EIO (cannot bounce), EINVAL (bad arguments,
 * an entry core refuses), EBUSY (already mapped), ENODEV; nothing changes then.
 */
export function dmaMapSgtable(device: Device, table: SgTable, dir: DmaDirection): void {
  mapSgtable(device, table, dir);
}

/** @internal `dmaMapSgtable`, returning the mapping (the backend hands it out). */
export function mapSgtable(device: Device, table: SgTable, dir: DmaDirection): DmaMapping {
  const t = checkMap(device, table, dir);
  const m = mapEntries(device, t, t.origNents, dir);
  t.nents = m.count;
  return m;
}

/** Unmaps what `dmaMapSgtable` mapped (`dma_unmap_sgtable`). EINVAL when the table is not mapped, or mapped for another device. */
export function dmaUnmapSgtable(device: Device, table: SgTable, dir: DmaDirection): void {
  const t = checkTable('table', table);
  unmap(device, t, t.origNents, dir);
}

/**
 * Maps the first `nents` entries (`dma_map_sg_attrs`) and returns how many DMA segments they
 * became, 0 when the mapping fails (the kernel's return; nothing is mapped then). `table.nents`
 * is left alone. Release with `dmaUnmapSg` and the same `nents`. EINVAL (thrown) for bad
 * arguments, EBUSY for a table already mapped.
 */
export function dmaMapSg(device: Device, table: SgTable, nents: number, dir: DmaDirection): number {
  const t = checkMap(device, table, dir);
  checkInt('nents', nents, 1, t.origNents);
  try {
    return mapEntries(device, t, nents, dir).count;
  } catch (e) {
    if (e instanceof IodescError) return 0;
    throw e;
  }
}

/**
 * Unmaps what `dmaMapSg` mapped (`dma_unmap_sg_attrs`); `nents` must be the count given to
 * `dmaMapSg`, not the one it returned (EINVAL otherwise, as dma-debug reports it).
 */
export function dmaUnmapSg(device: Device, table: SgTable, nents: number, dir: DmaDirection): void {
  const t = checkTable('table', table);
  checkInt('nents', nents, 1);
  unmap(device, t, nents, dir);
}

function unmap(device: unknown, t: SgTable, nents: number, dir: unknown): void {
  if (!(device instanceof Device)) fail('EINVAL', 'device must be a Device');
  checkDirection('dir', dir);
  const m = t.mapping;
  if (m === null) fail('EINVAL', 'the table is not DMA-mapped');
  if (nents !== m.nents) {
    device.warn(`device driver frees DMA sg list with different entry count [map count=${m.nents}] [unmap count=${nents}]: ${m.describe()}`);
    fail('EINVAL', `unmap with nents ${nents}: the table was mapped with ${m.nents} entries (pass the original count)`);
  }
  dmaUnmapSegments(device, m, dir as DmaDirection);
  t.mapping = null;
  t.dmaCount = 0;
}

/**
 * @internal Unmaps whatever mapping the table holds, with its own device, entry count and
 * direction (the owner of the table tearing it down: putUserSg, ibUmemRelease).
 */
export function unmapTable(t: SgTable): void {
  const m = t.mapping;
  if (m === null) return;
  dmaUnmapSegments(m.device, m, m.dir);
  t.mapping = null;
  t.dmaCount = 0;
}

/**
 * The longest entry `device` takes whole, in whole pages: its max segment size, what it can map
 * in one go (`dma_max_mapping_size`: 256 KiB when it may bounce) and its segment boundary.
 */
export function deviceSegmentLimit(device: Device): number {
  const limit = Math.min(device.maxSegmentSize, device.maxMappingSize(), device.segBoundaryMask + 1);
  return Math.max(PAGE_SIZE, Math.floor(limit / PAGE_SIZE) * PAGE_SIZE);
}
