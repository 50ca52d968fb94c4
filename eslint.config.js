import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/build/**', '.sluice/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    // The live page runs in a browser: `tsc -p ui` checks its names against the DOM's types.
    files: ['ui/**/*.js'],
    rules: { 'no-undef': 'off' },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      // Time reaches the core only through the injected Clock: no timers, no wall clock.
      'no-restricted-globals': [
        'error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate']
          .concat(['queueMicrotask', 'Date', 'performance', 'process'])
          .map((name) => ({
            name,
            message: 'src/core is pure: time comes from the injected Clock, I/O from outside.',
          })),
      ],
      'no-restricted-properties': [
        'error',
        ...[
          'setTimeout',
          'setInterval',
          'setImmediate',
          'queueMicrotask',
          'Date',
          'performance',
          'process',
        ].map((property) => ({
          object: 'globalThis',
          property,
          message: 'src/core is pure: no timers, clocks or process.',
        })),
      ],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'net', 'dgram', 'http', 'https', 'child_process'],
              message: 'src/core is pure: no I/O modules.',
            },
            {
              group: [
                '../config/*',
                '../dataplane/*',
                '../control/*',
                '../cli/*',
                '../health/*',
                '../metrics/*',
              ],
              message: 'src/core must not import outer layers.',
            },
          ],
        },
      ],
    },
  },
);
