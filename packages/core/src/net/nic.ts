// A network interface card: a DMA device whose transmit maps a buffer's head and fragments
// through the DMA layer, reads the bytes with its DMA engine and puts them on a wire, and whose
// receive writes a frame into page fragments by DMA (a driver's ndo_start_xmit and NAPI poll).

import { PAGE_SIZE } from '../constants.js';
import { checkOptions, fail } from '../errors.js';
import { Device, type DeviceOptions } from '../dma/device.js';
import { dmaMapSegments, dmaUnmapSegments, type DmaMapping } from '../dma/mapping.js';
import type { PhysicalMemory } from '../mm/memory.js';
import { skbSegment } from './gso.js';
import { skbPush } from './skb-data.js';
import { consumeSkb, kfreeSkb } from './skb-free.js';
import { checkSkb, MAX_SKB_FRAGS, MAX_SKB_FRAGS_MAX, MAX_SKB_FRAGS_MIN, SkBuff, skbAddRxFrag } from './skbuff.js';
import { skbToSgvec } from './sgvec.js';

/** Where a NIC's frames go: a workload's adapter (in Node a TCP socket; a test's array). */
export interface Wire {
  /** Takes one frame, as the bytes the NIC read from memory (the array is the wire's to keep). */
  send(frame: Uint8Array): void;
}

/** Options of `new Nic`: a Device's, and what a NIC adds. */
export interface NicOptions extends DeviceOptions {
  /** The wire transmitted frames go to; `attach` sets it later. */
  wire?: Wire;
  /**
   * How transmit maps a buffer: `'frags'` (default) maps the head with `dma_map_single` and each
   * fragment with `skb_frag_dma_map`, one mapping each, as most drivers do; `'sgvec'` builds a
   * scatterlist with `skbToSgvec` and maps it with one `dma_map_sg`.
   */
  mapping?: 'frags' | 'sgvec';
  /** `CONFIG_MAX_SKB_FRAGS` of received buffers (17..45; default 17): the longest frame is that many pages. */
  rxMaxFrags?: number;
}

/** What a NIC counted, named as `ip -s link` prints it. */
export interface NicStats {
  txPackets: number;
  txBytes: number;
  /** Buffers dropped because a mapping failed. */
  txDropped: number;
  rxPackets: number;
  rxBytes: number;
  /** Frames refused on receive (too long, no memory). */
  rxDropped: number;
  /** DMA mappings made by transmit and receive (each unmapped before the call returns). */
  mappings: number;
}

/**
 * A NIC (`new Nic(memory, { name, iommu, ..., wire, mapping })`): a `Device` with the default
 * segment size raised to `UINT_MAX` (`dma_set_max_seg_size`, as NIC drivers declare it).
 */
export class Nic extends Device {
  wire: Wire | null;
  readonly mapping: 'frags' | 'sgvec';
  readonly rxMaxFrags: number;
  readonly stats: NicStats = { txPackets: 0, txBytes: 0, txDropped: 0, rxPackets: 0, rxBytes: 0, rxDropped: 0, mappings: 0 };

  constructor(memory: PhysicalMemory, opts?: NicOptions) {
    const o = checkOptions('Nic options', opts);
    super(memory, { ...o, maxSegmentSize: o.maxSegmentSize ?? 0xffffffff });
    if (o.mapping !== undefined && o.mapping !== 'frags' && o.mapping !== 'sgvec') fail('EINVAL', `mapping must be 'frags' or 'sgvec', got ${String(o.mapping)}`);
    if (o.wire !== undefined) checkWire(o.wire);
    const rx = o.rxMaxFrags ?? MAX_SKB_FRAGS;
    if (!Number.isInteger(rx) || rx < MAX_SKB_FRAGS_MIN || rx > MAX_SKB_FRAGS_MAX) fail('EINVAL', `rxMaxFrags = ${String(rx)} is outside [${MAX_SKB_FRAGS_MIN}, ${MAX_SKB_FRAGS_MAX}]`);
    this.mapping = o.mapping ?? 'frags';
    this.wire = o.wire ?? null;
    this.rxMaxFrags = rx;
  }

