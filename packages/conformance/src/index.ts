// @iodesc/conformance: the vitest suite every DescriptorBackend runs, one function per group of
// behaviour, the plain checks behind them, and the fast-check generators they draw from.

import { describe } from 'vitest';
import { capabilityTests } from './capabilities.js';
import { dirtyTests } from './dirty.js';
import { dmaTests } from './dma.js';
import { fromPagesTests } from './from-pages.js';
import { probe, type BackendFactory, type ConformanceOptions } from './harness.js';
import { leakTests } from './leak.js';
import { lifecycleTests } from './lifecycle.js';
import { pinningTests } from './pinning.js';
import { thpTests } from './thp.js';
import { conversionTests } from './conversion.js';
import { unwindTests } from './unwind.js';

/**
 * Registers the whole suite for the backend `backendFactory` makes, inside one
 * `describe('<name> backend conformance')`. Groups pick their tests from `backend.capabilities`;
 * every test builds fresh memory and checks the leak report is empty afterwards.
 */
export function conformance(backendFactory: BackendFactory, options?: ConformanceOptions): void {
  const backend = probe(backendFactory);
  describe(`${backend.name} backend conformance`, () => {
    capabilityTests(backendFactory, options);
    fromPagesTests(backendFactory, options);
    pinningTests(backendFactory, options);
    dirtyTests(backendFactory, options);
    unwindTests(backendFactory, options);
    leakTests(backendFactory, options);
    thpTests(backendFactory, options);
    lifecycleTests(backendFactory, options);
    conversionTests(backendFactory, options);
    dmaTests(backendFactory, options);
  });
}

export { capabilityTests, CAPABILITY_KEYS } from './capabilities.js';
export { fromPagesTests, checkFromPagesCase } from './from-pages.js';
export { pinningTests, checkGetUserCase, checkOverlapCase, getUserCase, overlapCase } from './pinning.js';
export { dirtyTests, checkDirtyCase, dirtyCase } from './dirty.js';
export { unwindTests, checkInjectedFaultCase, checkAllocFailureCase, checkOutOfMemoryCase, checkRunOffCase, injectCase } from './unwind.js';
export { leakTests, checkOwnerCase, ownerCase } from './leak.js';
export { thpTests, checkThpCase, thpCase } from './thp.js';
export { lifecycleTests, checkLifecycle, lifecycleCommands } from './lifecycle.js';
export {
  conversionTests, toFragsTests, checkToFragsCase, checkToFragsUserCase, checkToFragsBadInput, checkFragsWellFormed, checkConversionCost, checkSpill,
  SPILL_MAX_FRAGS,
} from './conversion.js';
export { dmaTests, dmaCase, checkDmaWriteCase, checkDmaReadCase, dmaResources } from './dma.js';
export { deviceSpec, makeDevice } from './devices.js';
export {
  ConformanceError, checkSegmentsCover, checkSegmentLimits, checkSegmentsFresh, checkFootprint, checkPiecesEqual,
  checkCountsRestored, checkPinnedOnce, checkDirty, checkNoLeaks, checkThrowsCode, snapshotCounts, withFaultedIn,
  piecesOfSegments, piecesOfPages, piecesOfUserRange, piecesOfFrags, pfnsOf,
} from './checks.js';
export {
  pageRun, pageLayout, layoutPages, materialiseLayout, memorySeed, fromPagesCase, userRange, thpUserRange,
  userRangePages, userRangeMappingBytes, mapUserRange, prefault, pageOfRange,
} from './arbitraries.js';
export { newMachine, guardLeaks, resolveOptions, runProperty, MACHINE_BYTES } from './harness.js';

export type { BackendFactory, ConformanceOptions, ResolvedOptions, Machine } from './harness.js';
export type { PagePiece, CountSnapshot } from './checks.js';
export type {
  PageRun, PageLayout, PageLayoutConstraints, MaterialisedLayout, FromPagesCase, UserRange, UserRangeConstraints,
  MapUserRangeOptions,
} from './arbitraries.js';
export type { GetUserCase, OverlapCase } from './pinning.js';
export type { DirtyCase } from './dirty.js';
export type { InjectCase } from './unwind.js';
export type { OwnerCase } from './leak.js';
export type { ThpCase } from './thp.js';
export type { DmaCase } from './dma.js';
export type { DeviceSpec, DeviceKind } from './devices.js';
export type { LifecycleModel, LifecycleReal, LifecycleCommand } from './lifecycle.js';
