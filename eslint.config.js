// Lint: the recommended rules of ESLint and typescript-eslint, on sources and tests, plus the
// type-aware promise rules (a promise nobody awaits hides its rejection; node:test's test() and
// describe() are the known-safe exception).
// Pure-JS tooling on purpose: biome's per-platform binaries trip an npm lockfile bug
// (optional platform packages missing from package-lock.json, so `npm ci` refuses it).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** server/, client/, protocol/ and cli/ import keyring/ through its index.ts (the blocks below). */
const KEYRING_SURFACE = {
  regex: '(^|/)keyring/(?!(index|inspect|lookup|file-safety)\\.js$)[^/]+$',
  message: 'import keyring/ through keyring/index.js (or its light leaves inspect, lookup, file-safety)',
  allowTypeImports: true,
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test/vectors/**', 'man/**', 'completion/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' },
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-control-regex': 'off',
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['test', 'describe', 'it', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
            },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  // A folder's index.ts is what the product code of other folders imports from it. The exceptions
  // are deliberate leaves that keep a process light: keyring's inspect, lookup and file-safety
  // (the client and the verifier keep lowdb and the keyring's writers unloaded) and capture's
  // child-args (the monitor never loads libpcap). Type-only imports cost nothing at run time and
  // are allowed; tests and scripts may reach inside.
  {
    files: ['server/**/*.ts', 'client/**/*.ts', 'protocol/**/*.ts', 'cli/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [KEYRING_SURFACE],
        },
      ],
    },
  },
  {
    files: ['server/**/*.ts'],
    ignores: ['server/capture/**', 'server/firewall/**'],
    // replaces the block above for these files, so the keyring pattern is repeated
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            KEYRING_SURFACE,
            {
              regex: '(^|/)capture/(?!(index|child-args)\\.js$)[^/]+$',
              message:
                'import server/capture/ through its index.js (child-args.js: the monitor never loads libpcap)',
              allowTypeImports: true,
            },
            {
              regex: '(^|/)firewall/(?!index\\.js$)[^/]+$',
              message: 'import server/firewall/ through its index.js',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
);
