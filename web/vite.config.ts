import { defineConfig } from 'vite';

// Preact through esbuild's automatic JSX runtime: no plugin needed. The API serves `dist/`
// (its `web.dir`), so the page and the API share one origin.
export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: 'dist', emptyOutDir: true },
});
