// The one tsup base every package spreads into its own few-line tsup.config.ts.
import type { Options } from 'tsup';

export const tsupBase: Options = {
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'es2022',
  splitting: false,
  treeshake: true,
};
