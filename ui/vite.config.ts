import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// Deterministic output: content-hashed file names, no source maps, no build timestamps, so
// `git diff --exit-code ui/dist` after a rebuild proves the embedded assets match the source.
export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    // The per-plugin timing report is noise in CI logs.
    rolldownOptions: { checks: { pluginTimings: false } },
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8081' },
  },
  test: {
    environment: 'jsdom',
    include: ['tests/**/*.test.ts'],
  },
})
