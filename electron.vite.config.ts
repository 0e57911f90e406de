/**
 * electron-vite: main (ESM, dependencies kept external and shipped in app.asar; entries: the app,
 * the bundled relay's child and the PKI worker thread), the sandboxed preload (CommonJS .cjs,
 * everything bundled; it imports the zod-free half of the contract only) and the Svelte renderer
 * (served on app://securechat).
 */
import { resolve } from 'node:path';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'electron-vite';
import type { Plugin } from 'vite';

const root = import.meta.dirname;

/**
 * The dev server injects CSS through <style> elements and talks to Vite over a WebSocket, which
 * the strict CSP of index.html forbids. Relax exactly that in `electron-vite dev`, never in a build.
 */
function devCsp(): Plugin {
  return {
    name: 'securechat-dev-csp',
    apply: 'serve',
    transformIndexHtml(html) {
      return html
        .replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
        .replace("connect-src 'self'", "connect-src 'self' ws://localhost:* ws://127.0.0.1:*");
    },
  };
}

export default defineConfig({
  main: {
    build: {
      outDir: 'out/main',
      rolldownOptions: {
        input: {
          index: resolve(root, 'src-main/electron/main.ts'),
          // The bundled relay runs in a utility process from this entry.
          'relay-child': resolve(root, 'src-main/relay/child-entry.ts'),
          // Opening bundles and creating groups run in a worker thread from this entry.
          'pki-worker': resolve(root, 'src-main/app/pki-worker.ts'),
        },
      },
    },
  },
  preload: {
    build: {
      outDir: 'out/preload',
      // A sandboxed preload cannot require() node_modules: bundle everything.
      externalizeDeps: false,
      rolldownOptions: {
        input: { index: resolve(root, 'src-main/electron/preload.ts') },
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: resolve(root, 'src-renderer'),
    base: './',
    plugins: [svelte({ configFile: resolve(root, 'svelte.config.js') }), devCsp()],
    build: {
      outDir: resolve(root, 'out/renderer'),
      emptyOutDir: true,
      // No inline scripts or data: modules: the CSP allows 'self' only.
      assetsInlineLimit: 0,
      modulePreload: { polyfill: false },
      rolldownOptions: {
        input: { index: resolve(root, 'src-renderer/index.html') },
      },
    },
  },
});
