// The leak report: every page still pinned or referenced through get_user_pages, and every
// live resource another layer registered (DMA mappings, ...), each with the owner that took it.

import { checkMemory, type PhysicalMemory } from './memory.js';

/** One line of a leak report: something still held, and who took it. */
export interface LeakEntry {
  kind: 'pinned-page' | 'referenced-page' | 'dma-mapping' | 'other';
  /** Head PFN of the folio, for page entries. */
  pfn?: number;
  /** Pins or references still held. */
  count: number;
  owner: string | undefined;
  detail: string;
}

/**
 * Lists what is still held in `memory`: pinned folios (FOLL_PIN), folios with FOLL_GET
 * references, then the entries of every registered leak source. Empty when nothing leaked.
 * Cost: one pass over the frames (about 20 ms for 16 Mi frames).
 */
export function leakReport(memory: PhysicalMemory): LeakEntry[] {
  checkMemory(memory);
  const out: LeakEntry[] = [];
  const { pins, gets } = memory;
  for (let pfn = 0; pfn < memory.nrPages; pfn++) {
    const p = pins[pfn]!;
    const g = gets[pfn]!;
    if ((p | g) === 0) continue;
    const owner = memory.ownerName(memory.owner[pfn]!);
    if (p > 0) out.push({ kind: 'pinned-page', pfn, count: p, owner, detail: `folio ${pfn} (order ${memory.order[pfn]}) holds ${p} pin(s)` });
    if (g > 0) out.push({ kind: 'referenced-page', pfn, count: g, owner, detail: `folio ${pfn} (order ${memory.order[pfn]}) holds ${g} get_user_pages reference(s)` });
  }
  for (const source of memory.leakSources) out.push(...source());
  return out;
}
