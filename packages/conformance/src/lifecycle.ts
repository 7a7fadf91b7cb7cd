// Pin lifecycles as a model-based test (fc.commands + fc.modelRun): descriptors taken, released
// and outlived by munmap in any order; the pins held always match the descriptors alive, and
// once all are released and unmapped the memory is as it was built.

import fc from 'fast-check';
import { describe, it } from 'vitest';
import { PAGE_SIZE } from '@iodesc/core';
import type { AddressSpace, DescriptorBackend, IoDescriptor, PhysicalMemory } from '@iodesc/core';
import { memorySeed, prefault } from './arbitraries.js';
import {
  checkCountsRestored, checkDirty, checkNoLeaks, checkPinnedOnce, checkSegmentsCover, checkThrowsCode, pfnsOf,
  piecesOfUserRange, snapshotCounts, type CountSnapshot,
} from './checks.js';
import { guardLeaks, newMachine, resolveOptions, type BackendFactory, type ConformanceOptions } from './harness.js';

/** Buffers the lifecycle runs over. */
const BUFFERS = 3;

/** What the model tracks: which buffers are mapped, how many descriptors are held. */
export interface LifecycleModel {
  mapped: boolean[];
  held: number;
}

/** The system under test: the backend, its machine, the buffers, the descriptors alive. */
export interface LifecycleReal {
  backend: DescriptorBackend;
  memory: PhysicalMemory;
  mm: AddressSpace;
  pristine: CountSnapshot;
  buffers: Array<{ addr: number; bytes: number }>;
  held: Array<{ desc: IoDescriptor; pfns: number[] }>;
}

/** One step of a lifecycle. */
export type LifecycleCommand = fc.Command<LifecycleModel, LifecycleReal>;

// The pins in memory are exactly one per page per descriptor alive.
function checkHeld(r: LifecycleReal): void {
  checkPinnedOnce(r.memory, r.pristine, r.held.flatMap((h) => h.pfns));
}

class GetCommand implements LifecycleCommand {
  constructor(readonly buf: number, readonly start: number, readonly length: number, readonly write: boolean) {}
  check(): boolean {
    return true;
  }
  run(m: LifecycleModel, r: LifecycleReal): void {
    const b = r.buffers[this.buf]!;
    const start = this.start % b.bytes;
    const length = Math.min(this.length, b.bytes - start);
    const addr = b.addr + start;
    if (!m.mapped[this.buf]) {
      checkThrowsCode(() => r.backend.getUser(r.mm, addr, length, { write: this.write }), 'EFAULT', 'getUser on an unmapped buffer');
    } else {
      const desc = r.backend.getUser(r.mm, addr, length, { write: this.write, longterm: true });
      const expected = piecesOfUserRange(r.mm, addr, length);
      checkSegmentsCover(desc, expected);
      r.held.push({ desc, pfns: pfnsOf(expected) });
      m.held++;
    }
    checkHeld(r);
  }
  toString(): string {
    return `get(buffer ${this.buf}, +${this.start}, ${this.length}, ${this.write ? 'write' : 'read'})`;
  }
}

class PutCommand implements LifecycleCommand {
  constructor(readonly pick: number, readonly dirty: boolean) {}
  check(m: Readonly<LifecycleModel>): boolean {
    return m.held > 0;
  }
  run(m: LifecycleModel, r: LifecycleReal): void {
    const [h] = r.held.splice(this.pick % r.held.length, 1);
    r.backend.putUser(h!.desc, { dirty: this.dirty });
    m.held--;
    if (this.dirty) checkDirty(r.memory, h!.pfns.filter((p) => r.memory.refcount[r.memory.folioHead(p)]! > 0), true);
    checkHeld(r);
  }
  toString(): string {
    return `put(#${this.pick}, dirty ${this.dirty})`;
  }
}

class MunmapCommand implements LifecycleCommand {
  constructor(readonly buf: number) {}
  check(m: Readonly<LifecycleModel>): boolean {
    return m.mapped[this.buf] === true;
  }
  run(m: LifecycleModel, r: LifecycleReal): void {
    const b = r.buffers[this.buf]!;
    r.mm.munmap(b.addr, b.bytes);
    m.mapped[this.buf] = false;
    checkHeld(r);
  }
  toString(): string {
    return `munmap(buffer ${this.buf})`;
  }
}

class TouchCommand implements LifecycleCommand {
  constructor(readonly buf: number) {}
  check(m: Readonly<LifecycleModel>): boolean {
    return m.mapped[this.buf] === true;
  }
  run(_m: LifecycleModel, r: LifecycleReal): void {
    const b = r.buffers[this.buf]!;
    prefault(r.mm, b.addr, b.bytes);
    checkHeld(r);
  }
  toString(): string {
    return `touch(buffer ${this.buf})`;
  }
}

const MAX_BUFFER_PAGES = 12;

/** The commands of a lifecycle: get, put, munmap, CPU touch. */
export function lifecycleCommands(): fc.Arbitrary<Iterable<LifecycleCommand>> {
  const buf = fc.integer({ min: 0, max: BUFFERS - 1 });
  return fc.commands([
    fc.tuple(buf, fc.nat(), fc.integer({ min: 1, max: MAX_BUFFER_PAGES * PAGE_SIZE }), fc.boolean()).map(([b, s, l, w]) => new GetCommand(b, s, l, w)),
    fc.tuple(fc.nat(), fc.boolean()).map(([p, d]) => new PutCommand(p, d)),
    buf.map((b) => new MunmapCommand(b)),
    buf.map((b) => new TouchCommand(b)),
  ], { maxCommands: 24 });
}

/** One lifecycle: fresh buffers, the commands, then release and unmap everything and compare with the pristine memory. */
export function checkLifecycle(backend: DescriptorBackend, seed: number, bufferPages: number[], cmds: Iterable<LifecycleCommand>): void {
  const { memory, mm } = newMachine(seed);
  const pristine = snapshotCounts(memory);
  const buffers = bufferPages.map((pages) => {
    const bytes = pages * PAGE_SIZE;
    const addr = mm.mmap(bytes);
    prefault(mm, addr, bytes);
    return { addr, bytes };
  });
  const real: LifecycleReal = { backend, memory, mm, pristine, buffers, held: [] };
  fc.modelRun(() => ({ model: { mapped: buffers.map(() => true), held: 0 }, real }), cmds);
  for (const h of real.held.splice(0)) backend.putUser(h.desc, { dirty: false });
  for (const b of buffers) mm.munmap(b.addr, b.bytes);
  checkCountsRestored(memory, pristine, 'after every descriptor was released and every buffer unmapped');
  checkNoLeaks(memory);
}

/** Registers the lifecycle group. */
export function lifecycleTests(factory: BackendFactory, options?: ConformanceOptions): void {
  const opts = resolveOptions(options);
  describe('pin lifecycle (model-based)', () => {
    guardLeaks();

    it('holds one pin per page per live descriptor through get, put, munmap and CPU writes, and frees all at the end', () => {
      const arb = fc.tuple(memorySeed(), fc.array(fc.integer({ min: 1, max: MAX_BUFFER_PAGES }), { minLength: BUFFERS, maxLength: BUFFERS }), lifecycleCommands());
      fc.assert(fc.property(arb, ([seed, pages, cmds]) => checkLifecycle(factory(), seed, pages, cmds)), { numRuns: opts.numRuns, seed: opts.seed });
    });
  });
}
