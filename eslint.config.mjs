// ESLint (flat config): JavaScript's and typescript-eslint's recommended rules over every source
// file; formatting is Prettier's job (.prettierrc.json), so no stylistic rules here.
//   npm run lint     ESLint, then prettier --check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  {
    // Built output, installed packages and generated files.
    ignores: [
      'dist/**',
      'out/**',
      'media/**',
      'node_modules/**',
      'native/build/**',
      'bench/.build/**',
      'bench/.scratch/**',
      'bench/results/**',
      '.vscode-test/**',
      '.test-artifacts/**',
      'runs/**',
      'examples/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // `_name` marks a parameter a signature needs but the body does not (tsc's noUnusedParameters agrees).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    // The webviews run in a browser sandbox.
    files: ['webview/**/*.ts'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    // Playwright tests and the UI benchmarks hand functions to the page: those bodies run in the browser.
    files: ['test/e2e/**/*.mjs', 'bench/**/*.mjs'],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
  {
    // Lazy `require()` keeps TensorFlow.js out of start-up for commands that do not need it (src/cli, src/core).
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
