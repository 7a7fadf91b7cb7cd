// The backend registry: apps select a backend by name at runtime. Kept on globalThis under a
// registered symbol so that even two copies of core in one program share one registry.

import { fail } from '../errors.js';
import type { DescriptorBackend } from './types.js';

const KEY = Symbol.for('iodesc.backend-registry');
type Registry = Map<string, DescriptorBackend>;

function registry(): Registry {
  const g = globalThis as unknown as Record<symbol, Registry | undefined>;
  return (g[KEY] ??= new Map());
}

const REQUIRED = ['fromPages', 'getUser', 'putUser', 'dmaMap', 'dmaUnmap', 'toFrags'] as const;

/**
 * Registers `backend` under `backend.name`. Registering the same object again is a no-op;
 * another object under a taken name is EEXIST; a malformed backend is EINVAL.
 */
export function registerBackend(backend: DescriptorBackend<any>): void {
  if (typeof backend !== 'object' || backend === null) fail('EINVAL', 'backend must be an object');
  if (typeof backend.name !== 'string' || backend.name === '') fail('EINVAL', 'backend.name must be a non-empty string');
  if (typeof backend.capabilities !== 'object' || backend.capabilities === null) fail('EINVAL', `backend '${backend.name}' has no capabilities record`);
  for (const m of REQUIRED) {
    if (typeof backend[m] !== 'function') fail('EINVAL', `backend '${backend.name}' lacks ${m}()`);
  }
  const reg = registry();
  const taken = reg.get(backend.name);
  if (taken === backend) return;
  if (taken !== undefined) fail('EEXIST', `a different backend is already registered as '${backend.name}'`);
  reg.set(backend.name, backend);
}

/** The backend registered as `name`; ENOENT naming the ones there are otherwise. */
export function getBackend<D extends DescriptorBackend<any> = DescriptorBackend>(name: string): D {
  if (typeof name !== 'string') fail('EINVAL', `backend name must be a string, got ${String(name)}`);
  const b = registry().get(name);
  if (b === undefined) fail('ENOENT', `no backend '${name}' (registered: ${[...registry().keys()].join(', ') || 'none'})`);
  return b as D;
}

/** Names of the registered backends, in registration order. */
export function listBackends(): string[] {
  return [...registry().keys()];
}

/** Removes the backend registered as `name` (for tests and plug-in reloads); true if one was. */
export function unregisterBackend(name: string): boolean {
  if (typeof name !== 'string') fail('EINVAL', `backend name must be a string, got ${String(name)}`);
  return registry().delete(name);
}
