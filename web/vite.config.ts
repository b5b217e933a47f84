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
    rollupOptions: {
      // The service worker beside the page: at /sw.js (its scope is its folder, so it must be at the
      // root), under a fixed name the page can register; it imports nothing, so it is one file.
      input: { index: `${root}index.html`, sw: `${root}src/sw/sw.ts` },
      output: { entryFileNames: (chunk) => (chunk.name === 'sw' ? 'sw.js' : 'assets/[name]-[hash].js') },
    },
  },
});
