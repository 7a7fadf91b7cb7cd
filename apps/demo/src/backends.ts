// Loads the backend packages: importing each registers it in core's registry, and everything
// after this reads the registry (`listBackends`, `getBackend`), never a backend by name.

/** The backend packages the CLI knows of; one not installed is skipped. */
export const BACKEND_PACKAGES = ['@iodesc/sglist', '@iodesc/bvec', '@iodesc/frag'];

/** Imports every installed backend package; returns the ones loaded. */
export async function loadBackends(): Promise<string[]> {
  const loaded: string[] = [];
  for (const name of BACKEND_PACKAGES) {
    try {
      await import(name);
      loaded.push(name);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'ERR_MODULE_NOT_FOUND' || !String((e as Error).message).includes(name)) throw e;
    }
  }
  return loaded;
}