  /** Connects the NIC to `wire` (replacing any other). */
  attach(wire: Wire): void {
    checkWire(wire);
    this.wire = wire;
  }

  /**
   * Transmits `skb` (`ndo_start_xmit`, then the TX completion): a GSO buffer is segmented in
   * software first (`skbSegment` at `gsoSize`, as `validate_xmit_skb` does for a NIC without
   * TSO), each frame starting at its MAC header; every piece is mapped to-device, read by the
   * DMA engine in order, handed to the wire, unmapped, and the buffer consumed (which completes
   * a zero-copy send). Returns the frames sent.
   *
   * EINVAL (the buffer stays the caller's) for a freed buffer, one on another memory, or no
   * wire. Once accepted the buffer is always consumed: a failure to map (EIO, ENOMEM), a net_iov
   * fragment (EINVAL) or a too-long segmentation unmaps what was mapped, drops the buffer
   * (`txDropped`) and throws. Cost: one mapping per head and fragment ('frags') or per buffer ('sgvec').
   */
  transmit(skb: SkBuff): number {
    checkSkb(skb);
    if (skb.memory !== this.memory) fail('EINVAL', `skb #${skb.id} is not in ${this.name}'s memory`);
    if (this.wire === null) fail('EINVAL', `${this.name} has no wire attached`);
    if (this.removed) fail('ENODEV', `device ${this.name} has been torn down`);
    let frames: SkBuff[];
    try {
      if (skb.gsoSize > 0 && skb.len > skb.gsoSize) {
        frames = skbSegment(skb, { mss: skb.gsoSize });
        consumeSkb(skb);
      } else {
        frames = [skb];
      }
    } catch (e) {
      this.stats.txDropped++;
      if (!skb.freed) kfreeSkb(skb);
      throw e;
    }
    let k = 0;
    try {
      for (; k < frames.length; k++) {
        this.xmitOne(frames[k]!);
        consumeSkb(frames[k]!);
      }
    } catch (e) {
      for (; k < frames.length; k++) {
        this.stats.txDropped++;
        if (!frames[k]!.freed) kfreeSkb(frames[k]!);
      }
      throw e;
    }
    return frames.length;
  }

  // One frame: map, read through the DMA engine, send, unmap.
  private xmitOne(skb: SkBuff): void {
    const hdr = skb.macHeaderLen;
    if (hdr > 0) skbPush(skb, hdr);
    const maps: DmaMapping[] = [];
    try {
      if (this.mapping === 'sgvec') {
        const sg = skbToSgvec(skb);
        if (sg.count > 0) maps.push(this.map(sg.phys, sg.lens, sg.count));
      } else {
        this.mapFrags(skb, maps);
      }
      let total = 0;
      for (const m of maps) for (let s = 0; s < m.count; s++) total += m.dmaLength(s);
      if (total !== skb.len) fail('EINVAL', `skb #${skb.id}: ${total} bytes mapped, len is ${skb.len}`);
      // the frame is the wire's to keep; the DMA engine reads each segment straight into it
      const frame = new Uint8Array(skb.len);
      let at = 0;
      for (const m of maps) {
        for (let s = 0; s < m.count; s++) {
          const n = m.dmaLength(s);
          this.dmaReadInto(m.dmaAddress(s), frame, at, n);
          at += n;
        }
      }
      this.wire!.send(frame);
      this.stats.txPackets++;
      this.stats.txBytes += frame.length;
    } finally {
      for (const m of maps) dmaUnmapSegments(this, m);
    }
  }

  // dma_map_single() of the linear part, skb_frag_dma_map() of each fragment, then the same for
  // each frag_list member (a NIC with NETIF_F_FRAGLIST).
  // One-entry lists reused for every mapping (dmaMapSegments copies what it keeps).
  readonly #phys1 = new Float64Array(1);
  readonly #lens1 = new Float64Array(1);

