// Build of /ohif/pacs-auth.js, the OHIF Viewer's sign-in bridge (auth-bridge.ts): one
// classic script (IIFE, no imports at run time) that app-config.js can rely on, with the
// licence notice of what it bundles (the Firebase Auth SDK). Run by tools/ohif_build.py with
// PACS_OHIF_BRIDGE_OUT naming the output folder.
import { defineConfig } from 'vite';
import { resolve } from 'node:path';
import { thirdPartyLicences } from '../vite-licences.ts';

const here = import.meta.dirname;
const out = process.env.PACS_OHIF_BRIDGE_OUT;
if (!out) throw new Error('PACS_OHIF_BRIDGE_OUT is not set (run python -m tools.ohif_build)');

export default defineConfig({
  root: here,
  publicDir: false,
  plugins: [thirdPartyLicences('pacs-auth-licences.txt').main()],
  build: {
    outDir: out,
    emptyOutDir: false,
    target: 'es2022',
    sourcemap: false,
    minify: true,
    lib: {
      entry: resolve(here, 'auth-bridge.ts'),
      formats: ['iife'],
      name: 'pacsAuthBridge',
      fileName: () => 'pacs-auth.js',
    },
  },
});
