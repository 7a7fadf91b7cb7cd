// The backend registry: registerBackend / getBackend / listBackends / unregisterBackend.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { getBackend, listBackends, registerBackend, unregisterBackend, type DescriptorBackend } from '../src/index.js';
import { expectCode } from './helpers.js';

const registered: string[] = [];

function fakeBackend(name: string, overrides: Record<string, unknown> = {}): DescriptorBackend {
  const nope = () => {
    throw new Error('not implemented in the registry test');
  };
  const b = {
    name,
    capabilities: { dmaInline: false, chaining: false, multiPage: false, dma: false, toFrags: false, fragView: false },
    fromPages: nope,
    getUser: nope,
    putUser: nope,
    dmaMap: nope,
    dmaUnmap: nope,
    toFrags: nope,
    ...overrides,
  };
  return b as unknown as DescriptorBackend;
}

function register(b: DescriptorBackend): void {
  registerBackend(b);
  registered.push(b.name);
}

afterEach(() => {
  for (const name of registered.splice(0)) unregisterBackend(name);
});

describe('registerBackend', () => {
  it('registers a backend that getBackend then returns', () => {
    const b = fakeBackend('test-reg-a');
    register(b);
    expect(getBackend('test-reg-a')).toBe(b);
    expect(listBackends()).toContain('test-reg-a');
  });

  it('is a no-op when the same object is registered twice', () => {
    const b = fakeBackend('test-reg-twice');
    register(b);
    const before = listBackends();
    registerBackend(b);
    expect(listBackends()).toEqual(before);
    expect(getBackend('test-reg-twice')).toBe(b);
  });

  it('throws EEXIST for a different object under a taken name and keeps the first', () => {
    const first = fakeBackend('test-reg-dup');
    register(first);
    expectCode(() => registerBackend(fakeBackend('test-reg-dup')), 'EEXIST');
    expect(getBackend('test-reg-dup')).toBe(first);
  });

  it.each([
    ['null', null],
    ['a string', 'scatterlist'],
    ['an empty name', fakeBackend('')],
    ['a numeric name', fakeBackend(7 as never)],
    ['no capabilities', fakeBackend('test-bad', { capabilities: undefined })],
    ['null capabilities', fakeBackend('test-bad', { capabilities: null })],
    ['fromPages missing', fakeBackend('test-bad', { fromPages: undefined })],
    ['getUser not a function', fakeBackend('test-bad', { getUser: 1 })],
    ['putUser missing', fakeBackend('test-bad', { putUser: undefined })],
    ['dmaMap missing', fakeBackend('test-bad', { dmaMap: undefined })],
    ['dmaUnmap missing', fakeBackend('test-bad', { dmaUnmap: undefined })],
    ['toFrags missing', fakeBackend('test-bad', { toFrags: undefined })],
  ])('throws EINVAL for a malformed backend: %s', (_label, b) => {
    const before = listBackends();
    expectCode(() => registerBackend(b as never), 'EINVAL');
    expect(listBackends()).toEqual(before);
  });
});

describe('getBackend', () => {
  it('throws ENOENT for an unknown name', () => {
    expectCode(() => getBackend('test-reg-nope'), 'ENOENT');
  });

  it('throws EINVAL for a non-string name', () => {
    expectCode(() => getBackend(42 as never), 'EINVAL');
  });
});

describe('listBackends', () => {
  it('lists names in registration order', () => {
    const before = listBackends();
    register(fakeBackend('test-reg-z'));
    register(fakeBackend('test-reg-m'));
    expect(listBackends()).toEqual([...before, 'test-reg-z', 'test-reg-m']);
  });

  it('shares one registry through globalThis', () => {
    register(fakeBackend('test-reg-global'));
    const reg = (globalThis as unknown as Record<symbol, Map<string, unknown>>)[Symbol.for('iodesc.backend-registry')]!;
    expect(reg.has('test-reg-global')).toBe(true);
  });

  it('is one registry even for a second copy of core loaded beside the first', async () => {
    // what a bundler that duplicated core would produce: a fresh instance of the module
    vi.resetModules();
    const copy: typeof import('../src/index.js') = await import('../src/index.js?second-copy' as string);
    expect(copy.registerBackend).not.toBe(registerBackend);
    const b = fakeBackend('test-reg-copy');
    copy.registerBackend(b);
    registered.push('test-reg-copy');
    expect(getBackend('test-reg-copy')).toBe(b);
    expect(listBackends()).toContain('test-reg-copy');
  });
});

describe('unregisterBackend', () => {
  it('removes a backend and reports whether one was there', () => {
    registerBackend(fakeBackend('test-reg-gone'));
    expect(unregisterBackend('test-reg-gone')).toBe(true);
    expect(unregisterBackend('test-reg-gone')).toBe(false);
    expectCode(() => getBackend('test-reg-gone'), 'ENOENT');
  });
});
