// The one error class: an errno name the kernel would return, and a message naming the value.

/** The errno names this model raises (a subset of include/uapi/asm-generic/errno*.h). */
export type Errno =
  | 'EPERM' | 'ENOENT' | 'EINTR' | 'EIO' | 'E2BIG' | 'EAGAIN' | 'ENOMEM' | 'EFAULT' | 'EBUSY'
  | 'EEXIST' | 'ENODEV' | 'EINVAL' | 'ENOSPC' | 'ERANGE' | 'EMSGSIZE' | 'EOPNOTSUPP'
  | 'ENOBUFS' | 'EOVERFLOW' | 'EREMOTEIO' | 'EHWPOISON' | 'ENOTSUPP';

/** Every failure in iodesc: `code` is the errno the kernel would return for the same mistake. */
export class IodescError extends Error {
  readonly code: Errno;
  constructor(code: Errno, message: string) {
    super(`${code}: ${message}`);
    this.name = 'IodescError';
    this.code = code;
  }
}

const ERRNOS: ReadonlySet<string> = new Set<Errno>([
  'EPERM', 'ENOENT', 'EINTR', 'EIO', 'E2BIG', 'EAGAIN', 'ENOMEM', 'EFAULT', 'EBUSY', 'EEXIST', 'ENODEV', 'EINVAL',
  'ENOSPC', 'ERANGE', 'EMSGSIZE', 'EOPNOTSUPP', 'ENOBUFS', 'EOVERFLOW', 'EREMOTEIO', 'EHWPOISON', 'ENOTSUPP',
]);

/** Throws `IodescError(code, message)`; typed `never` so it ends control flow. */
export function fail(code: Errno, message: string): never {
  throw new IodescError(code, message);
}

/** True when `e` is an IodescError, optionally with the given code. */
export function isIodescError(e: unknown, code?: Errno): e is IodescError {
  return e instanceof IodescError && (code === undefined || e.code === code);
}

// Validation at the public boundary: each names the argument and the value it refused.

/** A whole number in [min, max]; EINVAL otherwise. */
export function checkInt(name: string, v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) fail('EINVAL', `${name} must be an integer, got ${String(v)}`);
  if (v < min || v > max) fail('EINVAL', `${name} = ${v} is outside [${min}, ${max}]`);
  return v;
}

/** One of the errno names this model raises; EINVAL otherwise. */
export function checkErrno(name: string, v: unknown): Errno {
  if (typeof v !== 'string' || !ERRNOS.has(v)) fail('EINVAL', `${name} must be an errno name such as 'EFAULT', got ${String(v)}`);
  return v as Errno;
}

/** An options object, or undefined (read as {}); EINVAL for anything else. */
export function checkOptions<T extends object>(name: string, v: T | undefined): Partial<T> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null) fail('EINVAL', `${name} must be an object, got ${String(v)}`);
  return v;
}

/** `n` as the kernel prints an address: 0x followed by hex digits. */
export function hex(n: number): string {
  return '0x' + n.toString(16);
}

/** A boolean; EINVAL otherwise. */
export function checkBool(name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') fail('EINVAL', `${name} must be a boolean, got ${String(v)}`);
  return v;
}

/** A Uint32Array with at least `min` slots; EINVAL otherwise. */
export function checkPageArray(name: string, v: unknown, min: number): Uint32Array {
  if (!(v instanceof Uint32Array)) fail('EINVAL', `${name} must be a Uint32Array of PFNs`);
  if (v.length < min) fail('EINVAL', `${name} holds ${v.length} slots, ${min} needed`);
  return v;
}