  private mapFrags(skb: SkBuff, maps: DmaMapping[]): void {
    if (skb.headlen > 0) maps.push(this.mapOne(skb.dataPhys, skb.headlen));
    const arr = skb.fragArray;
    for (let k = 0; k < skb.nrFrags; k++) {
      const j = skb.fragBase + k;
      if (arr.length(j) === 0) continue;
      maps.push(this.mapOne(arr.pfn(j) * PAGE_SIZE + arr.offset(j), arr.length(j)));
    }
    for (let m = skb.fragList; m !== null; m = m.next) this.mapFrags(m, maps);
  }

  private mapOne(phys: number, len: number, dir: 'to-device' | 'from-device' = 'to-device'): DmaMapping {
    this.#phys1[0] = phys;
    this.#lens1[0] = len;
    return this.map(this.#phys1, this.#lens1, 1, dir);
  }

  private map(phys: Float64Array, lens: Float64Array, count: number, dir: 'to-device' | 'from-device' = 'to-device'): DmaMapping {
    const m = dmaMapSegments(this, phys, lens, count, dir, { owner: `${this.name} ${dir === 'to-device' ? 'tx' : 'rx'}` });
    this.stats.mappings++;
    return m;
  }

  /**
   * Receives `frame` from the wire (a NAPI poll of one descriptor): page buffers are allocated
   * (the driver's page pool), each mapped from-device, written by the DMA engine, unmapped and
   * added as a fragment (`skb_add_rx_frag`) of a new buffer with an empty head. Returns the
   * buffer, the caller's to consume (its pages go with it). EMSGSIZE for an empty frame or one
   * longer than `rxMaxFrags` pages, ENOMEM when memory runs out; nothing stays allocated then.
   */
  receive(frame: Uint8Array): SkBuff {
    if (!(frame instanceof Uint8Array)) fail('EINVAL', 'frame must be a Uint8Array');
    if (this.removed) fail('ENODEV', `device ${this.name} has been torn down`);
    const max = this.rxMaxFrags * PAGE_SIZE;
    if (frame.length === 0 || frame.length > max) {
      this.stats.rxDropped++;
      fail('EMSGSIZE', `a frame of ${frame.length} bytes: ${this.name} receives 1..${max} (${this.rxMaxFrags} pages)`);
    }
    const mem = this.memory;
    let skb: SkBuff;
    try {
      skb = new SkBuff({ memory: mem, maxFrags: this.rxMaxFrags });
    } catch (e) {
      this.stats.rxDropped++;
      throw e;
    }
    try {
      for (let at = 0, k = 0; at < frame.length; at += PAGE_SIZE, k++) {
        const n = Math.min(PAGE_SIZE, frame.length - at);
        const pfn = mem.allocFolio(0, false);
        if (pfn < 0) fail('ENOMEM', `${this.name}: no page for receive buffer ${k}`);
        let m: DmaMapping;
        try {
          m = this.mapOne(pfn * PAGE_SIZE, PAGE_SIZE, 'from-device');
        } catch (e) {
          mem.folioPutRefs(pfn, 1);
          throw e;
        }
        try {
          this.dmaWrite(m.dmaAddress(0), frame.subarray(at, at + n));
        } finally {
          dmaUnmapSegments(this, m);
        }
        // the page's allocation reference passes to the fragment
        skbAddRxFrag(skb, k, pfn, 0, n, PAGE_SIZE);
      }
    } catch (e) {
      this.stats.rxDropped++;
      kfreeSkb(skb);
      throw e;
    }
    this.stats.rxPackets++;
    this.stats.rxBytes += frame.length;
    return skb;
  }
}

function checkWire(wire: unknown): asserts wire is Wire {
  if (typeof wire !== 'object' || wire === null || typeof (wire as Wire).send !== 'function') fail('EINVAL', 'wire must be an object with send(frame)');
}
