/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// `npm run dev` proxies the API and the runtime config to a local `casebook serve`
// (infra/local/run.sh serves on 8080); CASEBOOK_API points elsewhere.
const api = process.env.CASEBOOK_API ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [preact({ prerender: { enabled: false } })],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // No inline scripts or data: URIs: the server's CSP is `default-src 'self'`.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
  },
  server: {
    proxy: {
      '/v1': api,
      '/config.json': api,
    },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
  },
});
