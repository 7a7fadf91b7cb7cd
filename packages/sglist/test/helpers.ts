// Helpers shared by the sglist tests.

import { IodescError } from '@iodesc/core';

/** The errno code `fn` throws as an IodescError, undefined when it returns; rethrows anything else. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof IodescError) return e.code;
    throw e;
  }
  return undefined;
}
