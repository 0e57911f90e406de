import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import svelte from 'eslint-plugin-svelte';
import svelteConfig from './svelte.config.js';

export default tseslint.config(
  { ignores: ['out/**', 'dist/**', 'node_modules/**', 'test-results/**', 'playwright-report/**'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    files: ['**/*.{ts,js,mjs}'],
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...svelte.configs.recommended,
  {
    // The renderer: Svelte 5 components (TypeScript inside), browser globals only.
    files: ['src-renderer/**/*.svelte', 'src-renderer/**/*.svelte.ts', 'src-renderer/**/*.ts'],
    languageOptions: {
      globals: { ...globals.browser },
      parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.svelte'], svelteConfig },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src-renderer/**/*.svelte'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'electron', message: 'The renderer talks to window.securechat only.' }],
          patterns: [{ group: ['node:*'], message: 'No Node built-ins outside src-main.' }],
        },
      ],
    },
  },
  {
    // The process boundary, enforced: only the Electron shell may import electron.
    files: ['src-main/**/*.ts'],
    ignores: ['src-main/electron/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'electron', message: 'Only src-main/electron/ (the thin shell) may import electron.' },
          ],
        },
      ],
    },
  },
  {
    // Shared code and the renderer run in the browser: no Node built-ins, no electron.
    files: ['src-shared/**/*.ts', 'src-renderer/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'electron', message: 'The renderer talks to window.securechat only.' }],
          patterns: [{ group: ['node:*'], message: 'No Node built-ins outside src-main.' }],
        },
      ],
    },
  },
);
