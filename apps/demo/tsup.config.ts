import { defineConfig } from 'tsup';
import { tsupBase } from '../../tsup.base';

export default defineConfig({ ...tsupBase, entry: ['src/cli.ts'], dts: false, platform: 'node', banner: { js: '#!/usr/bin/env node' } });
