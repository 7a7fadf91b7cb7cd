// fast-check generators for DMA devices: direct (reaching all of memory), bouncing (every entry
// through swiotlb, as swiotlb=force makes it) and behind an IOMMU, with random
// segment limits; and the device a spec describes on a given memory.

import fc from 'fast-check';
import { Device, Iommu, NO_SEG_BOUNDARY } from '@iodesc/core';
import type { PhysicalMemory } from '@iodesc/core';

/** What kind of path the device's DMA takes. */
export type DeviceKind = 'direct' | 'bounce' | 'iommu';

/** A device to build: its path and the limits a driver would set. */
export interface DeviceSpec {
  kind: DeviceKind;
  maxSegmentSize: number;
  segBoundaryMask: number;
}


/** Arbitrary device specs of every kind, or of the kinds given. */
export function deviceSpec(kinds: readonly DeviceKind[] = ['direct', 'bounce', 'iommu']): fc.Arbitrary<DeviceSpec> {
  return fc.record({
    kind: fc.constantFrom(...kinds),
    maxSegmentSize: fc.constantFrom(4096, 65536, 2 ** 20, 0xffffffff),
    segBoundaryMask: fc.constantFrom(NO_SEG_BOUNDARY, 0xffff, 0xfffff, 0xffffffff),
  });
}

/** The device `spec` describes, on `memory`, named for its kind. */
export function makeDevice(memory: PhysicalMemory, spec: DeviceSpec): Device {
  const limits = { maxSegmentSize: spec.maxSegmentSize, segBoundaryMask: spec.segBoundaryMask };
  switch (spec.kind) {
    case 'direct':
      return new Device(memory, { name: 'conformance-direct', ...limits });
    case 'bounce':
      // swiotlb=force: every entry goes through a bounce buffer, as in a confidential guest
      return new Device(memory, { name: 'conformance-bounce', forceBounce: true, ...limits });
    case 'iommu':
      return new Device(memory, { name: 'conformance-iommu', iommu: new Iommu(), ...limits });
  }
}
