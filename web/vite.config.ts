import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/** The dashboard: sources in web/, static assets in web/dist/ (served by src/dashboard/static.ts). */
const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Everything as files: the page runs under a CSP without 'unsafe-inline', and data: URLs for
    // small assets would need img-src data: as well.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: true,
    target: 'es2022',
  },
});
