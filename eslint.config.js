// ESLint flat config: typescript-eslint with type information over every TypeScript file of the project, plus the
// ReDoS gates (every user-controlled input has bounded cost): eslint-plugin-regexp's rules everywhere, and recheck's
// analysis (eslint-plugin-redos) over the product, which also finds the polynomial backtracking regexp's rules miss
// (the quadratic status-annotation pattern of issue 11). `npm run lint`.
import js from '@eslint/js';
import redos from 'eslint-plugin-redos';
import regexp from 'eslint-plugin-regexp';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'bench/.build/**', 'node_modules/**', 'coverage/**', '.tap/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  regexp.configs['flat/recommended'],
  {
    // A disable comment for a rule that is off here (no-explicit-any in tests) is harmless; reporting it would only
    // make comments written before this config fail the gate.
    linterOptions: { reportUnusedDisableDirectives: 'off' },
  },
  {
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Super-linear regexes on user input are a denial-of-service risk: errors, not warnings.
      'regexp/no-super-linear-backtracking': 'error',
      'regexp/no-super-linear-move': 'error',
      // Style-only regexp rules: the plugin is here for its correctness and ReDoS rules, not to rewrite
      // [0-9] as \\d across the codebase.
      'regexp/prefer-d': 'off',
      'regexp/prefer-w': 'off',
      'regexp/use-ignore-case': 'off',
      'regexp/prefer-character-class': 'off',
      'regexp/no-unused-capturing-group': 'off',
      // Flags assertions tsc needs (Fastify's logger generic, values typed through `any` aliases): removing them
      // breaks the build, so the rule costs more than it finds.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // A leading underscore marks a deliberately unused binding (e.g. a property left out by destructuring).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },
  {
    // Only the product handles user input; in tests recheck flags unanchored `.*` in assertions on our own output.
    files: ['src/**'],
    plugins: { redos },
    rules: { 'redos/no-vulnerable': 'error' },
  },
  {
    // Tests, harness, bench and soak read JSON from HTTP answers, child processes and files and assert on it: typing
    // every such value would only restate what the assertions already check. The product (src/) keeps these rules.
    files: ['test/**', 'bench/**', 'soak/**'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      // tap subtests are async callbacks by convention, with or without an await inside.
      '@typescript-eslint/require-await': 'off',
      // tap tracks the promise t.test() returns itself; every other floating promise is still an error.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }] },
      ],
    },
  },
  {
    // Plain JavaScript (this file, the vector generators): no type information.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' } },
  },
);
